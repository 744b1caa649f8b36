"""Issue 10 section 3: evaluate says what it did not score and reads what users have.

Rows: prediction file formats (.nii.gz, .nii, .mha, .nrrd against .nii.gz labels), predictions it
cannot find (with a hint), patients with a target but no prediction (error / --score-subset), and the
challenge container's output layout with a case map. Each row gives the input and the expected
message or metrics (the same metrics as the reference layout).
"""

from __future__ import annotations

import json
import re

import pytest
import SimpleITK as sitk
from test_evaluation_cli import EXPECTED_TASK1, PREDICTIONS, write_cohort  # noqa: E402

from nnunet_hecktor.cli import main
from nnunet_hecktor.evaluation.evaluate import evaluate
from nnunet_hecktor.schema import SEGMENTATION_OUTPUT as SEG  # noqa: E402


@pytest.fixture
def cohort(tmp_path):
    return write_cohort(tmp_path)


def _convert_predictions(folder, ending):
    for path in sorted(folder.glob("*.nii.gz")):
        image = sitk.ReadImage(str(path))
        path.unlink()
        sitk.WriteImage(image, str(folder / (path.name[: -len(".nii.gz")] + ending)))


@pytest.mark.parametrize("ending", [".nii.gz", ".nii", ".mha", ".nrrd"])
def test_prediction_formats(cohort, ending):
    _convert_predictions(cohort / "pred", ending)
    metrics = evaluate(cohort / "gt", cohort / "pred", n_bootstrap=0, progress=False).metrics
    for key, value in EXPECTED_TASK1.items():
        assert metrics["task1"][key] == pytest.approx(value), key


@pytest.mark.parametrize("change, message", [
    # .mha predictions used to give "prediction missing for 4 of 4" with no hint
    ("two_formats", r"several prediction files for one patient \(MDA-003: MDA-003.nii.gz, MDA-003.mha\)"),
    ("nnunet_names", r"prediction missing for 4 of 4 .*: CHUP-000, .*; .* holds 4 prediction file\(s\) whose names "
                     r"match no ground-truth PatientID, e\.g\. CHUP-000_0000.nii.gz, .*\(expected <PatientID> \+ one "
                     r"of .nii.gz, .nii, .mha, .nrrd\)"),
    ("text_files", r"prediction missing for 4 of 4 .*; predictions are read as <PatientID> \+ one of .* holds 4 "
                   r"other file\(s\), e\.g\. CHUP-000.png"),
    ("challenge_layout", r"prediction missing for 4 of 4 .* holds challenge container outputs .*"
                         r"give it as --challenge-outputs"),
    ("empty", r"prediction missing for 4 of 4 .* holds no other file"),
])
def test_predictions_not_found_say_why(cohort, capsys, change, message):
    pred = cohort / "pred"
    if change == "two_formats":
        sitk.WriteImage(sitk.ReadImage(str(pred / "MDA-003.nii.gz")), str(pred / "MDA-003.mha"))
    elif change == "nnunet_names":
        for path in sorted(pred.glob("*.nii.gz")):
            path.rename(pred / path.name.replace(".nii.gz", "_0000.nii.gz"))
    elif change == "text_files":
        for path in sorted(pred.glob("*.nii.gz")):
            path.rename(pred / path.name.replace(".nii.gz", ".png"))
    elif change == "challenge_layout":
        for path in sorted(pred.glob("*.nii.gz")):
            target = pred / path.name[: -len(".nii.gz")] / SEG
            target.parent.mkdir(parents=True)
            sitk.WriteImage(sitk.ReadImage(str(path)), str(target))
            path.unlink()
    else:
        for path in pred.glob("*.nii.gz"):
            path.unlink()
    assert main(["evaluate", "--gt", str(cohort / "gt"), "--pred", str(pred), "--output", str(cohort / "o"),
                 "--bootstrap", "0", "--no-plots"]) == 1
    err = capsys.readouterr().err
    assert re.search(message, err), err


@pytest.mark.parametrize("predictions, score_subset, message", [
    # EXTRA-004 has RFS, Relapse and HPV Status but no row: both tasks list it
    (PREDICTIONS, False, r"Task 2: 1 patients of .*clinical.csv have RFS and Relapse but no prediction in "
                         r".*predictions.csv: EXTRA-004\nTask 3: 1 patients .* have HPV Status but no prediction "
                         r".*: EXTRA-004\n\(give --score-subset"),
    (PREDICTIONS, True, r"Task 2 \(3 patients.*left out 1 patients with a target but no prediction"),
    # a Task 3-only table: only Task 3 is checked
    ("PatientID,hpv_status\nCHUP-000,1\n", False, r"^nnunet-hecktor evaluate: error: Task 3: 4 patients .*: "
                                                  r"CHUP-001, MDA-002, MDA-003, EXTRA-004"),
])
def test_targets_without_prediction(cohort, capsys, predictions, score_subset, message):
    (cohort / "predictions.csv").write_text(predictions)
    argv = ["evaluate", "--clinical", str(cohort / "clinical.csv"), "--predictions", str(cohort / "predictions.csv"),
            "--output", str(cohort / "o"), "--bootstrap", "0", "--no-plots"]
    code = main(argv + (["--score-subset"] if score_subset else []))
    captured = capsys.readouterr()
    assert code == (0 if score_subset else 1)
    text = captured.out if score_subset else captured.err
    assert re.search(message, text, re.S | re.M), text
    if score_subset:
        assert "EXTRA-004" in captured.err  # the warning names the patients left out
        metrics = json.loads((cohort / "o" / "metrics.json").read_text())
        assert metrics["task2"]["patients_without_prediction"] == ["EXTRA-004"]
        assert metrics["task3"]["patients_without_prediction"] == ["EXTRA-004"]


