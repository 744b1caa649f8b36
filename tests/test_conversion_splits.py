"""Patient-level folds: stratification, determinism, filtering a given split file."""

from __future__ import annotations

import json
import random

import pytest
from test_conversion_helpers import write_csv, write_patient

from nnunet_hecktor.dataset_conversion import convert_dataset, filter_splits, load_splits_file, make_stratified_splits
from nnunet_hecktor.dataset_conversion.splits import stratum_of
from nnunet_hecktor.errors import HecktorError


def _cohort(n=120, seed=3):
    """Centres with HECKTOR-like sizes, ~90 % HPV positive, ~25 % relapse, some unknown targets."""
    rng = random.Random(seed)
    centres = ["MDA"] * 58 + ["CHUP"] * 11 + ["CHUS"] * 11 + ["CHUM"] * 8 + ["HGJ"] * 8 + ["HMR"] * 3 + ["USZ"] * 2
    strata = {}
    for i in range(n):
        centre = rng.choice(centres)
        hpv = rng.choice(["1"] * 9 + ["0"] + ["NA"])
        relapse = rng.choice(["0", "0", "0", "1", "NA"])
        strata[f"{centre}-{i:03d}"] = (centre, hpv, relapse)
    return strata


def test_every_patient_is_validated_exactly_once():
    strata = _cohort()
    splits = make_stratified_splits(strata, num_folds=5, seed=0)
    assert len(splits) == 5
    validated = [p for fold in splits for p in fold["val"]]
    assert sorted(validated) == sorted(strata)
    for fold in splits:
        assert not set(fold["train"]) & set(fold["val"])
        assert sorted(fold["train"] + fold["val"]) == sorted(strata)
        assert fold["val"] == sorted(fold["val"])


@pytest.mark.parametrize("n, seed", [(20, 0), (57, 1), (120, 3), (300, 4)])
def test_folds_are_balanced_in_centre_hpv_relapse_and_size(n, seed):
    strata = _cohort(n, seed)
    splits = make_stratified_splits(strata, num_folds=5, seed=0)
    for dimension, tolerance in ((0, 1), (1, 2), (2, 2)):
        for value in {key[dimension] for key in strata.values()}:
            per_fold = [sum(strata[p][dimension] == value for p in fold["val"]) for fold in splits]
            # Every centre within one patient across folds; each target value within two.
            assert max(per_fold) - min(per_fold) <= tolerance, (dimension, value, per_fold)
    sizes = [len(fold["val"]) for fold in splits]
    assert max(sizes) - min(sizes) <= 1


def test_stratification_beats_chance():
    strata = _cohort(120, 7)
    hpv_negative = [p for p, key in strata.items() if key[1] == "0"]
    splits = make_stratified_splits(strata, num_folds=5, seed=0)
    per_fold = [sum(p in fold["val"] for p in hpv_negative) for fold in splits]
    assert max(per_fold) - min(per_fold) <= 1, per_fold


def test_splits_are_deterministic_and_seeded():
    strata = _cohort()
    shuffled = dict(sorted(strata.items(), key=lambda kv: hash(kv[0]) % 97))
    assert make_stratified_splits(strata, seed=0) == make_stratified_splits(shuffled, seed=0)
    assert make_stratified_splits(strata, seed=0) != make_stratified_splits(strata, seed=1)


def test_too_few_patients_for_the_folds():
    with pytest.raises(HecktorError, match="cannot make 5 folds from 3"):
        make_stratified_splits(_cohort(3))


def test_stratum_of_uses_centre_and_targets():
    assert stratum_of("CHUP-001", {"HPV Status": 1, "Relapse": None}) == ("CHUP", "1", "NA")
    assert stratum_of("odd_id", None) == ("odd_id", "NA", "NA")


def test_filter_splits_drops_absent_ids_and_reports():
    given = [{"train": ["A-001", "A-002", "X-009"], "val": ["A-003", "X-010"]},
             {"train": ["A-003", "X-010", "A-001"], "val": ["A-002", "X-011"]}]
    splits, info = filter_splits(given, ["A-001", "A-002", "A-003", "A-004"])
    assert splits == [{"train": ["A-001", "A-002"], "val": ["A-003"]}, {"train": ["A-003", "A-001"], "val": ["A-002"]}]
    assert info["ids_in_file"] == 6 and info["ids_dropped"] == 3
    assert info["dropped_examples"] == ["X-009", "X-010", "X-011"]
    assert info["patients_not_in_any_val"] == ["A-001", "A-004"]


