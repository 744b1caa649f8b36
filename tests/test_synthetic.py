"""Tests of the synthetic HECKTOR cohort: layouts, grids, CSV encodings, determinism, outcome signal."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_hecktor import schema
from nnunet_hecktor.cli import main as cli_main
from nnunet_hecktor.clinical import read_clinical_csv
from nnunet_hecktor.metrics.classification import roc_auc
from nnunet_hecktor.metrics.survival import harrell_c_index
from nnunet_hecktor.synthetic import FLAT_CSV_NAME, GROUND_TRUTH_NAME, draw_patients, make_cohort, patients_table
from nnunet_hecktor.synthetic.writer import TASK_COLUMNS, csv_text

N = 12


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames), list(reader)


def _tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "release"
    summary = make_cohort(out, n_patients=N, seed=0, layout="release", progress=False)
    return out, summary


def test_release_layout_and_file_names(release):
    out, summary = release
    assert sorted(p.name for p in out.iterdir()) == ["Task 1", "Task 2", "Task 3", GROUND_TRUTH_NAME]
    for task, folder in schema.TASK_FOLDERS.items():
        task_dir = out / folder
        patients = sorted(p.name for p in task_dir.iterdir() if p.is_dir())
        assert patients == summary.patient_ids[task] and patients
        assert sorted(p.name for p in task_dir.iterdir() if p.is_file()) == [schema.TASK_CSV_NAMES[task]]
        for pid in patients:
            assert schema.PATIENT_ID_PATTERN.match(pid)
            files = sorted(p.name for p in (task_dir / pid).iterdir())
            expected = {f"{pid}__CT.nii.gz", f"{pid}__PT.nii.gz"}
            if task == 1:
                expected.add(f"{pid}.nii.gz")
            if task == 2 and pid in summary.planning_patient_ids:
                expected |= {f"{pid}__CTPlanning.nii.gz", f"{pid}__RTDOSE.nii.gz"}
            assert files == sorted(expected)
    # Planning CT/dose only for a strict subset of Task 2.
    assert summary.planning_patient_ids
    assert set(summary.planning_patient_ids) < set(summary.patient_ids[2])
    assert len(summary.centres) >= 4


def test_task2_and_task3_overlap_task1_only_partly(release):
    out, summary = release
    t1, t2, t3 = (set(summary.patient_ids[t]) for t in (1, 2, 3))
    assert t2 - t1 and t3 - t1, "some patients must be only in Task 2/3"
    assert t2 & t1 and t3 & t1
    assert t1 - (t2 | t3), "some patients must be only in Task 1"


def test_shared_patients_identical_across_task_folders(release):
    out, summary = release
    tables = {t: {r["PatientID"]: r for r in _read_csv(out / schema.TASK_FOLDERS[t] / schema.TASK_CSV_NAMES[t])[1]}
              for t in (1, 2, 3)}
    shared_any = False
    for a, b in ((1, 2), (1, 3), (2, 3)):
        for pid in set(summary.patient_ids[a]) & set(summary.patient_ids[b]):
            shared_any = True
            for suffix in ("__CT", "__PT"):
                fa = out / schema.TASK_FOLDERS[a] / pid / f"{pid}{suffix}.nii.gz"
                fb = out / schema.TASK_FOLDERS[b] / pid / f"{pid}{suffix}.nii.gz"
                assert fa.read_bytes() == fb.read_bytes()
            for column in set(tables[a][pid]) & set(tables[b][pid]):
                assert tables[a][pid][column] == tables[b][pid][column], (pid, column)
    assert shared_any


def test_ct_and_pet_grids_differ_label_on_ct_grid(release):
    out, summary = release
    labels_seen: set[int] = set()
    for pid in summary.patient_ids[1]:
        folder = out / "Task 1" / pid
        ct = sitk.ReadImage(str(folder / f"{pid}__CT.nii.gz"))
        pet = sitk.ReadImage(str(folder / f"{pid}__PT.nii.gz"))
        label = sitk.ReadImage(str(folder / f"{pid}.nii.gz"))
        assert ct.GetPixelID() == sitk.sitkInt16
        assert pet.GetPixelID() == sitk.sitkFloat32
        assert label.GetPixelID() == sitk.sitkUInt8
        assert ct.GetDirection() == pet.GetDirection() == label.GetDirection() == (1, 0, 0, 0, 1, 0, 0, 0, 1)
        # Label exactly on the CT grid.
        assert label.GetSize() == ct.GetSize()
        assert label.GetSpacing() == ct.GetSpacing()
        assert label.GetOrigin() == ct.GetOrigin()
        # PET on another grid: coarser, other size, origin and extent.
        assert all(p > c for p, c in zip(pet.GetSpacing()[:2], ct.GetSpacing()[:2]))
        assert pet.GetSize() != ct.GetSize()
        assert pet.GetOrigin() != ct.GetOrigin()
        ct_extent = np.multiply(ct.GetSize(), ct.GetSpacing())
        pet_extent = np.multiply(pet.GetSize(), pet.GetSpacing())
        assert not np.allclose(ct_extent, pet_extent, atol=1.0)
        # Test size: small volumes (nnU-Net's preprocessed patch stays tiny).
        assert max(ct.GetSize()) <= 32
        values = np.unique(sitk.GetArrayViewFromImage(label))
        assert set(values.tolist()) <= {0, 1, 2}
        labels_seen |= set(values.tolist())
        ct_array = sitk.GetArrayViewFromImage(ct)
        assert ct_array.min() <= -1000 < 500 < ct_array.max()  # air and bone
    assert labels_seen == {0, 1, 2}


def test_lesions_are_visible_in_pet(release):
    """Mean SUV inside each labelled structure is well above the soft-tissue background
    (primaries more than nodes, which are smaller and less avid)."""
    out, summary = release
    ratios: dict[int, list[float]] = {1: [], 2: []}
    for pid in summary.patient_ids[1]:
        folder = out / "Task 1" / pid
        ct = sitk.ReadImage(str(folder / f"{pid}__CT.nii.gz"))
        pet = sitk.ReadImage(str(folder / f"{pid}__PT.nii.gz"))
        suv = sitk.GetArrayFromImage(sitk.Resample(pet, ct, sitk.Transform(), sitk.sitkLinear, 0.0))
        # PET may cover less than the CT: judge only voxels inside the PET field of view.
        in_pet = sitk.GetArrayFromImage(sitk.Resample(pet * 0 + 1, ct, sitk.Transform(),
                                                      sitk.sitkNearestNeighbor, 0.0)) > 0
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{pid}.nii.gz")))
        label[~in_pet] = 255
        hu = sitk.GetArrayFromImage(ct)
        soft = (label == 0) & (np.abs(hu) < 100)
        for value in (1, 2):
            if (label == value).sum() >= 3:
                ratios[value].append(suv[label == value].mean() / np.median(suv[soft]))
    assert ratios[1] and min(ratios[1]) > 2.5
    assert ratios[2] and min(ratios[2]) > 1.5


def test_csv_encodings_in_release(release):
    out, summary = release
    for task in (1, 2, 3):
        columns, rows = _read_csv(out / schema.TASK_FOLDERS[task] / schema.TASK_CSV_NAMES[task])
        assert columns == list(TASK_COLUMNS[task])
        assert [r["PatientID"] for r in rows] == summary.patient_ids[task]
        for row in rows:
            assert int(row["CenterID"]) == schema.CENTER_CODES[schema.centre_of(row["PatientID"])]
            for column in schema.BINARY_COLUMNS:
                assert row[column] in ("", "0.0", "1.0")
            assert row["M-stage"] in ("", "M0", "M1", "Mx")
    assert "HPV Status" not in TASK_COLUMNS[1] and "RFS" not in TASK_COLUMNS[1]


def test_csvs_parse_and_agree_with_ground_truth(release):
    """The project's own clinical parser reads every CSV, and recorded values are the true ones."""
    out, summary = release
    truth = json.loads((out / GROUND_TRUTH_NAME).read_text())["patients"]
    for task in (1, 2, 3):
        records = read_clinical_csv(out / schema.TASK_FOLDERS[task] / schema.TASK_CSV_NAMES[task])
        assert list(records) == summary.patient_ids[task]
        for pid, record in records.items():
            assert record["CenterID"] == schema.CENTER_CODES[truth[pid]["centre"]]
            for column, value in record.items():
                if column in ("PatientID", "CenterID") or value is None:
                    continue
                assert value == truth[pid]["clinical_true"][column], (pid, column)
    assert {"Relapse", "RFS"} <= set(TASK_COLUMNS[2]) and "HPV Status" not in TASK_COLUMNS[2]
    assert "HPV Status" in TASK_COLUMNS[3] and "RFS" not in TASK_COLUMNS[3]


