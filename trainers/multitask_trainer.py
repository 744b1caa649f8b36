"""``HecktorMultiTaskTrainer``: segmentation + HPV head + Cox head (+ SWA), trained by ``nnUNetv2_train``.

Per training step, in one forward pass of the network (``network(x, with_heads=True, ...)``):

- segmentation: nnU-Net's Dice + CE with deep supervision, unchanged;
- HPV: class-weighted binary cross-entropy (unknown HPV masked);
- recurrence-free survival: Breslow Cox partial likelihood over a pooled bank of recent detached
  risks plus the current batch (risks all-gathered across DDP ranks with gradients first).

``loss = seg + hpv_loss_weight * hpv + cox_loss_weight * cox`` (both 0 for the first
``head_start_fraction`` of the epochs).

Patient-level labels and patches: only the GTVp-centred samples of a batch (see
:mod:`nnunet_hecktor.trainers.sampling`) whose augmented patch still contains GTVp voxels feed
the head losses; the heads pool their features over the patch's GTVp. Every other sample still
runs through the heads with weight 0, so every head parameter gets a gradient every step (DDP
with ``find_unused_parameters=False``).

Patient data: ``clinical.csv`` (see :mod:`nnunet_hecktor.trainers.patient_data`); the clinical
encoder's statistics are fitted on the training fold only and stored as network buffers.

At the end of training the HPV decision threshold is set by the package's threshold policy
(:func:`nnunet_hecktor.metrics.classification.choose_threshold`: the prevalence the head's
probabilities are calibrated to, 0.5 with class-balanced loss weights) for each saved set of
weights and stored in the checkpoint; then the fold's validation patients are evaluated on whole
volumes (:func:`~nnunet_hecktor.heads.inference.predict_heads`) and written to
``validation_heads.json`` / ``validation_heads.csv``.

Every configuration nnU-Net plans works: ``2d`` (heads on slices, combined per patient as
described in :mod:`nnunet_hecktor.heads.inference`), ``3d_fullres``, ``3d_lowres`` and
``3d_cascade_fullres`` (the previous stage's segmentation enters the network as one-hot channels,
in training as in the end-of-training evaluation).

Multi-GPU (``-num_gpus N``): the patient sampler is seeded per rank, and the end-of-training
work (heads on every training case for each saved set of weights, segmentation and heads of every
validation case) is split across the ranks, which then exchange their rows in one
``all_gather_object``: no rank waits in a collective while another works through the whole fold.
"""

from __future__ import annotations

import warnings
from typing import Any, List, cast

import numpy as np
import torch
from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter
from torch import distributed as dist

from nnunet_hecktor import schema
from nnunet_hecktor.heads import (
    HeadConfig,
    HPVLoss,
    RiskBank,
    build_multitask_network,
    cox_partial_likelihood_loss,
    gather_patient_outputs,
)
from nnunet_hecktor.heads.inference import predict_heads
from nnunet_hecktor.heads.multitask_network import HecktorMultiTaskNetwork
from nnunet_hecktor.metrics.classification import choose_threshold

from .base_trainer import HecktorTrainerBase
from .head_metrics import hpv_metrics, mean_per_patient, survival_metrics, write_validation_heads
from .nnunet_seams import data_loader_class, log_store, optimizer_step, training_autocast
from .patient_data import PatientTable, effective_hpv_prevalence, hpv_sampling_weights, load_patient_table
from .progress_plot import HEAD_LOG_KEYS, plot_head_progress
from .sampling import HecktorDataLoader
from .swa_trainer import SWAMixin


class _PrecomputedOutput:
    """Stands in for the network inside nnU-Net's ``validation_step``.

    The multi-task forward already produced the segmentation output; nnU-Net's pseudo-Dice
    code then runs on it unchanged instead of a second forward pass.
    """

    def __init__(self, output):
        self.output = output

    def __call__(self, *args, **kwargs):
        return self.output


def _all_gather_lists(values: list, is_ddp: bool) -> list:
    if not is_ddp:
        return values
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, values)
    return [v for part in gathered for v in part]


def _rank_and_world(is_ddp: bool) -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if is_ddp else (0, 1)


