"""``HecktorSWATrainer``: stock nnU-Net segmentation training plus stochastic weight averaging.

What changes compared with ``nnUNetTrainer``:

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
import os
from typing import Any

import torch
from batchgenerators.utilities.file_and_folder_operations import isfile, join
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from torch._dynamo import OptimizedModule

from nnunet_hecktor.checkpoints import (BEST_CHECKPOINT, CHECKPOINT_LAYOUT, EXTRA_STATE_KEY, FINAL_CHECKPOINT,
                                        LAST_ITERATE_CHECKPOINT, LEGACY_SWA_CHECKPOINT, WEIGHTS_ITERATE, WEIGHTS_SWA,
                                        weights_kind)
from nnunet_hecktor.fileio import atomic_path, write_text_atomic

from .swa import (WeightAverager, clone_state_dict, has_batchnorm_running_stats, recompute_batchnorm_statistics,
                  swa_start_epoch)


class HecktorSWATrainer(nnUNetTrainer):
    """nnU-Net segmentation training with stochastic weight averaging (SWA).

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

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self._swa: WeightAverager | None = None
        self._loaded_checkpoint: str | None = None
        self._loaded_layout: int | None = None
        #: What the network holds: ``"iterate"`` (training weights) or ``"swa"`` (the average).
        self.weights_in_use: str = WEIGHTS_ITERATE
        #: The checkpoint file the network's current weights are (or will be) stored in.
        self.weights_file: str | None = None

    # -- helpers ------------------------------------------------------------------------------
    @property
    def plain_network(self) -> torch.nn.Module:
        """The network without DDP / torch.compile wrappers."""
        mod = self.network.module if self.is_ddp else self.network
        return mod._orig_mod if isinstance(mod, OptimizedModule) else mod

    @property
    def swa(self) -> WeightAverager:
        """The running weight average (created on first use: variants set ``num_epochs`` after ``__init__``)."""
        if self._swa is None:
            self._swa = WeightAverager(swa_start_epoch(self.num_epochs, self.swa_fraction))
        return self._swa

    # -- checkpoint format --------------------------------------------------------------------
    def extra_checkpoint_state(self) -> dict[str, Any]:
        """Plugin state stored in checkpoints under ``"hecktor"``; subclasses extend the dict."""
        return {"swa": self.swa.state_dict() if self.swa_enabled else None}

    def load_extra_checkpoint_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`extra_checkpoint_state`'s output (``--c``)."""
        if self.swa_enabled and state.get("swa") is not None:
            self.swa.load_state_dict(state["swa"])

    def checkpoint_dict(self, with_average: bool) -> dict[str, Any]:
        """nnU-Net 2.8's checkpoint dictionary, plus the plugin's state under ``"hecktor"``.

        The network weights are the ones the network holds (``weights_in_use``); the SWA running
        average is included only when ``with_average`` (the checkpoints resuming needs).
        """
        extra = self.extra_checkpoint_state()
        if not with_average:
            extra["swa"] = None
        extra["weights"] = self.weights_in_use
        extra["layout"] = CHECKPOINT_LAYOUT
        return {
            # state_dict() shares storage between aliased keys, which torch.save then stores once.
            "network_weights": self.plain_network.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "grad_scaler_state": self.grad_scaler.state_dict() if self.grad_scaler is not None else None,
            "logging": self.logger.get_checkpoint(),
            "_best_ema": self._best_ema,
            "current_epoch": self.current_epoch + 1,
            "init_args": self.my_init_kwargs,
            "trainer_name": self.__class__.__name__,
            "inference_allowed_mirroring_axes": self.inference_allowed_mirroring_axes,
            EXTRA_STATE_KEY: extra,
        }

    def save_checkpoint(self, filename: str) -> None:
        if self.local_rank != 0:
            return
        if self.disable_checkpointing:
            self.print_to_log_file("No checkpoint written, checkpointing is disabled")
            return
        # Iterates carry the running average (resuming needs it), except nnU-Net's best-Dice
        # snapshot, which resuming only falls back to; the average itself never does.
        with_average = self.weights_in_use == WEIGHTS_ITERATE and os.path.basename(filename) != BEST_CHECKPOINT
        # Atomic: an interrupted save never leaves a truncated checkpoint that --c would pick up.
        with atomic_path(filename) as tmp:
            torch.save(self.checkpoint_dict(with_average), tmp)

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        # nnU-Net 2.8.1 only accepts a path here (a dict raises inside nnUNetTrainer.load_checkpoint).
        if not isinstance(filename_or_checkpoint, (str, os.PathLike)):
            raise TypeError("load_checkpoint needs the path of a checkpoint file (nnU-Net 2.8.1 cannot load a dict)")
        filename = os.fspath(filename_or_checkpoint)
        super().load_checkpoint(filename)
        # mmap: the second read of the file only touches the small extra state.
        checkpoint = torch.load(filename, map_location="cpu", weights_only=False, mmap=True)
        state = checkpoint.get(EXTRA_STATE_KEY) or {}
        self.load_extra_checkpoint_state(state)
        self._loaded_checkpoint = os.path.basename(filename)
        self._loaded_layout = state.get("layout")
        self.weights_in_use = weights_kind(state) or WEIGHTS_ITERATE
        self.weights_file = self._loaded_checkpoint
        if (self.swa_enabled and self.weights_in_use == WEIGHTS_ITERATE and state.get("swa") is None
                and self.current_epoch > self.swa.start_epoch and self.current_epoch < self.num_epochs):
            self.print_to_log_file(f"WARNING: {self._loaded_checkpoint} holds no SWA running average; averaging "
                                   f"restarts at epoch {self.current_epoch} (the average will miss epochs "
                                   f"{self.swa.start_epoch}..{self.current_epoch - 1})")

    # -- averaging ------------------------------------------------------------------------------
    def on_epoch_end(self):
        # Before nnU-Net's on_epoch_end: it may write checkpoint_latest.pth, which must
        # already contain this epoch's snapshot.
        if self.swa_enabled and self.swa.maybe_update(self.plain_network.state_dict(), self.current_epoch):
            if self.current_epoch == self.swa.start_epoch:
                self.print_to_log_file(f"SWA: averaging weights from epoch {self.swa.start_epoch} on "
                                       f"(last {self.swa_fraction:.0%} of {self.num_epochs} epochs)")
        super().on_epoch_end()

    def finalise_weights(self, kind: str) -> None:
        """Hook called with the network holding the weights about to be saved (``"iterate"`` or ``"swa"``).

        Subclasses fit inference-time buffers here (e.g. the HPV threshold).
        """

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

    def _save_at_end(self, name: str) -> None:
        self.current_epoch -= 1  # same epoch bookkeeping as nnU-Net's checkpoint_final.pth
        self.save_checkpoint(join(self.output_folder, name))
        self.current_epoch += 1

    def _log_written(self, what: str) -> None:
        if self.disable_checkpointing:
            self.print_to_log_file("SWA: checkpointing disabled, not written")
        else:
            self.print_to_log_file(f"SWA: wrote {what}")

    def on_train_end(self):
        if self.weights_in_use == WEIGHTS_SWA and self._loaded_checkpoint == FINAL_CHECKPOINT:
            # --c of a finished run: nnU-Net loaded the deployed average; redo the end of
            # training from the exact end-of-training state when it was kept.
            last_iterate = join(self.output_folder, LAST_ITERATE_CHECKPOINT)
            if isfile(last_iterate):
                self.load_checkpoint(last_iterate)
            else:
                self.print_to_log_file(f"{FINAL_CHECKPOINT} holds the SWA average already and "
                                       f"{LAST_ITERATE_CHECKPOINT} is gone: keeping it as it is")
        swa_weights = None
        if self.weights_in_use == WEIGHTS_ITERATE and self.swa_enabled and self.swa.has_average:
            # Needs the data loaders (BatchNorm case), which nnU-Net's on_train_end shuts down.
            swa_weights = self._swa_state_dict()
        if self.weights_in_use == WEIGHTS_ITERATE:
            self.finalise_weights(WEIGHTS_ITERATE)
        if swa_weights is None:
            if self.swa_enabled and self.weights_in_use == WEIGHTS_ITERATE:
                self.print_to_log_file(f"SWA: no epoch was averaged; {FINAL_CHECKPOINT} holds the last iterate")
            self.weights_file = FINAL_CHECKPOINT
            super().on_train_end()
            return
        average = f"average of {self.swa.n_averaged} epochs, {self.swa.start_epoch}..{self.swa.last_epoch}"
        if self.validate_with_swa:
            self._save_at_end(LAST_ITERATE_CHECKPOINT)
            self.plain_network.load_state_dict(swa_weights)
            self.weights_in_use = WEIGHTS_SWA
            self.finalise_weights(WEIGHTS_SWA)
            self.weights_file = FINAL_CHECKPOINT
            super().on_train_end()  # checkpoint_final.pth: the average, validated and deployed
            self._log_written(f"{FINAL_CHECKPOINT} (the SWA weights, {average}) and {LAST_ITERATE_CHECKPOINT} "
                              "(last iterate)")
        else:
            # The last iterate is validated and deployed (stock layout); the average is an extra file.
            self.weights_file = FINAL_CHECKPOINT
            super().on_train_end()
            last = clone_state_dict(self.plain_network.state_dict())
            self.plain_network.load_state_dict(swa_weights)
            self.weights_in_use = WEIGHTS_SWA
            self.finalise_weights(WEIGHTS_SWA)
            self._save_at_end(LEGACY_SWA_CHECKPOINT)
            self._log_written(f"{LEGACY_SWA_CHECKPOINT} ({average}; not deployed)")
            self.plain_network.load_state_dict(last)
            self.weights_in_use = WEIGHTS_ITERATE

    # -- validation -----------------------------------------------------------------------------
    def _use_deployed_weights_for_validation(self) -> None:
        """``--val`` of a model trained before checkpoint layout 2: validate its SWA weights, as its training did."""
        swa_file = join(self.output_folder, LEGACY_SWA_CHECKPOINT)
        if (self.swa_enabled and self.validate_with_swa and self.weights_in_use == WEIGHTS_ITERATE
                and self._loaded_checkpoint == FINAL_CHECKPOINT and self._loaded_layout is None and isfile(swa_file)):
            checkpoint = torch.load(swa_file, map_location=self.device, weights_only=False)
            self.plain_network.load_state_dict(checkpoint["network_weights"])
            self.weights_in_use = WEIGHTS_SWA
            self.weights_file = LEGACY_SWA_CHECKPOINT

    def validation_weights_description(self) -> str:
        """Human-readable name of the weights used for validation."""
        where = f" ({self.weights_file})" if self.weights_file else ""
        if self.weights_in_use == WEIGHTS_SWA:
            return f"SWA average{where}"
        if self.weights_file == BEST_CHECKPOINT:
            return f"best EMA pseudo-Dice iterate{where}"
        return f"last iterate{where}"

    def perform_actual_validation(self, save_probabilities: bool = False):
        self._use_deployed_weights_for_validation()
        description = self.validation_weights_description()
        self.print_to_log_file(f"Validation uses the weights: {description}")
        super().perform_actual_validation(save_probabilities)
        if self.local_rank == 0:
            write_text_atomic(join(self.output_folder, "validation", "weights_used.txt"), description + "\n")
