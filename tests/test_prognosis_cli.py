"""``nnunet-hecktor prognosis|hpv fit|predict`` end to end on small tables (nnunet_hecktor.commands)."""

import json

import pandas as pd
import pytest
from test_prognosis_tables import make_tables

from nnunet_hecktor.cli import main as cli_main


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("prognosis_cli")
    features, clinical = make_tables(n=90, seed=1)
    features.to_csv(root / "features.csv", index=False)
    clinical.to_csv(root / "clinical.csv", index=False)
    return root


def test_prognosis_fit_and_predict(tables, capsys):
    out = tables / "surv"
    assert cli_main(["prognosis", "fit", "--features", str(tables / "features.csv"), "--clinical",
                     str(tables / "clinical.csv"), "--output", str(out), "--folds", "3"]) == 0
    out_text = capsys.readouterr().out  # the summary is INFO: stdout (warnings and errors go to stderr)
    assert "final model:" in out_text and "87 patients" in out_text  # 3 without outcome left out
    summary = json.loads((out / "cv_summary.json").read_text())
    assert set(summary["cross_validation"]) == {"coxnet", "rsf", "gbsa", "icare", "ensemble"}
    assert summary["final_model"] in summary["cross_validation"]
    assert len(summary["left_out"]["patients_without_outcome"]) == 3
    assert summary["oof_c_index_final"] > 0.6  # volume and age carry real signal
    oof = pd.read_csv(out / "oof_predictions.csv")
    assert {"PatientID", "fold", "risk", "risk_icare", "RFS", "Relapse"} <= set(oof.columns)
    assert (out / "km_oof.png").stat().st_size > 1000
    assert cli_main(["prognosis", "predict", "--model", str(out / "model.joblib"), "--features",
                     str(tables / "features.csv"), "--clinical", str(tables / "clinical.csv"),
                     "--output", str(tables / "risk.csv")]) == 0
    risk = pd.read_csv(tables / "risk.csv")
    assert list(risk.columns) == ["PatientID", "risk"] and len(risk) == 90


def test_hpv_fit_centre_cv_and_predict_at_another_prevalence(tables, capsys):
    out = tables / "hpv"
    assert cli_main(["hpv", "fit", "--features", str(tables / "features.csv"), "--clinical",
                     str(tables / "clinical.csv"), "--output", str(out), "--cv", "centre", "--quiet"]) == 0
    summary = json.loads((out / "cv_summary.json").read_text())
    assert summary["cv_scheme"] == "centre" and set(summary["cross_validation"]["per_fold"]) == {"CHUM", "CHUP", "MDA"}
    assert summary["final_model_description"].startswith("logistic regression (L2,")  # the default penalty
    assert (out / "roc_oof.png").is_file()
    args = ["hpv", "predict", "--model", str(out / "model.joblib"), "--features", str(tables / "features.csv"),
            "--clinical", str(tables / "clinical.csv")]
    assert cli_main(args + ["--output", str(tables / "hpv_same.csv")]) == 0
    assert cli_main(args + ["--output", str(tables / "hpv_low.csv"), "--expected-prevalence", "0.3"]) == 0
    same, low = pd.read_csv(tables / "hpv_same.csv"), pd.read_csv(tables / "hpv_low.csv")
    assert list(same.columns) == ["PatientID", "hpv_probability", "hpv_status"]
    assert (low["hpv_probability"] < same["hpv_probability"] + 1e-9).all()
    assert (low["hpv_status"] == same["hpv_status"]).all()  # balanced-accuracy rule is prevalence-free
    captured = capsys.readouterr()
    assert "adjusted from prevalence" in captured.out + captured.err


def test_hpv_fit_l1_ratio_option_sets_the_penalty(tables):
    out = tables / "hpv_elastic_net"
    assert cli_main(["hpv", "fit", "--features", str(tables / "features.csv"), "--clinical",
                     str(tables / "clinical.csv"), "--output", str(out), "--folds", "3", "--l1-ratio", "0.5",
                     "--quiet", "--no-plots"]) == 0
    summary = json.loads((out / "cv_summary.json").read_text())
    assert "elastic net, l1_ratio 0.5" in summary["final_model_description"]


def test_cli_errors_are_one_plain_line(tables, capsys):
    features = pd.read_csv(tables / "features.csv").drop(columns=["noise"])
    features.to_csv(tables / "fewer.csv", index=False)
    assert cli_main(["prognosis", "fit", "--features", str(tables / "fewer.csv"), "--clinical",
                     str(tables / "clinical.csv"), "--output", str(tables / "x"), "--models", "coxnet",
                     "--folds", "3", "--quiet", "--no-plots"]) == 0
    capsys.readouterr()
    assert cli_main(["hpv", "predict", "--model", str(tables / "x" / "model.joblib"), "--features",
                     str(tables / "features.csv"), "--output", str(tables / "y.csv")]) == 1
    assert "survival model" in capsys.readouterr().err
    assert cli_main(["prognosis", "predict", "--model", str(tables / "surv" / "model.joblib"), "--features",
                     str(tables / "fewer.csv"), "--clinical", str(tables / "clinical.csv"),
                     "--output", str(tables / "z.csv")]) == 1
    err = capsys.readouterr().err
    assert "lacks 1 feature(s) the model was trained on: noise" in err and "Traceback" not in err
