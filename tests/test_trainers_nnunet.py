"""The real nnU-Net commands with the plugin's trainers: nnUNetv2_train (incl. --c), nnUNetv2_predict with
either checkpoint, export to a stock model, warm start through nnU-Net's -pretrained_weights loader."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from conftest import run_nnunet_command

from nnunet_hecktor.checkpoints import (
    BEST_CHECKPOINT,
    FINAL_CHECKPOINT,
    LAST_ITERATE_CHECKPOINT,
    LATEST_CHECKPOINT,
    LEGACY_SWA_CHECKPOINT,
    unique_storage_bytes,
)
from nnunet_hecktor.cli import main as cli_main
from nnunet_hecktor.errors import HecktorError

pytestmark = pytest.mark.slow


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def _val_keys(tiny_model):
    splits = json.loads((tiny_model.dataset.preprocessed_dir / "splits_final.json").read_text())
    return sorted(splits[0]["val"])


def test_training_deploys_the_validated_swa_weights_as_checkpoint_final(tiny_model):
    fold = tiny_model.fold_dir
    for name in (FINAL_CHECKPOINT, LAST_ITERATE_CHECKPOINT, BEST_CHECKPOINT, "validation_heads.json",
                 "validation_heads.csv", "progress.png", "progress_heads.png", "validation/summary.json",
                 "validation/weights_used.txt"):
        assert (fold / name).is_file(), name
    assert not (fold / LATEST_CHECKPOINT).exists() and not (fold / LEGACY_SWA_CHECKPOINT).exists()
    assert (fold / "validation" / "weights_used.txt").read_text().strip() == f"SWA average ({FINAL_CHECKPOINT})"

    final, last = _load(fold / FINAL_CHECKPOINT), _load(fold / LAST_ITERATE_CHECKPOINT)
    assert final["trainer_name"] == last["trainer_name"] == "HecktorMultiTaskTrainer_tiny"
    assert final["current_epoch"] == last["current_epoch"] == 2
    # Metadata says what each file holds; the running average is stored once, where --c needs it.
    assert (final["hecktor"]["weights"], final["hecktor"]["layout"], final["hecktor"]["swa"]) == ("swa", 2, None)
    assert last["hecktor"]["weights"] == "iterate" and last["hecktor"]["swa"]["n_averaged"] == 2
    assert _load(fold / BEST_CHECKPOINT)["hecktor"]["swa"] is None
    head_keys = [k for k in final["network_weights"] if k.startswith("hecktor_heads.")]
    assert "hecktor_heads.hpv_threshold" in head_keys and "hecktor_heads.clinical_encoder.age_mean" in head_keys
    assert bool(final["network_weights"]["hecktor_heads.clinical_encoder.is_fitted"])
    assert any(not torch.equal(final["network_weights"][k], last["network_weights"][k])
               for k in final["network_weights"] if final["network_weights"][k].is_floating_point())

    summary = json.loads((fold / "validation_heads.json").read_text())
    val = _val_keys(tiny_model)
    assert summary["n_patients"] == len(val) and "SWA" in summary["weights"]
    assert summary["hpv"]["threshold"] == pytest.approx(float(final["network_weights"]["hecktor_heads.hpv_threshold"]))
    assert set(summary["rfs"]) >= {"c_index", "comparable_pairs"} and set(summary["hpv"]) >= {"auc", "balanced_accuracy"}
    # a tiny fold has far too few negatives/events: the reliability block must say so
    reliability = summary["reliability"]
    assert reliability["hpv"]["n_patients"] <= len(val) and not reliability["rfs"]["enough"]
    assert summary["warnings"] and reliability["bootstrap"]["unit"] == "patient"
    with open(fold / "validation_heads.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["PatientID"] for r in rows) == val
    assert all(0.0 < float(r["hpv_probability"]) < 1.0 for r in rows)
    assert f"Validation uses the weights: SWA average ({FINAL_CHECKPOINT})" in tiny_model.train_log


@pytest.mark.parametrize("name", [FINAL_CHECKPOINT, BEST_CHECKPOINT])
def test_deployed_checkpoints_are_the_size_of_nnunets(tiny_model, name):
    # Network + optimizer tensors, aliased keys counted once: what stock nnU-Net stores.
    checkpoint = _load(tiny_model.fold_dir / name)
    unique = unique_storage_bytes(checkpoint["network_weights"]) + unique_storage_bytes(checkpoint["optimizer_state"])
    assert unique_storage_bytes(checkpoint) < 1.01 * unique   # + the small risk bank, no second set of weights
    assert (tiny_model.fold_dir / name).stat().st_size < 1.1 * unique


@pytest.fixture(scope="module")
def resumed(tiny_model, tmp_path_factory):
    """A copy of the tiny model's results after ``nnUNetv2_train --c --npz`` (redoes the end of training)."""
    dataset = tiny_model.dataset
    results = tmp_path_factory.mktemp("resumed") / "results"
    shutil.copytree(dataset.results_root, results)   # keep the shared model untouched
    fold = results / tiny_model.fold_dir.relative_to(dataset.results_root)
    before = {name: _load(fold / name) for name in (FINAL_CHECKPOINT, LAST_ITERATE_CHECKPOINT)}
    env = dict(dataset.env, nnUNet_results=str(results))
    result = run_nnunet_command("nnUNetv2_train", [dataset.dataset_id, dataset.configuration, "0", "-tr",
                                                   tiny_model.trainer, "-p", dataset.plans, "-device", "cpu", "--c",
                                                   "--npz"], env)
    return fold, env, before, result.stdout


