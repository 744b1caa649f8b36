"""The trainers in-process on the tiny preprocessed dataset: gradients, residual encoder, torch.compile,
resume state, GTVp- and node-centred sampling, SWA checkpoint, head inference on a whole volume."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from nnunet_hecktor import schema
from nnunet_hecktor.checkpoints import LATEST_CHECKPOINT
from nnunet_hecktor.heads.inference import predict_heads
from nnunet_hecktor.metrics.classification import choose_threshold
from nnunet_hecktor.trainers import HecktorMultiTaskTrainer_tiny, HecktorSWATrainer_tiny

# Needs the preprocessed tiny dataset (real nnUNetv2_plan_and_preprocess).
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture
def private_results(nnunet_env, tmp_path, monkeypatch):
    """The tiny dataset's folders, but a private nnUNet_results (the shared trained model stays untouched)."""
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))
    return nnunet_env


def make_trainer(dataset, cls=HecktorMultiTaskTrainer_tiny, architecture: dict | None = None, resume: bool = False):
    plans = json.loads((dataset.preprocessed_dir / f"{dataset.plans}.json").read_text())
    if architecture is not None:
        plans["configurations"][dataset.configuration]["architecture"] = architecture
    plans["continue_training"] = resume
    dataset_json = json.loads((dataset.preprocessed_dir / "dataset.json").read_text())
    return cls(plans, dataset.configuration, 0, dataset_json, device=torch.device("cpu"))


def head_parameters(trainer):
    return {n: p for n, p in trainer.plain_network.named_parameters() if n.startswith("hecktor_heads.")}


def seed_risk_bank(trainer):
    # Two past patients; the relapse at day 1 has every current patient in its risk set, so any
    # current sample with a known outcome gets a Cox gradient from step 1.
    trainer.risk_bank.push(torch.tensor([0.3, -0.2]), [1.0, 100_000.0], [1.0, 0.0], [10_001, 10_002])


def run_epoch(trainer, n_train: int = 3, n_val: int = 2) -> list[dict]:
    trainer.on_epoch_start()
    trainer.on_train_epoch_start()
    outputs = [trainer.train_step(next(trainer.dataloader_train)) for _ in range(n_train)]
    trainer.on_train_epoch_end(outputs)
    with torch.no_grad():
        trainer.on_validation_epoch_start()
        val = [trainer.validation_step(next(trainer.dataloader_val)) for _ in range(n_val)]
        trainer.on_validation_epoch_end(val)
    trainer.on_epoch_end()
    return outputs


def assert_every_head_parameter_has_a_gradient(trainer, step_output):
    params = head_parameters(trainer)
    assert params, "the network has no head parameters"
    missing = [n for n, p in params.items() if p.grad is None]
    assert not missing, f"head parameters without gradient: {missing}"
    assert all(torch.isfinite(p.grad).all() for p in params.values())
    if step_output["hpv_loss"] > 0:
        assert any(p.grad.abs().sum() > 0 for n, p in params.items() if ".hpv_head." in n)
    if any(np.isfinite(step_output["head_rfs"])):   # a current sample with a known outcome (see seed_risk_bank)
        assert any(p.grad.abs().sum() > 0 for n, p in params.items() if ".risk_head." in n)


def test_every_head_parameter_gets_a_gradient_every_step(private_results):
    trainer = make_trainer(private_results)
    trainer.on_train_start()
    seed_risk_bank(trainer)
    outputs = []
    for _ in range(4):
        batch = next(trainer.dataloader_train)
        out = trainer.train_step(batch)
        assert_every_head_parameter_has_a_gradient(trainer, out)
        outputs.append(out)
    # Clinical statistics come from the training fold only.
    ages = [trainer.patients.records[i].get("Age") for i in trainer.patients.index_of(trainer._train_keys)]
    ages = [a for a in ages if a is not None]
    assert float(trainer.plain_network.clinical_encoder.age_mean) == pytest.approx(np.mean(ages))
    all_ages = [r.get("Age") for r in trainer.patients.records if r.get("Age") is not None]
    if len(all_ages) > len(ages):   # validation patients with an age exist: they must not shift the mean
        assert np.mean(all_ages) != pytest.approx(np.mean(ages))
    # The tiny variant centres every foreground-oversampled patch on the GTVp: heads did learn.
    assert sum(len(o["head_patients"]) for o in outputs) >= 1
    assert any(np.isfinite(o["head_rfs"]).any() for o in outputs)
    assert all(np.isfinite(o["total_loss"]) for o in outputs)


