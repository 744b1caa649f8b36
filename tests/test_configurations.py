"""Every configuration nnU-Net plans, trained and predicted through the real commands on the tiny data.

One module-scoped fixture copies the session's tiny dataset (raw + preprocessed, so the shared one
stays untouched), adds a ``3d_lowres`` stage and its ``3d_cascade_fullres`` to the tiny plans (tiny
images do not make nnU-Net plan a low-resolution stage), preprocesses ``2d`` and ``3d_lowres`` with
``nnUNetv2_preprocess`` and trains with ``nnUNetv2_train -tr HecktorMultiTaskTrainer_tiny``:

- ``2d`` fold 0, with two data-augmentation worker processes (``nnUNet_n_proc_DA=2``, how GPU users
  train), concurrently with
- ``3d_lowres`` fold ``all`` (its validation of every case writes the ``predicted_next_stage``
  segmentations the cascade trains on), then
- ``3d_cascade_fullres`` fold 0.

(``3d_fullres`` is the session's ``tiny_model``.) Each model then predicts two patients with
``nnunet-hecktor predict``; the cascade's segmentation must equal nnU-Net's own two-stage
prediction (``nnUNetPredictor`` with ``folder_with_segs_from_prev_stage``).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from conftest import NNUNET_TEST_VARIABLES, TINY_TRAINER, run_nnunet_command

from nnunet_hecktor.checkpoints import FINAL_CHECKPOINT, LAST_ITERATE_CHECKPOINT

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

CONFIGURATIONS = ("2d", "3d_lowres", "3d_cascade_fullres")
FOLDS = {"2d": "0", "3d_lowres": "all", "3d_cascade_fullres": "0"}


@dataclass(frozen=True)
class TrainedConfigurations:
    root: Path
    env: dict
    preprocessed_dir: Path
    raw_dir: Path
    source: Path
    model_dirs: dict        # configuration -> model folder
    logs: dict              # configuration -> stdout + stderr of nnUNetv2_train
    val_keys: tuple         # fold 0's validation patients


def add_lowres_and_cascade(plans_file: Path) -> None:
    """Add a ``3d_lowres`` stage (1.5x coarser spacing) and its cascade to a tiny plans file."""
    plans = json.loads(plans_file.read_text())
    configurations = plans["configurations"]
    full = configurations["3d_fullres"]
    lowres = copy.deepcopy(full)
    lowres.update(data_identifier="nnUNetPlans_3d_lowres", spacing=[s * 1.5 for s in full["spacing"]],
                  median_image_size_in_voxels=[round(s / 1.5) for s in full["median_image_size_in_voxels"]],
                  # divisible by the network's total strides (4, 8, 8)
                  patch_size=[16, 24, 24], next_stage="3d_cascade_fullres")
    configurations["3d_lowres"] = lowres
    configurations["3d_cascade_fullres"] = {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}
    plans_file.write_text(json.dumps(plans, indent=1))


def _start_training(configuration: str, env: dict, log: Path) -> subprocess.Popen:
    from nnunet_hecktor.nnunet_env import nnunet_command

    cmd = nnunet_command("nnUNetv2_train") + ["987", configuration, FOLDS[configuration], "-tr", TINY_TRAINER,
                                              "-p", "nnUNetPlansTiny", "-device", "cpu"]
    return subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _finish(process: subprocess.Popen, log: Path, timeout: float = 900) -> str:
    process.wait(timeout=timeout)
    text = log.read_text()
    if process.returncode != 0:
        pytest.fail(f"{' '.join(process.args)} failed ({process.returncode}):\n" + "\n".join(text.splitlines()[-40:]))
    return text


@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory) -> TrainedConfigurations:
    from nnunet_hecktor.nnunet_env import nnunet_environment

    root = tmp_path_factory.mktemp("configurations")
    env = nnunet_environment(root, extra=NNUNET_TEST_VARIABLES)
    raw_dir = Path(env["nnUNet_raw"]) / tiny_dataset.dataset_name
    preprocessed_dir = Path(env["nnUNet_preprocessed"]) / tiny_dataset.dataset_name
    shutil.copytree(tiny_dataset.raw_dir, raw_dir)
    shutil.copytree(tiny_dataset.preprocessed_dir, preprocessed_dir)
    add_lowres_and_cascade(preprocessed_dir / "nnUNetPlansTiny.json")
    # Not with nnUNet_n_proc_DA=0: nnU-Net's preprocessing calls torch.set_num_threads(nnUNet_n_proc_DA).
    preprocess_env = {k: v for k, v in env.items() if k != "nnUNet_n_proc_DA"}
    run_nnunet_command("nnUNetv2_preprocess", ["-d", tiny_dataset.dataset_id, "-plans_name", "nnUNetPlansTiny",
                                               "-c", "2d", "3d_lowres", "-np", "1", "1"], preprocess_env)
    logs = {c: root / f"train_{c}.log" for c in CONFIGURATIONS}
    # The 2-D run also exercises data-augmentation worker processes end to end.
    runs = {"2d": _start_training("2d", {**env, "nnUNet_n_proc_DA": "2"}, logs["2d"]),
            "3d_lowres": _start_training("3d_lowres", env, logs["3d_lowres"])}
    texts = {"3d_lowres": _finish(runs["3d_lowres"], logs["3d_lowres"])}
    runs["3d_cascade_fullres"] = _start_training("3d_cascade_fullres", env, logs["3d_cascade_fullres"])
    texts["2d"] = _finish(runs["2d"], logs["2d"])
    texts["3d_cascade_fullres"] = _finish(runs["3d_cascade_fullres"], logs["3d_cascade_fullres"])
    results = Path(env["nnUNet_results"]) / tiny_dataset.dataset_name
    model_dirs = {c: results / f"{TINY_TRAINER}__nnUNetPlansTiny__{c}" for c in CONFIGURATIONS}
    splits = json.loads((preprocessed_dir / "splits_final.json").read_text())
    return TrainedConfigurations(root, env, preprocessed_dir, raw_dir, tiny_dataset.root / "source", model_dirs,
                                 texts, tuple(splits[0]["val"]))


def _fold_dir(trained, configuration: str) -> Path:
    return trained.model_dirs[configuration] / f"fold_{FOLDS[configuration]}"


@pytest.mark.parametrize("configuration", CONFIGURATIONS)
def test_every_configuration_trains_and_evaluates_its_heads(trained, configuration):
    fold_dir = _fold_dir(trained, configuration)
    for name in (FINAL_CHECKPOINT, LAST_ITERATE_CHECKPOINT, "validation_heads.json", "validation/summary.json"):
        assert (fold_dir / name).is_file(), f"{configuration}: no {name}"
    summary = json.loads((fold_dir / "validation_heads.json").read_text())
    expected = 10 if FOLDS[configuration] == "all" else len(trained.val_keys)
    assert summary["n_patients"] == expected
    checkpoint = torch.load(fold_dir / FINAL_CHECKPOINT, map_location="cpu", weights_only=False)
    threshold = float(checkpoint["network_weights"]["hecktor_heads.hpv_threshold"])
    assert 0.0 < threshold < 1.0
    first_conv = next(v for k, v in checkpoint["network_weights"].items() if k.endswith(".weight") and v.ndim >= 4)
    if configuration == "2d":
        assert first_conv.ndim == 4  # a 2-D network
        rows = (fold_dir / "validation_heads.csv").read_text().splitlines()
        header = rows[0].split(",")
        slices = [int(r.split(",")[header.index("slices")]) for r in rows[1:]]
        assert all(s >= 1 for s in slices) and any(s > 1 for s in slices)
        assert "slice" in summary["head_patch"]["rule"]
    else:
        assert first_conv.ndim == 5
    # The cascade's network takes CT, PET and the previous stage's one-hot GTVp and GTVn.
    assert first_conv.shape[1] == (4 if configuration == "3d_cascade_fullres" else 2)
    if configuration == "3d_lowres":
        written = sorted(p.stem for p in (trained.model_dirs["3d_lowres"] / "predicted_next_stage" /
                                          "3d_cascade_fullres").iterdir())
        assert len(written) == 10


def test_2d_heads_average_the_tumour_slices_by_area(trained):
    """A 2-D network's patient output is the GTVp-area-weighted mean of its per-slice outputs."""
    import cc3d
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    from nnunet_hecktor.heads.inference import crop_patch, predict_heads
    from nnunet_hecktor.prediction import HecktorPredictor

    model = HecktorPredictor(trained.model_dirs["2d"], use_mirroring=False)
    network = model.predictor.network
    network.load_state_dict(model.predictor.list_of_parameters[0])
    patch = model.predictor.configuration_manager.patch_size
    folder = trained.preprocessed_dir / "nnUNetPlans_2d"
    dataset = infer_dataset_class(str(folder))(str(folder))
    key = trained.val_keys[0]
    data, seg, _, _ = dataset.load_case(key)
    data, seg = np.asarray(data[:]), np.asarray(seg[:])[0]
    result = predict_heads(network, data, seg, None, patch)

    components = cc3d.connected_components((seg == 1).astype(np.uint8), connectivity=26)
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    region = components == int(np.argmax(sizes))
    logits, risks, areas = [], [], []
    network.eval()
    with torch.no_grad():
        for z in np.flatnonzero(region.any(axis=(1, 2))):
            centre = np.argwhere(region[z]).mean(axis=0).round().astype(int)
            image = torch.from_numpy(crop_patch(data[:, z], centre, patch).astype(np.float32))[None]
            mask = torch.from_numpy(crop_patch((seg[z] == 1)[None].astype(np.float32), centre, patch))[None]
            _, logit, risk = network.forward_with_heads(image, None, pool_mask=mask)
            logits.append(float(logit))
            risks.append(float(risk))
            areas.append(region[z].sum())
    weights = np.asarray(areas) / np.sum(areas)
    assert result.n_slices == len(areas) > 1 and result.centre_source == "GTVp"
    assert result.hpv_logit == pytest.approx(float(np.dot(weights, logits)), abs=1e-5)
    assert result.risk == pytest.approx(float(np.dot(weights, risks)), abs=1e-5)