def shard(keys: list[str], is_ddp: bool) -> list[str]:
    """This rank's share of ``keys`` (every ``world_size``-th key, as nnU-Net's own validation)."""
    rank, world = _rank_and_world(is_ddp)
    return list(keys[rank::world])


def gather_rows(rows: list[dict], keys: list[str], is_ddp: bool) -> list[dict]:
    """Rows (each with ``PatientID``) of all ranks, in the order of ``keys``, on every rank."""
    by_key = {r["PatientID"]: r for r in _all_gather_lists(rows, is_ddp)}
    return [by_key[k] for k in keys]


class HecktorHeadsTrainer(HecktorTrainerBase):
    """nnU-Net trainer for GTVp/GTVn segmentation, HPV status and recurrence risk (the heads, no SWA).

    :class:`HecktorMultiTaskTrainer` is this trainer with stochastic weight averaging
    (:class:`~nnunet_hecktor.trainers.swa_trainer.SWAMixin`); use it unless you ablate SWA.

    Class attributes (override in a subclass, nnU-Net style)
    ---------------------------------------------------------
    HEAD_CONFIG : HeadConfig
        What the heads read and how big they are (read by the static network builder, so it
        must be a class constant: prediction rebuilds the network from it). Default: linear heads
        on the soft lesion statistics of the network's own segmentation plus the clinical vector
        (the design the learning benchmark chose, ``docs/evidence/learning-benchmark.md``).
    head_hpv_weight, head_cox_weight : float
        Weights of the head losses next to nnU-Net's segmentation loss (~1 at the start), once
        the heads are on (``hpv_loss_weight`` / ``cox_loss_weight`` give the weights in force).
    head_start_fraction : float
        Share of the epochs before the head losses are switched on: lesion statistics of a
        network still in the all-background plateau carry nothing, and the statistics are
        detached, so the heads could not help the segmentation leave it either.
    hpv_sampling_power : float
        0 = uniform patient sampling, 1 = both HPV classes drawn equally often (see
        :func:`~nnunet_hecktor.trainers.patient_data.hpv_sampling_weights`).
    hpv_loss_weighting : {"balanced", "pos_weight", "none"}
        Class weighting of the BCE, computed from the *sampled* HPV prevalence so that
        sampling and weighting together balance the classes.
    gtvp_centred_fraction : float
        Probability that a foreground-oversampled patch is GTVp-centred (these feed the heads).
    gtvn_centred_fraction : float
        Probability that any other foreground-oversampled patch is centred on a lymph node
        (when the case has one), so that the network sees enough nodes to learn them.
    centre_jitter : float
        Jitter of GTVp-centred patches, fraction of the patch size per axis.
    risk_bank_capacity : int
        Detached past risks pooled with the batch in the Cox loss.
    cox_ranking_weight : float
        Optional pairwise ranking term added to the Cox loss (0 = off).
    head_tta : bool
        Average the heads over mirrored patches at the end-of-training evaluation.
    head_validation_mirroring : bool
        Mirroring for the sliding-window segmentation that places the validation head patch.
    sampler_seed : int
        Seed of the patient sampler.
    """

    HEAD_CONFIG: HeadConfig = HeadConfig(image_input="lesion_statistics", linear=True)
    # Cox weight 1: the pooled Cox gradient of one patch is already diluted by the number of
    # events in the bank (docs/evidence/learning-benchmark.md, hypotheses 1-2).
    head_hpv_weight: float = 0.3
    head_cox_weight: float = 1.0
    head_start_fraction: float = 0.3
    hpv_sampling_power: float = 0.5
    hpv_loss_weighting: str = "balanced"
    # Half of the foreground-oversampled patches are GTVp-centred (they feed the heads), the
    # other half centred on a lymph node when the case has one: nnU-Net's own balance between
    # the two classes, which GTVp-centring alone had tipped to 3:1 (and nodes then went unlearned
    # on short schedules, docs/tutorials/demo.md).
    gtvp_centred_fraction: float = 0.5
    gtvn_centred_fraction: float = 1.0
    centre_jitter: float = 0.1
    risk_bank_capacity: int = 256
    cox_ranking_weight: float = 0.0
    head_tta: bool = True
    head_validation_mirroring: bool = False
    sampler_seed: int = 12345

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        log = log_store(self)
        for key in HEAD_LOG_KEYS:
            log.setdefault(key, [])
        self.patients: PatientTable | None = None
        self.clinical_table_path: str | None = None
        self._encoded_clinical: torch.Tensor | None = None
        self._train_keys: list[str] = []
        self._val_keys: list[str] = []
        self.hpv_loss: HPVLoss | None = None
        self.risk_bank = RiskBank(self.risk_bank_capacity, ranking_weight=self.cox_ranking_weight)
        self._restarts = 0
        self._saved_sampler_state: dict | None = None

    # -- head loss schedule -----------------------------------------------------------------------
    def heads_on(self) -> bool:
        """True once the head losses count (after ``head_start_fraction`` of the epochs)."""
        return self.current_epoch >= int(self.head_start_fraction * self.num_epochs)

    @property
    def hpv_loss_weight(self) -> float:
        """Weight of the HPV loss at the current epoch (0 before the heads are on)."""
        return self.head_hpv_weight if self.heads_on() else 0.0

    @property
    def cox_loss_weight(self) -> float:
        """Weight of the Cox loss at the current epoch (0 before the heads are on)."""
        return self.head_cox_weight if self.heads_on() else 0.0

    # -- network --------------------------------------------------------------------------------
    @property
    def multitask_network(self) -> HecktorMultiTaskNetwork:
        """:attr:`plain_network`, which :meth:`build_network_architecture` built as a multi-task network."""
        return cast(HecktorMultiTaskNetwork, self.plain_network)

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True):
        # A classmethod (nnU-Net calls it on the class with the same arguments) so that
        # variants change the heads through their HEAD_CONFIG constant.
        return build_multitask_network(plans_manager, configuration_manager, num_input_channels,
                                       num_output_channels, enable_deep_supervision, head_config=cls.HEAD_CONFIG)

    # -- patient data ---------------------------------------------------------------------------
    def setup_patient_data(self) -> None:
        """Read the clinical table, fit the clinical encoder on the training fold, set up the HPV loss."""
        self._train_keys, self._val_keys = (list(map(str, k)) for k in self.do_split())
        all_keys = sorted(set(self._train_keys) | set(self._val_keys))
        self.patients, path = load_patient_table(self.plans_manager.dataset_name, all_keys)
        self.clinical_table_path = str(path)
        training = self.patients.index_of(self._train_keys)
        encoder = self.multitask_network.clinical_encoder
        encoder.fit([self.patients.records[i] for i in training])
        self._encoded_clinical = encoder.encode(self.patients.records).to(self.device)
        weights = hpv_sampling_weights(self.patients.hpv[training], self.hpv_sampling_power)
        self._patient_weights = {self._train_keys[j]: float(w) for j, w in enumerate(weights)}
        prevalence = effective_hpv_prevalence(self.patients.hpv[training], weights)
        self.hpv_loss = HPVLoss(prevalence, self.hpv_loss_weighting)
        self.print_to_log_file(f"Clinical table: {path}")
        self.print_to_log_file(f"Patients: {self.patients.summary()}")
        if self.patients.without_row:
            self.print_to_log_file(f"WARNING: {len(self.patients.without_row)} case(s) have no row in {path} "
                                   f"(all clinical inputs and targets unknown): {', '.join(self.patients.without_row[:20])}")
        self.print_to_log_file(f"HPV: sampling power {self.hpv_sampling_power}, sampled prevalence "
                               f"{prevalence if prevalence is None else round(prevalence, 3)}, loss {self.hpv_loss}")

    def on_train_start(self):
        if not self.was_initialized:
            self.initialize()
        # Before nnU-Net's on_train_start: its get_dataloaders needs the sampling weights.
        self.setup_patient_data()
        super().on_train_start()

    # -- data loading ---------------------------------------------------------------------------
    def get_dataloaders(self):
        """nnU-Net's own data pipeline, with :class:`HecktorDataLoader` in place of ``nnUNetDataLoader``.

        The training loader draws patients with the HPV sampling weights and its own seeded stream;
        the validation loader draws uniformly from a second stream (seed + 1).
        """
        rank = _rank_and_world(self.is_ddp)[0]
        made: list[HecktorDataLoader] = []

        def make_loader(data, batch_size, patch_size, final_patch_size, label_manager, **kwargs):
            training = not made  # nnU-Net builds the training loader first
            loader = HecktorDataLoader(
                data, batch_size, patch_size, final_patch_size, label_manager, **kwargs,
                gtvp_centred_fraction=self.gtvp_centred_fraction, centre_jitter=self.centre_jitter,
                gtvn_centred_fraction=self.gtvn_centred_fraction, gtvp_label=schema.GTVP, gtvn_label=schema.GTVN,
                patient_weights=self._patient_weights if training else None,
                seed=self.sampler_seed if training else self.sampler_seed + 1, restart=self._restarts, rank=rank)
            made.append(loader)
            return loader

        with data_loader_class(make_loader):
            gen_tr, gen_val = super().get_dataloaders()
        if isinstance(gen_tr, SingleThreadedAugmenter) and self._saved_sampler_state is not None:
            # After nnU-Net's warm-up batch, so the resumed stream continues exactly where the
            # checkpoint left it (with DA worker processes a fresh stream per restart is used).
            made[0].load_sampler_state(self._saved_sampler_state)
        return gen_tr, gen_val

    def _in_process_loader(self) -> HecktorDataLoader | None:
        gen = self.dataloader_train
        return gen.data_loader if isinstance(gen, SingleThreadedAugmenter) else None

    # -- per-batch head inputs --------------------------------------------------------------------
    def head_inputs(self, batch: dict) -> dict[str, Any]:
        """Clinical vectors, masked targets and the GTVp pooling mask of a batch.

        A sample feeds the head losses when its patch was GTVp-centred by the loader and still
        holds GTVp voxels after augmentation; for the others HPV/RFS/Relapse are set to NaN
        (masked), so they still pass through the heads (gradient 0) but do not count.
        """
        # Set up by setup_patient_data (on_train_start) before any batch.
        assert self.patients is not None and self._encoded_clinical is not None
        keys = [str(k) for k in batch["keys"]]
        index = self.patients.index_of(keys)
        target = batch["target"][0] if isinstance(batch["target"], list) else batch["target"]
        gtvp = (target[:, :1] == schema.GTVP)
        has_gtvp = gtvp.flatten(1).any(dim=1).numpy()
        centred = np.asarray(batch.get("tumour_centred", np.zeros(len(keys), bool)), dtype=bool)
        eligible = centred & has_gtvp
        hpv = np.where(eligible, self.patients.hpv[index], np.nan)
        rfs = np.where(eligible, self.patients.rfs[index], np.nan)
        relapse = np.where(eligible, self.patients.relapse[index], np.nan)
        device = self.device
        return {
            "keys": keys,
            "index": torch.as_tensor(index, device=device),
            "eligible": eligible,
            "clinical": self._encoded_clinical[torch.as_tensor(index, device=self._encoded_clinical.device)],
            "pool_mask": gtvp.to(device, non_blocking=True, dtype=torch.float32),
            "hpv": torch.as_tensor(hpv, dtype=torch.float32, device=device),
            "rfs": torch.as_tensor(rfs, dtype=torch.float32, device=device),
            "relapse": torch.as_tensor(relapse, dtype=torch.float32, device=device),
        }

    def forward_with_heads(self, data: torch.Tensor, heads: dict):
        """One pass through the (possibly DDP-wrapped / compiled) network: ``(seg, hpv_logit, risk)``."""
        # Through self.network, not .module.forward_with_heads: DDP synchronises gradients only
        # for calls through its own forward.
        return self.network(data, with_heads=True, clinical=heads["clinical"], pool_mask=heads["pool_mask"])

    @staticmethod
    def _head_outputs(heads: dict, hpv_logit: torch.Tensor, risk: torch.Tensor) -> dict[str, list]:
        """Per-sample values of the eligible samples, for the running epoch metrics."""
        keep = heads["eligible"]
        prob = torch.sigmoid(hpv_logit.detach().float()).cpu().numpy()[keep]
        return {
            "head_patients": [k for k, e in zip(heads["keys"], keep) if e],
            "head_hpv_probability": prob.tolist(),
            "head_risk": risk.detach().float().cpu().numpy()[keep].tolist(),
            "head_hpv": heads["hpv"].cpu().numpy()[keep].tolist(),
            "head_rfs": heads["rfs"].cpu().numpy()[keep].tolist(),
            "head_relapse": heads["relapse"].cpu().numpy()[keep].tolist(),
        }

    # -- training ---------------------------------------------------------------------------------
    def train_step(self, batch: dict) -> dict:
        heads = self.head_inputs(batch)
        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"]
        target = [t.to(self.device, non_blocking=True) for t in target] if isinstance(target, list) \
            else target.to(self.device, non_blocking=True)

        self.optimizer.zero_grad(set_to_none=True)
        # Autocast on CUDA only, as nnU-Net (slow on CPU); the heads force fp32 internally.
        with training_autocast(self.device):
            seg, hpv_logit, risk = self.forward_with_heads(data, heads)
            seg_loss = self.loss(seg, target)
        assert self.hpv_loss is not None  # set up by setup_patient_data (on_train_start)
        hpv_loss = self.hpv_loss(hpv_logit, heads["hpv"])
        # Risks of all ranks, with gradients; identical pooled loss on every rank keeps the
        # banks identical, and all_gather's backward + DDP's averaging give the union gradient.
        risk_all, rfs_all, relapse_all, index_all = gather_patient_outputs(
            risk, heads["rfs"], heads["relapse"], heads["index"])
        cox_loss = self.risk_bank.pooled_loss(risk_all, rfs_all, relapse_all, index_all)
        loss = seg_loss + self.hpv_loss_weight * hpv_loss + self.cox_loss_weight * cox_loss

        optimizer_step(self, loss)
        # 'loss' stays the segmentation loss so nnU-Net's progress.png compares like with like
        # (its validation loss is the segmentation loss); the heads go to progress_heads.png.
        return {"loss": seg_loss.detach().cpu().numpy(), "total_loss": float(loss.detach()),
                "hpv_loss": float(hpv_loss.detach()), "cox_loss": float(cox_loss.detach()),
                **self._head_outputs(heads, hpv_logit, risk)}

    def _epoch_head_metrics(self, outputs: List[dict]) -> dict[str, float]:
        """Per-patient HPV AUC, balanced accuracy (p >= 0.5), C-index and pooled Cox loss of an epoch."""
        lists = {k: _all_gather_lists([v for o in outputs for v in o[k]], self.is_ddp)
                 for k in ("head_patients", "head_hpv_probability", "head_risk", "head_hpv", "head_rfs",
                           "head_relapse")}
        if not lists["head_patients"]:
            return {"hpv_auc": np.nan, "hpv_balanced_accuracy": np.nan, "c_index": np.nan, "cox_loss": np.nan,
                    "n": 0}
        patients, (prob, risk, hpv, rfs, relapse) = mean_per_patient(
            lists["head_patients"], lists["head_hpv_probability"], lists["head_risk"], lists["head_hpv"],
            lists["head_rfs"], lists["head_relapse"])
        hpv_m = hpv_metrics(hpv, prob, 0.5)
        surv = survival_metrics(rfs, relapse, risk)
        cox = float(cox_partial_likelihood_loss(torch.as_tensor(risk, dtype=torch.float64),
                                                torch.as_tensor(rfs), torch.as_tensor(relapse))) \
            if surv["n_events"] > 0 else np.nan
        return {"hpv_auc": hpv_m["auc"], "hpv_balanced_accuracy": hpv_m["balanced_accuracy"],
                "c_index": surv["c_index"], "cox_loss": cox, "n": len(lists["head_patients"])}

    def _mean_over_ranks(self, values: list) -> float:
        values = _all_gather_lists([float(v) for v in values], self.is_ddp)
        return float(np.mean(values)) if values else float("nan")

    def on_train_epoch_end(self, train_outputs: List[dict]):
        super().on_train_epoch_end(train_outputs)
        metrics = self._epoch_head_metrics(train_outputs)
        epoch = self.current_epoch
        self.logger.log("train_total_losses", self._mean_over_ranks([o["total_loss"] for o in train_outputs]), epoch)
        self.logger.log("train_hpv_losses", self._mean_over_ranks([o["hpv_loss"] for o in train_outputs]), epoch)
        self.logger.log("train_cox_losses", self._mean_over_ranks([o["cox_loss"] for o in train_outputs]), epoch)
        self.logger.log("train_hpv_auc", metrics["hpv_auc"], epoch)
        self.logger.log("train_c_index", metrics["c_index"], epoch)
        self.logger.log("train_head_samples", metrics["n"], epoch)

    # -- validation (patches, every epoch) ------------------------------------------------------------
    def validation_step(self, batch: dict) -> dict:
        heads = self.head_inputs(batch)
        data = batch["data"].to(self.device, non_blocking=True)
        with training_autocast(self.device):
            seg, hpv_logit, risk = self.forward_with_heads(data, heads)
        # A stand-in that nnU-Net's validation_step only calls (see _PrecomputedOutput).
        network, self.network = self.network, _PrecomputedOutput(seg)  # type: ignore[assignment]
        try:
            result = super().validation_step(batch)
        finally:
            self.network = network
        assert self.hpv_loss is not None  # set up by setup_patient_data (on_train_start)
        result["hpv_loss"] = float(self.hpv_loss(hpv_logit, heads["hpv"]))
        result.update(self._head_outputs(heads, hpv_logit, risk))
        return result

    def on_validation_epoch_end(self, val_outputs: List[dict]):
        seg_outputs = [{k: v for k, v in o.items() if k in ("loss", "tp_hard", "fp_hard", "fn_hard")}
                       for o in val_outputs]
        super().on_validation_epoch_end(seg_outputs)
        metrics = self._epoch_head_metrics(val_outputs)
        epoch = self.current_epoch
        self.logger.log("val_hpv_losses", self._mean_over_ranks([o["hpv_loss"] for o in val_outputs]), epoch)
        self.logger.log("val_cox_losses", metrics["cox_loss"], epoch)
        self.logger.log("val_hpv_auc", metrics["hpv_auc"], epoch)
        self.logger.log("val_hpv_balanced_accuracy", metrics["hpv_balanced_accuracy"], epoch)
        self.logger.log("val_c_index", metrics["c_index"], epoch)
        self.logger.log("val_head_samples", metrics["n"], epoch)

    def on_epoch_end(self):
        log = self.logger.get_checkpoint()
        self.print_to_log_file(
            "heads: " + ", ".join(f"{k} {np.round(log[k][-1], 4)}" for k in
                                  ("train_hpv_losses", "train_cox_losses", "val_hpv_auc", "val_c_index",
                                   "train_head_samples")))
        super().on_epoch_end()
        if self.local_rank == 0:
            try:
                plot_head_progress(self.logger.get_checkpoint(), self.output_folder)
            except Exception as exc:  # a plotting problem must never stop a training run
                self.print_to_log_file(f"Could not draw progress_heads.png: {exc}")

    # -- checkpoints ----------------------------------------------------------------------------------
    def extra_checkpoint_state(self, for_resuming: bool = True) -> dict[str, Any]:
        state = super().extra_checkpoint_state(for_resuming)
        loader = self._in_process_loader() if self.dataloader_train is not None else None
        state["risk_bank"] = self.risk_bank.state_dict()
        state["sampler"] = {"restarts": self._restarts,
                            "state": loader.sampler_state() if loader is not None else None}
        state["clinical_table"] = self.clinical_table_path
        return state

    def load_extra_checkpoint_state(self, state: dict[str, Any]) -> None:
        super().load_extra_checkpoint_state(state)
        if state.get("risk_bank") is not None:
            self.risk_bank.load_state_dict(state["risk_bank"])
        sampler = state.get("sampler") or {}
        # A resumed run draws a fresh patient stream (restart + 1) unless the exact in-process
        # state was saved (nnUNet_n_proc_DA=0), which is then continued.
        self._restarts = int(sampler.get("restarts", 0)) + 1
        self._saved_sampler_state = sampler.get("state")
        log = log_store(self)
        n = len(log.get("train_losses", []))
        for key in HEAD_LOG_KEYS:  # checkpoints of other trainers (e.g. warm start) lack these
            if key not in log:
                log[key] = [float("nan")] * n

    # -- end of training: thresholds and whole-volume evaluation ----------------------------------------
    def _cases(self, keys: list[str]):
        """``(key, network input (C, *spatial), ground-truth segmentation)`` of preprocessed cases.

        For a cascade the previous stage's segmentation is appended as one-hot channels, as
        nnU-Net's training transforms and its validation do.
        """
        from nnunetv2.utilities.label_handling.label_handling import convert_labelmap_to_one_hot

        dataset = self.dataset_class(self.preprocessed_dataset_folder, keys,
                                     folder_with_segs_from_previous_stage=self.folder_with_segs_from_previous_stage)
        for key in keys:
            data, gt, seg_prev, _ = dataset.load_case(key)
            data = np.asarray(data[:])
            if self.is_cascaded:
                data = np.vstack((data, convert_labelmap_to_one_hot(np.asarray(seg_prev[:]),
                                                                    self.label_manager.foreground_labels,
                                                                    output_dtype=data.dtype)))
            yield key, data, np.asarray(gt[:])

    def _heads_on_cases(self, keys: list[str], segmentations: dict[str, np.ndarray] | None = None) -> list[dict]:
        """Whole-volume head outputs of preprocessed cases (``segmentations``: predicted; default: ground truth).

        Under DDP each rank computes its share of ``keys`` (with ``segmentations``: the keys it
        segmented) and every rank returns the rows of all ``keys``, in their order.
        """
        mirror_axes = self.inference_allowed_mirroring_axes if self.head_tta else None
        mine = shard(keys, self.is_ddp) if segmentations is None else [k for k in keys if k in segmentations]
        # Set up by setup_patient_data (training) or validate_heads (--val) before the heads run.
        assert self.patients is not None and self._encoded_clinical is not None
        rows = []
        for key, data, gt in self._cases(mine):
            seg = segmentations[key] if segmentations is not None else gt
            i = int(self.patients.index_of([key])[0])
            pred = predict_heads(self.network, data, seg, self._encoded_clinical[i:i + 1],
                                 self.configuration_manager.patch_size, mirror_axes=mirror_axes)
            rows.append({"PatientID": key, "hpv_true": self.patients.hpv[i], "hpv_probability": pred.hpv_probability,
                         "hpv_predicted": int(pred.hpv_positive), "risk": pred.risk, "rfs_days": self.patients.rfs[i],
                         "relapse": self.patients.relapse[i], "patch_centre_from": pred.centre_source,
                         "patch_centre_voxel": " ".join(map(str, pred.centre)), "slices": pred.n_slices})
        return gather_rows(rows, keys, self.is_ddp)

    def finalise_weights(self, kind: str) -> None:
        """Choose the HPV threshold on the training fold for the weights about to be saved."""
        super().finalise_weights(kind)
        if self.patients is None or not self._train_keys:
            return
        threshold = 0.5
        self.set_deep_supervision_enabled(False)
        try:
            # Every rank gets the same gathered rows, hence the same threshold (no broadcast).
            rows = self._heads_on_cases(self._train_keys)
        finally:
            self.set_deep_supervision_enabled(True)
        y = np.array([r["hpv_true"] for r in rows], dtype=float)
        p = np.array([r["hpv_probability"] for r in rows], dtype=float)
        known = np.isfinite(y)
        if known.any():
            # The package's one threshold policy (metrics.classification): the prevalence the head's
            # probabilities are calibrated to, not a search on the training fold.
            assert self.hpv_loss is not None  # set up with self.patients by setup_patient_data
            threshold = float(choose_threshold(y[known], calibrated_prevalence=self.hpv_loss.calibrated_prevalence))
        m = hpv_metrics(y, p, threshold)
        self.print_to_log_file(
            f"HPV threshold for the {kind} weights (training fold, GTVp-centred patches): "
            f"{threshold:.4f}; training-fold AUC {m['auc']:.3f}, balanced accuracy "
            f"{m['balanced_accuracy']:.3f} ({m['n_known']} patients with known HPV)")
        self.multitask_network.hecktor_heads.hpv_threshold.fill_(threshold)

    def _predict_validation_segmentations(self, keys: list[str]) -> dict[str, np.ndarray]:
        """Sliding-window segmentations of validation cases in preprocessed space (to place the head patch)."""
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True,
                                    use_mirroring=self.head_validation_mirroring, perform_everything_on_device=True,
                                    device=self.device, verbose=False, verbose_preprocessing=False, allow_tqdm=False)
        # Without the DDP wrapper: ranks run different numbers of forward passes here.
        network = self.network.module if self.is_ddp else self.network
        predictor.manual_initialization(network, self.plans_manager, self.configuration_manager, None,
                                        self.dataset_json, self.__class__.__name__,
                                        self.inference_allowed_mirroring_axes)
        out = {}
        for key, data, _ in self._cases(keys):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                logits = predictor.predict_sliding_window_return_logits(torch.from_numpy(data))
            out[key] = self.label_manager.convert_logits_to_segmentation(logits.float().cpu()).numpy()
        return out

    def validate_heads(self) -> dict[str, Any] | None:
        """Whole-volume HPV and risk evaluation of the fold's validation patients.

        Under DDP every rank must call it: each segments its share of the patients. Rank 0 writes
        ``validation_heads.json`` and ``validation_heads.csv`` into the fold folder and returns
        the summary (other ranks return None).
        """
        if self.patients is None:
            tr, val = self.do_split()
            self._train_keys, self._val_keys = list(map(str, tr)), list(map(str, val))
            self.patients, path = load_patient_table(self.plans_manager.dataset_name,
                                                     sorted(set(self._train_keys) | set(self._val_keys)))
            self.clinical_table_path = str(path)
            self._encoded_clinical = self.multitask_network.clinical_encoder.encode(self.patients.records).to(self.device)
        self.network.eval()
        self.set_deep_supervision_enabled(False)
        try:
            segmentations = self._predict_validation_segmentations(shard(self._val_keys, self.is_ddp))
            rows = self._heads_on_cases(self._val_keys, segmentations)
        finally:
            self.set_deep_supervision_enabled(True)
        if self.local_rank != 0:
            return None
        threshold = float(self.multitask_network.hecktor_heads.hpv_threshold)
        hpv = hpv_metrics([r["hpv_true"] for r in rows], [r["hpv_probability"] for r in rows], threshold)
        surv = survival_metrics([r["rfs_days"] for r in rows], [r["relapse"] for r in rows], [r["risk"] for r in rows])
        sources: dict[str, int] = {}
        for r in rows:
            sources[r["patch_centre_from"]] = sources.get(r["patch_centre_from"], 0) + 1
        summary = {
            "fold": self.fold,
            "trainer": self.__class__.__name__,
            "weights": self.validation_weights_description(),
            "n_patients": len(rows),
            "hpv": {**hpv, "threshold_chosen_on": "threshold policy (the head's calibrated prevalence), in the checkpoint"},
            "rfs": surv,
            "head_patch": {
                "centre_from": sources,
                "rule": "largest predicted GTVp component, else largest GTVn component, else image centre; "
                        "patch = training patch size; pooling over the predicted GTVp"
                        + ("; 2-D: every slice of that region, outputs averaged with the region's area "
                           "per slice as weight" if len(self.configuration_manager.patch_size) == 2 else ""),
                "segmentation_mirroring": self.head_validation_mirroring,
                "head_tta_mirroring": self.head_tta,
            },
            "clinical_table": self.clinical_table_path,
        }
        write_validation_heads(self.output_folder, rows, summary)
        self.print_to_log_file(
            f"Heads on {len(rows)} validation patients ({summary['weights']}): HPV AUC {hpv['auc']:.3f}, "
            f"balanced accuracy {hpv['balanced_accuracy']:.3f} (threshold {threshold:.3f}); "
            f"C-index {surv['c_index']:.3f} ({surv['comparable_pairs']} comparable pairs)")
        return summary

    def perform_actual_validation(self, save_probabilities: bool = False):
        super().perform_actual_validation(save_probabilities)
        self.validate_heads()  # every rank: the work is sharded


class HecktorMultiTaskTrainer(SWAMixin, HecktorHeadsTrainer):
    """nnU-Net trainer for GTVp/GTVn segmentation, HPV status and recurrence risk, with SWA.

    :class:`HecktorHeadsTrainer` (the heads on the plugin's base trainer) plus stochastic weight
    averaging (:class:`~nnunet_hecktor.trainers.swa_trainer.SWAMixin`); the class attributes of both apply.
    """