def test_residual_encoder_preset_trains_with_heads(private_results):
    plans = json.loads((private_results.preprocessed_dir / f"{private_results.plans}.json").read_text())
    plain = plans["configurations"][private_results.configuration]["architecture"]
    kwargs = {k: v for k, v in plain["arch_kwargs"].items() if k != "n_conv_per_stage"}
    kwargs["n_blocks_per_stage"] = [1] * kwargs["n_stages"]
    resenc = {"network_class_name": "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet",
              "arch_kwargs": kwargs, "_kw_requires_import": plain["_kw_requires_import"]}
    trainer = make_trainer(private_results, architecture=resenc)
    trainer.on_train_start()
    assert type(trainer.plain_network.encoder).__name__ == "ResidualEncoder"
    seed_risk_bank(trainer)
    for _ in range(2):
        assert_every_head_parameter_has_a_gradient(trainer, trainer.train_step(next(trainer.dataloader_train)))


def test_training_and_validation_steps_work_through_torch_compile(private_results):
    trainer = make_trainer(private_results)
    trainer.on_train_start()
    seed_risk_bank(trainer)
    # The CPU has no inductor toolchain guarantee; the "eager" backend still runs the whole
    # TorchDynamo capture (kwargs, heads branch, deep-supervision list) through OptimizedModule.
    backend = "inductor" if torch.cuda.is_available() else "eager"
    trainer.network = torch.compile(trainer.network, backend=backend)
    out = trainer.train_step(next(trainer.dataloader_train))
    assert_every_head_parameter_has_a_gradient(trainer, out)
    with torch.no_grad():
        trainer.network.eval()
        val = trainer.validation_step(next(trainer.dataloader_val))
    assert {"tp_hard", "hpv_loss", "head_risk"} <= set(val)
    trainer.set_deep_supervision_enabled(False)   # unwraps OptimizedModule
    assert trainer.plain_network.decoder.deep_supervision is False
    path = os.path.join(trainer.output_folder, "compiled.pth")
    trainer.save_checkpoint(path)
    keys = torch.load(path, map_location="cpu", weights_only=False)["network_weights"].keys()
    assert not any(k.startswith("_orig_mod.") for k in keys)


