"""Trainer variants for the learning benchmark and for the lesion-statistics heads (issue 9).

- ``HecktorMultiTaskTrainerLesionHeads``: the heads read soft lesion statistics of the network's
  own segmentation (soft GTVp/GTVn volume, PET max/mean under the soft masks, see
  :mod:`nnunet_hecktor.heads.lesion_statistics`) next to the clinical vector, instead of the pooled
  bottleneck, through linear heads (no hidden layer to memorise patients with); every foreground-oversampled
  patch is GTVp-centred (so about half the samples of a batch feed the heads) and the Cox loss weight is 1.
- ``*_benchmark``: the schedule (epochs, iterations per epoch, validation iterations) comes from
  the environment variables ``NNUNET_HECKTOR_EPOCHS``, ``NNUNET_HECKTOR_ITERATIONS`` and
  ``NNUNET_HECKTOR_VAL_ITERATIONS`` (defaults 1000 / 250 / 50, nnU-Net's own), so that
  ``benchmarks/bench_learning.py`` can give every trainer the same budget through stock
  ``nnUNetv2_train``; they skip the fold's validation (the benchmark scores new patients). The classes live in the installed package, so they pickle.
"""

from __future__ import annotations

import os

import torch

from nnunet_hecktor.heads import HeadConfig

from .multitask_trainer import HecktorMultiTaskTrainer
from .swa_trainer import HecktorSWATrainer
from .variants import SkipFoldValidation

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


class _EnvironmentSchedule(SkipFoldValidation):
    """Mixin: epochs and iterations from ``NNUNET_HECKTOR_*`` environment variables; no fold validation
    and no mirrored head passes at the end of training (the benchmark scores new patients)."""

    head_tta = False

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = _positive_int(ENV_EPOCHS, self.num_epochs)
        self.num_iterations_per_epoch = _positive_int(ENV_ITERATIONS, self.num_iterations_per_epoch)
        self.num_val_iterations_per_epoch = _positive_int(ENV_VAL_ITERATIONS, self.num_val_iterations_per_epoch)


class HecktorMultiTaskTrainerLesionHeads(HecktorMultiTaskTrainer):
    """Linear heads on soft lesion statistics of the network's own segmentation + clinical inputs.

    The head losses are off for the first ``head_start_fraction`` of the epochs: the lesion
    statistics of a network still in the all-background plateau carry little (see
    ``docs/learning-benchmark.md``), and the statistics are detached from the segmentation, so the
    heads cannot help it leave the plateau either. Afterwards the Cox loss has weight
    ``head_cox_weight`` (1: the pooled Cox gradient of one patch is already diluted by the number of
    events in the bank) and the HPV loss ``head_hpv_weight``.
    """

    HEAD_CONFIG = HeadConfig(image_input="lesion_statistics", linear=True)
    gtvp_centred_fraction = 1.0
    head_start_fraction: float = 0.3
    head_cox_weight: float = 1.0
    head_hpv_weight: float = 0.3

    def _heads_on(self) -> bool:
        return self.current_epoch >= int(self.head_start_fraction * self.num_epochs)

    # Properties shadow the base class's constants, read by train_step at every step.
    @property
    def cox_loss_weight(self) -> float:  # type: ignore[override]
        return self.head_cox_weight if self._heads_on() else 0.0

    @property
    def hpv_loss_weight(self) -> float:  # type: ignore[override]
        return self.head_hpv_weight if self._heads_on() else 0.0


class HecktorMultiTaskTrainer_benchmark(_EnvironmentSchedule, HecktorMultiTaskTrainer):
    """The default multi-task trainer with the benchmark's schedule."""


class HecktorMultiTaskTrainerLesionHeads_benchmark(_EnvironmentSchedule, HecktorMultiTaskTrainerLesionHeads):
    """The lesion-statistics heads with the benchmark's schedule."""


class HecktorSWATrainer_benchmark(_EnvironmentSchedule, HecktorSWATrainer):
    """Segmentation only (stock nnU-Net training + SWA) with the benchmark's schedule."""
