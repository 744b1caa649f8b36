"""``nnunet-hecktor evaluate`` end to end on tiny NIfTI files, and its error reports."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_hecktor.cli import main
from nnunet_hecktor.errors import HecktorError, InputDataError
from nnunet_hecktor.evaluation.evaluate import evaluate
from nnunet_hecktor.evaluation.outcome import read_predictions_csv
from nnunet_hecktor.metrics.segmentation import SegmentationMetricOptions
from nnunet_hecktor.metrics.survival import harrell_c_index

SPACING = (1.0, 1.0, 2.0)  # x, y, z in mm: voxels of 2 mm3


def _write(path, array, spacing=SPACING, origin=(0.0, 0.0, 0.0)):
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


def _cohort():
    """Four patients (z, y, x) = (6, 10, 10) with hand-checked Task 1 figures."""
    shape = (6, 10, 10)
    cases = {}
    # A: GTVp 8 voxels, half predicted (Dice 2*4/12); one node found exactly.
    gt, pred = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    gt[1:3, 1:3, 1:3] = 1
    pred[1:2, 1:3, 1:3] = 1
    gt[4, 6:8, 6:8] = 2
    pred[4, 6:8, 6:8] = 2
    cases["CHUP-000"] = (gt, pred)
    # B: GTVp perfect; one node missed, one false-positive node.
    gt, pred = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    gt[2:4, 2:4, 2:4] = 1
    pred[2:4, 2:4, 2:4] = 1
    gt[0, 8, 8] = 2
    pred[5, 0, 0] = 2
    cases["CHUP-001"] = (gt, pred)
    # C: no GTVp anywhere (Dice 1 by default), no GTVn.
    cases["MDA-002"] = (np.zeros(shape, np.uint8), np.zeros(shape, np.uint8))
    # D: GT without GTVp, prediction has some (Dice 0 by default).
    gt, pred = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    pred[3, 3, 3] = 1
    cases["MDA-003"] = (gt, pred)
    return cases


EXPECTED_TASK1 = {
    "gtvp_dice_mean": (8 / 12 + 1.0 + 1.0 + 0.0) / 4,
    # GTVn in mm3 (2 mm3 voxels): A I=8 S=16; B I=0 S=4 -> 2*8/20
    "gtvn_dice_agg": 2 * 8 / 20,
    "gtvn_f1_agg": 2 * 1 / (2 * 1 + 1 + 1),
    "gtvn_tp": 1, "gtvn_fp": 1, "gtvn_fn": 1,
    "n_patients": 4, "gtvp_both_empty": 1, "gtvp_gt_empty_pred_nonempty": 1, "gtvp_pred_empty": 0,
}

CLINICAL = """PatientID,CenterID,Age,RFS,Relapse,HPV Status
CHUP-000,2,60,100,1,1
CHUP-001,2,55,400,0,1
MDA-002,5,70,250,1,0
MDA-003,5,66,,0,1
EXTRA-004,5,50,300,1,0
"""
PREDICTIONS = """PatientID,hpv_probability,hpv_status,risk
CHUP-000,0.9,1,2.5
CHUP-001,0.7,1,0.1
MDA-002,0.6,1,1.0
MDA-003,0.2,0,3.0
"""


def write_cohort(root):
    """The 4-patient cohort in ``root``: ``gt/``, ``pred/`` (``<PID>.nii.gz``), clinical.csv, predictions.csv."""
    for pid, (gt, pred) in _cohort().items():
        _write(root / "gt" / f"{pid}.nii.gz", gt)
        _write(root / "pred" / f"{pid}.nii.gz", pred)
    (root / "clinical.csv").write_text(CLINICAL)
    (root / "predictions.csv").write_text(PREDICTIONS)
    return root


@pytest.fixture
def cohort(tmp_path):
    return write_cohort(tmp_path)


def _args(root, *extra):
    return ["evaluate", "--gt", str(root / "gt"), "--pred", str(root / "pred"), "--clinical",
            str(root / "clinical.csv"), "--predictions", str(root / "predictions.csv"), "--output",
            str(root / "out"), "--bootstrap", "200", *extra]


def test_evaluate_end_to_end(cohort, capsys):
    assert main(_args(cohort, "--score-subset")) == 0  # EXTRA-004 has targets but no prediction
    printed = capsys.readouterr().out
    assert "left out 1 patients with a target but no prediction" in printed
    assert "Task 1 (4 patients)" in printed and "Task 2" in printed and "Task 3" in printed
    metrics = json.loads((cohort / "out" / "metrics.json").read_text())
    task1 = metrics["task1"]
    for key, value in EXPECTED_TASK1.items():
        assert task1[key] == pytest.approx(value), key
    low, high = task1["ci95"]["gtvp_dice_mean"]
    assert low <= task1["gtvp_dice_mean"] <= high

    # Task 2: MDA-003 has no RFS -> excluded; C-index over the other three.
    task2 = metrics["task2"]
    assert task2["n"] == 3 and task2["excluded_unknown_target"] == 1 and task2["n_events"] == 2
    assert task2["c_index"] == pytest.approx(harrell_c_index([100, 400, 250], [1, 0, 1], [2.5, 0.1, 1.0]))
    assert task2["comparable_pairs"] == 3
    assert task2["clinical_patients_without_prediction"] == 1  # EXTRA-004
    assert task2["risk_groups"]["n_high"] + task2["risk_groups"]["n_low"] == 3

    # Task 3: hard labels [1, 1, 1, 0] vs truth [1, 1, 0, 1]: sensitivity 2/3, specificity 0.
    task3 = metrics["task3"]
    assert task3["n"] == 4 and task3["sensitivity"] == pytest.approx(2 / 3) and task3["specificity"] == 0.0
    assert task3["balanced_accuracy"] == pytest.approx(1 / 3)
    assert task3["auc"] == pytest.approx(2 / 3)  # positives 0.9, 0.7, 0.2 vs negative 0.6
    assert metrics["settings"]["bootstrap"]["replicates"] == 200

    with open(cohort / "out" / "per_patient.csv", newline="") as handle:
        rows = {r["PatientID"]: r for r in csv.DictReader(handle)}
    assert set(rows) == {"CHUP-000", "CHUP-001", "MDA-002", "MDA-003"}
    assert float(rows["CHUP-000"]["gtvp_dice"]) == pytest.approx(8 / 12, abs=1e-5)
    assert float(rows["CHUP-000"]["gtvp_gt_mm3"]) == 16.0
    assert rows["MDA-003"]["RFS"] == "" and rows["MDA-003"]["gtvp_case"] == "gt_empty"
    for name in ("dice_distribution.png", "kaplan_meier.png", "roc_hpv.png"):
        assert (cohort / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_parallel_and_seed(cohort):
    one = evaluate(cohort / "gt", cohort / "pred", n_bootstrap=100, seed=1, progress=False).metrics
    two = evaluate(cohort / "gt", cohort / "pred", num_processes=2, n_bootstrap=100, seed=1, progress=False).metrics
    other_seed = evaluate(cohort / "gt", cohort / "pred", n_bootstrap=100, seed=2, progress=False).metrics
    assert one == two
    assert one["task1"]["gtvp_dice_mean"] == other_seed["task1"]["gtvp_dice_mean"]
    assert one["task1"]["ci95"] != other_seed["task1"]["ci95"]


def test_evaluate_options(cohort):
    options = SegmentationMetricOptions(gtvp_both_empty=None, gtvp_gt_empty_pred_nonempty=None)
    metrics = evaluate(cohort / "gt", cohort / "pred", n_bootstrap=0, progress=False, options=options).metrics
    assert metrics["task1"]["gtvp_dice_mean"] == pytest.approx((8 / 12 + 1.0) / 2)
    assert "ci95" not in metrics["task1"]


def test_evaluate_command_options(cohort):
    assert main(["evaluate", "--gt", str(cohort / "gt"), "--pred", str(cohort / "pred"), "--output",
                 str(cohort / "o"), "--bootstrap", "0", "--no-plots", "--gtvp-both-empty", "exclude",
                 "--gtvp-gt-empty", "0.5", "--connectivity", "6", "--iou-threshold", "0.5"]) == 0
    metrics = json.loads((cohort / "o" / "metrics.json").read_text())
    assert metrics["task1"]["gtvp_dice_mean"] == pytest.approx((8 / 12 + 1.0 + 0.5) / 3)
    assert metrics["settings"]["segmentation_options"] == {"connectivity": 6, "iou_threshold": 0.5,
                                                           "gtvp_both_empty": None, "gtvp_gt_empty_pred_nonempty": 0.5}
    assert sorted(p.name for p in (cohort / "o").iterdir()) == ["metrics.json", "per_centre.csv", "per_patient.csv"]


@pytest.mark.parametrize("change, message", [
    ("missing", "prediction missing for 1 of 4 patients with ground truth: MDA-003"),
    ("spacing", "MDA-003: .*MDA-003.nii.gz: prediction is not on the ground truth grid \\(spacing"),
    ("origin", "MDA-003: .*prediction is not on the ground truth grid \\(origin"),
    ("size", "MDA-003: .*size \\(10, 10, 5\\) vs \\(10, 10, 6\\)"),
    ("label", "MDA-003: .*prediction has label values \\{3\\} outside \\{0, 1, 2\\}"),
    ("truncated", "MDA-003: .*unreadable or truncated"),
])
def test_evaluate_input_errors(cohort, capsys, change, message):
    path = cohort / "pred" / "MDA-003.nii.gz"
    array = np.zeros((6, 10, 10), np.uint8)
    if change == "missing":
        path.unlink()
    elif change == "spacing":
        _write(path, array, spacing=(1.0, 1.0, 2.5))
    elif change == "origin":
        _write(path, array, origin=(0.0, 0.5, 0.0))
    elif change == "size":
        _write(path, array[:5])
    elif change == "label":
        array[0, 0, 0] = 3
        _write(path, array)
    elif change == "truncated":
        path.write_bytes(path.read_bytes()[:40])
    assert main(_args(cohort, "--no-plots")) == 1
    err = capsys.readouterr().err
    assert "nnunet-hecktor evaluate: error:" in err
    assert re.search(message, err), err


def test_geometry_round_off_is_accepted(cohort):
    gt, pred = _cohort()["MDA-003"]
    _write(cohort / "pred" / "MDA-003.nii.gz", pred, spacing=(1.0 + 1e-7, 1.0, 2.0), origin=(1e-6, 0.0, 0.0))
    metrics = evaluate(cohort / "gt", cohort / "pred", n_bootstrap=0, progress=False).metrics
    assert metrics["task1"]["n_patients"] == 4


def test_extra_predictions_are_ignored_and_counted(cohort):
    _write(cohort / "pred" / "USZ-009.nii.gz", np.zeros((6, 10, 10), np.uint8))
    metrics = evaluate(cohort / "gt", cohort / "pred", n_bootstrap=0, progress=False).metrics
    assert metrics["task1"]["extra_predictions_ignored"] == 1 and metrics["task1"]["n_patients"] == 4


@pytest.mark.parametrize("text, message", [
    ("PatientID,risk\nA,1\nA,2\n", "duplicate PatientID"),
    ("PatientID,risk\nA,1\nB,\n", "column 'risk' is empty for 1 patients: B"),
    ("PatientID,hpv_status\nA,2\n", "expected 0 or 1"),
    ("PatientID,hpv_probability\nA,1.5\n", "outside \\[0, 1\\]"),
    ("PatientID,risk\nA,high\n", "not a number"),
    ("ID,risk\nA,1\n", "no 'PatientID' column"),
])
def test_predictions_csv_errors(tmp_path, text, message):
    path = tmp_path / "predictions.csv"
    path.write_text(text)
    with pytest.raises(InputDataError, match=message):
        read_predictions_csv(path)


def test_predictions_csv_without_a_task(tmp_path, cohort):
    path = tmp_path / "p.csv"
    path.write_text("PatientID,hpv_probability,hpv_status,risk\nCHUP-000,,,1.0\nCHUP-001,,,2.0\n")
    table = read_predictions_csv(path)
    assert table.columns == ("risk",)
    metrics = evaluate(clinical_csv=cohort / "clinical.csv", predictions_csv=path, n_bootstrap=0,
                       progress=False, score_subset=True).metrics
    assert "task2" in metrics and "task3" not in metrics and "task1" not in metrics


def test_prediction_row_missing_for_ground_truth_patient_is_not_silent(cohort):
    (cohort / "predictions.csv").write_text("PatientID,risk\nCHUP-000,1\n")
    with pytest.raises(HecktorError, match="Task 2: 3 patients .* have RFS and Relapse but no prediction .*: "
                                           "CHUP-001, MDA-002, EXTRA-004"):
        evaluate(clinical_csv=cohort / "clinical.csv", predictions_csv=cohort / "predictions.csv",
                 n_bootstrap=0, progress=False)
    metrics = evaluate(clinical_csv=cohort / "clinical.csv", predictions_csv=cohort / "predictions.csv",
                       n_bootstrap=0, progress=False, score_subset=True).metrics
    assert metrics["task2"]["n"] == 1
    assert metrics["task2"]["clinical_patients_without_prediction"] == 3


def test_evaluate_argument_errors(cohort, capsys):
    assert main(["evaluate", "--gt", str(cohort / "gt"), "--output", str(cohort / "o")]) == 1
    assert "give both" in capsys.readouterr().err
    assert main(["evaluate", "--predictions", str(cohort / "predictions.csv"), "--output", str(cohort / "o")]) == 1
    assert "--clinical" in capsys.readouterr().err
    assert main(["evaluate", "--gt", str(cohort / "nope"), "--pred", str(cohort / "pred"), "--output",
                 str(cohort / "o")]) == 1
    assert "does not exist" in capsys.readouterr().err
