"""Stochastic weight averaging (SWA) of a network's weights over the last part of training.

The average is an equal-weight running mean of the weights at the end of every epoch from
``start_epoch`` on (Izmailov et al. 2018). Floating-point parameters and buffers are averaged;
integer buffers (e.g. ``num_batches_tracked``) and other non-float entries are copied from the
newest weights.

nnU-Net's plans use ``InstanceNorm`` (no running statistics), so the averaged weights can be used
as they are. Only networks with ``BatchNorm`` layers that track running statistics need those
statistics recomputed for the averaged weights: :func:`recompute_batchnorm_statistics` does that.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn


def swa_start_epoch(num_epochs: int, fraction: float) -> int:
    """First epoch (0-based) whose end-of-epoch weights enter the average.

    Parameters
    ----------
    num_epochs : int
        Total number of training epochs.
    fraction : float
        Fraction of training, counted from the end, that is averaged, in ``(0, 1]``.
        ``0.25`` with 1000 epochs averages epochs 750..999 (250 snapshots).

    Returns
    -------
    int
        ``num_epochs - ceil(fraction * num_epochs)``, at least 0 and at most ``num_epochs - 1``
        (so the last epoch is always averaged).
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"SWA fraction must be in (0, 1], got {fraction}")
    if num_epochs < 1:
        raise ValueError(f"num_epochs must be >= 1, got {num_epochs}")
    n_averaged = max(1, math.ceil(fraction * num_epochs - 1e-9))
    return max(0, num_epochs - n_averaged)


def _storage_key(tensor: torch.Tensor) -> tuple | None:
    """Identity of the memory a tensor views (``None`` for empty tensors, which share nothing)."""
    if tensor.numel() == 0:
        return None
    return (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
            tuple(tensor.stride()), tensor.dtype)


def map_state_dict(state_dict: Mapping[str, torch.Tensor],
                   fn: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, torch.Tensor]:
    """Apply ``fn`` once per distinct tensor; aliased entries of the result share one tensor.

    nnU-Net's networks register some modules twice (``conv`` and ``all_modules.0``, the encoder
    inside the decoder), so their state dicts hold several keys for one tensor. ``torch.save``
    stores such a tensor once; a per-key copy would store it once per key (and a per-key running
    mean would update it several times).
    """
    done: dict[tuple, torch.Tensor] = {}
    out = {}
    for k, v in state_dict.items():
        key = _storage_key(v)
        if key is not None and key in done:
            out[k] = done[key]
            continue
        out[k] = fn(v)
        if key is not None:
            done[key] = out[k]
    return out


