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

from nnunet_hecktor.cli import main as cli_main
from nnunet_hecktor.errors import HecktorError

from conftest import run_nnunet_command

pytestmark = pytest.mark.slow


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def _val_keys(tiny_model):
    splits = json.loads((tiny_model.dataset.preprocessed_dir / "splits_final.json").read_text())
    return sorted(splits[0]["val"])


def test_training_writes_final_and_swa_checkpoints_and_head_validation(tiny_model):
    fold = tiny_model.fold_dir
    for name in ("checkpoint_final.pth", "checkpoint_swa.pth", "validation_heads.json", "validation_heads.csv",
                 "progress.png", "progress_heads.png", "validation/summary.json", "validation/weights_used.txt"):
        assert (fold / name).is_file(), name
    assert not (fold / "checkpoint_latest.pth").exists()
    assert "SWA" in (fold / "validation" / "weights_used.txt").read_text()

    final, swa = _load(fold / "checkpoint_final.pth"), _load(fold / "checkpoint_swa.pth")
    assert final["trainer_name"] == swa["trainer_name"] == "HecktorMultiTaskTrainer_tiny"
    assert swa["hecktor"]["swa"]["n_averaged"] == 2
    head_keys = [k for k in swa["network_weights"] if k.startswith("hecktor_heads.")]
    assert "hecktor_heads.hpv_threshold" in head_keys and "hecktor_heads.clinical_encoder.age_mean" in head_keys
    assert bool(swa["network_weights"]["hecktor_heads.clinical_encoder.is_fitted"])
    assert any(not torch.equal(final["network_weights"][k], swa["network_weights"][k])
               for k in final["network_weights"] if final["network_weights"][k].is_floating_point())

    summary = json.loads((fold / "validation_heads.json").read_text())
    val = _val_keys(tiny_model)
    assert summary["n_patients"] == len(val) and "SWA" in summary["weights"]
    assert summary["hpv"]["threshold"] == pytest.approx(float(swa["network_weights"]["hecktor_heads.hpv_threshold"]))
    assert set(summary["rfs"]) >= {"c_index", "comparable_pairs"} and set(summary["hpv"]) >= {"auc", "balanced_accuracy"}
    # a tiny fold has far too few negatives/events: the reliability block must say so
    reliability = summary["reliability"]
    assert reliability["hpv"]["n_patients"] <= len(val) and not reliability["rfs"]["enough"]
    assert summary["warnings"] and reliability["bootstrap"]["unit"] == "patient"
    with open(fold / "validation_heads.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["PatientID"] for r in rows) == val
    assert all(0.0 < float(r["hpv_probability"]) < 1.0 for r in rows)
    assert "Validation uses the weights: SWA average" in tiny_model.train_log


def test_continue_resumes_heads_swa_and_risk_bank(tiny_model, tmp_path):
    dataset = tiny_model.dataset
    results = tmp_path / "results"
    shutil.copytree(dataset.results_root, results)   # keep the shared model untouched
    fold = results / tiny_model.fold_dir.relative_to(dataset.results_root)
    before_final, before_swa = _load(fold / "checkpoint_final.pth"), _load(fold / "checkpoint_swa.pth")
    env = dict(dataset.env, nnUNet_results=str(results))
    result = run_nnunet_command("nnUNetv2_train", [dataset.dataset_id, dataset.configuration, "0", "-tr",
                                                   tiny_model.trainer, "-p", dataset.plans, "-device", "cpu", "--c"],
                                env)
    assert "Training done" in result.stdout
    after_final, after_swa = _load(fold / "checkpoint_final.pth"), _load(fold / "checkpoint_swa.pth")
    assert after_final["current_epoch"] == before_final["current_epoch"]
    assert after_final["hecktor"]["sampler"]["restarts"] == before_final["hecktor"]["sampler"]["restarts"] + 1
    assert after_final["hecktor"]["risk_bank"]["patient_ids"] == before_final["hecktor"]["risk_bank"]["patient_ids"]
    assert after_swa["hecktor"]["swa"]["n_averaged"] == 2
    for k, v in before_swa["network_weights"].items():   # heads and the restored SWA average, unchanged
        assert torch.equal(v, after_swa["network_weights"][k]), k
    assert json.loads((fold / "validation_heads.json").read_text())["n_patients"] == len(_val_keys(tiny_model))


@pytest.mark.parametrize("checkpoint", ["checkpoint_final.pth", "checkpoint_swa.pth"])
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
                                            "-f", "0", "-chk", checkpoint, "-device", "cpu", "-npp", "1", "-nps", "1"],
                       dataset.env)
    for case in cases:
        seg = sitk.ReadImage(str(out / f"{case}.nii.gz"))
        ct = sitk.ReadImage(str(inputs / f"{case}_0000.nii.gz"))
        assert seg.GetSize() == ct.GetSize() and np.allclose(seg.GetSpacing(), ct.GetSpacing())
        assert set(np.unique(sitk.GetArrayFromImage(seg))) <= {0, 1, 2}


def test_exported_stock_model_has_the_same_segmentation_network(tiny_model, tmp_path):
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_hecktor.trainers import HecktorMultiTaskTrainer_tiny
    from nnunet_hecktor.trainers.handover import export_segmentation_model

    result = export_segmentation_model(tiny_model.fold_dir, tmp_path / "exported", "checkpoint_final.pth")
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
    multitask.load_state_dict(_load(tiny_model.fold_dir / "checkpoint_final.pth")["network_weights"], strict=True)
    x = torch.randn(1, 2, *cm.patch_size)
    with torch.no_grad():
        torch.testing.assert_close(stock.eval()(x), multitask.eval()(x), rtol=0, atol=0)

    # The command: default = the deployed (SWA) weights; an existing export is not overwritten silently.
    root = tmp_path / "cli_export"
    assert cli_main(["export-seg", str(tiny_model.fold_dir), "--output-root", str(root)]) == 0
    info = json.loads(next(root.rglob("exported_from.json")).read_text())
    assert info["source_checkpoint"].endswith("checkpoint_swa.pth")
    assert cli_main(["export-seg", str(tiny_model.fold_dir), "--output-root", str(root)]) == 1
    with pytest.raises(HecktorError, match="not an nnU-Net fold folder"):
        export_segmentation_model(tmp_path, root)


def test_warm_start_checkpoint_loads_through_nnunets_pretrained_weights(tiny_model, tmp_path, nnunet_env):
    from nnunetv2.run.load_pretrained_weights import load_pretrained_weights
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_hecktor.trainers import HecktorMultiTaskTrainer
    from nnunet_hecktor.trainers.handover import export_segmentation_model, write_warm_start_checkpoint

    dataset = tiny_model.dataset
    stock = export_segmentation_model(tiny_model.fold_dir, tmp_path / "stock", "checkpoint_final.pth").checkpoint
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