def test_resume_restores_heads_swa_risk_bank_and_sampler(private_results):
    first = make_trainer(private_results)
    first.save_every = 1  # nnU-Net writes checkpoint_latest.pth at the end of epoch 0 (of 2)
    first.on_train_start()
    run_epoch(first)
    assert first.swa.n_averaged == 1 and len(first.risk_bank) > 0
    path = os.path.join(first.output_folder, LATEST_CHECKPOINT)
    assert os.path.isfile(path)
    # The snapshot of epoch 0 was taken before nnU-Net wrote the checkpoint.
    assert torch.load(path, map_location="cpu", weights_only=False)["hecktor"]["swa"]["n_averaged"] == 1

    resumed = make_trainer(private_results, resume=True)
    resumed.load_checkpoint(path)
    assert resumed.current_epoch == first.current_epoch
    # A checkpoint dictionary loads too (nnU-Net after 2.8.1 accepts either), with the plugin's state.
    from_dict = make_trainer(private_results, resume=True)
    from_dict.load_checkpoint(torch.load(path, map_location="cpu", weights_only=False))
    assert from_dict.current_epoch == first.current_epoch and from_dict.swa.n_averaged == first.swa.n_averaged
    for (k, a), (k2, b) in zip(first.plain_network.state_dict().items(), resumed.plain_network.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k   # heads and clinical-encoder statistics included
    assert bool(resumed.plain_network.clinical_encoder.is_fitted)
    a, b = first.swa.state_dict(), resumed.swa.state_dict()
    assert (a["n_averaged"], a["last_epoch"], a["start_epoch"]) == (b["n_averaged"], b["last_epoch"], b["start_epoch"])
    assert all(torch.equal(a["average"][k], b["average"][k]) for k in a["average"])
    bank_a, bank_b = first.risk_bank.state_dict(), resumed.risk_bank.state_dict()
    assert bank_a["patient_ids"] == bank_b["patient_ids"] and torch.equal(bank_a["risk"], bank_b["risk"])
    assert resumed.logger.get_checkpoint()["train_hpv_losses"] == first.logger.get_checkpoint()["train_hpv_losses"]
    # The in-process sampler continues exactly where it stopped.
    resumed.on_train_start()
    expected = [first.dataloader_train.data_loader.get_indices().tolist() for _ in range(3)]
    continued = [resumed.dataloader_train.data_loader.get_indices().tolist() for _ in range(3)]
    assert continued == expected
    assert resumed._restarts == 1


def test_gtvp_centred_patches_contain_the_primary_tumour(private_results):
    trainer = make_trainer(private_results)
    trainer.on_train_start()
    loader = trainer.dataloader_val.data_loader  # no augmentation
    centred = 0
    for _ in range(6):
        batch = next(loader)
        target = batch["target"][0] if isinstance(batch["target"], list) else batch["target"]
        for j, flag in enumerate(batch["tumour_centred"]):
            gtvp = (target[j, 0] == schema.GTVP).numpy()
            if not flag:
                continue
            centred += 1
            assert gtvp.any(), f"{batch['keys'][j]}: GTVp-centred patch without GTVp"
    assert centred >= 3


def test_node_centred_patches_contain_a_lymph_node(private_results):
    """The default trainer's other forced-foreground half: centred on a GTVn voxel when the case has one."""
    trainer = make_trainer(private_results)
    trainer.on_train_start()
    loader = trainer.dataloader_val.data_loader
    loader.gtvp_centred_fraction, loader.gtvn_centred_fraction = 0.0, 1.0
    # A patch much smaller than the image, so that a patch placed elsewhere would miss the nodes.
    loader.patch_size, loader.need_to_pad = [4, 4, 4], np.zeros(3, dtype=int)
    with_nodes = 0
    for key in loader.indices:
        _, seg, _, properties = loader._data.load_case(key)
        seg = np.asarray(seg[:])[0]
        if not (seg == schema.GTVN).any():
            continue
        with_nodes += 1
        for _ in range(20):
            lower, upper = loader.get_bbox(seg.shape, True, properties["class_locations"])
            box = tuple(slice(max(lo, 0), up) for lo, up in zip(lower, upper))
            assert (seg[box] == schema.GTVN).any(), f"{key}: node-centred patch without a node"
    assert with_nodes >= 1


def test_swa_trainer_deploys_the_average_as_checkpoint_final(private_results):
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_hecktor.checkpoints import (
        FINAL_CHECKPOINT,
        LAST_ITERATE_CHECKPOINT,
        LEGACY_SWA_CHECKPOINT,
        unique_storage_bytes,
    )

    trainer = make_trainer(private_results, cls=HecktorSWATrainer_tiny)
    trainer.run_training()  # 2 epochs, then on_train_end: checkpoint_final.pth (average) + last iterate
    folder = trainer.output_folder
    final = torch.load(os.path.join(folder, FINAL_CHECKPOINT), map_location="cpu", weights_only=False)
    last = torch.load(os.path.join(folder, LAST_ITERATE_CHECKPOINT), map_location="cpu", weights_only=False)
    assert not os.path.exists(os.path.join(folder, LEGACY_SWA_CHECKPOINT))
    assert final["trainer_name"] == "HecktorSWATrainer_tiny" and final["current_epoch"] == last["current_epoch"] == 2
    assert set(final) >= {"network_weights", "init_args", "inference_allowed_mirroring_axes", "optimizer_state"}
    assert (final["hecktor"]["weights"], final["hecktor"]["layout"], final["hecktor"]["swa"]) == ("swa", 2, None)
    assert last["hecktor"]["weights"] == "iterate" and last["hecktor"]["swa"]["n_averaged"] == 2
    averaged = trainer.swa.averaged_state_dict()
    assert all(torch.equal(final["network_weights"][k], averaged[k]) for k in averaged)
    assert any(not torch.equal(last["network_weights"][k], final["network_weights"][k]) for k in averaged)
    assert trainer.weights_in_use == "swa"  # the end-of-training validation uses the deployed weights
    assert trainer.validation_weights_description() == f"SWA average ({FINAL_CHECKPOINT})"
    stock = nnUNetTrainer.build_network_architecture(trainer.plans_manager, trainer.configuration_manager,
                                                     trainer.num_input_channels, 3, False)
    stock.load_state_dict(final["network_weights"], strict=True)
    # The average is stored once (last iterate), aliased keys once: final is the size of nnU-Net's.
    unique = unique_storage_bytes(final["network_weights"]) + unique_storage_bytes(final["optimizer_state"])
    assert os.path.getsize(os.path.join(folder, FINAL_CHECKPOINT)) < 1.1 * unique


def test_heads_on_a_whole_volume_and_the_training_fold_threshold(private_results):
    trainer = make_trainer(private_results)
    trainer.on_train_start()
    key = trainer._train_keys[0]
    data, seg, _, _ = trainer.dataset_class(trainer.preprocessed_dataset_folder, [key]).load_case(key)
    data, seg = np.asarray(data[:]), np.asarray(seg[:])
    i = int(trainer.patients.index_of([key])[0])
    clinical = trainer.patients.records[i]
    patch = trainer.configuration_manager.patch_size
    with_gtvp = predict_heads(trainer.network, data, seg, clinical, patch, mirror_axes=(0, 1, 2))
    assert with_gtvp.centre_source == "GTVp" and 0 < with_gtvp.hpv_probability < 1
    assert np.isfinite(with_gtvp.risk) and with_gtvp.threshold == pytest.approx(0.5)
    empty = predict_heads(trainer.network, data, np.zeros_like(seg), clinical, patch)
    assert empty.centre_source == "image centre"
    assert empty.centre == tuple(s // 2 for s in data.shape[1:])
    # Encoded vector and raw record give the same output.
    encoded = trainer.plain_network.clinical_encoder.encode([clinical])
    same = predict_heads(trainer.network, data, seg, encoded, patch, mirror_axes=(0, 1, 2))
    assert same.hpv_logit == pytest.approx(with_gtvp.hpv_logit, abs=1e-6)

    trainer.finalise_weights("final")
    rows = trainer._heads_on_cases(trainer._train_keys)
    y = np.array([r["hpv_true"] for r in rows])
    known = np.isfinite(y)
    expected = choose_threshold(y[known], calibrated_prevalence=trainer.hpv_loss.calibrated_prevalence)
    if trainer.hpv_loss_weighting == "balanced" and 0 < y[known].mean() < 1:
        assert expected == pytest.approx(0.5)  # class-balanced loss: probabilities calibrated to 50/50
    assert float(trainer.plain_network.hecktor_heads.hpv_threshold) == pytest.approx(expected, abs=1e-6)


def test_disabled_checkpointing_writes_nothing_and_says_so(private_results):
    trainer = make_trainer(private_results, cls=HecktorSWATrainer_tiny)
    trainer.disable_checkpointing = True
    trainer.run_training()
    assert not [f for f in os.listdir(trainer.output_folder) if f.endswith(".pth")]
    with open(trainer.log_file) as handle:
        log = handle.read()
    assert "checkpointing disabled, not written" in log and "SWA: wrote" not in log
    assert trainer.weights_in_use == "swa"   # the validation would still use the average


def test_seeded_training_repeats_initialisation_and_first_steps(private_results, monkeypatch):
    """NNUNET_HECKTOR_SEED: the same seed gives the same weights after the same steps; another seed does not."""
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")

    def weights_after_two_steps(seed: int):
        monkeypatch.setenv("NNUNET_HECKTOR_SEED", str(seed))
        trainer = make_trainer(private_results)
        trainer.on_train_start()
        initial = {k: v.clone() for k, v in trainer.plain_network.state_dict().items()}
        for _ in range(2):
            trainer.train_step(next(trainer.dataloader_train))
        return initial, trainer.plain_network.state_dict()

    init_a, after_a = weights_after_two_steps(7)
    init_b, after_b = weights_after_two_steps(7)
    init_c, _ = weights_after_two_steps(8)
    assert all(torch.equal(init_a[k], init_b[k]) for k in init_a)
    assert all(torch.equal(after_a[k], after_b[k]) for k in after_a)
    assert not all(torch.equal(init_a[k], init_c[k]) for k in init_a)


def test_seed_variable_is_validated(monkeypatch):
    from nnunet_hecktor.nnunet_env import training_seed_from_environment

    monkeypatch.setenv("NNUNET_HECKTOR_SEED", "-1")
    with pytest.raises(ValueError, match=">= 0"):
        training_seed_from_environment(None)
    monkeypatch.setenv("NNUNET_HECKTOR_SEED", "")
    assert training_seed_from_environment(3) == 3
