"""``nnunet-hecktor predict`` end to end on CPU with the session's tiny trained multi-task model.

The tiny model (``tests/conftest.py``: fold 0 of ``HecktorMultiTaskTrainer_tiny``) predicts the
synthetic HECKTOR release it was converted from (CT and PET on different grids); the outputs must
lie exactly on each patient's original CT grid, equal what nnU-Net's own predictor makes of the
converted files, and be scored by ``evaluate``.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_hecktor.checkpoints import FINAL_CHECKPOINT, LAST_ITERATE_CHECKPOINT, LATEST_CHECKPOINT
from nnunet_hecktor.errors import HecktorError

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def _geometry(image):
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def _source(tiny_dataset) -> Path:
    return tiny_dataset.root / "source"


@pytest.fixture(scope="module")
def layout(tiny_dataset):
    from nnunet_hecktor.dataset_conversion import discover_layout

    return discover_layout(_source(tiny_dataset))


@pytest.fixture(scope="module")
def source_predictions(tiny_model, tmp_path_factory):
    """The whole synthetic release predicted once (folds auto-detected, mirroring on)."""
    from nnunet_hecktor.prediction import predict

    out = tmp_path_factory.mktemp("predict_release")
    summary = predict(_source(tiny_model.dataset), out, tiny_model.model_dir, progress=False)
    return summary, out


def test_segmentations_on_original_ct_grids(source_predictions, layout):
    summary, out = source_predictions
    assert sorted(summary.predicted) == sorted(layout.patients) and not summary.failed
    for pid, sources in layout.patients.items():
        ct = sitk.ReadImage(str(sources.ct))
        seg = sitk.ReadImage(str(out / f"{pid}.nii.gz"))
        assert _geometry(seg) == _geometry(ct), pid
        assert seg.GetPixelID() == sitk.sitkUInt8
        assert set(np.unique(sitk.GetArrayViewFromImage(seg)).tolist()) <= {0, 1, 2}
    # something was segmented somewhere (the tiny model is barely trained, but not all background)
    assert summary.model.multitask and summary.model.folds == (0,)


def test_predictions_csv_well_formed(source_predictions, layout):
    from nnunet_hecktor.evaluation.outcome import read_predictions_csv

    summary, out = source_predictions
    table = read_predictions_csv(out / "predictions.csv")
    assert sorted(table.rows) == sorted(layout.patients)
    assert table.columns == ("hpv_probability", "hpv_status", "risk")
    with open(out / "predictions_per_fold.csv", newline="") as handle:
        per_fold = {row["PatientID"]: row for row in csv.DictReader(handle)}
    threshold = summary.model.hpv_thresholds[0]
    for pid, row in table.rows.items():
        assert 0.0 <= row["hpv_probability"] <= 1.0 and np.isfinite(row["risk"])
        assert row["hpv_status"] == int(row["hpv_probability"] >= threshold)
        # one fold: the ensemble is that fold's output
        assert float(per_fold[pid]["hpv_probability"]) == row["hpv_probability"]
        assert float(per_fold[pid]["risk"]) == row["risk"]
        assert per_fold[pid]["patch_centre_from"] in ("GTVp", "GTVn", "image centre")
    assert len({row["risk"] for row in table.rows.values()}) > 1, "risk must depend on the patient"
    settings = (out / "prediction_settings.json").read_text()
    assert "mean over folds" in settings and '"crop": null' in settings


def test_preprocessing_equals_the_training_preprocessing(tiny_model, layout):
    """The in-memory conversion + nnU-Net preprocessing of a new case is bit-identical to training's."""
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    from nnunet_hecktor.prediction import HecktorPredictor, find_input_cases, prepare_case

    model = HecktorPredictor(tiny_model.model_dir)
    folder = tiny_model.dataset.preprocessed_dir / "nnUNetPlans_3d_fullres"
    dataset = infer_dataset_class(str(folder))(str(folder))
    cases = [c for c in find_input_cases(_source(tiny_model.dataset)).cases if c.patient_id in dataset.identifiers]
    assert len(cases) >= 3
    for case in cases[:3]:
        data, _, _, _ = dataset.load_case(case.patient_id)
        ours = model.preprocess(prepare_case(case, model.info.conversion)).data.numpy()
        assert ours.shape == data.shape and np.array_equal(ours, np.asarray(data[:])), case.patient_id


def test_segmentation_equals_nnunet_predictor_on_converted_files(tiny_model, source_predictions):
    """nnU-Net's own file-based path (reader, preprocessing, sliding window, export) gives the same labels."""
    from nnunet_hecktor.prediction import HecktorPredictor

    _, out = source_predictions
    model = HecktorPredictor(tiny_model.model_dir)
    images = tiny_model.dataset.raw_dir / "imagesTr"
    pids = list(tiny_model.dataset.training_cases[:2])
    files = [[str(images / f"{pid}_0000.nii.gz"), str(images / f"{pid}_0001.nii.gz")] for pid in pids]
    stock = model.predictor.predict_from_files_sequential(files, None, save_probabilities=False, overwrite=True)
    for pid, array in zip(pids, stock):
        ours = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"{pid}.nii.gz")))
        assert np.array_equal(ours, array), pid