def test_filter_splits_errors_when_a_fold_becomes_empty():
    given = [{"train": ["A-001"], "val": ["X-001"]}]
    with pytest.raises(HecktorError, match="fold 0 has an empty val list"):
        filter_splits(given, ["A-001"])


@pytest.mark.parametrize("content, problem", [
    ("{not json", "not valid JSON"),
    ('{"train": []}', "non-empty JSON list"),
    ('[{"train": ["a"]}]', "'train' and 'val' lists"),
    ('[{"train": [1], "val": ["a"]}]', "must be strings"),
])
def test_bad_split_files(tmp_path, content, problem):
    path = tmp_path / "splits.json"
    path.write_text(content)
    with pytest.raises(HecktorError, match=problem):
        load_splits_file(path)


def test_convert_writes_stratified_splits_and_filters_a_given_file(tmp_path):
    src = tmp_path / "src"
    ids = [f"CHUP-{i:03d}" for i in range(4)] + [f"MDA-{i:03d}" for i in range(4)]
    for i, pid in enumerate(ids):
        write_patient(src, pid, seed=i)
    write_patient(src, "HGJ-000", label=False, seed=20)  # unlabelled: never in a split
    write_csv(src / "clinical.csv", ["PatientID", "HPV Status"],
              [{"PatientID": pid, "HPV Status": "1.0" if i % 2 else "0.0"} for i, pid in enumerate(ids)])
    out = tmp_path / "Dataset512_S"
    convert_dataset(src, dataset_id=512, name="S", output=out, progress=False)
    splits = json.loads((out / "splits_final.json").read_text())
    assert len(splits) == 5 and sorted(p for f in splits for p in f["val"]) == sorted(ids)

    given = tmp_path / "organisers_splits.json"
    given.write_text(json.dumps([{"train": ids[:6] + ["CHUV-099"], "val": ids[6:] + ["CHUV-100", "HGJ-000"]},
                                 {"train": ids[2:], "val": ids[:2]}]))
    summary = convert_dataset(src, dataset_id=512, name="S", output=out, progress=False, splits_file=given)
    assert summary.resumed == sorted(ids + ["HGJ-000"])  # images untouched, only the split changes
    filtered = json.loads((out / "splits_final.json").read_text())
    assert filtered == [{"train": ids[:6], "val": ids[6:]}, {"train": ids[2:], "val": ids[:2]}]
    report = json.loads((out / "conversion_report.json").read_text())
    assert report["splits"]["ids_dropped"] == 3  # CHUV-099, CHUV-100 and the unlabelled HGJ-000
    assert any("3 of its" in w for w in report["warnings"])


# Stable folds (issue 20, hole 3): before, correcting one HPV value moved 19 of 45 training cases to another
# validation fold and adding one patient moved 2; now nobody moves, and a change of split is a warning.

def _folds(splits):
    return {p: i for i, fold in enumerate(splits) for p in fold["val"]}


def _previous(strata, seed=0, num_folds=5, source=None, recorded_seed=0):
    from nnunet_hecktor.dataset_conversion.splits import PreviousSplits

    return PreviousSplits(_folds(make_stratified_splits(strata, num_folds, seed)), num_folds, recorded_seed, source)


def test_stable_splits_keep_every_fold_when_a_value_is_corrected_or_a_patient_added():
    from nnunet_hecktor.dataset_conversion.splits import make_stable_splits

    strata = _cohort(45, 3)
    previous = _previous(strata)
    corrected = dict(strata)
    pid = sorted(strata)[10]
    corrected[pid] = (strata[pid][0], "0" if strata[pid][1] != "0" else "1", strata[pid][2])
    assert make_stratified_splits(corrected) != make_stratified_splits(strata)  # the old way moves patients
    splits, info = make_stable_splits(corrected, 5, 0, previous)
    assert _folds(splits) == previous.folds
    assert info["changed_fold"] == 0 and info["kept"] == 45 and "warning" not in info

    grown = dict(strata, **{"CHUS-999": ("CHUS", "1", "0")})
    splits, info = make_stable_splits(grown, 5, 0, previous)
    assert {p: f for p, f in _folds(splits).items() if p != "CHUS-999"} == previous.folds
    assert info["new"] == 1 and info["changed_fold"] == 0

    shrunk = {p: k for p, k in strata.items() if p != pid}
    splits, info = make_stable_splits(shrunk, 5, 0, previous)
    assert _folds(splits) == {p: f for p, f in previous.folds.items() if p != pid} and info["left"] == 1


