"""``HecktorTrainerBase``: what every plugin trainer adds to ``nnUNetTrainer``, and nothing else.

- **Checkpoint format.** nnU-Net 2.8's checkpoint dictionary plus the plugin's state under
  ``"hecktor"`` (:data:`~nnunet_hecktor.checkpoints.EXTRA_STATE_KEY`): which weights the file holds
  (``"iterate"`` or ``"swa"``), the checkpoint layout version, and whatever the trainer's mixins put
  there through :meth:`extra_checkpoint_state`. Saves are atomic (an interrupted save never leaves
  a truncated checkpoint that ``--c`` would pick up).
- **Loading** from a path or from a checkpoint dictionary (nnU-Net 2.8.1's own method takes a path
  only; later versions take either).
- **Weights bookkeeping**: :attr:`weights_in_use` and :attr:`weights_file`, written to
  ``validation/weights_used.txt`` so that what was validated is on record.
- **Seeded training** (:attr:`HecktorTrainerBase.training_seed`, or the environment variable
  ``NNUNET_HECKTOR_SEED``): Python's, NumPy's and torch's generators are seeded before the network is
  built, so the initialisation and, with in-process augmentation (``nnUNet_n_proc_DA=0``), the
  augmentation stream repeat. Stock nnU-Net seeds nothing.
- **Hooks for the end of training**: :meth:`finalise_weights` (fit inference-time buffers for the
  weights about to be saved), :meth:`before_final_checkpoint` / :meth:`after_final_checkpoint`
  around nnU-Net's ``checkpoint_final.pth``, and :meth:`select_validation_weights`.

Stochastic weight averaging is a mixin on top (:class:`~nnunet_hecktor.trainers.swa_trainer.SWAMixin`),
and so are the heads (:mod:`~nnunet_hecktor.trainers.multitask_trainer`): each concern composes
with the others by inheritance, nnU-Net style.
"""

from __future__ import annotations

import os
import random
import tempfile
from typing import Any

import numpy as np
import torch
from batchgenerators.utilities.file_and_folder_operations import join
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_hecktor.checkpoints import (
    BEST_CHECKPOINT,
    CHECKPOINT_LAYOUT,
    EXTRA_STATE_KEY,
    FINAL_CHECKPOINT,
    WEIGHTS_ITERATE,
    WEIGHTS_SWA,
    weights_kind,
)
from nnunet_hecktor.fileio import atomic_path, write_text_atomic
from nnunet_hecktor.nnunet_env import training_seed_from_environment

from .nnunet_seams import unwrap_network


