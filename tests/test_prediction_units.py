"""Unit tests of the prediction pieces that need no trained model: fold ensembling, model-folder
checks, input discovery, the converter's preprocessing of a new case, output tables."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_hecktor.checkpoints import BEST_CHECKPOINT, FINAL_CHECKPOINT, LATEST_CHECKPOINT, LEGACY_SWA_CHECKPOINT
from nnunet_hecktor.errors import HecktorError, InputDataError
from nnunet_hecktor.prediction.ensemble import FoldHeadOutput, ensemble_heads
from nnunet_hecktor.prediction.inputs import find_input_cases
from nnunet_hecktor.prediction.model import check_model_folder
from nnunet_hecktor.prediction.settings import ConversionSettings


def _fold(fold, probability, threshold, risk):
    logit = math.log(probability / (1 - probability))
    return FoldHeadOutput(fold, probability, logit, threshold, risk, (1, 2, 3), "GTVp")


# -- ensembling ---------------------------------------------------------------------------------
# (per-fold (probability, threshold, risk), expected (probability, threshold, positive, risk)), by hand.
ENSEMBLE_CASES = [
    ([(0.8, 0.5, 1.0)], (0.8, 0.5, True, 1.0)),
    ([(0.2, 0.5, -1.0), (0.6, 0.5, 3.0)], (0.4, 0.5, False, 1.0)),
    # mean probability 0.7 reaches the mean threshold 0.7 exactly: positive (>=)
    ([(0.9, 0.6, 0.0), (0.5, 0.8, 0.0)], (0.7, 0.7, True, 0.0)),
    # one confident fold does not overrule two others
    ([(0.99, 0.5, 2.0), (0.3, 0.5, -1.0), (0.3, 0.5, -4.0)], (0.53, 0.5, True, -1.0)),
    ([(0.99, 0.9, 2.0), (0.3, 0.9, -1.0), (0.3, 0.9, -4.0)], (0.53, 0.9, False, -1.0)),
]


@pytest.mark.parametrize("folds, expected", ENSEMBLE_CASES)
def test_ensemble_table(folds, expected):
    out = ensemble_heads([_fold(i, *f) for i, f in enumerate(folds)])
    probability, threshold, positive, risk = expected
    assert out.hpv_probability == pytest.approx(probability, abs=1e-12)
    assert out.hpv_threshold == pytest.approx(threshold, abs=1e-12)
    assert out.hpv_positive is positive
    assert out.risk == pytest.approx(risk, abs=1e-12)
    assert out.n_folds == len(folds)


def test_ensemble_rejects_empty_and_non_finite():
    with pytest.raises(ValueError):
        ensemble_heads([])
    with pytest.raises(FloatingPointError, match="risk"):
        ensemble_heads([_fold(0, 0.5, 0.5, float("nan"))])


def test_risk_offset_per_fold_does_not_change_ranking():
    # A constant shift of one fold's risks (Cox offset) leaves the ensemble ranking unchanged.
    rng = np.random.default_rng(0)
    risks = rng.normal(size=(3, 20))
    base = [ensemble_heads([_fold(f, 0.5, 0.5, risks[f, p]) for f in range(3)]).risk for p in range(20)]
    shifted = [ensemble_heads([_fold(f, 0.5, 0.5, risks[f, p] + 10.0 * f) for f in range(3)]).risk for p in range(20)]
    assert np.array_equal(np.argsort(base), np.argsort(shifted))


# -- conversion settings ------------------------------------------------------------------------
def test_conversion_settings_from_dataset_json():
    recorded = ConversionSettings.from_dataset_json(
        {"hecktor_conversion": {"interpolation": "bspline", "crop": "headneck", "headneck_box_mm": [180, 190, 300]}})
    assert (recorded.interpolation, recorded.crop, recorded.headneck_box_mm, recorded.recorded) == \
        ("bspline", "headneck", (180.0, 190.0, 300.0), True)
    assert "bspline" in recorded.describe() and "180x190x300" in recorded.describe()
    default = ConversionSettings.from_dataset_json({"name": "x"})
    assert (default.interpolation, default.crop, default.recorded) == ("linear", None, False)
    assert "defaults" in default.describe()
    with pytest.raises(HecktorError, match="interpolation"):
        ConversionSettings.from_dataset_json({"hecktor_conversion": {"interpolation": "cubic"}})
    with pytest.raises(HecktorError, match="crop"):
        ConversionSettings.from_dataset_json({"hecktor_conversion": {"crop": "brain"}})


# -- model folder checks ------------------------------------------------------------------------
def _fake_model(root: Path, folds: dict) -> Path:
    model = root / "Dataset999_X" / "HecktorMultiTaskTrainer__nnUNetPlans__3d_fullres"
    model.mkdir(parents=True)
    (model / "plans.json").write_text("{}")
    (model / "dataset.json").write_text("{}")
    for fold, checkpoints in folds.items():
        (model / f"fold_{fold}").mkdir()
        for name in checkpoints:
            (model / f"fold_{fold}" / name).write_bytes(b"x")
    return model


def test_check_model_folder(tmp_path):
    model = _fake_model(tmp_path, {0: [FINAL_CHECKPOINT, LEGACY_SWA_CHECKPOINT], 1: [FINAL_CHECKPOINT],
                                   2: [BEST_CHECKPOINT]})
    assert check_model_folder(model)[1] == (0, 1)
    assert check_model_folder(model, None, LEGACY_SWA_CHECKPOINT)[1] == (0,)
    assert check_model_folder(model, ["1", "0"])[1] == (1, 0)
    with pytest.raises(HecktorError, match="fold 3 not found"):
        check_model_folder(model, [3])
    missing = rf"fold_1: no {re.escape(LEGACY_SWA_CHECKPOINT)} \(checkpoints there: {re.escape(FINAL_CHECKPOINT)}"
    with pytest.raises(HecktorError, match=missing):
        check_model_folder(model, [1], LEGACY_SWA_CHECKPOINT)
    with pytest.raises(HecktorError, match=f"no fold has {re.escape(LATEST_CHECKPOINT)}"):
        check_model_folder(model, None, LATEST_CHECKPOINT)
    with pytest.raises(HecktorError, match="listed twice"):
        check_model_folder(model, [0, 0])
    with pytest.raises(HecktorError, match="this is a fold folder"):
        check_model_folder(model / "fold_0")
    with pytest.raises(HecktorError, match="holds the model folders HecktorMultiTaskTrainer__"):
        check_model_folder(model.parent)
    with pytest.raises(HecktorError, match="does not exist"):
        check_model_folder(tmp_path / "nope")


# -- input discovery ----------------------------------------------------------------------------
def _image(size=(6, 5, 4), spacing=(2.0, 2.0, 3.0), origin=(0.0, 0.0, 0.0), value=0.0, pixel=sitk.sitkFloat32):
    image = sitk.Image(list(size), pixel)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if value:
        image = image + value
    return image


def test_nnunet_style_input(tmp_path):
    images = tmp_path / "Dataset1_X" / "imagesTs"
    images.mkdir(parents=True)
    for pid in ("A-000", "B-001"):
        for channel in ("0000", "0001"):
            sitk.WriteImage(_image(), str(images / f"{pid}_{channel}.nii.gz"))
    found = find_input_cases(images)
    assert found.kind == "nnunet" and [c.patient_id for c in found.cases] == ["A-000", "B-001"]
    assert all(c.pet_on_ct_grid and c.crop_record is None for c in found.cases)
    # crop records next to the folder are picked up (all or nothing)
    crops = images.parent / "crops"
    crops.mkdir()
    (crops / "A-000.json").write_text("{}")
    with pytest.raises(HecktorError, match="crop records exist for some cases but not for B-001"):
        find_input_cases(images)
    (crops / "B-001.json").write_text("{}")
    assert all(c.crop_record is not None for c in find_input_cases(images).cases)
    assert [c.patient_id for c in find_input_cases(images, patients=["B-001"]).cases] == ["B-001"]
    with pytest.raises(HecktorError, match="patients not found: C-002"):
        find_input_cases(images, patients=["C-002"])
    (images / "B-001_0001.nii.gz").unlink()
    with pytest.raises(HecktorError, match=r"B-001: PET \(_0001\) missing"):
        find_input_cases(images)
    sitk.WriteImage(_image(), str(images / "B-001_0001.nii.gz"))
    sitk.WriteImage(_image(), str(images / "B-001_0002.nii.gz"))
    with pytest.raises(HecktorError, match="unexpected channel file.*B-001_0002"):
        find_input_cases(images)


def test_hecktor_input_and_missing_pet(tmp_path):
    from nnunet_hecktor.synthetic import make_cohort

    cohort = make_cohort(tmp_path / "flat", n_patients=3, seed=1, layout="flat", size="test", progress=False)
    found = find_input_cases(cohort.out_dir)
    assert found.kind == "hecktor"
    assert [c.patient_id for c in found.cases] == sorted(cohort.all_patient_ids)
    assert not any(c.pet_on_ct_grid for c in found.cases)
    assert found.clinical_sources, "the cohort's CSV is offered as clinical table"
    pid = found.cases[0].patient_id
    (Path(cohort.out_dir) / f"{pid}__PT.nii.gz").unlink()
    with pytest.raises(InputDataError, match=rf"{pid}: PET \(__PT\) missing"):
        find_input_cases(cohort.out_dir)


def test_empty_input_folder(tmp_path):
    with pytest.raises(HecktorError, match="no HECKTOR images"):
        find_input_cases(tmp_path)


# -- preparation of a new case ------------------------------------------------------------------
def _ct_pet():
    ct = sitk.Cast(sitk.GetImageFromArray(np.arange(10 * 18 * 20, dtype=np.int16).reshape(10, 18, 20)),
                   sitk.sitkInt16)
    ct.SetSpacing((2.0, 2.0, 3.0))
    pet_array = np.full((6, 6, 6), 3.0, dtype=np.float32)
    pet = sitk.GetImageFromArray(pet_array)
    pet.SetSpacing((4.0, 4.0, 4.0))
    pet.SetOrigin((8.0, 6.0, 3.0))  # covers only part of the CT
    return ct, pet


def test_prepare_images_repeats_the_converter():
    from nnunet_hecktor.dataset_conversion import compute_crop, resample_pet_to_ct, uncrop_to_original
    from nnunet_hecktor.prediction.preparation import prepare_images

    ct, pet = _ct_pet()
    for crop in (None, "overlap"):
        settings = ConversionSettings(interpolation="linear", crop=crop)
        prepared = prepare_images("X-000", ct, pet, settings)
        record = compute_crop("X-000", ct, pet, crop)
        assert prepared.crop_record.index_start == record.index_start
        assert prepared.ct.GetSize() == tuple(np.subtract(record.index_stop, record.index_start))
        expected_pet = resample_pet_to_ct(pet, record.cropped_ct, "linear")
        assert np.array_equal(sitk.GetArrayFromImage(prepared.pet), sitk.GetArrayFromImage(expected_pet))
        # the record maps a segmentation of the prepared grid back onto the original CT grid
        seg = sitk.Cast(prepared.ct * 0 + 1, sitk.sitkUInt8)
        back = uncrop_to_original(seg, prepared.crop_record)
        assert back.GetSize() == ct.GetSize() and back.GetOrigin() == ct.GetOrigin()
        assert int(sitk.GetArrayViewFromImage(back).sum()) == int(np.prod(prepared.ct.GetSize()))
    overlap = prepare_images("X-000", ct, pet, ConversionSettings(crop="overlap"))
    assert overlap.ct.GetSize() != ct.GetSize(), "the overlap crop removed CT voxels outside the PET"
    partial = prepare_images("X-000", ct, pet, ConversionSettings())
    assert any("PET covers only" in w for w in partial.warnings)


def test_prepare_images_errors():
    from nnunet_hecktor.prediction.preparation import prepare_images

    ct, pet = _ct_pet()
    far = sitk.Image(pet)
    far.SetOrigin((1000.0, 0.0, 0.0))
    with pytest.raises(InputDataError, match="do not overlap"):
        prepare_images("X-000", ct, far, ConversionSettings())
    with pytest.raises(InputDataError, match=r"PET \(_0001\) is not on the CT \(_0000\) grid"):
        prepare_images("X-000", ct, pet, ConversionSettings(), pet_on_ct_grid=True)
    converted_pet = sitk.Cast(ct, sitk.sitkFloat32)
    prepared = prepare_images("X-000", ct, converted_pet, ConversionSettings(), pet_on_ct_grid=True)
    assert prepared.crop_record.is_full and prepared.pet.GetPixelID() == sitk.sitkFloat32


def test_prepare_case_reports_truncated_file(tmp_path):
    from nnunet_hecktor.prediction.inputs import CaseInput
    from nnunet_hecktor.prediction.preparation import prepare_case

    ct, pet = _ct_pet()
    sitk.WriteImage(ct, str(tmp_path / "ct.nii.gz"))
    sitk.WriteImage(pet, str(tmp_path / "pet.nii.gz"))
    data = (tmp_path / "pet.nii.gz").read_bytes()
    (tmp_path / "pet.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputDataError, match="X-000.*pet.nii.gz"):
        prepare_case(CaseInput("X-000", tmp_path / "ct.nii.gz", tmp_path / "pet.nii.gz"), ConversionSettings())


def test_uncrop_probabilities():
    from nnunet_hecktor.dataset_conversion import compute_crop
    from nnunet_hecktor.prediction.predictor import _uncrop_probabilities

    ct, pet = _ct_pet()
    record = compute_crop("X-000", ct, pet, "overlap")
    size = tuple(np.subtract(record.index_stop, record.index_start))
    probabilities = np.random.default_rng(0).dirichlet([1, 1, 1], size=size[::-1]).transpose(3, 0, 1, 2)
    full = _uncrop_probabilities(probabilities.astype(np.float32), record)
    assert full.shape == (3, *ct.GetSize()[::-1])
    assert np.allclose(full.sum(axis=0), 1.0, atol=1e-5)
    (x0, y0, z0), (x1, y1, z1) = record.index_start, record.index_stop
    assert np.array_equal(full[:, z0:z1, y0:y1, x0:x1], probabilities.astype(np.float32))
    assert full[0, 0, 0, 0] == 1.0 and full[1:, 0, 0, 0].sum() == 0.0


# -- output tables ------------------------------------------------------------------------------
def test_predictions_csv_is_read_by_evaluate(tmp_path):
    from nnunet_hecktor.evaluation.outcome import read_predictions_csv
    from nnunet_hecktor.prediction.outputs import write_prediction_tables
    from nnunet_hecktor.prediction.predictor import CasePrediction

    preds = []
    for pid, folds in (("A-000", [(0.9, 0.5, 1.5), (0.7, 0.6, 0.5)]), ("B-001", [(0.1, 0.5, -0.25)])):
        outputs = [_fold(i, *f) for i, f in enumerate(folds)]
        preds.append(CasePrediction(pid, None, ensemble_heads(outputs), outputs))
    preds.append(CasePrediction("C-002", None, None, []))  # segmentation-only patient: no row
    written = write_prediction_tables(preds, tmp_path)
    assert [p.name for p in written] == ["predictions.csv", "predictions_per_fold.csv"]
    lines = (tmp_path / "predictions.csv").read_text().splitlines()
    assert lines[0] == "PatientID,hpv_probability,hpv_status,risk"
    assert lines[1] == "A-000,0.8,1,1.0" and lines[2] == "B-001,0.1,0,-0.25" and len(lines) == 3
    table = read_predictions_csv(tmp_path / "predictions.csv")
    assert table.rows["A-000"] == {"hpv_probability": 0.8, "hpv_status": 1, "risk": 1.0}
    per_fold = (tmp_path / "predictions_per_fold.csv").read_text().splitlines()
    assert per_fold[0].startswith("PatientID,fold,hpv_probability") and len(per_fold) == 4
    assert write_prediction_tables([CasePrediction("C-002", None, None, [])], tmp_path / "none") == []
    assert json.dumps(preds[0].heads.as_dict())