@pytest.mark.parametrize("n, added", [(20, 5), (57, 3), (100, 20), (200, 50)])
def test_stable_splits_stay_balanced_when_patients_are_added(n, added):
    from nnunet_hecktor.dataset_conversion.splits import make_stable_splits

    full = _cohort(n + added, 5)
    old = set(random.Random(1).sample(sorted(full), n))
    previous = _previous({p: full[p] for p in old})
    splits, info = make_stable_splits(full, 5, 0, previous)
    assert info["changed_fold"] == 0 and info["new"] == added
    for dimension, tolerance in ((0, 1), (1, 2), (2, 2)):
        for value in {key[dimension] for key in full.values()}:
            per_fold = [sum(full[p][dimension] == value for p in fold["val"]) for fold in splits]
            assert max(per_fold) - min(per_fold) <= tolerance, (dimension, value, per_fold)
    sizes = [len(fold["val"]) for fold in splits]
    assert max(sizes) - min(sizes) <= 1


def test_stable_splits_without_previous_equal_the_stratified_ones():
    from nnunet_hecktor.dataset_conversion.splits import make_stable_splits

    strata = _cohort(57, 1)
    splits, info = make_stable_splits(strata, 5, 0, None)
    assert splits == make_stratified_splits(strata, 5, 0)
    assert info["kept"] == 0 and info["new"] == 57 and info["changed_fold"] == 0


@pytest.mark.parametrize("change, reason", [
    ({"seed": 1}, "seed 0 -> 1"),
    ({"num_folds": 3}, "5 -> 3 folds"),
    ({"source": "organisers.json"}, "came from organisers.json"),
])
def test_a_changed_split_names_how_many_moved(change, reason):
    from nnunet_hecktor.dataset_conversion.splits import make_stable_splits

    strata = _cohort(45, 3)
    # A given split file: other folds (drawn here with seed 3), no seed recorded.
    previous = (_previous(strata, seed=3, source=change["source"], recorded_seed=None) if "source" in change
                else _previous(strata))
    splits, info = make_stable_splits(strata, change.get("num_folds", 5), change.get("seed", 0), previous)
    before = previous.folds
    moved = sum(before[p] != f for p, f in _folds(splits).items())
    assert info["changed_fold"] == moved > 0
    assert f"{moved} of the 45 training cases" in info["warning"] and reason in info["warning"]


def test_convert_keeps_folds_across_reconversions_and_warns_when_they_change(tmp_path):
    src = tmp_path / "src"
    ids = [f"CHUP-{i:03d}" for i in range(5)] + [f"MDA-{i:03d}" for i in range(5)]
    for i, pid in enumerate(ids):
        write_patient(src, pid, seed=i)

    def clinical(hpv_of_first):
        write_csv(src / "clinical.csv", ["PatientID", "HPV Status"],
                  [{"PatientID": pid, "HPV Status": hpv_of_first if i == 0 else ("1.0" if i % 2 else "0.0")}
                   for i, pid in enumerate(ids)])

    clinical("0.0")
    out = tmp_path / "Dataset513_S"
    convert_dataset(src, dataset_id=513, name="S", output=out, progress=False)
    first = json.loads((out / "splits_final.json").read_text())

    clinical("1.0")  # one HPV value corrected: the strata change, nobody's fold does
    convert_dataset(src, dataset_id=513, name="S", output=out, progress=False)
    assert json.loads((out / "splits_final.json").read_text()) == first
    report = json.loads((out / "conversion_report.json").read_text())
    assert report["splits"]["kept"] == 10 and report["splits"]["changed_fold"] == 0
    assert not any("changed validation fold" in w for w in report["warnings"])

    write_patient(src, "MDA-099", seed=30)  # one patient more, even with --overwrite: the others stay
    convert_dataset(src, dataset_id=513, name="S", output=out, progress=False, overwrite=True)
    grown = _folds(json.loads((out / "splits_final.json").read_text()))
    assert {p: f for p, f in grown.items() if p != "MDA-099"} == _folds(first)

    summary = convert_dataset(src, dataset_id=513, name="S", output=out, progress=False, seed=7)
    report = json.loads((out / "conversion_report.json").read_text())
    moved = report["splits"]["changed_fold"]
    assert moved > 0 and any(f"{moved} of the 11 training cases" in w and "seed 0 -> 7" in w
                             for w in summary.dataset_warnings)
