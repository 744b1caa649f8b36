"""Cheap learning checks of the heads (issue 9): lesion statistics, gradients on a known signal,
a head fitted on a synthetic signal ranks it, and the reliability block of the head validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nnunet_hecktor.heads import HeadConfig, HecktorHeads, cox_partial_likelihood_loss
from nnunet_hecktor.heads.lesion_statistics import LESION_STATISTIC_NAMES, N_LESION_STATISTICS, soft_lesion_statistics
from nnunet_hecktor.heads.multitask_network import RunningStandardiser
from nnunet_hecktor.metrics.survival import harrell_c_index
from nnunet_hecktor.trainers.head_metrics import MIN_HPV_CLASS_SIZE, head_validation_reliability, write_validation_heads

SHAPE = (8, 12, 12)


def _ball(radius: float, centre=(4, 6, 6)) -> torch.Tensor:
    z, y, x = torch.meshgrid(*(torch.arange(n, dtype=torch.float32) for n in SHAPE), indexing="ij")
    return ((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius ** 2).float()


def _logits(gtvp: torch.Tensor, gtvn: torch.Tensor | None = None, sharpness: float = 20.0) -> torch.Tensor:
    """Confident 3-class logits of a label map (one sample)."""
    gtvn = torch.zeros_like(gtvp) if gtvn is None else gtvn
    background = 1 - torch.clamp(gtvp + gtvn, max=1)
    return sharpness * torch.stack([background, gtvp, gtvn])[None]


def test_lesion_statistics_of_a_confident_segmentation():
    gtvp = _ball(2.0)
    gtvn = _ball(1.0, centre=(4, 2, 2))
    pet = 3.0 * gtvp + 7.0 * gtvn
    pet[4, 6, 6] = 10.0
    image = torch.stack([torch.zeros(SHAPE), pet])[None]
    stats = soft_lesion_statistics(_logits(gtvp, gtvn), image)
    assert stats.shape == (1, N_LESION_STATISTICS) == (1, len(LESION_STATISTIC_NAMES))
    values = dict(zip(LESION_STATISTIC_NAMES, stats[0].tolist()))
    assert values["log_gtvp_voxels"] == pytest.approx(math.log1p(float(gtvp.sum())), rel=1e-4)
    assert values["log_gtvn_voxels"] == pytest.approx(math.log1p(float(gtvn.sum())), rel=1e-4)
    assert values["pet_max_gtvp"] == pytest.approx(10.0, rel=1e-4)
    assert values["pet_max_gtvn"] == pytest.approx(7.0, rel=1e-4)
    expected_mean = float((pet * gtvp).sum() / gtvp.sum())
    assert values["pet_mean_gtvp"] == pytest.approx(expected_mean, rel=1e-3)


def test_lesion_statistics_grow_with_the_tumour_and_reject_mismatched_inputs():
    image = torch.ones((1, 2) + SHAPE)
    small = soft_lesion_statistics(_logits(_ball(1.5)), image)[0, 0]
    large = soft_lesion_statistics(_logits(_ball(3.5)), image)[0, 0]
    assert large > small + 1.0
    with pytest.raises(ValueError, match="do not match"):
        soft_lesion_statistics(_logits(_ball(1.5)), torch.ones((1, 2, 4, 4, 4)))


def test_running_standardiser_learns_in_training_and_is_fixed_in_eval():
    norm = RunningStandardiser(2, momentum=0.5)
    x = torch.tensor([[1.0, 10.0], [3.0, 30.0]])
    out = norm(x)
    assert torch.allclose(norm.running_mean, torch.tensor([2.0, 20.0]))
    assert torch.allclose(out.mean(0), torch.zeros(2), atol=1e-5)
    norm.eval()
    before = norm.running_mean.clone()
    norm(torch.tensor([[100.0, 100.0], [200.0, 200.0]]))
    assert torch.equal(norm.running_mean, before)
    assert {"running_mean", "running_var", "updates"} <= set(norm.state_dict())


def _synthetic_patients(n: int, seed: int):
    """Primaries of random size; relapse hazard grows with log volume (true log-hazard 1.5 x log volume)."""
    rng = np.random.default_rng(seed)
    radius = rng.uniform(1.0, 3.8, n)
    logits = torch.cat([_logits(_ball(float(r))) for r in radius])
    pet = torch.stack([torch.zeros(SHAPE)] * n)
    image = torch.stack([pet, pet + 1.0], dim=1)
    volume = logits[:, 1].gt(0).flatten(1).sum(1).numpy().astype(float)
    hazard = np.exp(1.5 * np.log(volume))
    event_time = rng.exponential(1.0 / hazard) * 1000
    censor = rng.exponential(np.median(event_time) * 2, n)
    time_ = np.minimum(event_time, censor)
    event = (event_time <= censor).astype(float)
    return logits, image, time_, event


def _lesion_heads(linear: bool = True) -> HecktorHeads:
    torch.manual_seed(0)
    return HecktorHeads(8, HeadConfig(image_input="lesion_statistics", use_clinical=False, dropout=0.0,
                                      hidden_features=16, linear=linear))


@pytest.mark.parametrize("linear", [True, False])
def test_risk_head_gets_a_gradient_from_the_cox_loss_on_a_known_signal(linear):
    logits, image, time_, event = _synthetic_patients(16, seed=1)
    heads = _lesion_heads(linear)
    bottleneck = torch.zeros(16, 8, 1, 2, 2)
    _, risk = heads(bottleneck, None, None, seg_logits=logits, image=image)
    loss = cox_partial_likelihood_loss(risk, torch.tensor(time_), torch.tensor(event))
    loss.backward()
    for name, p in heads.risk_head.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name
    if not linear:
        assert float(heads.image_projection[1].weight.grad.abs().sum()) > 0


def test_a_risk_head_fitted_on_a_synthetic_signal_ranks_new_patients():
    logits, image, time_, event = _synthetic_patients(64, seed=2)
    heads = _lesion_heads()
    optimiser = torch.optim.Adam(heads.parameters(), 1e-2)
    bottleneck = torch.zeros(64, 8, 1, 2, 2)
    heads.train()
    for _ in range(150):
        _, risk = heads(bottleneck, None, None, seg_logits=logits, image=image)
        loss = cox_partial_likelihood_loss(risk, torch.tensor(time_), torch.tensor(event))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    heads.eval()
    new_logits, new_image, new_time, new_event = _synthetic_patients(64, seed=3)
    with torch.no_grad():
        _, risk = heads(torch.zeros(64, 8, 1, 2, 2), None, None, seg_logits=new_logits, image=new_image)
    assert harrell_c_index(new_time, new_event, risk.numpy()) > 0.7


def test_bottleneck_heads_do_not_need_the_segmentation_but_lesion_heads_do():
    heads = _lesion_heads()
    with pytest.raises(ValueError, match="seg_logits"):
        heads(torch.zeros(1, 8, 1, 2, 2))
    stock = HecktorHeads(8, HeadConfig(use_clinical=False))
    hpv, risk = stock(torch.randn(2, 8, 1, 2, 2))
    assert hpv.shape == risk.shape == (2,)
    with pytest.raises(ValueError, match="image_input"):
        HeadConfig(image_input="radiomics")


def _rows(n_pos: int, n_neg: int, n_events: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    n = n_pos + n_neg
    hpv = np.r_[np.ones(n_pos), np.zeros(n_neg)]
    relapse = np.zeros(n)
    relapse[:n_events] = 1
    rows = []
    for i in range(n):
        rows.append({"PatientID": f"P{i:03d}", "hpv_true": hpv[i], "hpv_probability": float(rng.uniform()),
                     "hpv_predicted": 0, "risk": float(rng.normal()), "rfs_days": float(rng.uniform(100, 2000)),
                     "relapse": relapse[i]})
    return rows


def test_head_validation_reliability_flags_too_few_patients():
    few = head_validation_reliability(_rows(7, 1, 2), threshold=0.5, n_bootstrap=200)
    assert few["hpv"]["n_negative"] == 1 and not few["hpv"]["enough"]
    assert "too few" in few["hpv"]["warning"]
    assert not few["rfs"]["enough"] and "too uncertain" in few["rfs"]["warning"]
    assert few["rfs"]["n_events"] == 2
    many = head_validation_reliability(_rows(80, 20, 30), threshold=0.5, n_bootstrap=200)
    assert many["hpv"]["enough"] and many["hpv"]["warning"] is None
    assert many["hpv"]["n_negative"] == 20 >= MIN_HPV_CLASS_SIZE
    assert many["rfs"]["enough"] and many["rfs"]["comparable_pairs"] >= 100
    low, high = many["rfs"]["c_index_ci"]["low"], many["rfs"]["c_index_ci"]["high"]
    assert low <= many["rfs"]["c_index"] <= high
    low, high = many["hpv"]["auc_ci"]["low"], many["hpv"]["auc_ci"]["high"]
    assert low <= many["hpv"]["auc"] <= high


def test_validation_heads_json_carries_the_reliability_block(tmp_path):
    import json

    json_path, _ = write_validation_heads(tmp_path, _rows(7, 1, 2), {"hpv": {"threshold": 0.4}, "n_patients": 8})
    summary = json.loads(json_path.read_text())
    assert summary["reliability"]["hpv"]["n_negative"] == 1
    assert summary["reliability"]["rfs"]["comparable_pairs"] >= 0
    assert len(summary["warnings"]) == 2


def test_benchmark_schedule_reads_the_environment(monkeypatch):
    from nnunet_hecktor.trainers.benchmark_variants import ENV_EPOCHS, _positive_int

    monkeypatch.setenv(ENV_EPOCHS, "7")
    assert _positive_int(ENV_EPOCHS, 1000) == 7
    monkeypatch.setenv(ENV_EPOCHS, "")
    assert _positive_int(ENV_EPOCHS, 1000) == 1000
    monkeypatch.setenv(ENV_EPOCHS, "seven")
    with pytest.raises(ValueError, match=ENV_EPOCHS):
        _positive_int(ENV_EPOCHS, 1000)


def test_demo_benchmark_trainer_is_the_demo_recipe_on_the_environments_schedule(monkeypatch):
    from nnunet_hecktor.trainers import multitask_trainer
    from nnunet_hecktor.trainers.benchmark_variants import (
        ENV_EPOCHS,
        ENV_ITERATIONS,
        ENV_VAL_ITERATIONS,
        HecktorMultiTaskTrainer_demo_benchmark,
    )

    def stock_schedule(self, plans, configuration, fold, dataset_json, device=None):
        # nnU-Net's own set-up is not under test: only what the mixins above it change.
        self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = 1000, 250, 50
        self.oversample_foreground_percent = 0.33

    monkeypatch.setattr(multitask_trainer.HecktorMultiTaskTrainer, "__init__", stock_schedule)
    for name in (ENV_EPOCHS, ENV_ITERATIONS, ENV_VAL_ITERATIONS):
        monkeypatch.delenv(name, raising=False)
    cls = HecktorMultiTaskTrainer_demo_benchmark
    demo = cls({}, "3d_fullres", 0, {}, torch.device("cpu"))
    assert (demo.num_epochs, demo.num_iterations_per_epoch, demo.num_val_iterations_per_epoch) == (cls.demo_epochs, 50, 5)
    assert demo.oversample_foreground_percent == 0.5
    monkeypatch.setenv(ENV_EPOCHS, "30")
    thirty = cls({}, "3d_fullres", 0, {}, torch.device("cpu"))
    assert (thirty.num_epochs, thirty.num_iterations_per_epoch) == (30, 50)
    assert thirty.oversample_foreground_percent == 0.5


def test_linear_lesion_heads_round_trip_through_a_strict_state_dict():
    config = HeadConfig(image_input="lesion_statistics", linear=True)
    heads = HecktorHeads(8, config)
    heads.train()
    heads.lesion_normaliser(torch.randn(4, N_LESION_STATISTICS) + 3.0)
    state = heads.state_dict()
    assert "lesion_normaliser.running_mean" in state
    rebuilt = HecktorHeads(8, config)
    rebuilt.load_state_dict(state, strict=True)
    assert torch.equal(rebuilt.lesion_normaliser.running_mean, heads.lesion_normaliser.running_mean)
    assert isinstance(rebuilt.risk_head, torch.nn.Linear)


def test_default_trainer_switches_its_head_losses_on_after_the_plateau_share():
    from nnunet_hecktor.trainers.multitask_trainer import HecktorMultiTaskTrainer

    class Schedule(HecktorMultiTaskTrainer):
        def __init__(self):  # no nnU-Net set-up: only the loss-weight schedule is under test
            self.num_epochs, self.current_epoch = 10, 0

    trainer = Schedule()
    assert trainer.cox_loss_weight == trainer.hpv_loss_weight == 0.0
    trainer.current_epoch = 2
    assert trainer.cox_loss_weight == 0.0
    trainer.current_epoch = 3
    assert trainer.cox_loss_weight == 1.0 and trainer.hpv_loss_weight == 0.3
    assert Schedule.HEAD_CONFIG.linear and Schedule.HEAD_CONFIG.image_input == "lesion_statistics"


def test_bottleneck_heads_trainer_keeps_the_original_design_from_the_first_step():
    from nnunet_hecktor.trainers import HecktorMultiTaskTrainerBottleneckHeads

    class Schedule(HecktorMultiTaskTrainerBottleneckHeads):
        def __init__(self):
            self.num_epochs, self.current_epoch = 10, 0

    trainer = Schedule()
    assert trainer.cox_loss_weight == trainer.hpv_loss_weight == 0.1
    assert Schedule.HEAD_CONFIG == HeadConfig()


def test_foreground_cross_entropy_weight_decays_to_one_before_the_averaged_epochs():
    from nnunet_hecktor.trainers.variants import ForegroundWeightedCE

    class Labels:
        num_segmentation_heads = 3

    class Schedule(ForegroundWeightedCE):
        def __init__(self):  # only the weight schedule is under test
            self.num_epochs, self.current_epoch = 30, 0
            self.label_manager, self.device = Labels(), torch.device("cpu")

    trainer = Schedule()
    assert trainer._foreground_weights().tolist() == [1.0, 10.0, 10.0]
    trainer.current_epoch = 7
    middle = trainer._foreground_weights()
    assert middle[0] == 1.0 and 1.0 < float(middle[1]) < 10.0 and middle[1] == middle[2]
    for epoch in (15, 22, 29):  # SWA averages the last 25 % of the epochs: unweighted by then
        trainer.current_epoch = epoch
        assert trainer._foreground_weights().tolist() == [1.0, 1.0, 1.0]
