"""Checkpoint sizes of the multi-task trainer before and after checkpoint layout 2, against stock nnU-Net.

The networks are built in-process from architecture settings (no data, no training): nnU-Net's
default 3d_fullres ``PlainConvUNet``, the ``nnUNetResEncUNetMPlans`` ``ResidualEncoderUNet`` and
the narrow U-Net of ``nnUNetPlansTiny``, each with the HPV and risk heads. The optimizer is
nnU-Net's SGD (Nesterov momentum 0.99) after one step, so its momentum buffers exist, as in every
checkpoint nnU-Net writes. Files written with ``torch.save`` and measured on disk:

- stock: what ``nnUNetTrainer`` writes (network without heads + optimizer);
- layout 1 (before): network + optimizer + the SWA average copied key by key (what the plugin
  wrote into every checkpoint: best, latest, final and swa), aliased keys stored once per key;
- layout 2 final / best: network + optimizer (the average lives elsewhere);
- layout 2 last iterate / latest: network + optimizer + the average, aliases shared.

``--fold DIR`` also lists the checkpoint files of a trained fold with their unique tensor bytes.

Run:  python benchmarks/bench_checkpoint_size.py [--skip-large] [--fold .../fold_0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

_IMPORTS = ["conv_op", "norm_op", "dropout_op", "nonlin"]
_COMMON = {"conv_op": "torch.nn.modules.conv.Conv3d", "conv_bias": True,
           "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
           "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
           "nonlin_kwargs": {"inplace": True}}
PLAIN = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
RESENC = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"


def _stages(features):
    n = len(features)
    return {"n_stages": n, "features_per_stage": list(features), "kernel_sizes": [[3, 3, 3]] * n,
            "strides": [[1, 1, 1]] + [[2, 2, 2]] * (n - 1)}


ARCHITECTURES = {
    # nnUNetPlansTiny (write_small_plans: features capped at 32) on the tests' tiny volumes
    "tiny (nnUNetPlansTiny)": (PLAIN, {**_COMMON, **_stages([8, 16, 32, 32]), "n_conv_per_stage": [2] * 4,
                                       "n_conv_per_stage_decoder": [2] * 3}),
    # nnU-Net's default 3d_fullres U-Net for a HECKTOR-size patch (6 stages)
    "3d_fullres PlainConvUNet": (PLAIN, {**_COMMON, **_stages([32, 64, 128, 256, 320, 320]),
                                         "n_conv_per_stage": [2] * 6, "n_conv_per_stage_decoder": [2] * 5}),
    # nnUNetResEncUNetMPlans
    "3d_fullres ResEncM": (RESENC, {**_COMMON, **_stages([32, 64, 128, 256, 320, 320]),
                                    "n_blocks_per_stage": [1, 3, 4, 6, 6, 6], "n_conv_per_stage_decoder": [1] * 5}),
}


def _networks(cls: str, kwargs: dict):
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    from nnunet_hecktor.heads import build_multitask_network_from_arch

    torch.manual_seed(0)
    stock = get_network_from_plans(cls, dict(kwargs), _IMPORTS, 2, 3, allow_init=True, deep_supervision=True)
    multitask = build_multitask_network_from_arch(cls, kwargs, _IMPORTS, 2, 3, True)
    return stock, multitask


def _optimizer_state(network):
    import torch

    optimizer = torch.optim.SGD(network.parameters(), 0.01, weight_decay=3e-5, momentum=0.99, nesterov=True)
    for p in network.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    return optimizer.state_dict()


def _size_mb(obj, folder: Path, name: str) -> float:
    import torch

    path = folder / f"{name}.pth"
    torch.save(obj, path)
    size = path.stat().st_size / 1e6
    path.unlink()
    return size


def measure(name: str, cls: str, kwargs: dict, folder: Path) -> dict:
    from nnunet_hecktor.checkpoints import unique_storage_bytes
    from nnunet_hecktor.trainers.swa import WeightAverager

    stock, multitask = _networks(cls, kwargs)
    stock_ckpt = {"network_weights": stock.state_dict(), "optimizer_state": _optimizer_state(stock)}
    weights, optimizer = multitask.state_dict(), _optimizer_state(multitask)
    # Layout 1: WeightAverager's old per-key copy, ``{k: v.detach().to("cpu", copy=True)}``.
    old_average = {k: v.detach().to("cpu", copy=True) for k, v in weights.items()}
    averager = WeightAverager(0)
    averager.update(weights, 0)
    new_final = {"network_weights": weights, "optimizer_state": optimizer}
    rows = {
        "stock nnUNetTrainer": stock_ckpt,
        "layout 1 (every checkpoint)": {**new_final, "hecktor": {"swa": {"average": old_average}}},
        "layout 2 final / best": new_final,
        "layout 2 last iterate / latest": {**new_final, "hecktor": {"swa": averager.state_dict()}},
    }
    unique = unique_storage_bytes(new_final) / 1e6
    out = {"architecture": name, "unique_network_optimizer_mb": unique,
           "parameters_m": sum(p.numel() for p in multitask.parameters()) / 1e6}
    print(f"\n{name}: {out['parameters_m']:.2f} M parameters (with heads); unique network + optimizer "
          f"{unique:.1f} MB")
    print(f"  {'checkpoint':<34}{'MB on disk':>12}{'/ unique':>10}")
    for row, obj in rows.items():
        mb = _size_mb(obj, folder, row.replace(" ", "_").replace("/", ""))
        out[row] = mb
        print(f"  {row:<34}{mb:>12.1f}{mb / unique:>10.2f}")
    return out


def list_fold(fold: Path) -> None:
    import torch

    from nnunet_hecktor.checkpoints import unique_storage_bytes

    print(f"\n{fold}:")
    for path in sorted(fold.glob("*.pth")):
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        unique = (unique_storage_bytes(checkpoint.get("network_weights"))
                  + unique_storage_bytes(checkpoint.get("optimizer_state"))) / 1e6
        size = path.stat().st_size / 1e6
        print(f"  {path.name:<36}{size:>8.2f} MB on disk; unique network + optimizer {unique:.2f} MB "
              f"({size / unique:.2f}x)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-large", action="store_true", help="only the tiny architecture")
    parser.add_argument("--fold", nargs="*", default=[], help="trained fold folders to list")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with tempfile.TemporaryDirectory(prefix="bench_ckpt_") as tmp:
        for name, (cls, kwargs) in ARCHITECTURES.items():
            if args.skip_large and not name.startswith("tiny"):
                continue
            measure(name, cls, kwargs, Path(tmp))
    for fold in args.fold:
        list_fold(Path(fold))
    return 0


if __name__ == "__main__":
    sys.exit(main())