def test_csv_encodings_on_bigger_cohort():
    """Encodings and missing cells over many patients (fast path, no images)."""
    patients = draw_patients(400, seed=3)
    text = csv_text(patients, schema.CLINICAL_COLUMNS)
    rows = list(csv.DictReader(text.splitlines()))
    assert len(rows) == 400 and len({r["PatientID"] for r in rows}) == 400
    for column in (*schema.BINARY_COLUMNS, "Relapse", "HPV Status"):
        assert {r[column] for r in rows} == {"", "0.0", "1.0"}, column
    assert {r["M-stage"] for r in rows} == {"", "M0", "M1", "Mx"}
    performance = {r["Performance Status"] for r in rows} - {""}
    assert {"0.0", "1.0", "2.0"} <= performance and {"80.0", "90.0", "100.0"} <= performance
    assert performance <= {"0.0", "1.0", "2.0", "3.0", "4.0", "80.0", "90.0", "100.0"}
    # Empty cells in most columns, including targets; never in PatientID/CenterID.
    missing = {c: sum(r[c] == "" for r in rows) for c in schema.CLINICAL_COLUMNS}
    assert missing["PatientID"] == missing["CenterID"] == 0
    assert sum(v > 0 for v in missing.values()) >= 8
    assert missing["RFS"] > 0 and missing["HPV Status"] > 0
    for r in rows:
        assert r["RFS"] == "" or float(r["RFS"]) >= 1.0
        assert r["Age"] == "" or 18 <= float(r["Age"]) <= 100
    assert any(r["PatientID"].endswith("-000") for r in rows)
    centres = {r["PatientID"].split("-")[0] for r in rows}
    assert len(centres) >= 6


