"""``nnunet-hecktor prognosis build`` end to end on the tiny trained model, and ``predict``'s routing (slow).

The tiny model has fold 0 trained; folds 1-4 are given fold 0's checkpoint without a
``validation`` folder, so the build has to predict their out-of-fold masks with each fold's own
checkpoint (the path a model folder whose validation outputs were deleted takes).
"""

import json
import logging
import shutil

import pandas as pd
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def built(tiny_model, tmp_path_factory):
    """A copy of the tiny model with five folds, built for HECKTOR 2025 through the command line."""
    from nnunet_hecktor.cli import main

    results = tmp_path_factory.mktemp("results") / tiny_model.dataset.dataset_name
    model_dir = results / tiny_model.model_dir.name
    shutil.copytree(tiny_model.model_dir, model_dir)
    for fold in range(1, 5):
        (model_dir / f"fold_{fold}").mkdir()
        shutil.copy2(tiny_model.fold_dir / "checkpoint_final.pth", model_dir / f"fold_{fold}")
    raw = tiny_model.dataset.raw_dir
    splits = tiny_model.dataset.preprocessed_dir / "splits_final.json"
    assert main(["prognosis", "build", "-m", str(model_dir), "--raw", str(raw), "--splits", str(splits),
                 "--cv-folds", "2", "--bootstrap", "200", "--quiet"]) == 0
    return model_dir, json.loads(splits.read_text())


def test_build_fits_every_2025_target_as_deployed(built):
    model_dir, splits = built
    manifest = json.loads((model_dir / "prognosis" / "stage.json").read_text())
    assert manifest["edition"] == "2025"
    # Every patient validated by a fold has an out-of-fold mask; those of folds 1-4 were predicted.
    features = pd.read_csv(model_dir / "prognosis_build" / "features_oof.csv", dtype={"PatientID": str})
    assert sorted(features["PatientID"]) == sorted(p for fold in splits for p in fold["val"])
    assert set(features["seg_source"]) == {"predicted"}
    assert manifest["segmentations"]["predicted_by_build"] == sum(len(f["val"]) for f in splits[1:])
    # Every 2025 target is fitted or says why not (the tiny cohort has RFS for a few patients only).
    assert set(manifest["targets"]) | set(manifest["not_fitted"]) == {"survival", "hpv"}
    assert "hpv" in manifest["targets"] and (model_dir / "prognosis" / "hpv.joblib").is_file()
    for name, entry in manifest["targets"].items():
        for key, value in entry["figures"].items():
            if f"{key}_ci95" in entry["figures"] and value is not None:
                low, high = entry["figures"][f"{key}_ci95"]
                assert low <= value <= high, (name, key)
        assert "HPV Status" not in entry["clinical_columns"]  # 2025: never a test-time input
    assert all("too few" in reason for reason in manifest["not_fitted"].values())


def test_the_edition_decides_the_clinical_inputs(tiny_dataset):
    from nnunet_hecktor.editions import get_edition
    from nnunet_hecktor.model_folder.build import permitted_columns

    clinical = tiny_dataset.raw_dir / "clinical.csv"
    risk_2025 = permitted_columns("survival", clinical, get_edition("2025").test_inputs)
    risk_2026 = permitted_columns("survival", clinical, get_edition("2026").test_inputs)
    assert "Age" in risk_2025 and "HPV Status" not in risk_2025  # the Task 2 test input carries no HPV status
    assert "HPV Status" in risk_2026  # 2026 gives it at test time
    assert "HPV Status" not in permitted_columns("hpv", clinical, get_edition("2026").test_inputs)


def test_predict_routes_to_the_built_stage_and_its_fallback_is_on_its_scale(built, tiny_model, tmp_path):
    from nnunet_hecktor.prediction import predict
    from nnunet_hecktor.prognosis.deployment import resolve_stage_models

    model_dir, _ = built
    stage = resolve_stage_models(model_dir)
    out = tmp_path / "out"
    predict(tiny_model.dataset.root / "source", out, model_dir, patients=[tiny_model.dataset.test_cases[0]],
            progress=False, prognosis=stage)
    settings = json.loads((out / "prediction_settings.json").read_text())
    routes = settings["routing"]["outputs"]
    assert routes["hpv"]["source"] == "stage" and str(model_dir) in routes["hpv"]["detail"]
    table = pd.read_csv(out / "predictions.csv")
    assert {"hpv_probability", "head_hpv_probability"} <= set(table.columns)
    # The stage's fallback is on its own scale: the training prevalence and majority class of its patients.
    hpv = stage.models["hpv"]
    assert stage.fallback()["hpv_probability"] == pytest.approx(hpv.training_prevalence)
    assert stage.fallback()["hpv_status"] == int(hpv.training_prevalence >= 0.5)


def test_predict_warns_on_a_multitask_model_without_a_stage(tiny_model, tmp_path, caplog):
    from nnunet_hecktor.prediction import predict

    patient = tiny_model.dataset.test_cases[0]
    with caplog.at_level(logging.WARNING, logger="nnunet_hecktor.prediction.api"):
        summary = predict(tiny_model.dataset.root / "source", tmp_path / "out", tiny_model.model_dir,
                          patients=[patient], progress=False)
    messages = [r.getMessage() for r in caplog.records]
    assert any("nnunet-hecktor prognosis build -m" in m and "network heads" in m for m in messages), messages
    assert summary.routing.kind("risk") == "heads"
    settings = json.loads((tmp_path / "out" / "prediction_settings.json").read_text())
    assert "prognosis build" in settings["routing"]["warnings"][0]