def clone_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached copies of a state dict, aliases kept (see :func:`map_state_dict`)."""
    return map_state_dict(state_dict, lambda v: v.detach().clone())


class WeightAverager:
    """Running equal-weight average of state dicts, kept on the CPU in float32.

    Parameters
    ----------
    start_epoch : int
        Epochs before this one are ignored by :meth:`maybe_update`.

    Notes
    -----
    The average lives on the CPU so that it costs no accelerator memory; one copy of the
    weights (e.g. ~120 MB for a default 3d_fullres U-Net) is the price. Aliased state-dict
    entries share one averaged tensor (:func:`map_state_dict`).
    """

    def __init__(self, start_epoch: int):
        self.start_epoch = int(start_epoch)
        self.n_averaged = 0
        self.last_epoch: int | None = None
        self._average: dict[str, torch.Tensor] | None = None

    @property
    def has_average(self) -> bool:
        """Whether at least one snapshot has been averaged."""
        return self.n_averaged > 0

    @staticmethod
    def _as_average(v: torch.Tensor) -> torch.Tensor:
        v = v.detach().to("cpu", copy=True)
        return v.float() if v.is_floating_point() else v

    @torch.no_grad()
    def update(self, state_dict: Mapping[str, torch.Tensor], epoch: int) -> None:
        """Add one snapshot of the weights (the state dict of the network) to the average."""
        if self._average is None:
            self._average = map_state_dict(state_dict, self._as_average)
        else:
            if set(state_dict) != set(self._average):
                raise ValueError("SWA: the network's state dict keys changed during training")
            # Running mean: avg += (w - avg) / (n + 1); exact for equal weights and stable in fp32.
            weight = 1.0 / (self.n_averaged + 1)
            updated: set = set()
            for k, v in state_dict.items():
                avg = self._average[k]
                key = _storage_key(avg)
                if key is not None and key in updated:
                    continue  # an alias of a tensor already updated
                if key is not None:
                    updated.add(key)
                if avg.is_floating_point():
                    avg.add_(v.detach().to("cpu", torch.float32) - avg, alpha=weight)
                else:
                    avg.copy_(v.detach().to("cpu"))
        self.n_averaged += 1
        self.last_epoch = int(epoch)

    def maybe_update(self, state_dict: Mapping[str, torch.Tensor], epoch: int) -> bool:
        """Average the weights if ``epoch >= start_epoch`` and this epoch was not averaged yet.

        Returns True if the snapshot was added.
        """
        if epoch < self.start_epoch or (self.last_epoch is not None and epoch <= self.last_epoch):
            return False
        self.update(state_dict, epoch)
        return True

    def averaged_state_dict(self, like: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The averaged weights (copies; aliased entries share one tensor).

        Parameters
        ----------
        like : mapping, optional
            A state dict whose dtypes the result takes (e.g. the live network's), so that the
            averaged weights load into the network unchanged.
        """
        if self._average is None:
            raise RuntimeError("SWA: no weights have been averaged yet")
        dtypes = {k: (like[k].dtype if like is not None and k in like else v.dtype) for k, v in self._average.items()}
        keys = {id(v): k for k, v in self._average.items()}
        return map_state_dict(self._average, lambda v: v.to(dtype=dtypes[keys[id(v)]], copy=True))

    def state_dict(self) -> dict:
        """Everything needed to continue averaging after ``nnUNetv2_train --c``."""
        return {
            "start_epoch": self.start_epoch,
            "n_averaged": self.n_averaged,
            "last_epoch": self.last_epoch,
            "average": self._average,
        }

    def load_state_dict(self, state: Mapping) -> None:
        """Restore the state written by :meth:`state_dict` (copied: the source may be memory-mapped)."""
        self.start_epoch = int(state["start_epoch"])
        self.n_averaged = int(state["n_averaged"])
        self.last_epoch = None if state["last_epoch"] is None else int(state["last_epoch"])
        avg = state["average"]
        self._average = None if avg is None else map_state_dict(avg, self._as_average)


def has_batchnorm_running_stats(network: nn.Module) -> bool:
    """Whether ``network`` has BatchNorm layers with running statistics (these need recomputing)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
               for m in network.modules())


@torch.no_grad()
def recompute_batchnorm_statistics(network: nn.Module, batches: Iterable,
                                   forward: Callable[[nn.Module, Any], object]) -> int:
    """Recompute BatchNorm running statistics for averaged weights (no-op without BatchNorm).

    Parameters
    ----------
    network : nn.Module
        Network holding the averaged weights.
    batches : iterable
        Training batches (e.g. ``itertools.islice(dataloader, n)``).
    forward : callable
        ``forward(network, batch)`` runs one forward pass on a batch.

    Returns
    -------
    int
        Number of batches used (0 when the network has no BatchNorm with running statistics).
    """
    bn_layers = [m for m in network.modules()
                 if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bn_layers:
        return 0
    momenta = {m: m.momentum for m in bn_layers}
    for m in bn_layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = plain mean over the batches
    was_training = network.training
    network.train()
    n = 0
    try:
        for batch in batches:
            forward(network, batch)
            n += 1
    finally:
        for m, mom in momenta.items():
            m.momentum = mom
        network.train(was_training)
    return n