@pytest.mark.parametrize("layout, task", [("release_underscore", None), ("flat", None), ("task", 2)])
def test_other_layouts(tmp_path, release, layout, task):
    release_out, release_summary = release
    out = tmp_path / layout
    summary = make_cohort(out, n_patients=N, seed=0, layout=layout, task=task, progress=False)
    names = sorted(p.name for p in out.iterdir())
    if layout == "release_underscore":
        assert names == ["Task_1", "Task_2", "Task_3", GROUND_TRUTH_NAME]
        assert _tree_hashes(out / "Task_2") == _tree_hashes(release_out / "Task 2")
    elif layout == "flat":
        assert all(not p.is_dir() for p in out.iterdir())
        columns, rows = _read_csv(out / FLAT_CSV_NAME)
        assert columns == list(schema.CLINICAL_COLUMNS)
        assert [r["PatientID"] for r in rows] == release_summary.all_patient_ids
        for pid in release_summary.all_patient_ids:
            assert (out / f"{pid}__CT.nii.gz").read_bytes() == \
                next(release_out.glob(f"Task */{pid}/{pid}__CT.nii.gz")).read_bytes()
            assert (out / f"{pid}__PT.nii.gz").is_file()
            assert (out / f"{pid}.nii.gz").is_file() == (pid in release_summary.patient_ids[1])
        by_id = {r["PatientID"]: r for r in rows}
        for pid, row in by_id.items():
            assert (row["HPV Status"] != "") <= (pid in release_summary.patient_ids[3])
            assert (row["RFS"] != "") <= (pid in release_summary.patient_ids[2])
    else:
        # A single task folder's contents at the root, identical to the release's Task 2.
        expected = _tree_hashes(release_out / "Task 2")
        got = {k: v for k, v in _tree_hashes(out).items() if k != GROUND_TRUTH_NAME}
        assert got == expected
        assert summary.patient_ids == {2: release_summary.patient_ids[2]}