def test_continue_redoes_the_end_of_training_exactly(resumed, tiny_model):
    fold, _, before, log = resumed
    assert "Training done" in log
    after = {name: _load(fold / name) for name in before}
    final, last = after[FINAL_CHECKPOINT], after[LAST_ITERATE_CHECKPOINT]
    assert final["current_epoch"] == last["current_epoch"] == before[FINAL_CHECKPOINT]["current_epoch"]
    old = before[LAST_ITERATE_CHECKPOINT]["hecktor"]
    assert last["hecktor"]["sampler"]["restarts"] == old["sampler"]["restarts"] + 1
    assert last["hecktor"]["risk_bank"]["patient_ids"] == old["risk_bank"]["patient_ids"]
    assert last["hecktor"]["swa"]["n_averaged"] == 2 and final["hecktor"]["weights"] == "swa"
    for name in before:   # heads, the restored SWA average and the last iterate: unchanged
        for k, v in before[name]["network_weights"].items():
            assert torch.equal(v, after[name]["network_weights"][k]), (name, k)
    assert json.loads((fold / "validation_heads.json").read_text())["n_patients"] == len(_val_keys(tiny_model))


def test_stock_predict_with_default_options_reproduces_the_validation(resumed, tiny_model, tmp_path):
    """What nnUNetv2_predict deploys without -chk is what the trainer validated (and find_best_configuration scored)."""
    fold, env, _, _ = resumed
    dataset = tiny_model.dataset
    inputs = tmp_path / "in"
    inputs.mkdir()
    cases = _val_keys(tiny_model)
    for case in cases:
        for channel in ("0000", "0001"):
            shutil.copy(dataset.raw_dir / "imagesTr" / f"{case}_{channel}.nii.gz", inputs)
    out = tmp_path / "out"
    run_nnunet_command("nnUNetv2_predict", ["-i", inputs, "-o", out, "-d", dataset.dataset_id, "-c",
                                            dataset.configuration, "-tr", tiny_model.trainer, "-p", dataset.plans,
                                            "-f", "0", "--save_probabilities", "-device", "cpu", "-npp", "1",
                                            "-nps", "1"], env)
    for case in cases:
        validated = np.load(fold / "validation" / f"{case}.npz")["probabilities"]
        predicted = np.load(out / f"{case}.npz")["probabilities"]
        assert predicted.shape == validated.shape
        np.testing.assert_allclose(predicted, validated, rtol=0, atol=1e-4, err_msg=case)


@pytest.mark.parametrize("checkpoint", [None, LAST_ITERATE_CHECKPOINT])
def test_nnunet_predict_segments_with_either_checkpoint(tiny_model, tmp_path, checkpoint):
    dataset = tiny_model.dataset
    images = sorted((dataset.raw_dir / "imagesTs").glob("*_0000.nii.gz"))[:1] or \
        sorted((dataset.raw_dir / "imagesTr").glob("*_0000.nii.gz"))[:1]
    inputs = tmp_path / "in"
    inputs.mkdir()
    cases = []
    for ct in images:
        case = ct.name[: -len("_0000.nii.gz")]
        cases.append(case)
        for channel in ("0000", "0001"):
            shutil.copy(ct.parent / f"{case}_{channel}.nii.gz", inputs)
    out = tmp_path / "out"
    # Mirroring (test-time augmentation) stays on: the network's forward must return a plain tensor.
    run_nnunet_command("nnUNetv2_predict", ["-i", inputs, "-o", out, "-d", dataset.dataset_id, "-c",
                                            dataset.configuration, "-tr", tiny_model.trainer, "-p", dataset.plans,
                                            "-f", "0", *(["-chk", checkpoint] if checkpoint else []), "-device", "cpu",
                                            "-npp", "1", "-nps", "1"],
                       dataset.env)
    for case in cases:
        seg = sitk.ReadImage(str(out / f"{case}.nii.gz"))
        ct = sitk.ReadImage(str(inputs / f"{case}_0000.nii.gz"))
        assert seg.GetSize() == ct.GetSize() and np.allclose(seg.GetSpacing(), ct.GetSpacing())
        assert set(np.unique(sitk.GetArrayFromImage(seg))) <= {0, 1, 2}