def test_evaluate_scores_the_predictions(tiny_model, source_predictions, layout, tmp_path):
    from nnunet_hecktor.evaluation.evaluate import evaluate

    _, out = source_predictions
    gt = tmp_path / "gt"
    gt.mkdir()
    for pid, sources in layout.patients.items():
        if sources.label is not None:
            shutil.copy(sources.label, gt / f"{pid}.nii.gz")
    result = evaluate(gt, out, tiny_model.dataset.raw_dir / "clinical.csv", out / "predictions.csv", tmp_path / "eval",
                      n_bootstrap=10, plots=False, progress=False)
    metrics = result.metrics
    assert {"task1", "task2", "task3"} <= set(metrics)
    assert 0.0 <= metrics["task1"]["gtvp_dice_mean"] <= 1.0
    assert (tmp_path / "eval" / "metrics.json").is_file()


def test_nnunet_style_input_goes_back_to_the_original_grid(tiny_model, source_predictions, layout, tmp_path):
    """The converter's imagesTs + crop records: same labels as from the HECKTOR folder, on the original CT grid."""
    from nnunet_hecktor.prediction import predict

    _, out = source_predictions
    test_cases = list(tiny_model.dataset.test_cases)
    assert test_cases
    summary = predict(tiny_model.dataset.raw_dir / "imagesTs", tmp_path / "ts", tiny_model.model_dir, progress=False)
    assert sorted(summary.predicted) == sorted(test_cases)
    for pid in test_cases:
        seg = sitk.ReadImage(str(tmp_path / "ts" / f"{pid}.nii.gz"))
        assert _geometry(seg) == _geometry(sitk.ReadImage(str(layout.patients[pid].ct)))
        same = sitk.ReadImage(str(out / f"{pid}.nii.gz"))
        assert np.array_equal(sitk.GetArrayFromImage(seg), sitk.GetArrayFromImage(same))


def test_cli_predict_and_clear_errors(tiny_model, layout, tmp_path, capsys):
    from nnunet_hecktor.cli import main

    pid = sorted(layout.patients)[0]
    source, model = str(_source(tiny_model.dataset)), str(tiny_model.model_dir)
    assert main(["predict", "-i", source, "-o", str(tmp_path / "cli"), "-m", model, "--patients", pid,
                 "--no-mirroring", "--quiet"]) == 0
    assert (tmp_path / "cli" / f"{pid}.nii.gz").is_file() and (tmp_path / "cli" / "predictions.csv").is_file()
    capsys.readouterr()
    assert main(["predict", "-i", source, "-o", str(tmp_path / "e1"), "-m", model, "-f", "3", "--quiet"]) == 1
    assert "fold 3 not found" in capsys.readouterr().err
    assert main(["predict", "-i", source, "-o", str(tmp_path / "e2"), "-m", model, "--checkpoint",
                 LATEST_CHECKPOINT, "--quiet"]) == 1
    assert f"no fold has {LATEST_CHECKPOINT}" in capsys.readouterr().err
    assert main(["predict", "-i", source, "-o", source, "-m", model, "--quiet"]) == 1
    assert "must not be the input folder" in capsys.readouterr().err
    assert not (tmp_path / "e1").exists() and not (tmp_path / "e2").exists()


def test_explicit_clinical_table_and_missing_rows(tiny_model, layout, tmp_path):
    from nnunet_hecktor.prediction import predict

    pids = sorted(layout.patients)[:2]
    table = tmp_path / "clinical.csv"
    table.write_text(f"PatientID,Age,Gender\n{pids[0]},70.0,\n")
    summary = predict(_source(tiny_model.dataset), tmp_path / "out", tiny_model.model_dir, clinical_csv=table,
                      patients=pids, use_mirroring=False, progress=False)
    assert summary.without_clinical == [pids[1]]
    assert pids[1] in (tmp_path / "out" / "prediction_settings.json").read_text()


def test_stock_model_needs_segmentation_only(tiny_model, source_predictions, layout, tmp_path):
    from nnunet_hecktor.prediction import predict
    from nnunet_hecktor.trainers.handover import export_segmentation_model

    _, out = source_predictions
    exported = export_segmentation_model(tiny_model.fold_dir, tmp_path / "stock", FINAL_CHECKPOINT)
    pid = sorted(layout.patients)[0]
    with pytest.raises(HecktorError, match="not a multi-task model.*--segmentation-only"):
        predict(_source(tiny_model.dataset), tmp_path / "x", exported.model_folder, patients=[pid], progress=False)
    predict(_source(tiny_model.dataset), tmp_path / "seg", exported.model_folder, patients=[pid],
            segmentation_only=True, progress=False)
    assert not (tmp_path / "seg" / "predictions.csv").exists()
    stock = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "seg" / f"{pid}.nii.gz")))
    assert np.array_equal(stock, sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"{pid}.nii.gz"))))