def test_2d_sampler_draws_tumour_slices_in_proportion_to_their_area(trained):
    """Training's GTVp-centred 2-D samples: slice of a random GTVp voxel, centred on that slice's GTVp."""
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_hecktor.trainers.sampling import HecktorDataLoader

    folder = trained.preprocessed_dir / "nnUNetPlans_2d"
    dataset = infer_dataset_class(str(folder))(str(folder))
    plans = PlansManager(str(trained.preprocessed_dir / "nnUNetPlansTiny.json"))
    labels = plans.get_label_manager(json.loads((trained.preprocessed_dir / "dataset.json").read_text()))
    # A patch well inside the 31x31 slices: nnU-Net's bounds never move the centred box.
    loader = HecktorDataLoader(dataset, 1, (8, 8), (8, 8), labels, oversample_foreground_percent=1.0,
                               gtvp_centred_fraction=1.0, centre_jitter=0.0, seed=3)
    key = trained.val_keys[0]
    _, seg, _, properties = dataset.load_case(key)
    seg = np.asarray(seg[:])[0]
    locations = np.asarray(properties["class_locations"][1])
    n = 3000
    drawn = np.zeros(seg.shape[0])
    for _ in range(n):
        lower, upper = loader.get_bbox(seg.shape, True, properties["class_locations"])
        z = lower[0]
        assert upper[0] - z == 1 and (seg[z] == 1).any()
        in_slice = locations[locations[:, 1] == z][:, 2:]
        centre = [(lo + up) // 2 for lo, up in zip(lower[1:], upper[1:])]
        assert np.array_equal(centre, np.round(in_slice.mean(axis=0)).astype(int))
        drawn[z] += 1
    expected = np.bincount(locations[:, 1], minlength=seg.shape[0]) / len(locations)
    assert np.abs(drawn / n - expected).max() < 0.04


@pytest.fixture(scope="module")
def predictions(trained, tmp_path_factory):
    """Two fold-0 validation patients predicted by each configuration (``nnunet-hecktor predict``)."""
    from nnunet_hecktor.cli import main
    from nnunet_hecktor.prediction import predict

    out = {}
    for configuration in CONFIGURATIONS:
        folder = tmp_path_factory.mktemp(f"predict_{configuration}")
        if configuration == "2d":  # the command line once
            assert main(["predict", "-i", str(trained.source), "-o", str(folder), "-m",
                         str(trained.model_dirs[configuration]), "--patients", *trained.val_keys, "--no-mirroring",
                         "--quiet"]) == 0
        else:
            predict(trained.source, folder, trained.model_dirs[configuration], patients=list(trained.val_keys),
                    use_mirroring=False, progress=False)
        out[configuration] = folder
    return out


@pytest.mark.parametrize("configuration", CONFIGURATIONS)
def test_predict_works_with_every_configuration(trained, predictions, configuration):
    folder = predictions[configuration]
    settings = json.loads((folder / "prediction_settings.json").read_text())
    assert settings["model"]["configuration"] == configuration
    assert settings["model"]["folds"] == [0 if FOLDS[configuration] == "0" else "all"]
    assert sorted(settings["predicted"]) == sorted(trained.val_keys) and not settings["failed"]
    rows = (folder / "predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + len(trained.val_keys)
    header = rows[0].split(",")
    for row in rows[1:]:
        values = dict(zip(header, row.split(",")))
        assert 0.0 < float(values["hpv_probability"]) < 1.0 and np.isfinite(float(values["risk"]))
    from nnunet_hecktor.dataset_conversion import discover_layout

    layout = discover_layout(trained.source)
    for pid in trained.val_keys:
        ct = sitk.ReadImage(str(layout.patients[pid].ct))
        seg = sitk.ReadImage(str(folder / f"{pid}.nii.gz"))
        assert seg.GetSize() == ct.GetSize() and seg.GetSpacing() == ct.GetSpacing()


def test_cascade_segmentation_equals_nnunets_two_stage_prediction(trained, predictions, tmp_path):
    """nnU-Net's own cascade (lowres prediction files fed to -prev_stage_predictions) gives the same labels."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from nnunet_hecktor.prediction.model import plugin_trainers_findable

    images = trained.raw_dir / "imagesTr"
    pids = list(trained.val_keys)
    files = [[str(images / f"{pid}_0000.nii.gz"), str(images / f"{pid}_0001.nii.gz")] for pid in pids]

    def stock(configuration):
        predictor = nnUNetPredictor(use_mirroring=False, perform_everything_on_device=False,
                                    device=torch.device("cpu"), allow_tqdm=False)
        with plugin_trainers_findable():
            predictor.initialize_from_trained_model_folder(str(trained.model_dirs[configuration]),
                                                           (FOLDS[configuration],), FINAL_CHECKPOINT)
        return predictor

    lowres = tmp_path / "lowres"
    lowres.mkdir()
    stock("3d_lowres").predict_from_files_sequential(files, str(lowres), False, True, None)
    cascade = stock("3d_cascade_fullres").predict_from_files_sequential(files, None, False, True, str(lowres))
    for pid, array in zip(pids, cascade):
        ours = sitk.GetArrayFromImage(sitk.ReadImage(str(predictions["3d_cascade_fullres"] / f"{pid}.nii.gz")))
        assert ours.shape == array.shape and np.array_equal(ours, array), pid