def _legacy_model(tiny_model, root):
    """The tiny model as the plugin wrote it before checkpoint layout 2: checkpoint_final.pth = last
    iterate (metadata without "layout"), checkpoint_swa.pth = the validated SWA average."""
    model = root / tiny_model.model_dir.name
    model.mkdir(parents=True)
    for name in ("plans.json", "dataset.json", "dataset_fingerprint.json"):
        shutil.copy(tiny_model.model_dir / name, model / name)
    fold = model / "fold_0"
    fold.mkdir()
    last, swa = _load(tiny_model.fold_dir / LAST_ITERATE_CHECKPOINT), _load(tiny_model.fold_dir / FINAL_CHECKPOINT)
    for checkpoint, weights in ((last, "last"), (swa, "final")):
        del checkpoint["hecktor"]["layout"]
        checkpoint["hecktor"]["weights"] = weights
    torch.save(last, fold / FINAL_CHECKPOINT)
    torch.save(swa, fold / LEGACY_SWA_CHECKPOINT)
    return model


def test_models_trained_before_layout_2_deploy_their_swa_checkpoint(tiny_model, tmp_path):
    from nnunet_hecktor.checkpoints import deployed_checkpoint
    from nnunet_hecktor.prediction.model import load_predictor, resolve_checkpoint

    legacy = _legacy_model(tiny_model, tmp_path / "legacy")
    assert deployed_checkpoint([legacy / "fold_0"]) == LEGACY_SWA_CHECKPOINT
    assert deployed_checkpoint([tiny_model.fold_dir]) == FINAL_CHECKPOINT
    predictor, info = load_predictor(legacy)
    assert info.checkpoint == LEGACY_SWA_CHECKPOINT and info.folds == (0,)
    deployed = _load(tiny_model.fold_dir / FINAL_CHECKPOINT)["network_weights"]
    for k, v in predictor.list_of_parameters[0].items():
        assert torch.equal(v, deployed[k]), k
    assert load_predictor(legacy, checkpoint=FINAL_CHECKPOINT)[1].checkpoint == FINAL_CHECKPOINT  # explicit wins
    assert cli_main(["export-seg", str(legacy / "fold_0"), "--output-root", str(tmp_path / "export")]) == 0
    info = json.loads(next((tmp_path / "export").rglob("exported_from.json")).read_text())
    assert info["source_checkpoint"].endswith(LEGACY_SWA_CHECKPOINT)
    # A model whose folds mix both layouts has no single default name.
    shutil.copytree(tiny_model.fold_dir, legacy / "fold_1")
    with pytest.raises(HecktorError, match="choose the checkpoint explicitly"):
        resolve_checkpoint(legacy)
    assert resolve_checkpoint(legacy, [1]) == FINAL_CHECKPOINT


def test_val_of_a_model_trained_before_layout_2_validates_its_swa_checkpoint(tiny_model, nnunet_env, tmp_path,
                                                                            monkeypatch):
    """``nnUNetv2_train --val`` loads checkpoint_final.pth; for an old fold (last iterate there) the trainer
    switches to checkpoint_swa.pth, the weights its training validated."""
    from nnunet_hecktor.trainers import HecktorMultiTaskTrainer_tiny

    dataset = tiny_model.dataset
    legacy = _legacy_model(tiny_model, tmp_path / "results" / dataset.dataset_name)
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))
    plans = dict(json.loads((legacy / "plans.json").read_text()), continue_training=False)
    dataset_json = json.loads((legacy / "dataset.json").read_text())
    trainer = HecktorMultiTaskTrainer_tiny(plans, dataset.configuration, 0, dataset_json, device=torch.device("cpu"))
    trainer.load_checkpoint(str(legacy / "fold_0" / FINAL_CHECKPOINT))   # what run_training does for --val
    assert trainer.weights_in_use == "iterate"
    trainer._use_deployed_weights_for_validation()
    assert trainer.validation_weights_description() == f"SWA average ({LEGACY_SWA_CHECKPOINT})"
    swa = _load(legacy / "fold_0" / LEGACY_SWA_CHECKPOINT)["network_weights"]
    for k, v in trainer.plain_network.state_dict().items():
        assert torch.equal(v, swa[k]), k


