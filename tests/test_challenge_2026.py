"""The HECKTOR 2026 container (``nnunet-hecktor challenge --edition 2026``): one run, four outputs.

Parts without a model (tolerant ``ehr.json``, the ``rfs.json`` convention, T/N staging and its
fallbacks, checked writes, the model mount, the time guard, the long-CT crop) run on small real
images; the end-to-end rows run the real container with the session's tiny trained multi-task
model, the way the organisers' test script runs it (read-only input, the model in its own mount
folder, no network needed), and check all four outputs with
:func:`nnunet_hecktor.challenge.outputs.check_outputs_2026`.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_hecktor.challenge.ehr import flatten_record, read_ehr, read_tolerant_json
from nnunet_hecktor.challenge.outputs import (
    OutputWriteError,
    check_output_folder,
    check_outputs_2026,
    rfs_value,
    write_image_output,
    write_json_output,
)
from nnunet_hecktor.challenge.run2026 import model_input_columns, output_paths
from nnunet_hecktor.errors import HecktorError, InputDataError
from nnunet_hecktor.synthetic.challenge_input import SAMPLE_EHR_2026_TEXT

SEG_2026 = Path("images/head-neck-tumor-segmentation/output.mha")
COLUMNS = model_input_columns()


# -- ehr.json ------------------------------------------------------------------------------------

def test_sample_ehr_with_trailing_comma_is_read(tmp_path):
    path = tmp_path / "ehr.json"
    path.write_text(SAMPLE_EHR_2026_TEXT)
    with pytest.raises(json.JSONDecodeError):
        json.loads(SAMPLE_EHR_2026_TEXT)  # the organisers' sample is not strict JSON
    reading = read_ehr(path, COLUMNS)
    assert reading.record["HPV Status"] == 1 and reading.record["Age"] == 62.0
    assert reading.record["CenterID"] is None  # never an input, whatever the centre
    assert any("trailing comma" in n for n in reading.notes)
    assert reading.missing_inputs == ("M-stage",)  # the only network input 2026 no longer supplies


@pytest.mark.parametrize("text, repairs", [
    ('\ufeff{"Age": 50, "HPV Status": 0}', ["a UTF-8 byte-order mark"]),
    ('{\n  // age in years\n  "Age": 50, /* block */ "HPV Status": 0,\n}', ["a trailing comma", "comments"]),
    ('{"Age": 50, "note": "a // not a comment, and a , before }", "HPV Status": 0}', []),
    ('{"Age": 50, "HPV Status": 0, "list": [1, 2,],}', ["a trailing comma"]),
])
def test_tolerant_json(tmp_path, text, repairs):
    path = tmp_path / "ehr.json"
    path.write_bytes(text.encode("utf-8"))
    data, found = read_tolerant_json(path)
    assert data["Age"] == 50 and data["HPV Status"] == 0
    assert sorted(found) == sorted(repairs)


def test_tolerant_json_still_rejects_garbage(tmp_path):
    path = tmp_path / "ehr.json"
    path.write_text("{Age: fifty")
    with pytest.raises(InputDataError, match="not JSON"):
        read_tolerant_json(path)
    reading = read_ehr(path, COLUMNS)
    assert [s.column for s in reading.substitutions] == ["ehr.json"]
    assert reading.missing_inputs == COLUMNS


def test_nested_record_and_bom_give_the_values_and_name_what_is_missing(tmp_path):
    path = tmp_path / "ehr.json"
    content = {"PatientID": "X-001", "clinical": {"Age": 70, "Gender": 0, "HPV Status": 1, "Tumour side": "left"},
               "Age": 71}
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(content).encode())
    reading = read_ehr(path, COLUMNS)
    assert reading.record["Age"] == 71.0 and reading.record["Gender"] == 0 and reading.record["HPV Status"] == 1
    assert any("nested object 'clinical'" in n for n in reading.notes)
    assert any("top-level value is used" in n for n in reading.notes)
    assert set(reading.missing_inputs) == {"Tobacco Consumption", "Alcohol Consumption", "Performance Status",
                                           "Treatment", "M-stage"}


def test_flatten_keeps_flat_records():
    assert flatten_record({"Age": 1, "HPV Status": 0}) == ({"Age": 1, "HPV Status": 0}, [])


# -- rfs.json convention ---------------------------------------------------------------------------

def test_rfs_time_convention_is_anti_concordant_with_risk():
    risks = np.array([-2.0, -0.1, 0.0, 0.3, 5.0])
    written = np.array([rfs_value(r, "time") for r in risks])
    assert np.all(np.diff(written) < 0)  # higher risk -> smaller value
    assert np.array_equal([rfs_value(r, "risk") for r in risks], risks)
    assert str(rfs_value(0.0, "time")) == "0.0"
    with pytest.raises(HecktorError, match="not finite"):
        rfs_value(float("inf"))
    with pytest.raises(HecktorError, match="expected one of time, risk"):
        rfs_value(1.0, "days")


# -- checked writes and the output folder ----------------------------------------------------------

def _mask(size=(5, 6, 7)):
    image = sitk.GetImageFromArray(np.random.default_rng(0).integers(0, 3, size=size[::-1]).astype(np.uint8))
    image.SetSpacing((2.0, 2.0, 3.0))
    return image


def test_full_disk_never_leaves_an_empty_output_under_its_final_name(tmp_path, monkeypatch):
    """SimpleITK's writer does not raise on a full disk; the check before the rename does."""
    target = tmp_path / SEG_2026
    write_image_output(_mask(), target)
    before = target.read_bytes()

    def full_disk_write(image, path, *args):  # what ITK leaves on a full disk: a 0-byte file, no error
        Path(path).write_bytes(b"")

    monkeypatch.setattr(sitk, "WriteImage", full_disk_write)
    with pytest.raises(OutputWriteError, match="empty"):
        write_image_output(_mask((8, 8, 8)), target)
    assert target.read_bytes() == before  # the previous (fallback) file is untouched
    assert [p.name for p in target.parent.iterdir()] == ["output.mha"]  # no temporary left

    def truncated_write(image, path, *args):
        Path(path).write_bytes(before[: len(before) // 2])

    monkeypatch.setattr(sitk, "WriteImage", truncated_write)
    with pytest.raises(OutputWriteError):
        write_image_output(_mask(), target)
    assert target.read_bytes() == before


def test_json_output_checked(tmp_path):
    assert json.loads(write_json_output("T2", tmp_path / "t-stage.json").read_text()) == "T2"
    assert (tmp_path / "t-stage.json").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_unwritable_output_folder_stops_before_any_work(tmp_path, capsys):
    from nnunet_hecktor.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputWriteError, match="cannot be created"):
        check_output_folder(blocker / "output")
    if os.geteuid() != 0:  # root writes into read-only folders
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
        with pytest.raises(OutputWriteError, match="not writable"):
            check_output_folder(ro)
    with pytest.raises(OutputWriteError, match="bytes free"):
        check_output_folder(tmp_path / "out", needed_bytes=10 ** 18)
    assert not list((tmp_path / "out").iterdir())  # the probe is gone
    code = main(["challenge", "--edition", "2026", "--input", str(tmp_path / "in"), "--output",
                 str(blocker / "output"), "--model", str(tmp_path / "no-model")])
    assert code == 1
    err = capsys.readouterr().err
    assert "output folder" in err and "cannot be created" in err and "Traceback" not in err


# -- T/N staging -------------------------------------------------------------------------------

def _segmentation(gtvp_mm=0, nodes_mm=(), spacing=2.0, size=64) -> sitk.Image:
    """A 0/1/2 mask: a 2-voxel-thick GTVp bar of ``gtvp_mm`` along z, and nodes on the same side."""
    array = np.zeros((size, size, size), dtype=np.uint8)
    if gtvp_mm:
        n = max(1, int(round(gtvp_mm / spacing)))
        array[2:2 + n, 2:4, 2:4] = 1
    for i, node in enumerate(nodes_mm):
        n = max(1, int(round(node / spacing)))
        array[2:2 + n, 10 + 6 * i: 12 + 6 * i, 6:8] = 2
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((spacing,) * 3)
    return image


@pytest.mark.parametrize("gtvp_mm, nodes_mm, t, n", [
    (10, (), "T1", "N0"), (30, (10,), "T2", "N1"), (60, (10, 12), "T3", "N2"), (30, (40,), "T2", "N2"),
    (10, (70,), "T1", "N3"),
])
def test_geometry_fallback_is_the_prognosis_ajcc7_rule(gtvp_mm, nodes_mm, t, n):
    from nnunet_hecktor.challenge.staging import GEOMETRY_SOURCE, predict_tn_stages
    from nnunet_hecktor.prognosis.stage_geometry import stage_geometry_features
    from nnunet_hecktor.prognosis.staging_rules import ajcc7_rule_stage

    seg = _segmentation(gtvp_mm, nodes_mm)
    tn = predict_tn_stages(seg)
    assert (tn.t_stage, tn.n_stage) == (t, n) and tn.sources["T-stage"] == GEOMETRY_SOURCE
    assert (tn.t_stage, tn.n_stage) == ajcc7_rule_stage(
        stage_geometry_features(sitk.GetArrayFromImage(seg), (2.0, 2.0, 2.0)))


def test_tn_fallbacks_without_a_staging_model():
    from nnunet_hecktor.challenge.staging import StageFallback, most_frequent_stages, predict_tn_stages

    seg = _segmentation(30, (10, 12))
    tn = predict_tn_stages(seg)
    assert (tn.t_stage, tn.n_stage) == ("T2", "N2") and "geometry" in tn.sources["T-stage"]
    assert any("no staged T/N model" in n for n in tn.notes)
    modal = most_frequent_stages({"a": {"T-stage": "T3", "N-stage": "N0"}, "b": {"T-stage": "T3", "N-stage": "N1"},
                                  "c": {"T-stage": "T1", "N-stage": None}})
    assert (modal.t_stage, modal.n_stage) == ("T3", "N0")
    tn = predict_tn_stages(seg, fallback=modal, rule="prevalence")
    assert (tn.t_stage, tn.n_stage) == ("T3", "N0") and "most frequent" in tn.sources["N-stage"]
    # no segmentation (it failed): the prevalence, whatever the rule
    tn = predict_tn_stages(None, fallback=StageFallback())
    assert (tn.t_stage, tn.n_stage) == ("T2", "N2")
    # no GTVp predicted: T from the prevalence (not the rule's T0), N from the rule
    tn = predict_tn_stages(_segmentation(0, ()), fallback=modal)
    assert (tn.t_stage, tn.n_stage) == ("T3", "N0") and tn.from_prevalence("T-stage")
    # the stage's values win; a stage answering N only leaves T to the rule
    tn = predict_tn_stages(seg, {"t_stage": "T4a", "n_stage": "N3"}, stage_source="stage: here")
    assert (tn.t_stage, tn.n_stage) == ("T4", "N3") and tn.sources["N-stage"] == "stage: here"
    assert predict_tn_stages(seg, {"n_stage": "N0"}).sources["T-stage"].startswith("geometry")
    assert StageFallback.from_json({"t_stage": "T4a", "n_stage": "N2b"}) == StageFallback("T4", "N2",
                                                                                       "challenge_model.json")


def _stage_cohort(n: int = 40, seed: int = 0):
    """Tiny synthetic training features: T and N follow the HPV status only (T4/N3 when positive, T1/N0
    when negative: stages the geometry rule of a small mask never gives), relapse follows the primary size."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    hpv = rng.integers(0, 2, n).astype(float)
    diameter = rng.uniform(5.0, 60.0, n)
    X = pd.DataFrame({"gtvp_max_diameter_mm": diameter, "HPV Status": hpv})
    time = np.exp(6.5 - diameter / 30.0 + rng.normal(0, 0.3, n))
    return X, np.where(hpv > 0, 4, 1), np.where(hpv > 0, 3, 0), time, rng.random(n) < 0.7


def stage_prognosis(model_dir: Path, survival: bool = True, staging: bool = True, hpv_input: bool = True) -> Path:
    """Fit a T/N staging model (and a Cox survival model) on :func:`_stage_cohort` and stage them into
    ``model_dir/prognosis/`` as ``prognosis stage`` does (``stage.joblib``, ``survival.joblib``).
    ``hpv_input=False``: the survival model takes no HPV status (a 2025 stage)."""
    from sklearn.pipeline import make_pipeline
    from sksurv.linear_model import CoxPHSurvivalAnalysis
    from sksurv.util import Surv

    from nnunet_hecktor.prognosis.deployment import stage_into_model
    from nnunet_hecktor.prognosis.model_store import PrognosisModel, save_model
    from nnunet_hecktor.prognosis.preprocessing import ColumnRoles, make_preprocessor
    from nnunet_hecktor.prognosis.stage_models import TNStageModel

    X, t, n, time, event = _stage_cohort()
    roles = ColumnRoles(continuous=["gtvp_max_diameter_mm"], binary=["HPV Status"])
    common = dict(image_columns=["gtvp_max_diameter_mm"], clinical_columns=["HPV Status"], feature_set="all",
                  seg_source="predicted")
    fits = model_dir.parent / f"{model_dir.name}_fits"
    given = {}
    if staging:
        tn = TNStageModel(roles, Cs=(1.0,)).fit(X, t, n)
        given["stage"] = fits / "stage" / "model.joblib"
        save_model(PrognosisModel(task="stage", estimator=tn, chosen="balanced_logistic", description="test T/N",
                                  fallback={"t_stage": "T3", "n_stage": "N1"}, **common), given["stage"])
    if survival:
        if not hpv_input:
            X, roles = X.drop(columns=["HPV Status"]), ColumnRoles(continuous=["gtvp_max_diameter_mm"])
            common["clinical_columns"] = []
        cox = make_pipeline(make_preprocessor(roles), CoxPHSurvivalAnalysis()).fit(X, Surv.from_arrays(event, time))
        given["survival"] = fits / "survival" / "model.joblib"
        save_model(PrognosisModel(task="survival", estimator=cox, chosen="cox", description="test Cox",
                                  fallback={"risk": float(np.median(cox.predict(X)))}, **common), given["survival"])
    stage_into_model(model_dir, models=given)
    return model_dir / "prognosis"


def test_staged_stage_is_routed_and_packaged(tmp_path):
    """The staged models answer risk, T and N through the routing; packaging ships the stage folder whole."""
    from nnunet_hecktor.challenge.packaging import stage_model
    from nnunet_hecktor.prediction.routing import route_outputs
    from nnunet_hecktor.prognosis.deployment import resolve_stage_models

    model = _model_folder(tmp_path / "model")
    folder = stage_prognosis(model)
    (folder / "stage.json").write_text(json.dumps({"edition": "2026"}))
    stage = resolve_stage_models(model)
    routing = route_outputs(True, stage, ("risk", "t_stage", "n_stage"))
    assert {routing.kind(o) for o in ("risk", "t_stage", "n_stage")} == {"stage"}
    assert stage.fallback()["t_stage"] == "T3"
    from nnunet_hecktor.challenge.staging import stage_fallback

    recorded = {"t_stage": "T1", "n_stage": "N0"}
    assert (stage_fallback(stage, recorded).t_stage, stage_fallback(stage, recorded).n_stage) == ("T3", "N1")
    stage.models["stage"].fallback = {}  # a T/N model saved before fallbacks were recorded: the packaged ones
    assert stage_fallback(stage, recorded).t_stage == "T1" and stage_fallback(None).n_stage == "N2"
    staged = stage_model(model, tmp_path / "staged", [0], "checkpoint_final.pth")
    assert sorted(p.name for p in (staged / "prognosis").iterdir()) == ["stage.joblib", "stage.json",
                                                                        "survival.joblib"]


# -- model mount -----------------------------------------------------------------------------------

def _model_folder(path: Path) -> Path:
    (path / "fold_0").mkdir(parents=True)
    (path / "fold_0" / "checkpoint_final.pth").write_bytes(b"w")
    for name in ("plans.json", "dataset.json"):
        (path / name).write_text("{}")
    return path


def test_model_location(tmp_path):
    from nnunet_hecktor.challenge.model_location import resolve_model_dir

    baked = _model_folder(tmp_path / "baked")
    mount = tmp_path / "mount"
    assert resolve_model_dir(None, mount, baked) == (baked, f"baked into the image ({baked})")
    mount.mkdir()
    assert resolve_model_dir(None, mount, baked)[0] == baked  # an empty mount: the baked-in model
    _model_folder(mount / "Trainer__Plans__3d_fullres")
    assert resolve_model_dir(None, mount, baked)[0] == mount / "Trainer__Plans__3d_fullres"
    shutil.rmtree(mount / "Trainer__Plans__3d_fullres")
    _model_folder(mount / "Dataset501_X" / "Trainer__Plans__3d_fullres")  # an nnUNet_results tree
    assert resolve_model_dir(None, mount, baked)[0] == mount / "Dataset501_X" / "Trainer__Plans__3d_fullres"
    _model_folder(mount / "Dataset501_X" / "Trainer__Plans__2d")  # two models: ambiguous, not guessed
    assert resolve_model_dir(None, mount, baked)[0] == baked
    shutil.rmtree(mount)
    _model_folder(mount)
    assert resolve_model_dir(None, mount, baked) == (mount, f"mounted model ({mount})")
    shutil.rmtree(mount)
    mount.mkdir()
    with tarfile.open(mount / "model.tar.gz", "w:gz") as tar:
        tar.add(baked, arcname=".")
    found, how = resolve_model_dir(None, mount, tmp_path / "nothing")
    assert (found / "fold_0" / "checkpoint_final.pth").read_bytes() == b"w" and "extracted" in how
    shutil.rmtree(found)
    with pytest.raises(HecktorError, match="no model found"):
        resolve_model_dir(None, tmp_path / "absent", tmp_path / "nothing")


def test_model_archive_round_trip(tmp_path):
    from nnunet_hecktor.challenge.model_location import resolve_model_dir
    from nnunet_hecktor.challenge.packaging import write_model_archive

    staged = _model_folder(tmp_path / "staged")
    archive = write_model_archive(staged, tmp_path / "model.tar.gz")
    with tarfile.open(archive) as tar:
        names = sorted(m.name for m in tar.getmembers() if m.isfile())
    assert names == ["dataset.json", "fold_0/checkpoint_final.pth", "plans.json"]  # content at the root
    mount = tmp_path / "opt_ml_model"
    mount.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(mount, filter="data")
    assert resolve_model_dir(None, mount, tmp_path / "none")[0] == mount


# -- time guard and long CTs -----------------------------------------------------------------------

def _fake_model(folds=(0, 1, 2, 3, 4), patch=(32, 32, 32)):
    # The attributes the planner reads from nnU-Net's predictor (a data holder, no network).
    predictor = SimpleNamespace(configuration_manager=SimpleNamespace(patch_size=patch), tile_step_size=0.5,
                                allowed_mirroring_axes=(0, 1, 2))
    return SimpleNamespace(predictor=predictor, info=SimpleNamespace(folds=tuple(folds)))


@pytest.mark.parametrize("budget_s, folds, mirroring, reduced", [
    (10_000, 5, True, False),     # 27 windows x 5 x 8 x 1 s x 1.3 = 1404 s fits 7500 s
    (1_500, 5, False, True),      # 1404 s > 1125 s; 5 folds without mirroring (176 s) fit
    (100, 2, False, True),        # 75 s: 2 folds (70 s)
    (10, 1, False, True),         # nothing fits: one fold, no mirroring, anyway
])
def test_time_guard_plan(budget_s, folds, mirroring, reduced):
    from nnunet_hecktor.challenge.guards import TimeBudget, count_windows, plan_sliding_window

    assert count_windows((64, 64, 64), (32, 32, 32), 0.5) == 27
    assert count_windows((20, 20, 20), (32, 32, 32), 0.5) == 1
    plan = plan_sliding_window(_fake_model(), (2, 64, 64, 64), TimeBudget(budget_s), True, measured_forward_s=1.0)
    assert (len(plan.folds), plan.mirroring, plan.reduced) == (folds, mirroring, reduced)
    assert plan.folds == tuple(range(folds))
    assert ("running it anyway" in plan.note) == (budget_s == 10)


def _long_ct_and_pet(length_mm=1300.0, spacing=5.0):
    """A 32 x 32 in-plane CT of ``length_mm`` (head at the top) and a 4 mm PET with a brain-like uptake."""
    nz = int(length_mm / spacing)
    ct = sitk.Image([32, 32, nz], sitk.sitkInt16) - 1000
    ct.SetSpacing((5.0, 5.0, spacing))
    ct.SetOrigin((-80.0, -80.0, -length_mm))
    pet_array = np.full((int(length_mm / 4), 40, 40), 1.0, dtype=np.float32)
    top = pet_array.shape[0] - 1
    pet_array[top - 40:top - 10, 10:30, 10:30] = 10.0  # brain: 80 x 80 x 120 mm at the top
    pet_array[top - 70:top - 66, 18:22, 22:26] = 12.0  # tumour below it
    pet = sitk.GetImageFromArray(pet_array)
    pet.SetSpacing((4.0, 4.0, 4.0))
    pet.SetOrigin((-80.0, -80.0, -length_mm))
    return ct, pet


def test_long_ct_crop():
    from nnunet_hecktor.challenge.guards import LONG_CT_BOX_MM, long_ct_crop

    ct, pet = _long_ct_and_pet()
    record = long_ct_crop("case", ct, pet)
    assert record is not None and record.details["brain"] is not None
    start, stop = record.index_start, record.index_stop
    assert (stop[2] - start[2]) * 5.0 <= LONG_CT_BOX_MM[2] + 5.0
    assert stop[2] > ct.GetSize()[2] - 40  # the box hangs from the brain, near the top of the body
    assert (start[0], start[1], stop[0], stop[1]) == (0, 0, 32, 32)  # 160 mm in-plane: all kept
    short, short_pet = _long_ct_and_pet(400.0)
    assert long_ct_crop("case", short, short_pet) is None
    assert long_ct_crop("case", ct, pet, max_length_mm=None, max_voxels=None) is None


# -- end to end with the tiny trained model ---------------------------------------------------------

@pytest.fixture(scope="module")
def source(tiny_dataset):
    from nnunet_hecktor.dataset_conversion import discover_layout

    layout = discover_layout(tiny_dataset.root / "source")
    pid = sorted(p for p, s in layout.patients.items() if s.label is not None)[0]
    sources = layout.patients[pid]
    return {"ct": sitk.ReadImage(str(sources.ct)), "pet": sitk.ReadImage(str(sources.pet))}


def _read_only(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True) + [root]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _write_2026_case(root: Path, source: dict, variant: str):
    from nnunet_hecktor.synthetic.challenge_input import write_challenge_input

    ct, pet = source["ct"], source["pet"]
    ehr_text = SAMPLE_EHR_2026_TEXT
    if variant == "missing_hpv":
        ehr_text = json.dumps({"Age": 55, "Gender": 0, "CenterID": 4})
    elif variant == "unseen_centre":
        ehr_text = json.dumps({"Age": 55, "HPV Status": 0, "CenterID": 12, "Centre name": "Elsewhere"})
    elif variant == "nested_bom":
        ehr_text = "\ufeff" + json.dumps({"PatientID": "X-1", "clinical": {"Age": 55, "HPV Status": 1}})
    elif variant == "dummy_1x1x1":
        ct, pet = sitk.Image([1, 1, 1], sitk.sitkInt16), sitk.Image([1, 1, 1], sitk.sitkFloat32)
    elif variant == "ct_1300mm":
        ct, pet = _long_ct_and_pet()
        # the synthetic patient's CT and PET values, pasted at the top of the long body
        array = sitk.GetArrayFromImage(ct)
        patient = sitk.GetArrayFromImage(sitk.Resample(source["ct"], [32, 32, 60], sitk.Transform(),
                                                       sitk.sitkLinear, source["ct"].GetOrigin(),
                                                       (5.0, 5.0, 5.0), source["ct"].GetDirection(), -1000.0))
        array[-70:-10] = patient
        long_ct = sitk.GetImageFromArray(array)
        long_ct.CopyInformation(ct)
        ct = long_ct
    fake = write_challenge_input(root, ct, pet, None, name=variant)
    (root / "ehr.json").write_text(ehr_text, encoding="utf-8")
    return fake


# variant -> (segmentation predicted?, ehr notes or missing inputs expected)
ROWS_2026 = {
    "missing_hpv": (True, "HPV Status"),
    "unseen_centre": (True, None),
    "nested_bom": (True, "nested object 'clinical'"),
    "dummy_1x1x1": (False, None),
    "ct_1300mm": (True, "cropped to the head and neck"),
}


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("variant", list(ROWS_2026))
def test_2026_container_writes_all_four_outputs(variant, tiny_model, source, tmp_path, caplog):
    import logging

    from nnunet_hecktor.challenge.run2026 import run_challenge_2026

    predicted, expected = ROWS_2026[variant]
    fake = _write_2026_case(tmp_path / "input", source, variant)
    _read_only(fake.root)
    out = tmp_path / "output"
    with caplog.at_level(logging.INFO, logger="nnunet_hecktor"):
        result = run_challenge_2026(fake.root, out, tiny_model.model_dir, device="cpu", use_mirroring=False,
                                    verbose=False)
    ct = sitk.ReadImage(str(fake.ct))
    assert check_outputs_2026(out, ct) == []
    assert sorted(result.outputs) == ["n_stage", "rfs", "segmentation", "t_stage"]
    assert ("segmentation" not in result.fallback) is predicted, result.errors
    written = json.loads((out / "rfs.json").read_text())
    if predicted:
        assert result.errors == [] and "rfs" not in result.fallback
        assert written == pytest.approx(-result.risk)  # default convention: time = -risk
        assert result.plan is not None and result.plan.folds == (0,)
    else:
        from nnunet_hecktor.challenge.fallback import fallback_values

        assert set(result.fallback) == {"segmentation", "t_stage", "n_stage", "rfs"}
        assert written == pytest.approx(-fallback_values(tiny_model.model_dir, [0]).risk)
        assert json.loads((out / "t-stage.json").read_text()) == "T2"
        assert "segmentation failed" in " ".join(r.getMessage() for r in caplog.records)
    log = " ".join(r.getMessage() for r in caplog.records)
    if variant == "missing_hpv":
        assert "no value for model input(s)" in log and "HPV Status" in result.missing_inputs
    elif variant == "unseen_centre":
        assert "HPV Status" not in result.missing_inputs and "CenterID" not in log
    elif expected:
        assert expected in log
    if variant == "ct_1300mm":
        seg = sitk.ReadImage(str(out / SEG_2026))
        assert seg.GetSize() == (32, 32, 260) and result.crop is not None
        array = sitk.GetArrayViewFromImage(seg)
        z0 = result.crop.index_start[2]
        assert not array[:z0].any()  # nothing outside the head-and-neck box


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_staged_stage_gives_risk_t_and_n_and_the_rfs_sign(tiny_model, source, tmp_path, caplog):
    """A staged ``stage.joblib`` + ``survival.joblib`` answer T, N and the risk (with the HPV status of
    ``ehr.json``), exactly as ``StageModels.predict_patient`` does; ``--rfs-convention`` flips the sign of
    the stage's risk; without ``stage.joblib`` T/N come from the geometry rule, and without any stage the
    risk from the heads, with the routing's warning."""
    import logging

    from nnunet_hecktor.challenge.run2026 import run_challenge_2026
    from nnunet_hecktor.prognosis.deployment import resolve_stage_models

    fake = _write_2026_case(tmp_path / "input", source, "sample")  # HPV positive
    model = tmp_path / "model"
    shutil.copytree(tiny_model.model_dir, model)
    stage_prognosis(model)
    kwargs = dict(device="cpu", use_mirroring=False, verbose=False)
    as_time = run_challenge_2026(fake.root, tmp_path / "time", model, **kwargs)
    as_risk = run_challenge_2026(fake.root, tmp_path / "risk", model, rfs_convention="risk", **kwargs)
    assert as_time.errors == [] and not as_time.fallback
    assert as_time.risk == pytest.approx(as_risk.risk)
    assert json.loads((tmp_path / "risk" / "rfs.json").read_text()) == pytest.approx(as_risk.risk)
    assert json.loads((tmp_path / "time" / "rfs.json").read_text()) == pytest.approx(-as_risk.risk)
    # the four outputs: T/N/risk from the stage (T4/N3 only the stage's HPV-driven model says), mask from the network
    stage = resolve_stage_models(model)
    for name in ("t_stage", "n_stage", "rfs"):
        assert as_time.sources[name] == f"stage: {stage.source}", as_time.sources
    assert as_time.sources["segmentation"] == "network"
    assert (json.loads((tmp_path / "time" / "t-stage.json").read_text()),
            json.loads((tmp_path / "time" / "n-stage.json").read_text())) == ("T4", "N3")
    # the risk equals the stage's own prediction on the written mask (grid of the network's CT)
    from nnunet_hecktor.challenge.io import read_challenge_input
    from nnunet_hecktor.challenge.run2026 import model_input_columns
    from nnunet_hecktor.prediction.model import load_predictor
    from nnunet_hecktor.prediction.preparation import prepare_images

    case = read_challenge_input(fake.root, read_ehr=True, columns=model_input_columns(stage))
    assert case.clinical["HPV Status"] == 1  # the 2026 input's HPV status reaches the stage
    prepared = prepare_images(case.case_id, case.ct, case.pet, load_predictor(model, segmentation_only=True)[1]
                              .conversion)
    expected = stage.predict_patient(case.case_id, prepared.ct, prepared.pet,
                                     sitk.ReadImage(str(tmp_path / "time" / SEG_2026)), case.clinical,
                                     None)
    assert as_time.risk == pytest.approx(expected["risk"], rel=1e-6)
    # no T/N model staged: the geometry rule on the predicted mask, then the prevalence; the risk stays the stage's
    (model / "prognosis" / "stage.joblib").unlink()
    without = run_challenge_2026(fake.root, tmp_path / "no_tn", model, **kwargs)
    assert without.sources["rfs"].startswith("stage:") and without.risk == pytest.approx(as_time.risk)
    for column, name in (("T-stage", "t_stage"), ("N-stage", "n_stage")):
        assert not without.stage_sources[column].startswith("stage"), without.stage_sources
        assert without.sources[name] in (without.stage_sources[column], "fallback")
    assert without.stage_sources["N-stage"].startswith("geometry")  # a mask always has an N by the rule
    # no stage at all: risk from the heads, and the warning of 'predict'
    shutil.rmtree(model / "prognosis")
    with caplog.at_level(logging.WARNING, logger="nnunet_hecktor"):
        heads = run_challenge_2026(fake.root, tmp_path / "heads", model, **kwargs)
    assert heads.sources["rfs"].startswith("heads") and "nnunet-hecktor prognosis build" in caplog.text
    assert heads.routing["outputs"]["risk"]["source"] == "heads"


@pytest.mark.slow
def test_2026_entry_point_as_the_organisers_run_it(tiny_model, source, tmp_path):
    """``python -m nnunet_hecktor.challenge`` with HECKTOR_EDITION=2026: read-only input with the sample
    ehr.json (trailing comma, unseen centre), the model from an extracted model.tar.gz in its own mount
    folder, a sentinel HOME; exit 0, the four outputs, nothing written elsewhere."""
    from nnunet_hecktor.challenge.packaging import stage_model, write_model_archive

    fake = _write_2026_case(tmp_path / "input", source, "sample")
    _read_only(fake.root)
    archive = write_model_archive(stage_model(tiny_model.model_dir, tmp_path / "staged", [0]),
                                  tmp_path / "model.tar.gz")
    mount = tmp_path / "opt_ml_model"
    mount.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(mount, filter="data")
    _read_only(mount)
    home, cwd, out = (tmp_path / name for name in ("home", "cwd", "output"))
    for folder in (home, cwd):
        folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CACHE_HOME", "HECKTOR_MODEL")}
    env.update(HOME=str(home), HECKTOR_EDITION="2026", HECKTOR_MODEL_MOUNT=str(mount),
               HECKTOR_INPUT=str(fake.root), HECKTOR_OUTPUT=str(out), HECKTOR_DEVICE="cpu", HECKTOR_MIRRORING="0",
               OMP_WAIT_POLICY="PASSIVE")
    result = subprocess.run([sys.executable, "-m", "nnunet_hecktor.challenge"], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"mounted model ({mount})" in result.stdout
    assert "not strict JSON (a trailing comma)" in result.stderr
    assert check_outputs_2026(out, sitk.ReadImage(str(fake.ct))) == []
    assert list(home.iterdir()) == [] and list(cwd.iterdir()) == []


def test_output_paths_come_from_the_edition(tmp_path):
    from nnunet_hecktor.editions import get_edition

    assert output_paths(tmp_path) == {k: tmp_path / v for k, v in get_edition("2026").container_outputs.items()}


def test_fallbacks_are_on_disk_before_the_model_is_loaded(tmp_path, monkeypatch):
    """A run killed once the work starts (here: interrupted while loading the model) leaves four valid outputs."""
    from nnunet_hecktor.challenge.run2026 import run_challenge_2026
    from nnunet_hecktor.prediction import predictor
    from nnunet_hecktor.synthetic.challenge_input import write_challenge_input

    ct = sitk.Image([6, 5, 4], sitk.sitkInt16)
    ct.SetSpacing((2.0, 2.0, 3.0))
    fake = write_challenge_input(tmp_path / "input", ct, sitk.Image([3, 3, 3], sitk.sitkFloat32), None)
    (fake.root / "ehr.json").write_text(SAMPLE_EHR_2026_TEXT)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # stands for SIGKILL: nothing after this point runs

    monkeypatch.setattr(predictor.HecktorPredictor, "__init__", killed)
    with pytest.raises(KeyboardInterrupt):
        run_challenge_2026(fake.root, tmp_path / "out", _model_folder(tmp_path / "model"), device="cpu",
                           verbose=False)
    assert check_outputs_2026(tmp_path / "out", ct) == []
    assert json.loads((tmp_path / "out" / "rfs.json").read_text()) == 0.0  # no cohort recorded: risk 0
    assert json.loads((tmp_path / "out" / "t-stage.json").read_text()) == "T2"


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_time_guard_drops_mirroring_when_short(tiny_model, source, tmp_path):
    from nnunet_hecktor.challenge.run2026 import run_challenge_2026

    fake = _write_2026_case(tmp_path / "input", source, "sample")
    result = run_challenge_2026(fake.root, tmp_path / "out", tiny_model.model_dir, device="cpu", verbose=False,
                                use_mirroring=True, time_budget_s=1e-3)
    assert result.plan.reduced and not result.plan.mirroring and "running it anyway" in result.plan.note
    assert result.errors == [] and check_outputs_2026(tmp_path / "out") == []


def test_packaging_records_the_training_stage_prevalence(tmp_path):
    from nnunet_hecktor.challenge.packaging import stage_model
    from nnunet_hecktor.challenge.staging import StageFallback

    model = _model_folder(tmp_path / "model")
    csv = tmp_path / "HECKTOR_2026_Training.csv"
    csv.write_text("PatientID,CenterID,T-stage,N-stage\nA-001,1,T3,N2b\nB-002,2,T3,N0\nC-003,3,T1,N2a\n"
                   "D-004,4,,N1\n")
    staged = stage_model(model, tmp_path / "staged", [0], "checkpoint_final.pth", clinical_csv=csv)
    fallback = json.loads((staged / "challenge_model.json").read_text())["fallback"]
    assert (fallback["t_stage"], fallback["n_stage"]) == ("T3", "N2")
    assert "3 T, 4 N stages" in fallback["stage_source"]
    assert StageFallback.from_json(fallback).t_stage == "T3"
    assert not any("A-001" in str(v) for v in fallback.values())  # no patient row ships


def test_container_argv_2026():
    from nnunet_hecktor.challenge.__main__ import container_argv

    argv = container_argv({"HECKTOR_EDITION": "2026", "HECKTOR_TASK": "1", "HECKTOR_TIME_BUDGET": "900",
                           "HECKTOR_MIRRORING": "0"})
    assert argv == ["challenge", "--edition", "2026", "--input", "/input", "--output", "/output", "--device", "auto",
                    "--rfs-convention", "time", "--time-budget", "900", "--no-mirroring"]
    assert "--model" not in argv  # the mounted /opt/ml/model first, then the baked-in model
    assert container_argv({"HECKTOR_EDITION": "2026", "HECKTOR_MODEL": "/m", "HECKTOR_RFS_CONVENTION": "risk"})[
        9:13] == ["--rfs-convention", "risk", "--model", "/m"]