def _challenge_layout(cohort, mapped: bool):
    """The cohort's predictions as container outputs: case folders named like UUIDs (with a map) or PatientIDs."""
    rows = [line.split(",") for line in PREDICTIONS.strip().splitlines()[1:]]
    root = cohort / "runs"
    mapping = []
    for i, (pid, _, status, risk) in enumerate(rows):
        case = f"case-{i:02d}" if mapped else pid
        mapping.append(f"{case},{pid}")
        (root / case / SEG).parent.mkdir(parents=True)
        sitk.WriteImage(sitk.ReadImage(str(cohort / "pred" / f"{pid}.nii.gz")), str(root / case / SEG))
        (root / case / "rfs.json").write_text(json.dumps(float(risk)) + "\n")
        (root / case / "hpv-status.json").write_text(json.dumps(status == "1") + "\n")
    (cohort / "cases.csv").write_text("case,PatientID\n" + "\n".join(mapping) + "\n")
    return root


@pytest.mark.parametrize("mapped", [False, True])
def test_challenge_outputs_score_like_the_reference_layout(cohort, mapped):
    root = _challenge_layout(cohort, mapped)
    reference = evaluate(cohort / "gt", cohort / "pred", cohort / "clinical.csv", cohort / "predictions.csv",
                         n_bootstrap=0, progress=False, score_subset=True).metrics
    got = evaluate(cohort / "gt", clinical_csv=cohort / "clinical.csv", challenge_outputs=root,
                   case_map=cohort / "cases.csv" if mapped else None, n_bootstrap=0, progress=False,
                   score_subset=True).metrics
    assert got["task1"] == reference["task1"]
    assert got["task2"] == reference["task2"]
    for key in ("balanced_accuracy", "sensitivity", "specificity", "n", "n_positive"):
        assert got["task3"][key] == reference["task3"][key], key
    assert got["task3"]["auc"] is None  # hpv-status.json holds no probability


@pytest.mark.parametrize("change, message", [
    ("unmapped_case", r"no PatientID for the case folders case-04"),
    ("rfs_boolean", r"case case-01: expected one finite JSON number \(risk\), got True"),
    ("hpv_number", r"case case-02: expected one JSON boolean \(true = HPV positive\), got 1"),
    ("rfs_missing", r"rfs.json missing for 1 of 4 cases: case-03"),
    ("map_columns", r"case map needs the columns 'case' and 'PatientID'"),
    ("both_inputs", r"give either the challenge outputs"),
])
def test_challenge_output_errors(cohort, capsys, change, message):
    root = _challenge_layout(cohort, True)
    extra = []
    if change == "unmapped_case":
        (root / "case-04").mkdir()
    elif change == "rfs_boolean":
        (root / "case-01" / "rfs.json").write_text("true\n")
    elif change == "hpv_number":
        (root / "case-02" / "hpv-status.json").write_text("1\n")
    elif change == "rfs_missing":
        (root / "case-03" / "rfs.json").unlink()
    elif change == "map_columns":
        (cohort / "cases.csv").write_text("uuid,pid\ncase-00,CHUP-000\n")
    elif change == "both_inputs":
        extra = ["--predictions", str(cohort / "predictions.csv")]
    argv = ["evaluate", "--gt", str(cohort / "gt"), "--clinical", str(cohort / "clinical.csv"),
            "--challenge-outputs", str(root), "--case-map", str(cohort / "cases.csv"), "--output", str(cohort / "o"),
            "--bootstrap", "0", "--no-plots", "--score-subset", *extra]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert re.search(message, err), err


def test_challenge_output_of_a_2d_fallback_is_a_clear_error(cohort, capsys):
    """A container fallback on a 1x1 2-D dummy is not silently scored against a 3-D label."""
    root = _challenge_layout(cohort, False)
    sitk.WriteImage(sitk.Image([1, 1], sitk.sitkUInt8), str(root / "MDA-003" / SEG))
    assert main(["evaluate", "--gt", str(cohort / "gt"), "--challenge-outputs", str(root), "--output",
                 str(cohort / "o"), "--bootstrap", "0", "--no-plots"]) == 1
    assert re.search(r"MDA-003: .*output.mha: prediction is 2D, expected a 3D volume", capsys.readouterr().err)
