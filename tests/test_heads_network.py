"""HecktorMultiTaskNetwork: stock keys, stock forward, mirroring, heads, warm start, export, compile."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

from nnunet_hecktor.heads import (
    N_CLINICAL_FEATURES,
    HeadConfig,
    HecktorMultiTaskNetwork,
    RiskBank,
    build_multitask_network,
    hpv_bce_loss,
    load_segmentation_weights,
    split_state_dict,
    strip_heads_from_checkpoint,
)

NAN = float("nan")

# Tiny versions of what nnU-Net's planners write into plans.json (3 stages, 8 features, 16^3 patches).
_COMMON = {
    "n_stages": 3,
    "features_per_stage": [8, 16, 32],
    "conv_op": "torch.nn.modules.conv.Conv3d",
    "kernel_sizes": [[3, 3, 3]] * 3,
    "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
    "n_conv_per_stage_decoder": [1, 1],
    "conv_bias": True,
    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
    "norm_op_kwargs": {"eps": 1e-05, "affine": True},
    "dropout_op": None,
    "dropout_op_kwargs": None,
    "nonlin": "torch.nn.LeakyReLU",
    "nonlin_kwargs": {"inplace": True},
}
ARCHITECTURES = {
    "PlainConvUNet": {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {**_COMMON, "n_conv_per_stage": [2, 2, 2]},
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    },
    # The architecture of nnUNetResEncUNetMPlans (ResEnc presets), shrunk.
    "ResidualEncoderUNet": {
        "network_class_name": "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet",
        "arch_kwargs": {**_COMMON, "n_blocks_per_stage": [1, 2, 2]},
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    },
}
IN_CHANNELS, CLASSES = 2, 3


def configuration(name: str) -> ConfigurationManager:
    return ConfigurationManager({"architecture": copy.deepcopy(ARCHITECTURES[name]), "patch_size": [16, 16, 16]})


def stock_network(name: str, deep_supervision: bool):
    a = ARCHITECTURES[name]
    return get_network_from_plans(a["network_class_name"], a["arch_kwargs"], a["_kw_requires_import"],
                                  IN_CHANNELS, CLASSES, allow_init=True, deep_supervision=deep_supervision)


def multitask(name: str, deep_supervision: bool = False, config: HeadConfig | None = None) -> HecktorMultiTaskNetwork:
    torch.manual_seed(0)
    net = build_multitask_network(None, configuration(name), IN_CHANNELS, CLASSES, deep_supervision, config)
    net.clinical_encoder.fit([{"Age": 55.0}, {"Age": 65.0}, {"Age": 75.0}])
    return net


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(2, IN_CHANNELS, 16, 16, 16, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_segmentation_keys_and_shapes_equal_the_stock_network(name):
    stock = stock_network(name, deep_supervision=True).state_dict()
    net = multitask(name, deep_supervision=True)
    seg, heads = split_state_dict(net.state_dict())
    assert list(seg) == list(stock)  # same keys, same order
    assert all(seg[k].shape == stock[k].shape for k in stock)
    assert heads and all(k.startswith("hecktor_heads.") for k in heads)
    assert set(net.segmentation_state_dict()) == set(stock)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_forward_equals_stock_after_warm_start(name, x):
    stock = stock_network(name, deep_supervision=False).eval()
    net = multitask(name).eval()
    untouched = load_segmentation_weights(net, stock.state_dict())
    assert untouched and all(k.startswith("hecktor_heads.") for k in untouched)
    with torch.no_grad():
        out = net(x)
        assert type(out) is torch.Tensor and out.shape == (2, CLASSES, 16, 16, 16)
        torch.testing.assert_close(out, stock(x), rtol=0, atol=0)
        seg, hpv, risk = net.forward_with_heads(x, None)
        torch.testing.assert_close(seg, out, rtol=0, atol=0)
        assert hpv.shape == risk.shape == (2,)


def test_deep_supervision_output_follows_the_decoder_flag(x):
    net = multitask("PlainConvUNet", deep_supervision=True)
    out = net(x)
    assert isinstance(out, list) and [o.shape[2] for o in out] == [16, 8]
    net.decoder.deep_supervision = False  # what nnUNetTrainer.set_deep_supervision_enabled does
    assert isinstance(net(x), torch.Tensor)


def test_nnunet_predictor_mirroring_runs_on_the_network(x):
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    net = multitask("PlainConvUNet").eval()
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                                perform_everything_on_device=False, device=torch.device("cpu"), verbose=False,
                                allow_tqdm=False)
    predictor.network = net
    predictor.allowed_mirroring_axes = (0, 1, 2)
    with torch.no_grad():
        mirrored = predictor._internal_maybe_mirror_and_predict(x)
        manual = sum(torch.flip(net(torch.flip(x, axes)), axes) if axes else net(x)
                     for axes in [(), (2,), (3,), (4,), (2, 3), (2, 4), (3, 4), (2, 3, 4)]) / 8
    torch.testing.assert_close(mirrored, manual)


def test_warm_start_rejects_a_checkpoint_of_another_plan():
    net = multitask("PlainConvUNet")
    other = stock_network("ResidualEncoderUNet", deep_supervision=False).state_dict()
    with pytest.raises(ValueError, match="missing keys"):
        load_segmentation_weights(net, other)
    same = stock_network("PlainConvUNet", deep_supervision=False).state_dict()
    same["decoder.seg_layers.1.bias"] = torch.zeros(CLASSES + 1)
    with pytest.raises(ValueError, match="shape mismatches: decoder.seg_layers.1.bias"):
        load_segmentation_weights(net, same)


def test_exported_checkpoint_loads_strictly_into_the_stock_network():
    net = multitask("ResidualEncoderUNet")
    checkpoint = {"network_weights": {"module." + k: v for k, v in net.state_dict().items()},
                  "optimizer_state": {"state": {}}, "trainer_name": "HecktorMultiTaskTrainer",
                  "init_args": {"fold": 0}}
    exported = strip_heads_from_checkpoint(checkpoint)
    assert exported["trainer_name"] == "nnUNetTrainer" and "optimizer_state" not in exported
    assert checkpoint["trainer_name"] == "HecktorMultiTaskTrainer"  # input untouched
    stock = stock_network("ResidualEncoderUNet", deep_supervision=False)
    stock.load_state_dict(exported["network_weights"], strict=True)


def test_head_buffers_survive_a_strict_reload_into_a_fresh_build():
    net = multitask("PlainConvUNet")
    net.clinical_encoder.fit([{"Age": 40.0}, {"Age": 80.0}])
    net.hecktor_heads.hpv_threshold.fill_(0.83)
    # What nnU-Net's predictor does: build from the static method, then load strictly.
    fresh = build_multitask_network(None, configuration("PlainConvUNet"), IN_CHANNELS, CLASSES, False)
    assert not bool(fresh.clinical_encoder.is_fitted)
    fresh.load_state_dict(net.state_dict(), strict=True)
    assert float(fresh.hecktor_heads.hpv_threshold) == pytest.approx(0.83)
    assert float(fresh.clinical_encoder.age_mean) == 60.0
    torch.testing.assert_close(fresh.clinical_encoder.encode([{"Age": 70.0}]),
                               net.clinical_encoder.encode([{"Age": 70.0}]))


def _head_parameters(net):
    return [(n, p) for n, p in net.named_parameters() if n.startswith("hecktor_heads.")]


@pytest.mark.parametrize("use_clinical", [True, False])
def test_every_head_parameter_gets_a_gradient_without_events_or_hpv_labels(x, use_clinical):
    net = multitask("PlainConvUNet", deep_supervision=True, config=HeadConfig(use_clinical=use_clinical)).train()
    seg, hpv, risk = net(x, with_heads=True, clinical=[{"Age": 60.0, "Gender": 1}, {}])
    bank = RiskBank(16)
    # Two censored patients (no event) and unknown HPV: both head losses are exactly 0.
    cox = bank.pooled_loss(risk, [300.0, 500.0], [0.0, 0.0], ["A-000", "A-001"])
    hpv_loss = hpv_bce_loss(hpv, [NAN, NAN])
    assert cox.item() == 0.0 and hpv_loss.item() == 0.0
    (seg[0].mean() + cox + hpv_loss).backward()
    params = _head_parameters(net)
    assert len(params) == (14 if use_clinical else 12)  # LayerNorm, 5 or 6 Linear layers
    missing = [n for n, p in params if p.grad is None]
    assert not missing, f"no gradient for {missing} (DDP find_unused_parameters=False would fail)"
    assert all(torch.count_nonzero(p.grad) == 0 for _, p in params)

    # With an event and a known label the same parameters get non-zero gradients.
    net.zero_grad(set_to_none=True)
    _, hpv, risk = net(x, with_heads=True, clinical=None)
    (bank.pooled_loss(risk, [100.0, 500.0], [1.0, 0.0], ["A-002", "A-003"]) + hpv_bce_loss(hpv, [1.0, 0.0])).backward()
    assert all(p.grad is not None for _, p in _head_parameters(net))
    assert torch.count_nonzero(net.hecktor_heads.risk_head[-1].weight.grad) > 0
    assert torch.count_nonzero(net.hecktor_heads.hpv_head[-1].weight.grad) > 0


def test_clinical_input_changes_the_heads_and_image_only_ignores_it(x):
    net = multitask("PlainConvUNet").eval()
    with torch.no_grad():
        enc = net.clinical_encoder.encode([{"Age": 40.0, "M-stage": "M1"}, {"Age": 80.0, "Performance Status": 2}])
        assert enc.shape == (2, N_CLINICAL_FEATURES)
        _, hpv_a, risk_a = net.forward_with_heads(x, enc)
        _, hpv_b, risk_b = net.forward_with_heads(x, enc.flip(0))
        assert not torch.allclose(risk_a, risk_b)
        image_only = multitask("PlainConvUNet", config=HeadConfig(use_clinical=False)).eval()
        _, h1, r1 = image_only.forward_with_heads(x, None)
        _, h2, r2 = image_only.forward_with_heads(x, [{"Age": 40.0}, {"Age": 90.0}])
        torch.testing.assert_close(r1, r2, rtol=0, atol=0)
    with pytest.raises(ValueError, match="expected \\(2, 24\\)"):
        net.forward_with_heads(x, enc[:, :5])


def test_masked_pooling_uses_the_mask_and_falls_back_to_global_pooling(x):
    from nnunet_hecktor.heads.multitask_network import pool_bottleneck

    features = torch.arange(2 * 3 * 8, dtype=torch.float32).reshape(2, 3, 2, 2, 2)
    mask = torch.zeros(2, 1, 16, 16, 16)
    mask[0, 0, :8, :8, :8] = 1  # bottleneck cell (0, 0, 0) of sample 0 only
    pooled = pool_bottleneck(features, mask)
    flat = features.flatten(2)
    torch.testing.assert_close(pooled[0], torch.cat([flat[0, :, 0], flat[0, :, 0]]))
    torch.testing.assert_close(pooled[1], torch.cat([flat[1].mean(1), flat[1].amax(1)]))  # empty mask
    torch.testing.assert_close(pool_bottleneck(features, None), torch.cat([flat.mean(2), flat.amax(2)], 1))


def test_dropout_free_eval_heads_are_deterministic_and_finite(x):
    net = multitask("ResidualEncoderUNet").eval()
    with torch.no_grad():
        a = net.forward_with_heads(x * 1e3, None)
        b = net.forward_with_heads(x * 1e3, None)
    assert all(math.isfinite(v) for v in a[2].tolist() + a[1].tolist())
    torch.testing.assert_close(a[2], b[2], rtol=0, atol=0)


def test_no_batchnorm_in_the_heads():
    net = multitask("PlainConvUNet")
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.hecktor_heads.modules())


def _compile_available() -> str | None:
    if not hasattr(torch, "compile"):
        return "torch.compile not available"
    try:
        import importlib

        importlib.import_module("torch._dynamo")
    except Exception as err:  # pragma: no cover - platform dependent
        return f"torch._dynamo unavailable: {err}"
    return None


@pytest.mark.skipif(_compile_available() is not None, reason=str(_compile_available()))
def test_torch_compile_traces_forward_and_heads_without_graph_breaks(x):
    # aot_eager traces with dynamo and AOTAutograd (forward and backward graphs) but skips
    # inductor's C++ code generation: cheap on CPU yet catches untraceable code.
    from torch import _dynamo

    _dynamo.reset()
    net = multitask("PlainConvUNet", deep_supervision=True).train()
    enc = net.clinical_encoder.encode([{"Age": 50.0}, {}])
    compiled = torch.compile(net, backend="aot_eager", fullgraph=True)
    # One compiled call (the heads path, which contains the stock path); each further
    # mode (eval, no_grad, seg-only) would recompile and cost seconds on a CPU.
    mask = torch.zeros(2, 1, 16, 16, 16)
    mask[0, :, 4:9, 4:9, 4:9] = 1  # sample 1 has no GTVp: global-pooling fall-back inside the graph
    seg, hpv, risk = compiled(x, with_heads=True, clinical=enc, pool_mask=mask)
    assert isinstance(seg, list) and hpv.shape == risk.shape == (2,)
    (seg[0].mean() + hpv.sum() + risk.sum()).backward()
    assert all(p.grad is not None for _, p in _head_parameters(net))
    net.zero_grad(set_to_none=True)
    torch.manual_seed(3)  # same dropout masks for the eager reference
    eager_hpv = net(x, with_heads=True, clinical=enc, pool_mask=mask)[1]
    torch.manual_seed(3)
    torch.testing.assert_close(compiled(x, with_heads=True, clinical=enc, pool_mask=mask)[1], eager_hpv)
    _dynamo.reset()
