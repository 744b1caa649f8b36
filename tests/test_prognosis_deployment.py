"""The prognosis stage as predict's / the container's risk and HPV source (nnunet_hecktor.prognosis.deployment,
predictions.csv columns). Fast: tiny stage models fitted on a synthetic feature table, real feature code."""

import numpy as np
import pandas as pd
import pytest
from test_prognosis_tables import make_tables

from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.prognosis.deployment import (
    STAGE_FILES,
    load_stage_models,
    resolve_stage_models,
    stage_into_model,
)
from nnunet_hecktor.prognosis.features import features_from_images
from nnunet_hecktor.prognosis.hpv_stage import fit_hpv, predict_hpv
from nnunet_hecktor.prognosis.survival_stage import fit_survival, predict_survival


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """Survival and HPV models on features the stage can measure (and one with a column it cannot)."""
    root = tmp_path_factory.mktemp("stage")
    features, clinical = make_tables()
    features.drop(columns=["noise"]).to_csv(root / "features.csv", index=False)
    features.to_csv(root / "features_noise.csv", index=False)
    clinical.to_csv(root / "clinical.csv", index=False)
    common = dict(n_splits=3, progress=False, make_plots=False)
    fit_survival(root / "clinical.csv", root / "surv", features_csv=root / "features.csv", models=("coxnet",),
                 **common)
    fit_hpv(root / "clinical.csv", root / "hpv", features_csv=root / "features.csv", **common)
    fit_survival(root / "clinical.csv", root / "surv_noise", features_csv=root / "features_noise.csv",
                 models=("coxnet",), **common)
    return root


def _images(seed=0):
    """CT (HU), PET (SUV) on a coarser grid, and a 0/1/2 segmentation on the CT grid."""
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    ct = sitk.GetImageFromArray(rng.normal(40, 20, (20, 24, 24)).astype(np.float32))
    ct.SetSpacing((2.0, 2.0, 3.0))
    pet = sitk.GetImageFromArray(rng.gamma(2.0, 1.0, (10, 12, 12)).astype(np.float32))
    pet.SetSpacing((4.0, 4.0, 6.0))
    seg = np.zeros((20, 24, 24), np.uint8)
    seg[8:12, 8:14, 8:14] = 1
    seg[9:11, 16:19, 16:19] = 2
    seg_image = sitk.GetImageFromArray(seg)
    seg_image.CopyInformation(ct)
    return ct, pet, seg_image


def test_two_models_of_one_task_are_refused(fitted):
    with pytest.raises(HecktorError, match="two survival models"):
        load_stage_models(fitted)


