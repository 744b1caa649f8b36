"""Short and ablation variants of the plugin's trainers, in nnU-Net's naming style.

One concern per class, composed by inheritance (cf. ``nnUNetTrainer_5epochs``):

- ``*_tiny``: 2 epochs of 3 iterations and 2 validation iterations, SWA over both epochs:
  smoke tests and the CPU demo (seconds per epoch on 32^3 volumes).
- ``*_5epochs``, ``*_100epochs``, ``*_250epochs``: shorter schedules (250 iterations per epoch).
- ``HecktorMultiTaskTrainerNoClinical``: image-only heads (ablation of the clinical inputs).
- ``HecktorMultiTaskTrainerNoSWA``: no weight averaging (ablation of SWA).
- ``HecktorMultiTaskTrainerBottleneckHeads``: the original heads (MLP on pooled bottleneck features).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from nnunet_hecktor.heads import HeadConfig

from .base_trainer import HecktorTrainerBase
from .multitask_trainer import HecktorHeadsTrainer, HecktorMultiTaskTrainer
from .swa_trainer import HecktorSWATrainer

if TYPE_CHECKING:
    # The mixins sit before HecktorTrainerBase in a trainer's bases: type-check them as one.
    _Base = HecktorTrainerBase
else:
    _Base = object


class _TinySchedule(_Base):
    """Mixin: 2 epochs x 3 iterations, 2 validation iterations, SWA over all epochs."""

    swa_fraction = 1.0

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 2
        self.num_iterations_per_epoch = 3
        self.num_val_iterations_per_epoch = 2


class HecktorMultiTaskTrainer_tiny(_TinySchedule, HecktorMultiTaskTrainer):
    """Multi-task smoke-test schedule; every foreground-oversampled patch is GTVp-centred, no head TTA."""

    gtvp_centred_fraction = 1.0
    head_tta = False


class HecktorSWATrainer_tiny(_TinySchedule, HecktorSWATrainer):
    """SWA segmentation smoke-test schedule."""


def _epochs(base: type[HecktorTrainerBase], n: int) -> Callable[..., None]:
    """An ``__init__`` for a subclass of ``base`` that sets ``num_epochs`` to ``n``."""

    def __init__(self: HecktorTrainerBase, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")) -> None:
        base.__init__(self, plans, configuration, fold, dataset_json, device)
        self.num_epochs = n

    return __init__


class HecktorMultiTaskTrainer_5epochs(HecktorMultiTaskTrainer):
    __init__ = _epochs(HecktorMultiTaskTrainer, 5)


class HecktorMultiTaskTrainer_100epochs(HecktorMultiTaskTrainer):
    __init__ = _epochs(HecktorMultiTaskTrainer, 100)


class HecktorMultiTaskTrainer_250epochs(HecktorMultiTaskTrainer):
    __init__ = _epochs(HecktorMultiTaskTrainer, 250)


class HecktorSWATrainer_5epochs(HecktorSWATrainer):
    __init__ = _epochs(HecktorSWATrainer, 5)


class HecktorSWATrainer_100epochs(HecktorSWATrainer):
    __init__ = _epochs(HecktorSWATrainer, 100)


class HecktorSWATrainer_250epochs(HecktorSWATrainer):
    __init__ = _epochs(HecktorSWATrainer, 250)


class HecktorMultiTaskTrainerNoClinical(HecktorMultiTaskTrainer):
    """Image-only heads: the clinical variables are not used (ablation of the clinical inputs only).

    The default trainer's heads otherwise unchanged (linear heads on the lesion statistics), so the
    comparison with ``HecktorMultiTaskTrainer`` measures the clinical inputs and nothing else.
    """

    HEAD_CONFIG = replace(HecktorMultiTaskTrainer.HEAD_CONFIG, use_clinical=False)


class HecktorMultiTaskTrainerBottleneckHeads(HecktorMultiTaskTrainer):
    """The original heads (ablation, and the trainer that loads models trained before they changed).

    MLP heads on the bottleneck features pooled over the GTVp cells of the patch, head losses from
    the first step with weights 0.1, half of the foreground-oversampled patches GTVp-centred and
    the rest placed by nnU-Net's own rule (no node-centred patches).
    On new patients they did not beat the one-number rule nor the clinical-only models
    (``docs/evidence/learning-benchmark.md``).
    """

    HEAD_CONFIG = HeadConfig()
    head_hpv_weight = 0.1
    head_cox_weight = 0.1
    head_start_fraction = 0.0
    gtvn_centred_fraction = 0.0


class HecktorMultiTaskTrainerNoSWA(HecktorHeadsTrainer):
    """No stochastic weight averaging (ablation): the heads trainer without the SWA mixin;
    checkpoint_final.pth holds the last iterate, as in stock nnU-Net."""


class _DemoSchedule(_Base):
    """Mixin: the demo's CPU schedule (``demo_epochs`` x 50 iterations, 5 validation iterations).

    ``demo_epochs`` is a class attribute so the demo can show an epoch progress bar without
    building the trainer. Why 45 (2,250 iterations, ~7 min of a 2-core CPU): at 30 the demo's
    seeds 0 and 2 beat the 40 % SUVmax rule's GTVp by only +0.029 and +0.042 (paired intervals
    including 0) and the GTVn Dice of the fold's validation patches was still rising at the last
    epoch; at 45 seeds 0-4 all beat it (seed 4 run after the choice) and the demo stays under 12 minutes
    (docs/tutorials/demo.md).
    """

    demo_epochs = 45

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = self.demo_epochs
        self.num_iterations_per_epoch = 50
        self.num_val_iterations_per_epoch = 5


class _HalfForeground(_Base):
    """Mixin: half of the training patches are centred on foreground (nnU-Net's default: a third).

    With batch 2, one patch of every batch is centred on a lesion and the other is placed at
    random. More lesion patches than nnU-Net's default let the segmentation leave the
    all-background plateau sooner on the demo's small CPU budget; the random patches are what
    teach the network that the brain's and the salivary glands' physiological uptake is not a lesion.
    With every patch lesion-centred (the recipe before 0.3.0) the network never saw the top of the
    head: on demo seed 0, 608 of the 772 GTVn components it predicted on new patients were false,
    nearly all in the brain (median SUVmax 8.5, against 3.8 for true nodes), and GTVn F1agg fell
    below the SUV > 2.5 rule's (docs/tutorials/demo.md).
    """

    foreground_fraction = 0.5

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.oversample_foreground_percent = self.foreground_fraction


class ForegroundWeightedCE(_Base):
    """Mixin: cross-entropy weights the lesion classes ``foreground_ce_weight`` times, decaying to 1.

    Why: on a short schedule the network first predicts background everywhere (lesions are ~2 %
    of a patch's voxels) and nnU-Net's unweighted loss leaves that plateau late. With the lesion
    voxels' cross-entropy weighted 10x, the demo's GTVp pseudo Dice was 0.65 after the first
    50 iterations instead of 0.0 for the first three epochs (docs/tutorials/demo.md). The weight decays
    linearly to 1 (nnU-Net's unweighted loss) at ``foreground_ce_decay_fraction`` of the epochs:
    a weighted loss biases the network towards over-segmentation (with the decay ending at the
    last epoch, the SWA average of the last epochs over-segmented the GTVp by a median 12 %), so
    the epochs that SWA averages are trained unweighted.
    """

    #: Cross-entropy weight of every foreground class at the first epoch (background: 1).
    foreground_ce_weight: float = 10.0
    #: Share of the epochs after which the weight is back to 1.
    foreground_ce_decay_fraction: float = 0.5

    def _foreground_weights(self) -> torch.Tensor:
        progress = self.current_epoch / max(1.0, self.foreground_ce_decay_fraction * self.num_epochs)
        w = 1.0 + (self.foreground_ce_weight - 1.0) * max(0.0, 1.0 - progress)
        weights = torch.full((self.label_manager.num_segmentation_heads,), float(w), device=self.device)
        weights[0] = 1.0
        return weights

    def _cross_entropy(self):
        loss = self.loss.loss if hasattr(self.loss, "loss") else self.loss  # deep-supervision wrapper
        return loss.ce

    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        if not self.label_manager.has_regions:
            self._cross_entropy().weight = self._foreground_weights()


class SkipFoldValidation(_Base):
    """Mixin: no validation of the fold at the end of training (new patients are the test).

    For the demo and the learning benchmark, which score patients the model never saw: nnU-Net's
    sliding-window validation of the fold (with mirroring) took longer than the training itself
    on a busy 2-core machine (~2.5 min per patient), and the fold's head validation rests on too
    few patients to mean anything at these cohort sizes.
    """

    def perform_actual_validation(self, save_probabilities: bool = False):
        self.print_to_log_file(f"{type(self).__name__}: fold validation skipped (new patients are scored instead)")


class HecktorMultiTaskTrainer_demo(_DemoSchedule, _HalfForeground, ForegroundWeightedCE, SkipFoldValidation,
                                   HecktorMultiTaskTrainer):
    """The demo's recipe: the default multi-task trainer on a 45 x 50-iteration CPU schedule.

    One patch of each batch of 2 foreground-centred (on the GTVp or on a lymph node when there is
    one), the other placed at random,
    lesion cross-entropy weighted 10x decaying to 1 by half-way, SWA, no fold validation (the demo scores new
    patients) and no mirrored head passes at the end of training (as ``*_tiny``: one pass per
    patient instead of eight to choose the HPV threshold).
    """

    head_tta = False
