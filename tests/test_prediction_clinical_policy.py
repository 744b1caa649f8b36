"""Issue 10 section 1: ``nnunet-hecktor predict`` applies the inference-time clinical policy.

Rows of unseen clinical values (left) must give exactly the predictions of their clean equivalent
(right), and every substitution is listed in ``predictions_clinical_substitutions.csv``.
"""

from __future__ import annotations

import csv

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

COLUMNS = ["PatientID", "CenterID", "Age", "Gender", "Performance Status", "M-stage", "Tumour side"]
# (messy row, equivalent clean row, expected substitutions (field, value, used))
ROWS = [
    (["99", "121", "Male", "70", "M1a", "left"], ["", "", "1", "1", "M1", ""],
     [("Age", "121", ""), ("Gender", "Male", "1"), ("M-stage", "M1a", "M1")]),
    (["Hospital X", "sixty", "F", "75", "M2", ""], ["", "", "0", "", "", ""],
     [("Age", "sixty", ""), ("Gender", "F", "0"), ("Performance Status", "75", ""), ("M-stage", "M2", "")]),
]


def _table(path, rows):
    path.write_text(",".join(COLUMNS) + "\n" + "".join(",".join(r) + "\n" for r in rows))
    return path


def test_predict_maps_or_drops_unseen_clinical_values(tiny_model, tmp_path, caplog):
    import logging

    from nnunet_hecktor.dataset_conversion import discover_layout
    from nnunet_hecktor.evaluation.outcome import read_predictions_csv
    from nnunet_hecktor.prediction import predict

    source = tiny_model.dataset.root / "source"
    pids = sorted(discover_layout(source).patients)[:len(ROWS)]
    messy = _table(tmp_path / "messy.csv", [[pid, *row[0]] for pid, row in zip(pids, ROWS)])
    clean = _table(tmp_path / "clean.csv", [[pid, *row[1]] for pid, row in zip(pids, ROWS)])
    with caplog.at_level(logging.WARNING, logger="nnunet_hecktor"):
        summary = predict(source, tmp_path / "messy", tiny_model.model_dir, clinical_csv=messy, patients=pids,
                          use_mirroring=False, progress=False)
    predict(source, tmp_path / "clean", tiny_model.model_dir, clinical_csv=clean, patients=pids,
            use_mirroring=False, progress=False)
    got = read_predictions_csv(tmp_path / "messy" / "predictions.csv").rows
    want = read_predictions_csv(tmp_path / "clean" / "predictions.csv").rows
    assert got == want  # a mapped value is its release encoding, a dropped one is missing

    with (tmp_path / "messy" / "predictions_clinical_substitutions.csv").open(newline="") as handle:
        listed = [(r["PatientID"], r["field"], r["value"], r["used"]) for r in csv.DictReader(handle)]
    assert listed == [(pid, *s) for pid, row in zip(pids, ROWS) for s in row[2]]
    assert len(summary.substitutions) == len(listed)
    assert "clinical substitutions: 4 values treated as missing, 3 mapped" in summary.describe()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    values = [w for w in warnings if w.startswith("clinical value")]
    assert len(values) == 4 and any(f"{pids[0]}: Age = '121'" in w for w in values)
    # Issue 20: a model input absent from the whole table is one warning naming it (per table read).
    absent = [w for w in warnings if "messy.csv" in w and "missing for every patient" in w]
    assert sorted(w.split("'")[1] for w in absent) == ["Alcohol Consumption", "Tobacco Consumption", "Treatment"]
    # One more warning per predict call: this multi-task model has no staged prognosis stage (routing).
    routing = [w for w in warnings if "no staged prognosis stage" in w]
    assert len(routing) == 2
    assert len(warnings) == len(values) + 2 * len(absent) + len(routing)  # the clean table lacks the same three
    # the clean table needed no substitution: the sidecar holds its header only
    assert (tmp_path / "clean" / "predictions_clinical_substitutions.csv").read_text().count("\n") == 1