class HecktorTrainerBase(nnUNetTrainer):
    """nnU-Net's trainer with the plugin's checkpoint format, optional seeding and end-of-training hooks.

    Class attributes
    ----------------
    training_seed : int or None
        Seed of Python's, NumPy's and torch's generators, set before the network is built (None:
        unseeded, as stock nnU-Net). ``NNUNET_HECKTOR_SEED`` in the environment overrides it.
    """

    training_seed: int | None = None
    # nnUNetTrainer's network (None until initialize(); possibly DDP- or torch.compile-wrapped), typed
    # for the plugin's code, which touches it only once initialised.
    network: torch.nn.Module
    # nnUNetTrainer's schedule, which the plugin's mixins read and override.
    num_epochs: int
    num_iterations_per_epoch: int
    num_val_iterations_per_epoch: int

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self._loaded_checkpoint: str | None = None
        self._loaded_layout: int | None = None
        #: What the network holds: ``"iterate"`` (training weights) or ``"swa"`` (the average).
        self.weights_in_use: str = WEIGHTS_ITERATE
        #: The checkpoint file the network's current weights are (or will be) stored in.
        self.weights_file: str | None = None

    @property
    def plain_network(self) -> torch.nn.Module:
        """The network without DDP / torch.compile wrappers."""
        return unwrap_network(self.network, self.is_ddp)

    def initialize(self):
        seed = training_seed_from_environment(self.training_seed)
        if seed is not None and not self.was_initialized:
            # Every rank the same seed: DDP broadcasts rank 0's initial weights anyway, and the
            # plugin's patient sampler draws per-rank streams from its own seed.
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)
            self.print_to_log_file(f"Seeded training: seed {seed} (initialisation; augmentation when nnUNet_n_proc_DA=0)")
        super().initialize()

    # -- checkpoint format --------------------------------------------------------------------
    def extra_checkpoint_state(self, for_resuming: bool = True) -> dict[str, Any]:
        """Plugin state stored in checkpoints under ``"hecktor"``; mixins extend the dict.

        ``for_resuming`` is False for checkpoints that training never resumes from (the deployed
        average, nnU-Net's best-Dice snapshot): state only resuming needs can be left out.
        """
        return {}

    def load_extra_checkpoint_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`extra_checkpoint_state`'s output (``--c``); mixins extend it."""

    def checkpoint_dict(self, for_resuming: bool) -> dict[str, Any]:
        """nnU-Net 2.8's checkpoint dictionary (mirrors ``nnUNetTrainer.save_checkpoint``, see
        :data:`~nnunet_hecktor.trainers.nnunet_seams.MIRRORED_METHODS`), plus the plugin's state.

        The network weights are the ones the network holds (:attr:`weights_in_use`).
        """
        extra = self.extra_checkpoint_state(for_resuming)
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
        # nnU-Net's best-Dice snapshot is never resumed from (only fallen back to); nor is an average.
        for_resuming = self.weights_in_use == WEIGHTS_ITERATE and os.path.basename(filename) != BEST_CHECKPOINT
        with atomic_path(filename) as tmp:
            torch.save(self.checkpoint_dict(for_resuming), tmp)

    def load_checkpoint(self, filename_or_checkpoint: str | os.PathLike | dict) -> None:
        """Load a checkpoint file, or a checkpoint dictionary (as :meth:`checkpoint_dict` returns)."""
        if isinstance(filename_or_checkpoint, dict):
            checkpoint = filename_or_checkpoint
            # nnU-Net 2.8.1's load_checkpoint reads files only: hand it the dictionary as one.
            with tempfile.TemporaryDirectory(prefix="hecktor_checkpoint_") as folder:
                path = os.path.join(folder, "checkpoint.pth")
                torch.save(checkpoint, path)
                super().load_checkpoint(path)
            name = None
        elif isinstance(filename_or_checkpoint, (str, os.PathLike)):
            path = os.fspath(filename_or_checkpoint)
            super().load_checkpoint(path)
            # mmap: the second read of the file only touches the small extra state.
            checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
            name = os.path.basename(path)
        else:
            raise TypeError(f"load_checkpoint needs a checkpoint path or dictionary, got {type(filename_or_checkpoint)}")
        state = checkpoint.get(EXTRA_STATE_KEY) or {}
        self._loaded_checkpoint = name
        self._loaded_layout = state.get("layout")
        self.weights_in_use = weights_kind(state) or WEIGHTS_ITERATE
        self.weights_file = name
        self.load_extra_checkpoint_state(state)

    # -- end of training ------------------------------------------------------------------------
    def finalise_weights(self, kind: str) -> None:
        """Hook called with the network holding the weights about to be saved (``"iterate"`` or ``"swa"``).

        Subclasses fit inference-time buffers here (e.g. the HPV threshold).
        """

    def before_final_checkpoint(self) -> None:
        """Hook before nnU-Net writes ``checkpoint_final.pth``: finalise the weights the network holds."""
        if self.weights_in_use == WEIGHTS_ITERATE:
            self.finalise_weights(WEIGHTS_ITERATE)

    def after_final_checkpoint(self) -> None:
        """Hook after ``checkpoint_final.pth`` is written (data loaders are shut down by then)."""

    def on_train_end(self):
        self.before_final_checkpoint()
        self.weights_file = FINAL_CHECKPOINT
        super().on_train_end()
        self.after_final_checkpoint()

    def save_weights_now(self, name: str) -> None:
        """Save the network's current weights as ``name`` in the fold folder, with the epoch count of
        nnU-Net's ``checkpoint_final.pth`` (used for extra end-of-training files)."""
        self.current_epoch -= 1
        try:
            self.save_checkpoint(join(self.output_folder, name))
        finally:
            self.current_epoch += 1

    # -- validation -----------------------------------------------------------------------------
    def select_validation_weights(self) -> None:
        """Hook before the fold's validation: load the weights that are to be validated (default: as they are)."""

    def validation_weights_description(self) -> str:
        """Human-readable name of the weights used for validation."""
        where = f" ({self.weights_file})" if self.weights_file else ""
        if self.weights_in_use == WEIGHTS_SWA:
            return f"SWA average{where}"
        if self.weights_file == BEST_CHECKPOINT:
            return f"best EMA pseudo-Dice iterate{where}"
        return f"last iterate{where}"

    def perform_actual_validation(self, save_probabilities: bool = False):
        self.select_validation_weights()
        description = self.validation_weights_description()
        self.print_to_log_file(f"Validation uses the weights: {description}")
        super().perform_actual_validation(save_probabilities)
        if self.local_rank == 0:
            write_text_atomic(join(self.output_folder, "validation", "weights_used.txt"), description + "\n")
