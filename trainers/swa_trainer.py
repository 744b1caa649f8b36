"""Stochastic weight averaging: :class:`SWAMixin`, and ``HecktorSWATrainer`` (stock segmentation + SWA).

What the mixin changes in a plugin trainer (:class:`~nnunet_hecktor.trainers.base_trainer.HecktorTrainerBase`):

- From epoch :func:`~nnunet_hecktor.trainers.swa.swa_start_epoch` on (the last
  ``swa_fraction`` of training), the weights at the end of every epoch enter an equal-weight
  running average.
- At the end of training the average is validated and written as ``checkpoint_final.pth``
  (``validate_with_swa``, default): what was validated is what ``nnUNetv2_predict``,
  ``find_best_configuration``, ``export_model_to_zip`` and the plugin's commands deploy by
  default. The last-iterate weights (stock nnU-Net's ``checkpoint_final.pth``) are kept as
  ``checkpoint_final_last_iterate.pth`` with the running average, which is what ``--c`` needs to
  redo the end of training exactly. File names: :mod:`nnunet_hecktor.checkpoints`.
- ``--c`` restores the running average (stored once, in ``checkpoint_latest.pth`` and
  ``checkpoint_final_last_iterate.pth``, under ``"hecktor"``).

nnU-Net's plans use InstanceNorm, which has no running statistics: averaged weights are used as
they are. For networks with BatchNorm running statistics (e.g. ``nnUNetTrainerBN``-style plans)
the statistics are recomputed on ``swa_bn_update_batches`` training batches before saving.
The learning-rate schedule is nnU-Net's (poly), so ``checkpoint_final_last_iterate.pth`` is exactly
what ``nnUNetTrainer`` would have written as ``checkpoint_final.pth``; SWA is a pure add-on.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import torch
from batchgenerators.utilities.file_and_folder_operations import isfile, join

from nnunet_hecktor.checkpoints import (
    FINAL_CHECKPOINT,
    LAST_ITERATE_CHECKPOINT,
    LEGACY_SWA_CHECKPOINT,
    WEIGHTS_ITERATE,
    WEIGHTS_SWA,
)

from .base_trainer import HecktorTrainerBase
from .swa import (
    WeightAverager,
    clone_state_dict,
    has_batchnorm_running_stats,
    recompute_batchnorm_statistics,
    swa_start_epoch,
)

if TYPE_CHECKING:
    # The mixin sits before HecktorTrainerBase in a trainer's bases: type-check it as one.
    _Base = HecktorTrainerBase
else:
    _Base = object


class SWAMixin(_Base):
    """Stochastic weight averaging for a :class:`~nnunet_hecktor.trainers.base_trainer.HecktorTrainerBase` trainer.

    Put it first among the bases (``class T(SWAMixin, HecktorTrainerBase)``): its hooks call ``super()``.

    Class attributes (override in a subclass, nnU-Net style)
    ---------------------------------------------------------
    swa_enabled : bool
        Average the weights over the last ``swa_fraction`` of training.
    swa_fraction : float
        Fraction of the epochs, counted from the end, whose weights are averaged (0.25:
        epochs 750-999 of 1000).
    validate_with_swa : bool
        The SWA average is validated and written as ``checkpoint_final.pth`` (the deployed
        weights); the last iterate goes to ``checkpoint_final_last_iterate.pth``. False: the last
        iterate is validated and deployed (stock layout) and the average is an extra
        ``checkpoint_swa.pth``.
    swa_bn_update_batches : int
        Training batches used to recompute BatchNorm running statistics (only networks with
        BatchNorm; nnU-Net's default InstanceNorm needs none).
    """

    swa_enabled: bool = True
    swa_fraction: float = 0.25
    validate_with_swa: bool = True
    swa_bn_update_batches: int = 50

    _swa: WeightAverager | None = None
    _pending_swa_weights: dict | None = None

    @property
    def swa(self) -> WeightAverager:
        """The running weight average (created on first use: variants set ``num_epochs`` after ``__init__``)."""
        if self._swa is None:
            self._swa = WeightAverager(swa_start_epoch(self.num_epochs, self.swa_fraction))
        return self._swa

    # -- checkpoint state -------------------------------------------------------------------------
    def extra_checkpoint_state(self, for_resuming: bool = True) -> dict[str, Any]:
        state = super().extra_checkpoint_state(for_resuming)
        # Only iterates that training resumes from carry the running average.
        state["swa"] = self.swa.state_dict() if (self.swa_enabled and for_resuming) else None
        return state

    def load_extra_checkpoint_state(self, state: dict[str, Any]) -> None:
        super().load_extra_checkpoint_state(state)
        if self.swa_enabled and state.get("swa") is not None:
            self.swa.load_state_dict(state["swa"])
        elif (self.swa_enabled and self.weights_in_use == WEIGHTS_ITERATE and state.get("swa") is None
                and self.swa.start_epoch < self.current_epoch < self.num_epochs):
            self.print_to_log_file(f"WARNING: {self._loaded_checkpoint or 'the checkpoint'} holds no SWA running "
                                   f"average; averaging restarts at epoch {self.current_epoch} (the average will "
                                   f"miss epochs {self.swa.start_epoch}..{self.current_epoch - 1})")

    # -- averaging ----------------------------------------------------------------------------------
    def on_epoch_end(self):
        # Before nnU-Net's on_epoch_end: it may write checkpoint_latest.pth, which must
        # already contain this epoch's snapshot.
        if self.swa_enabled and self.swa.maybe_update(self.plain_network.state_dict(), self.current_epoch):
            if self.current_epoch == self.swa.start_epoch:
                self.print_to_log_file(f"SWA: averaging weights from epoch {self.swa.start_epoch} on "
                                       f"(last {self.swa_fraction:.0%} of {self.num_epochs} epochs)")
        super().on_epoch_end()

    def _swa_state_dict(self) -> dict:
        """Averaged weights ready to save (BatchNorm statistics recomputed when there are any)."""
        averaged = self.swa.averaged_state_dict(like=self.plain_network.state_dict())
        if not has_batchnorm_running_stats(self.plain_network):
            return averaged
        live = clone_state_dict(self.plain_network.state_dict())
        self.plain_network.load_state_dict(averaged)
        n = recompute_batchnorm_statistics(
            self.network, itertools.islice(self.dataloader_train, self.swa_bn_update_batches),
            lambda net, batch: net(batch["data"].to(self.device, non_blocking=True)))
        self.print_to_log_file(f"SWA: recomputed BatchNorm statistics on {n} training batches")
        result = clone_state_dict(self.plain_network.state_dict())
        self.plain_network.load_state_dict(live)
        return result

    def _log_written(self, what: str) -> None:
        if self.disable_checkpointing:
            self.print_to_log_file("SWA: checkpointing disabled, not written")
        else:
            self.print_to_log_file(f"SWA: wrote {what}")

    def _average_description(self) -> str:
        return f"average of {self.swa.n_averaged} epochs, {self.swa.start_epoch}..{self.swa.last_epoch}"

    def before_final_checkpoint(self) -> None:
        if self.weights_in_use == WEIGHTS_SWA and self._loaded_checkpoint == FINAL_CHECKPOINT:
            # --c of a finished run: nnU-Net loaded the deployed average; redo the end of
            # training from the exact end-of-training state when it was kept.
            last_iterate = join(self.output_folder, LAST_ITERATE_CHECKPOINT)
            if isfile(last_iterate):
                self.load_checkpoint(last_iterate)
            else:
                self.print_to_log_file(f"{FINAL_CHECKPOINT} holds the SWA average already and "
                                       f"{LAST_ITERATE_CHECKPOINT} is gone: keeping it as it is")
        self._pending_swa_weights = None
        if self.weights_in_use == WEIGHTS_ITERATE and self.swa_enabled and self.swa.has_average:
            # Needs the data loaders (BatchNorm case), which nnU-Net's on_train_end shuts down.
            self._pending_swa_weights = self._swa_state_dict()
        super().before_final_checkpoint()  # finalises the last iterate
        if self._pending_swa_weights is None:
            if self.swa_enabled and self.weights_in_use == WEIGHTS_ITERATE:
                self.print_to_log_file(f"SWA: no epoch was averaged; {FINAL_CHECKPOINT} holds the last iterate")
            return
        if self.validate_with_swa:
            # checkpoint_final.pth will hold the average (validated and deployed); keep the last iterate.
            self.save_weights_now(LAST_ITERATE_CHECKPOINT)
            self.plain_network.load_state_dict(self._pending_swa_weights)
            self.weights_in_use = WEIGHTS_SWA
            self.finalise_weights(WEIGHTS_SWA)

    def after_final_checkpoint(self) -> None:
        super().after_final_checkpoint()
        swa_weights, self._pending_swa_weights = self._pending_swa_weights, None
        if swa_weights is None:
            return
        if self.validate_with_swa:
            self._log_written(f"{FINAL_CHECKPOINT} (the SWA weights, {self._average_description()}) and "
                              f"{LAST_ITERATE_CHECKPOINT} (last iterate)")
            return
        # The last iterate was validated and deployed (stock layout); the average is an extra file.
        last = clone_state_dict(self.plain_network.state_dict())
        self.plain_network.load_state_dict(swa_weights)
        self.weights_in_use = WEIGHTS_SWA
        self.finalise_weights(WEIGHTS_SWA)
        self.save_weights_now(LEGACY_SWA_CHECKPOINT)
        self._log_written(f"{LEGACY_SWA_CHECKPOINT} ({self._average_description()}; not deployed)")
        self.plain_network.load_state_dict(last)
        self.weights_in_use = WEIGHTS_ITERATE

    # -- validation ---------------------------------------------------------------------------------
    def select_validation_weights(self) -> None:
        """``--val`` of a model trained before checkpoint layout 2: validate its SWA weights, as its training did."""
        super().select_validation_weights()
        swa_file = join(self.output_folder, LEGACY_SWA_CHECKPOINT)
        if (self.swa_enabled and self.validate_with_swa and self.weights_in_use == WEIGHTS_ITERATE
                and self._loaded_checkpoint == FINAL_CHECKPOINT and self._loaded_layout is None and isfile(swa_file)):
            checkpoint = torch.load(swa_file, map_location=self.device, weights_only=False)
            self.plain_network.load_state_dict(checkpoint["network_weights"])
            self.weights_in_use = WEIGHTS_SWA
            self.weights_file = LEGACY_SWA_CHECKPOINT

    # The name the tests and older callers use for the legacy selection.
    _use_deployed_weights_for_validation = select_validation_weights


class HecktorSWATrainer(SWAMixin, HecktorTrainerBase):
    """nnU-Net segmentation training with stochastic weight averaging (SWA): :class:`SWAMixin` on the base trainer."""