def test_named_checkpoint_with_postprocessing(tiny_model, layout, tmp_path):
    from nnunet_hecktor.postprocessing.apply import postprocess_image
    from nnunet_hecktor.postprocessing.config import load_config
    from nnunet_hecktor.prediction import predict

    pid = sorted(layout.patients)[1]
    pp = tmp_path / "pp.json"
    pp.write_text(json.dumps({"gtvp_single_lesion": "remove", "min_component_size": {"GTVn": 50}}))
    common = dict(checkpoint=LAST_ITERATE_CHECKPOINT, patients=[pid], use_mirroring=False, progress=False)
    raw = predict(_source(tiny_model.dataset), tmp_path / "raw", tiny_model.model_dir, **common)
    assert raw.model.checkpoint == LAST_ITERATE_CHECKPOINT
    predict(_source(tiny_model.dataset), tmp_path / "pp", tiny_model.model_dir, postprocessing=pp, **common)
    raw_image = sitk.ReadImage(str(tmp_path / "raw" / f"{pid}.nii.gz"))
    expected = postprocess_image(raw_image, load_config(pp), None, pid)
    got = sitk.ReadImage(str(tmp_path / "pp" / f"{pid}.nii.gz"))
    assert np.array_equal(sitk.GetArrayFromImage(got), sitk.GetArrayFromImage(expected))
    assert _geometry(got) == _geometry(raw_image)
    # heads do not depend on post-processing
    assert (tmp_path / "raw" / "predictions.csv").read_text() == (tmp_path / "pp" / "predictions.csv").read_text()


def test_saved_probabilities_match_the_masks_and_in_memory_thresholds(tiny_model, layout, tmp_path):
    """``save_probabilities`` writes nnU-Net's softmax beside each mask; thresholding it with
    ``postprocess`` gives what ``predict`` gives with the same rule applied in memory (so rules
    tuned on saved probabilities are deployed as tuned)."""
    from nnunet_hecktor.postprocessing.apply import postprocess_folder
    from nnunet_hecktor.postprocessing.config import PostprocessingConfig, save_config
    from nnunet_hecktor.prediction import predict

    pid = sorted(layout.patients)[0]
    common = dict(patients=[pid], use_mirroring=False, progress=False, segmentation_only=True)
    predict(_source(tiny_model.dataset), tmp_path / "raw", tiny_model.model_dir, save_probabilities=True, **common)
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "raw" / f"{pid}.nii.gz")))
    with np.load(tmp_path / "raw" / f"{pid}.npz") as data:
        probabilities = data["probabilities"]
    assert probabilities.shape == (3, *mask.shape) and probabilities.dtype == np.float32
    assert np.allclose(probabilities.sum(axis=0), 1.0, atol=1e-4)
    assert np.mean(probabilities.argmax(axis=0) == mask) > 0.999  # nnU-Net's argmax (ties aside)

    config = PostprocessingConfig(probability_threshold={1: 0.3, 2: 0.3})
    save_config(config, tmp_path / "pp.json")
    predict(_source(tiny_model.dataset), tmp_path / "in_memory", tiny_model.model_dir,
            postprocessing=tmp_path / "pp.json", **common)
    postprocess_folder(tmp_path / "raw", tmp_path / "from_files", config, progress=False)
    in_memory = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "in_memory" / f"{pid}.nii.gz")))
    from_files = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "from_files" / f"{pid}.nii.gz")))
    assert np.array_equal(in_memory, from_files)
    assert not (tmp_path / "in_memory" / f"{pid}.npz").exists()  # only when asked for


def test_bad_patient_does_not_stop_the_others(tiny_model, layout, tmp_path):
    from nnunet_hecktor.prediction import predict

    flat = tmp_path / "flat"
    flat.mkdir()
    good, bad = sorted(layout.patients)[:2]
    for pid in (good, bad):
        shutil.copy(layout.patients[pid].ct, flat / f"{pid}__CT.nii.gz")
        shutil.copy(layout.patients[pid].pet, flat / f"{pid}__PT.nii.gz")
    data = (flat / f"{bad}__PT.nii.gz").read_bytes()
    (flat / f"{bad}__PT.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(HecktorError, match=rf"1 of 2 patients failed.*\n.*{bad}.*__PT\.nii\.gz"):
        predict(flat, tmp_path / "out", tiny_model.model_dir, use_mirroring=False, progress=False)
    assert (tmp_path / "out" / f"{good}.nii.gz").is_file() and not (tmp_path / "out" / f"{bad}.nii.gz").exists()
    assert (tmp_path / "out" / "predictions.csv").read_text().splitlines()[1].startswith(f"{good},")
    assert bad in json.loads((tmp_path / "out" / "prediction_settings.json").read_text())["failed"]
