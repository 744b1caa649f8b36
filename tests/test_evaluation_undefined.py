"""Issue 20 item 7: evaluate says when a figure is undefined or holds by definition, and reads what
the converter reads.

Rows: one HPV class (constant classifier) -> balanced accuracy undefined, not 1.0 [1, 1]; header
variants of the targets read like ``convert`` reads them, near misses an error; a present but empty
``risk`` column named in a warning; no GTVn anywhere -> 1.0 with its note; ground truth in ``.mha``.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import SimpleITK as sitk
from test_evaluation_cli import CLINICAL, EXPECTED_TASK1, PREDICTIONS, write_cohort  # noqa: E402

from nnunet_hecktor.cli import main
from nnunet_hecktor.evaluation.evaluate import NO_GTVN_NOTE, evaluate


@pytest.fixture
def cohort(tmp_path):
    return write_cohort(tmp_path)


def _cli(cohort, *extra, clinical="clinical.csv", predictions="predictions.csv"):
    return main(["evaluate", "--clinical", str(cohort / clinical), "--predictions", str(cohort / predictions),
                 "--output", str(cohort / "o"), "--bootstrap", "50", "--score-subset", "--no-plots", *extra])


def test_one_hpv_class_gives_an_undefined_balanced_accuracy(cohort, capsys):
    (cohort / "one.csv").write_text("PatientID,HPV Status\nCHUP-000,1\nCHUP-001,1\nMDA-002,1\nMDA-003,1\n")
    (cohort / "constant.csv").write_text("PatientID,hpv_status\nCHUP-000,1\nCHUP-001,1\nMDA-002,1\nMDA-003,1\n")
    assert _cli(cohort, clinical="one.csv", predictions="constant.csv") == 0
    out = capsys.readouterr().out
    assert "balanced accuracy n/a" in out and "1.0000 [1" not in out
    assert "one HPV class only among the 4 scored patients (all positive): balanced accuracy undefined" in out
    task3 = json.loads((cohort / "o" / "metrics.json").read_text())["task3"]
    assert task3["balanced_accuracy"] is None and task3["ci95"]["balanced_accuracy"] == [None, None]
    assert task3["sensitivity"] == 1.0 and task3["specificity"] is None


@pytest.mark.parametrize("header, expected", [
    ("HPV status", 4),            # case variant: read as 'HPV Status' (as convert does), with a warning
    (" hpv  STATUS ", 4),
    ("HPV status (0=-, 1=+)", 4),  # the 2022 release's header (an edition alias)
    ("HPV_Status", "looks like 'HPV Status' but does not match it"),
])
def test_target_header_variants(cohort, capsys, caplog, header, expected):
    quoted = f'"{header}"' if "," in header else header
    (cohort / "variant.csv").write_text(CLINICAL.replace("HPV Status", quoted))
    caplog.set_level(logging.WARNING)
    code = _cli(cohort, clinical="variant.csv")
    captured = capsys.readouterr()
    if isinstance(expected, int):
        assert code == 0, captured.err
        assert f"Task 3 ({expected} patients" in captured.out
        assert f"header {header.strip()!r} read as 'HPV Status'" in caplog.text
    else:
        assert code == 1 and expected in captured.err and "Traceback" not in captured.err


def test_empty_risk_column_is_named(cohort, capsys, caplog):
    lines = PREDICTIONS.strip().splitlines()
    empty = [lines[0]] + [",".join(line.split(",")[:3] + [""]) for line in lines[1:]]
    (cohort / "empty_risk.csv").write_text("\n".join(empty) + "\n")
    caplog.set_level(logging.WARNING)
    assert _cli(cohort, predictions="empty_risk.csv") == 0
    out = capsys.readouterr().out
    assert "column 'risk' is empty for every patient: not evaluated" in caplog.text
    assert "note: " in out and "'risk' is empty for every patient" in out and "Task 2" not in out
    # Nothing left to score: the error names the empty columns.
    (cohort / "all_empty.csv").write_text("PatientID,hpv_status,risk\nCHUP-000,,\nCHUP-001,,\n")
    assert _cli(cohort, predictions="all_empty.csv") == 1
    assert "'hpv_status', 'risk' are present but empty" in capsys.readouterr().err


def test_no_gtvn_anywhere_is_one_by_definition_with_a_note(tmp_path, capsys):
    shape = (4, 6, 6)
    for pid in ("CHUP-000", "CHUP-001"):
        for folder in ("gt", "pred"):
            array = np.zeros(shape, np.uint8)
            array[1:3, 1:3, 1:3] = 1
            path = tmp_path / folder / f"{pid}.nii.gz"
            path.parent.mkdir(exist_ok=True)
            sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    assert main(["evaluate", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"), "--output",
                 str(tmp_path / "o"), "--bootstrap", "0", "--no-plots"]) == 0
    assert NO_GTVN_NOTE in capsys.readouterr().out
    task1 = json.loads((tmp_path / "o" / "metrics.json").read_text())["task1"]
    assert task1["gtvn_dice_agg"] == 1.0 and task1["gtvn_f1_agg"] == 1.0 and task1["notes"] == [NO_GTVN_NOTE]


def test_ground_truth_in_mha_is_read(cohort):
    for path in sorted((cohort / "gt").glob("*.nii.gz")):
        sitk.WriteImage(sitk.ReadImage(str(path)), str(path.with_name(path.name.replace(".nii.gz", ".mha"))))
        path.unlink()
    task1 = evaluate(cohort / "gt", cohort / "pred", n_bootstrap=0, progress=False).metrics["task1"]
    for key, value in EXPECTED_TASK1.items():
        assert task1[key] == pytest.approx(value), key
