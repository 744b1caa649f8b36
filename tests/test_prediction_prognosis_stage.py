"""``nnunet-hecktor predict`` with the prognosis stage as risk/HPV source, on the tiny trained model (slow)."""

import json
import shutil

import pandas as pd
import pytest
from test_prognosis_deployment import fitted  # noqa: F401 - the fitted stage models

from nnunet_hecktor.errors import HecktorError

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def test_predict_uses_the_stage_and_keeps_the_heads(tiny_model, fitted, tmp_path):  # noqa: F811
    from nnunet_hecktor.cli import main
    from nnunet_hecktor.prognosis.deployment import load_stage_models, stage_into_model

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model.model_dir, model_dir)
    stage_into_model(model_dir, survival=fitted / "surv", hpv=fitted / "hpv")
    source = tiny_model.dataset.root / "source"
    patient = tiny_model.dataset.test_cases[0]
    out = tmp_path / "out"
    assert main(["predict", "-i", str(source), "-o", str(out), "-m", str(model_dir), "--patients", patient,
                 "--quiet"]) == 0  # default: model/prognosis/
    table = pd.read_csv(out / "predictions.csv", dtype={"PatientID": str})
    assert {"risk", "hpv_probability", "head_risk", "head_hpv_probability"} <= set(table.columns)
    settings = json.loads((out / "prediction_settings.json").read_text())
    assert settings["output_sources"]["risk"].startswith("prognosis stage")

    # The stage's own features of the written segmentation give the same risk.
    import SimpleITK as sitk

    from nnunet_hecktor.prediction import find_input_cases, load_clinical, prepare_case
    from nnunet_hecktor.prediction.model import load_predictor

    info = load_predictor(model_dir, segmentation_only=True)[1]
    cases = find_input_cases(source, None, [patient])
    prepared = prepare_case(cases.cases[0], info.conversion)
    stage = load_stage_models(model_dir / "prognosis")
    clinical = load_clinical(cases, None, ("Age", "Gender", "Tobacco Consumption", "Alcohol Consumption",
                                           "Performance Status", "Treatment", "M-stage", "HPV Status"))[0]
    expected = stage.predict_patient(patient, prepared.ct, prepared.pet, sitk.ReadImage(str(out / f"{patient}.nii.gz")),
                                     clinical.get(patient), {"risk": table["head_risk"][0],
                                                             "hpv_probability": table["head_hpv_probability"][0]})
    assert table["risk"][0] == pytest.approx(expected["risk"], rel=1e-6)

    heads = tmp_path / "heads"
    assert main(["predict", "-i", str(source), "-o", str(heads), "-m", str(model_dir), "--patients", patient,
                 "--heads-only", "--quiet"]) == 0
    assert "head_risk" not in pd.read_csv(heads / "predictions.csv").columns


def test_predict_refuses_a_stage_needing_unproducible_columns(tiny_model, fitted, tmp_path):  # noqa: F811
    from nnunet_hecktor.prediction import predict
    from nnunet_hecktor.prognosis.deployment import load_stage_models

    with pytest.raises(HecktorError, match="noise"):
        predict(tiny_model.dataset.root / "source", tmp_path / "out", tiny_model.model_dir,
                patients=[tiny_model.dataset.test_cases[0]], progress=False,
                prognosis=load_stage_models(fitted / "surv_noise"))