def test_exported_stock_model_has_the_same_segmentation_network(tiny_model, tmp_path):
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_hecktor.trainers import HecktorMultiTaskTrainer_tiny
    from nnunet_hecktor.trainers.handover import export_segmentation_model

    result = export_segmentation_model(tiny_model.fold_dir, tmp_path / "exported", FINAL_CHECKPOINT)
    assert result.model_folder.name == f"nnUNetTrainer__{tiny_model.dataset.plans}__3d_fullres"
    exported = _load(result.checkpoint)
    assert exported["trainer_name"] == "nnUNetTrainer" and "optimizer_state" not in exported
    assert result.removed_head_keys > 0 and not any(k.startswith("hecktor_heads.") for k in exported["network_weights"])
    for name in ("plans.json", "dataset.json"):
        assert (result.model_folder / name).is_file()

    pm = PlansManager(str(result.model_folder / "plans.json"))
    cm = pm.get_configuration("3d_fullres")
    stock = nnUNetTrainer.build_network_architecture(pm, cm, 2, 3, enable_deep_supervision=False)
    stock.load_state_dict(exported["network_weights"], strict=True)
    multitask = HecktorMultiTaskTrainer_tiny.build_network_architecture(pm, cm, 2, 3, enable_deep_supervision=False)
    multitask.load_state_dict(_load(tiny_model.fold_dir / FINAL_CHECKPOINT)["network_weights"], strict=True)
    x = torch.randn(1, 2, *cm.patch_size)
    with torch.no_grad():
        torch.testing.assert_close(stock.eval()(x), multitask.eval()(x), rtol=0, atol=0)

    # The command: default = the deployed (validated) weights; an existing export is not overwritten silently.
    root = tmp_path / "cli_export"
    assert cli_main(["export-seg", str(tiny_model.fold_dir), "--output-root", str(root)]) == 0
    info = json.loads(next(root.rglob("exported_from.json")).read_text())
    assert info["source_checkpoint"].endswith(FINAL_CHECKPOINT)
    assert cli_main(["export-seg", str(tiny_model.fold_dir), "--output-root", str(root)]) == 1
    with pytest.raises(HecktorError, match="not an nnU-Net fold folder"):
        export_segmentation_model(tmp_path, root)


def test_warm_start_checkpoint_loads_through_nnunets_pretrained_weights(tiny_model, tmp_path, nnunet_env):
    from nnunetv2.run.load_pretrained_weights import load_pretrained_weights
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_hecktor.trainers import HecktorMultiTaskTrainer
    from nnunet_hecktor.trainers.handover import export_segmentation_model, write_warm_start_checkpoint

    dataset = tiny_model.dataset
    stock = export_segmentation_model(tiny_model.fold_dir, tmp_path / "stock", FINAL_CHECKPOINT).checkpoint
    pm = PlansManager(str(dataset.preprocessed_dir / f"{dataset.plans}.json"))
    cm = pm.get_configuration("3d_fullres")
    fresh = HecktorMultiTaskTrainer.build_network_architecture(pm, cm, 2, 3, enable_deep_supervision=True)
    with pytest.raises(AssertionError, match="missing in the pretrained model"):
        load_pretrained_weights(fresh, str(stock))   # why the command exists

    assert cli_main(["warm-start", str(stock), "-d", str(dataset.dataset_id), "-p", dataset.plans,
                     "-o", str(tmp_path / "warm.pth")]) == 0
    load_pretrained_weights(fresh, str(tmp_path / "warm.pth"))
    stock_weights = _load(stock)["network_weights"]
    state = fresh.state_dict()
    for k, v in stock_weights.items():
        if ".seg_layers." not in k:   # nnU-Net never transfers the final 1x1 layers
            assert torch.equal(state[k], v), k
    # A checkpoint of different plans is refused with a clear message.
    with pytest.raises(HecktorError, match="does not match this network's plan"):
        write_warm_start_checkpoint(stock, dataset.dataset_id, tmp_path / "bad.pth", plans="nnUNetPlans")
