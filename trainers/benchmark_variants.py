"""Trainer variants for the learning benchmark (issue 9, ``benchmarks/bench_learning.py``).

``*_benchmark``: the schedule (epochs, iterations per epoch, validation iterations) comes from the
environment variables ``NNUNET_HECKTOR_EPOCHS``, ``NNUNET_HECKTOR_ITERATIONS`` and
``NNUNET_HECKTOR_VAL_ITERATIONS`` (defaults 1000 / 250 / 50, nnU-Net's own), so that the benchmark
can give every trainer the same budget through stock ``nnUNetv2_train``; they skip the fold's
validation and the mirrored head passes (the benchmark scores new patients). The classes live in
the installed package, so they pickle.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch

from .base_trainer import HecktorTrainerBase
from .multitask_trainer import HecktorMultiTaskTrainer
from .swa_trainer import HecktorSWATrainer
from .variants import HecktorMultiTaskTrainer_demo, HecktorMultiTaskTrainerBottleneckHeads, SkipFoldValidation

ENV_EPOCHS = "NNUNET_HECKTOR_EPOCHS"
ENV_ITERATIONS = "NNUNET_HECKTOR_ITERATIONS"
ENV_VAL_ITERATIONS = "NNUNET_HECKTOR_VAL_ITERATIONS"


def _positive_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


if TYPE_CHECKING:
    # The mixin sits before a HecktorTrainerBase trainer in the bases: type-check it as one.
    _Base = HecktorTrainerBase
else:
    _Base = object


class _EnvironmentSchedule(_Base):
    """Mixin: epochs and iterations from the ``NNUNET_HECKTOR_*`` environment variables."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = _positive_int(ENV_EPOCHS, self.num_epochs)
        self.num_iterations_per_epoch = _positive_int(ENV_ITERATIONS, self.num_iterations_per_epoch)
        self.num_val_iterations_per_epoch = _positive_int(ENV_VAL_ITERATIONS, self.num_val_iterations_per_epoch)


class _ScoredOnNewPatients(SkipFoldValidation):
    """Mixin: the benchmark scores new patients, so no fold validation and no mirrored head passes
    at the end of training."""

    head_tta = False


class HecktorMultiTaskTrainer_benchmark(_EnvironmentSchedule, _ScoredOnNewPatients, HecktorMultiTaskTrainer):
    """The default multi-task trainer (lesion-statistics heads) with the benchmark's schedule."""


class HecktorMultiTaskTrainerBottleneckHeads_benchmark(_EnvironmentSchedule, _ScoredOnNewPatients,
                                                       HecktorMultiTaskTrainerBottleneckHeads):
    """The original (bottleneck) heads with the benchmark's schedule."""


class HecktorSWATrainer_benchmark(_EnvironmentSchedule, _ScoredOnNewPatients, HecktorSWATrainer):
    """Segmentation only (stock nnU-Net training + SWA) with the benchmark's schedule."""


class HecktorMultiTaskTrainer_demo_benchmark(_EnvironmentSchedule, HecktorMultiTaskTrainer_demo):
    """The demo's recipe (half lesion-centred patches, decaying lesion weight, SWA) with the schedule
    from the environment: how the recipe scales with iterations, measured at one budget per run."""