def test_same_seed_same_bytes_with_two_processes(tmp_path, release):
    release_out, _ = release
    out = tmp_path / "again"
    make_cohort(out, n_patients=N, seed=0, layout="release", num_processes=2, progress=False)
    assert _tree_hashes(out) == _tree_hashes(release_out)


def test_different_seed_differs(tmp_path, release):
    release_out, summary = release
    make_cohort(tmp_path / "seed1", n_patients=N, seed=1, layout="task", task=1, progress=False)
    a = _tree_hashes(release_out / "Task 1")
    b = {k: v for k, v in _tree_hashes(tmp_path / "seed1").items() if k != GROUND_TRUTH_NAME}
    assert a and b and set(a.values()).isdisjoint(b.values())


def test_ground_truth_file(release):
    out, summary = release
    truth = json.loads((out / GROUND_TRUTH_NAME).read_text())
    assert set(truth["patients"]) == set(summary.all_patient_ids)
    for pid, p in truth["patients"].items():
        assert 0.0 < p["hpv_probability"] < 1.0
        assert isinstance(p["true_risk"], float)
        assert p["images"]["grids"]["ct"]["size"]
    best = truth["best_achievable"]
    for key, value in (("c_index_true_risk", summary.best_c_index),
                       ("balanced_accuracy_at_prevalence", summary.best_balanced_accuracy)):
        # NaN (e.g. no relapse among the few Task 2 patients) is written as null: strict JSON.
        assert best[key] is None if np.isnan(value) else best[key] == pytest.approx(value)


def test_outcome_rates_and_signal():
    patients = draw_patients(1200, seed=7)
    relapse = np.array([p.relapse for p in patients])
    hpv = np.array([p.hpv for p in patients])
    rfs = np.array([p.rfs_days for p in patients])
    risk = np.array([p.true_risk for p in patients])
    assert 0.20 <= relapse.mean() <= 0.30
    assert 0.84 <= hpv.mean() <= 0.92
    assert harrell_c_index(rfs, relapse, risk) > 0.68
    # Each image-visible driver alone carries signal, in the documented direction.
    assert harrell_c_index(rfs, relapse, [p.node_count for p in patients]) > 0.53
    assert harrell_c_index(rfs, relapse, [p.primary_volume_ml for p in patients]) > 0.53
    assert harrell_c_index(rfs, relapse, -hpv) > 0.53
    assert roc_auc(hpv, [p.hpv_probability for p in patients]) > 0.72
    ages = np.array([p.clinical_true["Age"] for p in patients])
    assert hpv[ages < 55].mean() > hpv[ages > 68].mean()


def test_draw_patients_matches_make_cohort(release):
    out, summary = release
    truth = json.loads((out / GROUND_TRUTH_NAME).read_text())["patients"]
    drawn = {p.patient_id: p for p in draw_patients(N, seed=0)}
    assert set(drawn) == set(truth)
    for pid, p in drawn.items():
        assert truth[pid]["true_risk"] == pytest.approx(p.true_risk)
        assert truth[pid]["rfs_days"] == p.rfs_days


def test_patients_table_shows_what_the_release_shows():
    patients = draw_patients(200, seed=4)
    recorded = patients_table(patients)
    true = patients_table(patients, recorded=False)
    for p in patients:
        row = recorded.loc[p.patient_id]
        if 2 not in p.tasks:
            assert np.isnan(row["RFS"]) and np.isnan(row["Relapse"])
        if 3 not in p.tasks:
            assert np.isnan(row["HPV Status"])
        assert true.loc[p.patient_id, "RFS"] == p.rfs_days and true.loc[p.patient_id, "HPV Status"] == p.hpv
    assert recorded["Tobacco Consumption"].isna().any() and not true["Tobacco Consumption"].isna().any()
    assert (recorded["true_risk"] == true["true_risk"]).all()


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli_main(["synth", str(out), "--patients", "6", "--seed", "2", "--layout", "task", "--task", "3",
                     "--quiet"]) == 0
    assert (out / schema.TASK_CSV_NAMES[3]).is_file()
    # A non-empty folder is refused with a plain message, not a traceback.
    assert cli_main(["synth", str(out), "--patients", "6", "--quiet"]) == 1
    assert "not empty" in capsys.readouterr().err
