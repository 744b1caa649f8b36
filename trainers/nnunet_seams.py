"""The one place where the plugin's trainers touch nnU-Net internals.

nnU-Net's trainer has few public hooks. Everything the plugin needs beyond ``super()`` calls goes
through this module, so that a new nnU-Net release is checked here and in
``tests/test_nnunet_seams.py`` rather than across the trainers:

- :func:`unwrap_network`: the network without DDP / ``torch.compile`` wrappers.
- :func:`log_store`: the logger's per-epoch value lists (nnU-Net has no public accessor).
- :func:`training_autocast`: nnU-Net's autocast rule (CUDA only).
- :func:`optimizer_step`: nnU-Net's backward / gradient clipping / (scaled) optimiser step.
- :func:`data_loader_class`: build nnU-Net's data pipeline with another data-loader class, by
  running the stock ``get_dataloaders`` with the loader class it names replaced for that call.
- :data:`MIRRORED_METHODS`: nnU-Net methods whose body a plugin method mirrors (a copy that no hook
  avoids), with the fingerprint of the nnU-Net source the copy was made from. The test suite fails
  when the installed nnU-Net's method differs, naming what to re-check.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import re
from typing import Any, Callable, Iterator, cast

import torch
from nnunetv2.training.nnUNetTrainer import nnUNetTrainer as _trainer_module
from nnunetv2.utilities.helpers import dummy_context
from torch._dynamo import OptimizedModule

#: nnUNetTrainer method -> (plugin method that mirrors it, sha256 of nnU-Net 2.8.1's source with
#: comments and blank lines removed). Re-check the mirror when a fingerprint changes, then update it.
MIRRORED_METHODS: dict[str, tuple[str, str]] = {
    "save_checkpoint": ("trainers.base_trainer.HecktorTrainerBase.checkpoint_dict",
                        "8d59bb3eb9c059c032509a309b34d4eb11e240fc8f64205d3811fb7721bc6180"),
    "train_step": ("trainers.nnunet_seams.optimizer_step and HecktorMultiTaskTrainer.train_step",
                   "8d39f5dc8a4a457481b549d7cb78aa73982acb5378d2de91d0a2c54a2028fd20"),
    # Not copied: data_loader_class relies on it building the training loader, then the validation
    # loader, through the module's name ``nnUNetDataLoader``.
    "get_dataloaders": ("trainers.nnunet_seams.data_loader_class",
                        "273c0d515b11b098e9e95099fc9a8e353dfd225e85d00b7b0e07034656482777"),
}


def method_fingerprint(name: str) -> str:
    """sha256 of ``nnUNetTrainer.<name>``'s source, comments and blank lines removed."""
    source = inspect.getsource(getattr(_trainer_module.nnUNetTrainer, name))
    lines = [re.sub(r"\s+#.*$", "", line).rstrip() for line in source.splitlines()]
    code = "\n".join(line for line in lines if line.strip() and not line.strip().startswith("#"))
    return hashlib.sha256(code.encode()).hexdigest()


def changed_mirrors() -> list[str]:
    """One line per mirrored nnU-Net method whose installed source differs from the one mirrored."""
    changed = []
    for name, (mirror, fingerprint) in MIRRORED_METHODS.items():
        if method_fingerprint(name) != fingerprint:
            changed.append(f"nnUNetTrainer.{name} differs from the nnU-Net source mirrored by {mirror}: "
                           "re-check the mirror, then update MIRRORED_METHODS")
    return changed


def unwrap_network(network: torch.nn.Module, is_ddp: bool) -> torch.nn.Module:
    """The network without DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    # DDP's .module is the wrapped network (torch types a submodule attribute as Tensor | Module).
    module = cast(torch.nn.Module, network.module) if is_ddp else network
    return module._orig_mod if isinstance(module, OptimizedModule) else module


def log_store(trainer: Any) -> dict[str, list]:
    """The trainer logger's per-epoch value lists (key -> list), which checkpoints carry."""
    return trainer.logger.local_logger.my_fantastic_logging


def training_autocast(device: torch.device):
    """nnU-Net's autocast rule: mixed precision on CUDA only (autocast on the CPU is slow)."""
    return torch.autocast(device.type, enabled=True) if device.type == "cuda" else dummy_context()


#: nnU-Net's gradient-norm clip in ``train_step``.
GRADIENT_CLIP_NORM = 12.0


def optimizer_step(trainer: Any, loss: torch.Tensor) -> None:
    """Backward pass, gradient clipping and optimiser step exactly as ``nnUNetTrainer.train_step`` does them.

    With a gradient scaler (CUDA mixed precision) the loss is scaled and the gradients unscaled
    before clipping; without one, plain backward. Call after ``optimizer.zero_grad`` and the forward.
    """
    if trainer.grad_scaler is not None:
        trainer.grad_scaler.scale(loss).backward()
        trainer.grad_scaler.unscale_(trainer.optimizer)
        torch.nn.utils.clip_grad_norm_(trainer.network.parameters(), GRADIENT_CLIP_NORM)
        trainer.grad_scaler.step(trainer.optimizer)
        trainer.grad_scaler.update()
    else:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainer.network.parameters(), GRADIENT_CLIP_NORM)
        trainer.optimizer.step()


@contextlib.contextmanager
def data_loader_class(factory: Callable[..., Any]) -> Iterator[None]:
    """Within the block, nnU-Net's ``get_dataloaders`` builds its loaders with ``factory``.

    ``factory`` is called as ``nnUNetDataLoader`` would be (training loader first, then validation).
    The stock method is used unchanged (its DA-process rules, its ``dataset_class`` guard), so no
    copy of it has to follow nnU-Net's releases.
    """
    original = _trainer_module.nnUNetDataLoader
    _trainer_module.nnUNetDataLoader = factory
    try:
        yield
    finally:
        _trainer_module.nnUNetDataLoader = original