def test_predict_patient_equals_prognosis_and_hpv_predict(fitted, tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    copied = stage_into_model(model_dir, survival=fitted / "surv" / "model.joblib", hpv=fitted / "hpv")
    assert {p.name for p in copied.values()} == {STAGE_FILES["survival"], STAGE_FILES["hpv"]}
    stage = resolve_stage_models(model_dir)  # default: <model>/prognosis/
    assert stage is not None and stage.outputs == ("risk", "hpv")
    stage.check_inputs(heads_available=False)

    ct, pet, seg = _images()
    record = {"Age": 71.0, "Gender": 1, "Tobacco Consumption": None, "Performance Status": 90, "M-stage": "M0"}
    values = stage.predict_patient("NEW-001", ct, pet, seg, record)

    # The same patient through the stage's own commands: feature table + clinical CSV.
    row = features_from_images(ct, pet, seg, "NEW-001")
    table = pd.DataFrame([row], index=pd.Index(["NEW-001"], name="PatientID"))
    table.insert(0, "seg_source", "predicted")
    table.to_csv(tmp_path / "f.csv")
    pd.DataFrame([{"PatientID": "NEW-001", **record, "HPV Status": None}]).to_csv(tmp_path / "c.csv", index=False)
    risk = predict_survival(copied["survival"], tmp_path / "r.csv", tmp_path / "f.csv", tmp_path / "c.csv")
    hpv = predict_hpv(copied["hpv"], tmp_path / "h.csv", tmp_path / "f.csv", tmp_path / "c.csv")
    assert values["risk"] == pytest.approx(float(risk["risk"].iloc[0]), rel=1e-9)
    assert values["hpv_probability"] == pytest.approx(float(hpv["hpv_probability"].iloc[0]), rel=1e-9)
    assert values["hpv_status"] == int(hpv["hpv_status"].iloc[0])
    # no clinical record at all: imputed by the fitted pipeline, still an output
    assert np.isfinite(stage.predict_patient("NEW-002", ct, pet, seg, None)["risk"])


def test_heads_only_and_missing_stage_folder(fitted, tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    assert resolve_stage_models(model_dir) is None
    stage_into_model(model_dir, survival=fitted / "surv")
    assert resolve_stage_models(model_dir, heads_only=True) is None
    assert resolve_stage_models(model_dir).outputs == ("risk",)
    assert resolve_stage_models(None, fitted / "hpv").outputs == ("hpv",)
    with pytest.raises(HecktorError, match="contradict"):
        resolve_stage_models(model_dir, fitted / "hpv", heads_only=True)
    with pytest.raises(HecktorError, match="is a survival model"):
        stage_into_model(model_dir, hpv=fitted / "surv")


def test_columns_prediction_cannot_produce_are_named_with_the_model_file(fitted):
    stage = load_stage_models(fitted / "surv_noise")
    with pytest.raises(HecktorError) as info:
        stage.check_inputs(heads_available=True)
    message = str(info.value)
    assert str(fitted / "surv_noise" / "model.joblib") in message and "noise" in message


def test_predictions_csv_takes_stage_values_and_keeps_the_heads():
    from nnunet_hecktor.prediction.ensemble import EnsembleHeadOutput
    from nnunet_hecktor.prediction.outputs import predictions_csv_text
    from nnunet_hecktor.prediction.predictor import CasePrediction

    heads = EnsembleHeadOutput(hpv_probability=0.8, hpv_threshold=0.5, hpv_positive=True, risk=0.25, n_folds=1)
    both = CasePrediction("A-001", None, heads, stage={"risk": 1.5})
    text = predictions_csv_text([both])
    assert text.splitlines() == ["PatientID,hpv_probability,hpv_status,risk,head_hpv_probability,head_hpv_status,"
                                 "head_risk", "A-001,0.8,1,1.5,0.8,1,0.25"]
    seg_only = CasePrediction("B-001", None, None, stage={"risk": -0.5})
    assert predictions_csv_text([seg_only]).splitlines() == ["PatientID,risk", "B-001,-0.5"]
    assert predictions_csv_text([CasePrediction("C-001", None, heads)]).splitlines() == [
        "PatientID,hpv_probability,hpv_status,risk", "C-001,0.8,1,0.25"]
    # HECKTOR 2026: the stage's T/N labels are written after risk (the evaluation reads t_stage / n_stage).
    staged = CasePrediction("D-001", None, heads, stage={"risk": 0.5, "t_stage": "T3", "n_stage": "N1"})
    assert predictions_csv_text([staged]).splitlines() == [
        "PatientID,hpv_probability,hpv_status,risk,t_stage,n_stage,head_hpv_probability,head_hpv_status,head_risk",
        "D-001,0.8,1,0.5,T3,N1,0.8,1,0.25"]


def test_cli_prognosis_stage(fitted, tmp_path, capsys):
    from nnunet_hecktor.cli import main

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    assert main(["prognosis", "stage", "--model", str(model_dir), "--hpv", str(fitted / "hpv")]) == 0
    assert (model_dir / "prognosis" / "hpv.joblib").is_file()
    assert "hpv.joblib" in capsys.readouterr().out
    assert main(["prognosis", "stage", "--model", str(model_dir)]) != 0


def test_routing_prefers_the_stage_then_clinical_only_then_heads(fitted, tmp_path):
    from nnunet_hecktor.prediction.routing import missing_stage_warning, route_outputs

    stage = load_stage_models(fitted / "surv")
    routing = route_outputs(heads_available=True, stage=stage)
    assert routing.kind("risk") == "stage" and routing.kind("hpv") == "heads"
    assert route_outputs(heads_available=False, stage=stage).kind("hpv") is None
    assert route_outputs(heads_available=True).kind("risk") == "heads"
    clinical_only = tmp_path / "clinical_only"
    fit_survival(fitted / "clinical.csv", clinical_only, features_csv=fitted / "features.csv", feature_set="clinical",
                 models=("coxnet",), n_splits=3, progress=False, make_plots=False)
    assert route_outputs(True, load_stage_models(clinical_only)).kind("risk") == "clinical-only"
    # A multi-task model folder without a staged stage: the warning names the command.
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    message = missing_stage_warning(model_dir, multitask=True, stage=None)
    assert f"nnunet-hecktor prognosis build -m {model_dir}" in message
    assert "hpv comes from" in missing_stage_warning(model_dir, True, stage)
    assert missing_stage_warning(model_dir, multitask=False) is None


def test_fallbacks_are_on_the_stage_scale_and_a_rebuilt_stage_replaces_the_old_one(fitted, tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    stage_into_model(model_dir, survival=fitted / "surv", hpv=fitted / "hpv")
    stage = resolve_stage_models(model_dir)
    survival = stage.models["survival"]
    # The median of the training patients' own (standardised) risks, not the heads' scale.
    assert stage.fallback()["risk"] == pytest.approx(survival.fallback["risk"])
    assert abs(stage.fallback()["risk"]) < 1.0
    assert stage.fallback()["hpv_probability"] == pytest.approx(stage.models["hpv"].training_prevalence)
    stage_into_model(model_dir, models={"survival": fitted / "surv"}, manifest={"edition": "2026"}, replace=True)
    rebuilt = resolve_stage_models(model_dir)
    assert rebuilt.outputs == ("risk",) and rebuilt.manifest == {"edition": "2026"}
    assert sorted(p.name for p in (model_dir / "prognosis").iterdir()) == ["stage.json", "survival.joblib"]
    assert not [p for p in model_dir.iterdir() if p.name.startswith(".prognosis")]
