"""``HecktorSWATrainer``: stock nnU-Net segmentation training plus stochastic weight averaging.

What changes compared with ``nnUNetTrainer``:

- From epoch :func:`~nnunet_hecktor.trainers.swa.swa_start_epoch` on (the last
  ``swa_fraction`` of training), the weights at the end of every epoch enter an equal-weight
  running average.
- At the end of training, next to nnU-Net's ``checkpoint_final.pth`` (last weights), the average
  is written as ``checkpoint_swa.pth`` in nnU-Net's checkpoint format, so
  ``nnUNetv2_predict ... -chk checkpoint_swa.pth`` uses it.
- The end-of-training validation runs with the SWA weights (``validate_with_swa``), i.e. the
  weights the user deploys, and says so in the log and in ``validation/weights_used.txt``.
- ``--c`` restores the running average (it is stored in every checkpoint under ``"hecktor"``).

nnU-Net's plans use InstanceNorm, which has no running statistics: averaged weights are used as
they are. For networks with BatchNorm running statistics (e.g. ``nnUNetTrainerBN``-style plans)
the statistics are recomputed on ``swa_bn_update_batches`` training batches before saving.
The learning-rate schedule is nnU-Net's (poly), so ``checkpoint_final.pth`` is exactly what
``nnUNetTrainer`` would have produced; SWA is a pure add-on.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import torch
from batchgenerators.utilities.file_and_folder_operations import isfile, join
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from torch._dynamo import OptimizedModule

from nnunet_hecktor.fileio import atomic_path, write_text_atomic

from .swa import WeightAverager, has_batchnorm_running_stats, recompute_batchnorm_statistics, swa_start_epoch

SWA_CHECKPOINT = "checkpoint_swa.pth"
FINAL_CHECKPOINT = "checkpoint_final.pth"
#: Key of the plugin's extra state in nnU-Net checkpoints (nnU-Net ignores unknown keys).
EXTRA_STATE_KEY = "hecktor"


class HecktorSWATrainer(nnUNetTrainer):
    """nnU-Net segmentation training with stochastic weight averaging (SWA).

    Class attributes (override in a subclass, nnU-Net style)
    ---------------------------------------------------------
    swa_enabled : bool
        Average weights and write ``checkpoint_swa.pth``.
    swa_fraction : float
        Fraction of the epochs, counted from the end, whose weights are averaged (0.25:
        epochs 750-999 of 1000).
    validate_with_swa : bool
        Run the end-of-training validation with the SWA weights.
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
        #: Which weights the network holds for validation: "final", "swa", "best", ... (None = unknown)
        self.weights_in_use: str | None = None

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
        """Plugin state stored in every checkpoint under ``"hecktor"``; subclasses extend the dict."""
        return {"swa": self.swa.state_dict() if self.swa_enabled else None,
                "weights": self.weights_in_use or "last"}

    def load_extra_checkpoint_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`extra_checkpoint_state`'s output (``--c``)."""
        if self.swa_enabled and state.get("swa") is not None:
            self.swa.load_state_dict(state["swa"])

    def checkpoint_dict(self, network_weights: dict | None = None) -> dict[str, Any]:
        """nnU-Net 2.8's checkpoint dictionary, plus the plugin's state under ``"hecktor"``.

        ``network_weights`` replaces the live network's weights (used for ``checkpoint_swa.pth``).
        """
        return {
            "network_weights": self.plain_network.state_dict() if network_weights is None else network_weights,
            "optimizer_state": self.optimizer.state_dict(),
            "grad_scaler_state": self.grad_scaler.state_dict() if self.grad_scaler is not None else None,
            "logging": self.logger.get_checkpoint(),
            "_best_ema": self._best_ema,
            "current_epoch": self.current_epoch + 1,
            "init_args": self.my_init_kwargs,
            "trainer_name": self.__class__.__name__,
            "inference_allowed_mirroring_axes": self.inference_allowed_mirroring_axes,
            EXTRA_STATE_KEY: self.extra_checkpoint_state(),
        }

    def save_checkpoint(self, filename: str) -> None:
        if self.local_rank != 0:
            return
        if self.disable_checkpointing:
            self.print_to_log_file("No checkpoint written, checkpointing is disabled")
            return
        # Atomic: an interrupted save never leaves a truncated checkpoint that --c would pick up.
        with atomic_path(filename) as tmp:
            torch.save(self.checkpoint_dict(), tmp)

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        # nnU-Net 2.8.1 only accepts a path here (a dict raises inside nnUNetTrainer.load_checkpoint).
        if not isinstance(filename_or_checkpoint, (str, os.PathLike)):
            raise TypeError("load_checkpoint needs the path of a checkpoint file (nnU-Net 2.8.1 cannot load a dict)")
        filename = os.fspath(filename_or_checkpoint)
        super().load_checkpoint(filename)
        # mmap: the second read of the file only touches the small extra state.
        checkpoint = torch.load(filename, map_location="cpu", weights_only=False, mmap=True)
        self.load_extra_checkpoint_state(checkpoint.get(EXTRA_STATE_KEY) or {})
        self._loaded_checkpoint = os.path.basename(filename)
        self.weights_in_use = {FINAL_CHECKPOINT: "final", SWA_CHECKPOINT: "swa",
                               "checkpoint_best.pth": "best"}.get(self._loaded_checkpoint, self._loaded_checkpoint)

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
        """Hook called with the network holding the weights about to be saved (``"final"`` or ``"swa"``).

        Subclasses fit inference-time buffers here (e.g. the HPV threshold).
        """

    def _swa_state_dict(self) -> dict:
        """Averaged weights ready to save (BatchNorm statistics recomputed when there are any)."""
        averaged = self.swa.averaged_state_dict(like=self.plain_network.state_dict())
        if not has_batchnorm_running_stats(self.plain_network):
            return averaged
        live = {k: v.detach().clone() for k, v in self.plain_network.state_dict().items()}
        self.plain_network.load_state_dict(averaged)
        n = recompute_batchnorm_statistics(
            self.network, itertools.islice(self.dataloader_train, self.swa_bn_update_batches),
            lambda net, batch: net(batch["data"].to(self.device, non_blocking=True)))
        self.print_to_log_file(f"SWA: recomputed BatchNorm statistics on {n} training batches")
        result = {k: v.detach().clone() for k, v in self.plain_network.state_dict().items()}
        self.plain_network.load_state_dict(live)
        return result

    def on_train_end(self):
        swa_weights = None
        if self.swa_enabled and self.swa.has_average:
            # Needs the data loaders (BatchNorm case), which nnU-Net's on_train_end shuts down.
            swa_weights = self._swa_state_dict()
        self.finalise_weights("final")
        super().on_train_end()  # writes checkpoint_final.pth with the last weights
        self.weights_in_use = "final"
        if swa_weights is None:
            if self.swa_enabled:
                self.print_to_log_file("SWA: no epoch was averaged, no checkpoint_swa.pth written")
            return
        final_weights = {k: v.detach().clone() for k, v in self.plain_network.state_dict().items()}
        self.plain_network.load_state_dict(swa_weights)
        self.finalise_weights("swa")
        self.current_epoch -= 1  # same epoch bookkeeping as nnU-Net's checkpoint_final.pth
        self.save_checkpoint(join(self.output_folder, SWA_CHECKPOINT))
        self.current_epoch += 1
        self.print_to_log_file(f"SWA: wrote {SWA_CHECKPOINT} (average of {self.swa.n_averaged} epochs, "
                               f"{self.swa.start_epoch}..{self.swa.last_epoch})")
        if self.validate_with_swa:
            self.weights_in_use = "swa"
        else:
            self.plain_network.load_state_dict(final_weights)

    # -- validation -----------------------------------------------------------------------------
    def _use_deployed_weights_for_validation(self) -> None:
        """``--val`` loads checkpoint_final.pth: switch to the SWA weights when they are deployed."""
        swa_file = join(self.output_folder, SWA_CHECKPOINT)
        if (self.swa_enabled and self.validate_with_swa and self.weights_in_use == "final"
                and self._loaded_checkpoint == FINAL_CHECKPOINT and isfile(swa_file)):
            checkpoint = torch.load(swa_file, map_location=self.device, weights_only=False)
            self.plain_network.load_state_dict(checkpoint["network_weights"])
            self.weights_in_use = "swa"

    def validation_weights_description(self) -> str:
        """Human-readable name of the weights used for validation."""
        return {"swa": f"SWA average ({SWA_CHECKPOINT})", "final": f"last epoch ({FINAL_CHECKPOINT})",
                "best": "best EMA pseudo-Dice (checkpoint_best.pth)"}.get(self.weights_in_use or "",
                                                                          str(self.weights_in_use or "current"))

    def perform_actual_validation(self, save_probabilities: bool = False):
        self._use_deployed_weights_for_validation()
        description = self.validation_weights_description()
        self.print_to_log_file(f"Validation uses the weights: {description}")
        super().perform_actual_validation(save_probabilities)
        if self.local_rank == 0:
            write_text_atomic(join(self.output_folder, "validation", "weights_used.txt"), description + "\n")
