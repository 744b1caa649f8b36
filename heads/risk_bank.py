"""A FIFO bank of recent detached risk scores for Cox training with tiny batches.

With nnU-Net's batch of 2 (1 per DDP rank) a Cox loss over the batch alone is zero most
of the time and a noisy pairwise logistic loss otherwise. The bank keeps the last
``capacity`` detached ``(risk, time, event, patient)`` entries and :meth:`RiskBank.pooled_loss`
computes ONE Cox partial likelihood over bank ∪ current batch, with the bank's events
included as cases. Gradients flow only through the current batch, but they come from
both roles a patient plays: as a case (pushed up against the bank's risk sets) and as a
control in the risk sets of the bank's events (pushed down). The "risk-set-only"
variant, which uses the bank only to enlarge the risk sets of the current events, lacks
the second role and drifts away from the full-data fit (see
``benchmarks/bench_cox_bank.py`` and docs/explanations/multitask-heads.md).

In DDP, feed the bank the batch gathered over all ranks
(:func:`nnunet_hecktor.heads.distributed.gather_with_grad`): every rank then holds the
same bank and computes the same loss.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import torch

from .cox_loss import cox_partial_likelihood_loss


def _ids_as_list(patient_ids: Sequence[Hashable] | torch.Tensor, n: int) -> list[Hashable]:
    if isinstance(patient_ids, torch.Tensor):
        ids = patient_ids.reshape(-1).tolist()
    else:
        ids = list(patient_ids)
    if len(ids) != n:
        raise ValueError(f"{len(ids)} patient ids for {n} risk scores")
    return ids


class RiskBank:
    """FIFO memory of detached ``(risk, time, event, patient_id)`` for a pooled Cox loss.

    Parameters
    ----------
    capacity : int
        Number of past entries kept (one per patient; older duplicates are dropped).
        0 turns the bank off (the loss is then the plain batch Cox loss).
    mode : {"pooled", "risk_set_only"}
        ``"pooled"`` (default, recommended): one Cox loss over bank ∪ batch, bank events
        are cases. ``"risk_set_only"``: only the current events are cases, the bank merely
        enlarges their risk sets (kept for the benchmark; it is biased).
    ranking_weight, ranking_sigma : float
        Optional pairwise ranking term passed to :func:`cox_partial_likelihood_loss`.

    Notes
    -----
    Only known outcomes are stored (NaN time/event entries are dropped before pushing).
    Times are days, risk higher = earlier relapse.
    """

    MODES = ("pooled", "risk_set_only")

    def __init__(self, capacity: int = 256, mode: str = "pooled", ranking_weight: float = 0.0,
                 ranking_sigma: float = 1.0) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        self.capacity = int(capacity)
        self.mode = mode
        self.ranking_weight = float(ranking_weight)
        self.ranking_sigma = float(ranking_sigma)
        self.clear()

    def __len__(self) -> int:
        return len(self._ids)

    def clear(self) -> None:
        """Forget every stored entry."""
        self._risk = torch.zeros(0, dtype=torch.float64)
        self._time = torch.zeros(0, dtype=torch.float64)
        self._event = torch.zeros(0, dtype=torch.float64)
        self._ids: list[Hashable] = []

    def pooled_loss(self, risk: torch.Tensor, time, event, patient_ids, push: bool = True) -> torch.Tensor:
        """Cox loss over bank ∪ current batch, then push the batch into the bank.

        Parameters
        ----------
        risk : torch.Tensor, shape [B]
            Current risks (with gradient), higher = earlier relapse.
        time, event : array-like or torch.Tensor, shape [B]
            RFS (days) and relapse indicator; NaN = unknown (masked, not stored).
        patient_ids : sequence of hashable or torch.Tensor, shape [B]
            Patient identities (strings or integer indices). A patient in the current
            batch replaces its older bank entry; a patient twice in the batch is counted
            once (its last occurrence).
        push : bool
            Store the current (detached) entries afterwards. False for evaluation.

        Returns
        -------
        torch.Tensor
            Scalar loss (float32, float64 for float64 risks); exactly 0 with a graph when
            nothing is comparable.
        """
        risk = risk.reshape(-1)
        n = risk.numel()
        dtype = torch.float64 if risk.dtype == torch.float64 else torch.float32
        time = torch.as_tensor(time, device=risk.device).to(dtype).reshape(-1)
        event = torch.as_tensor(event, device=risk.device).to(dtype).reshape(-1)
        ids = _ids_as_list(patient_ids, n)
        if time.numel() != n or event.numel() != n:
            raise ValueError(f"risk, time and event differ in length: {n}, {time.numel()}, {event.numel()}")

        # Newest entry wins: the last occurrence within the batch, and the batch over the bank.
        last_index = {pid: i for i, pid in enumerate(ids)}
        keep_batch = torch.tensor([last_index[pid] == i for i, pid in enumerate(ids)], device=risk.device)
        batch_ids = set(last_index)
        keep_bank = [pid not in batch_ids for pid in self._ids]
        keep_bank_t = torch.tensor(keep_bank, dtype=torch.bool)
        bank_risk = self._risk[keep_bank_t].to(device=risk.device, dtype=dtype)
        bank_time = self._time[keep_bank_t].to(device=risk.device, dtype=dtype)
        bank_event = self._event[keep_bank_t].to(device=risk.device, dtype=dtype)

        # A duplicate keeps its place in the graph with weight 0 (so every head parameter
        # still receives a gradient) but does not count as a subject.
        batch_weight = keep_batch.to(dtype)
        all_risk = torch.cat([risk, bank_risk.detach()])
        all_time = torch.cat([time, bank_time])
        all_event = torch.cat([event, bank_event])
        weights = torch.cat([batch_weight, torch.ones_like(bank_time)])
        if self.mode == "pooled":
            loss = cox_partial_likelihood_loss(all_risk, all_time, all_event, weights=weights,
                                               ranking_weight=self.ranking_weight, ranking_sigma=self.ranking_sigma)
        else:
            loss = _risk_set_only_loss(all_risk, all_time, all_event, weights, n_current=n)
            if self.ranking_weight:
                from .cox_loss import pairwise_ranking_loss
                loss = loss + self.ranking_weight * pairwise_ranking_loss(
                    all_risk, all_time, all_event, sigma=self.ranking_sigma)
        if push:
            self.push(risk[keep_batch], time[keep_batch], event[keep_batch],
                      [pid for pid, k in zip(ids, keep_batch.tolist()) if k])
        return loss

    def push(self, risk: torch.Tensor, time, event, patient_ids) -> None:
        """Store detached entries (known outcomes only), dropping older entries of the same patients."""
        if self.capacity == 0:
            return
        risk = risk.detach().reshape(-1).to("cpu", torch.float64)
        time = torch.as_tensor(time).detach().reshape(-1).to("cpu", torch.float64)
        event = torch.as_tensor(event).detach().reshape(-1).to("cpu", torch.float64)
        ids = _ids_as_list(patient_ids, risk.numel())
        known = (torch.isfinite(time) & torch.isfinite(event)).tolist()
        new_ids = {pid for pid, k in zip(ids, known) if k}
        keep = torch.tensor([pid not in new_ids for pid in self._ids], dtype=torch.bool)
        known_t = torch.tensor(known, dtype=torch.bool)
        self._risk = torch.cat([self._risk[keep], risk[known_t]])[-self.capacity:]
        self._time = torch.cat([self._time[keep], time[known_t]])[-self.capacity:]
        self._event = torch.cat([self._event[keep], event[known_t]])[-self.capacity:]
        self._ids = ([pid for pid, k in zip(self._ids, keep.tolist()) if k]
                     + [pid for pid, k in zip(ids, known) if k])[-self.capacity:]

    def state_dict(self) -> dict[str, Any]:
        """Plain python/tensor state for nnU-Net checkpoints (``--c`` resume)."""
        return {
            "capacity": self.capacity,
            "mode": self.mode,
            "ranking_weight": self.ranking_weight,
            "ranking_sigma": self.ranking_sigma,
            "risk": self._risk.clone(),
            "time": self._time.clone(),
            "event": self._event.clone(),
            "patient_ids": list(self._ids),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the entries of :meth:`state_dict`'s output.

        The configuration (capacity, mode, ranking term) stays the one this bank was built
        with (the trainer's class constants); if the capacity is now smaller, the newest
        entries are kept.
        """
        keep = slice(-self.capacity, None) if self.capacity else slice(0, 0)
        self._risk = torch.as_tensor(state["risk"], dtype=torch.float64).reshape(-1)[keep]
        self._time = torch.as_tensor(state["time"], dtype=torch.float64).reshape(-1)[keep]
        self._event = torch.as_tensor(state["event"], dtype=torch.float64).reshape(-1)[keep]
        self._ids = list(state["patient_ids"])[keep]
        if not (len(self._ids) == self._risk.numel() == self._time.numel() == self._event.numel()):
            raise ValueError("corrupt RiskBank state: ids, risk, time and event differ in length")


def _risk_set_only_loss(risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor, weights: torch.Tensor,
                        n_current: int) -> torch.Tensor:
    """Biased baseline: only the first ``n_current`` subjects' events are cases."""
    case_weight = weights.clone()
    # Bank subjects stay in the risk sets (weights) but their events are not cases.
    event_cases = event.clone()
    event_cases[n_current:] = torch.where(torch.isfinite(event[n_current:]), torch.zeros_like(event[n_current:]),
                                          event[n_current:])
    return cox_partial_likelihood_loss(risk, time, event_cases, weights=case_weight)
