"""Cox partial-likelihood loss (Breslow ties) and an optional pairwise ranking term.

Conventions: ``risk`` is the log hazard ratio, higher = earlier relapse; ``time`` is RFS in
days; ``event`` is 1 for an observed relapse and 0 for censoring. Patients whose time or
event is unknown (NaN) are masked out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _as_float_tensor(values, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(values, device=like.device).to(dtype).reshape(-1)


def _zero_with_graph(risk: torch.Tensor) -> torch.Tensor:
    # A zero that is still a function of every risk entry: backward() works and every
    # parameter behind `risk` receives a (zero) gradient, which DDP with
    # find_unused_parameters=False requires. masked_fill keeps a NaN risk from turning
    # 0 * NaN into NaN.
    return risk.masked_fill(~torch.isfinite(risk.detach()), 0.0).sum() * 0.0


def _loss_dtype(risk: torch.Tensor) -> torch.dtype:
    # Half precision under autocast is not enough for log-sum-exp over hundreds of
    # subjects; float64 is kept when the caller asks for it (reference tests).
    return torch.float64 if risk.dtype == torch.float64 else torch.float32


def known_outcome_mask(time: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
    """True where both RFS time and the event indicator are known (finite)."""
    return torch.isfinite(time) & torch.isfinite(event)


def cox_partial_likelihood_loss(
    risk: torch.Tensor,
    time,
    event,
    weights=None,
    ranking_weight: float = 0.0,
    ranking_sigma: float = 1.0,
) -> torch.Tensor:
    """Negative Breslow partial log-likelihood, averaged over informative events.

    For each event ``i`` with risk set ``R_i = {j : t_j >= t_i}`` (Breslow: every subject
    tied with ``t_i`` is in the risk set of each tied event)::

        l_i = log(sum_{j in R_i} w_j exp(r_j)) - r_i

    and the loss is ``sum_i w_i l_i / sum_i w_i`` over the events whose risk set holds at
    least one other subject (an event alone in its risk set carries no information; its
    term is exactly 0). Minimising it over a linear model reproduces
    ``sksurv.linear_model.CoxPHSurvivalAnalysis(ties="breslow")``.

    Parameters
    ----------
    risk : torch.Tensor, shape [N]
        Predicted risk (log hazard ratio), higher = earlier relapse.
    time : array-like or torch.Tensor, shape [N]
        RFS in days; NaN = unknown (masked out).
    event : array-like or torch.Tensor, shape [N]
        1 = relapse observed, 0 = censored; NaN = unknown (masked out).
    weights : array-like or torch.Tensor, shape [N], optional
        Non-negative subject weights (default 1).
    ranking_weight : float
        Weight of :func:`pairwise_ranking_loss` added to the Cox term (0 = off).
    ranking_sigma : float
        Temperature of the ranking term.

    Returns
    -------
    torch.Tensor
        Scalar in float32 (float64 when ``risk`` is float64). Exactly 0, with a graph and a
        zero gradient, when no event has a comparable subject; never NaN for finite risks.
    """
    risk = risk.reshape(-1)
    dtype = _loss_dtype(risk)
    time = _as_float_tensor(time, risk, dtype)
    event = _as_float_tensor(event, risk, dtype)
    if not (risk.shape == time.shape == event.shape):
        raise ValueError(f"risk, time and event differ in length: {risk.numel()}, {time.numel()}, {event.numel()}")
    w = torch.ones_like(time) if weights is None else _as_float_tensor(weights, risk, dtype)
    if w.shape != time.shape:
        raise ValueError(f"weights has {w.numel()} entries for {time.numel()} subjects")

    zero = _zero_with_graph(risk).to(dtype)
    valid = known_outcome_mask(time, event) & (w > 0)
    if int(valid.sum()) < 2:
        return zero

    r = risk.to(dtype)[valid]
    t, e, w = time[valid], event[valid] > 0.5, w[valid]

    # Descending time: a cumulative log-sum-exp gives, at position k, the log of the sum
    # over everyone sorted at or before k, i.e. with a time >= t_k up to the order of ties.
    order = torch.argsort(t, descending=True)
    r, t, e, w = r[order], t[order], e[order], w[order]
    log_cum = torch.logcumsumexp(r + torch.log(w), dim=0)
    # Breslow ties: all subjects tied with t_k belong to its risk set, so read the
    # cumulative value at the *last* position of k's tie block.
    neg_t = -t
    last_of_tie = torch.searchsorted(neg_t.contiguous(), neg_t.contiguous(), right=True) - 1
    log_risk_set = log_cum[last_of_tie]
    risk_set_size = last_of_tie + 1

    informative = e & (risk_set_size > 1)
    if not bool(informative.any()):
        cox = zero
    else:
        terms = (log_risk_set - r)[informative]
        w_e = w[informative]
        cox = (w_e * terms).sum() / w_e.sum()
        cox = cox + zero  # keep masked subjects in the graph (zero gradient)

    if ranking_weight:
        cox = cox + ranking_weight * pairwise_ranking_loss(risk, time, event, sigma=ranking_sigma)
    return cox


def pairwise_ranking_loss(risk: torch.Tensor, time, event, sigma: float = 1.0) -> torch.Tensor:
    """Smooth concordance loss over comparable pairs (HECKTOR C-index pairs).

    A pair ``(i, j)`` is comparable when ``i`` is an event and ``t_j > t_i``, or
    ``t_j == t_i`` and ``j`` is censored. The loss is the mean of
    ``softplus(-(r_i - r_j) / sigma)`` over comparable pairs (a logistic surrogate of
    ``1 - C``). Exactly 0 with a zero gradient when no pair is comparable.

    Parameters
    ----------
    risk, time, event
        As in :func:`cox_partial_likelihood_loss` (NaN time/event masked out).
    sigma : float
        Temperature; smaller = closer to the step function of the C-index.

    Returns
    -------
    torch.Tensor
        Scalar loss. Memory is O(N^2): meant for batches and risk banks of up to a few
        thousand subjects.
    """
    risk = risk.reshape(-1)
    dtype = _loss_dtype(risk)
    time = _as_float_tensor(time, risk, dtype)
    event = _as_float_tensor(event, risk, dtype)
    zero = _zero_with_graph(risk).to(dtype)
    valid = known_outcome_mask(time, event)
    if int(valid.sum()) < 2:
        return zero
    r, t, e = risk.to(dtype)[valid], time[valid], event[valid] > 0.5
    later = t[None, :] > t[:, None]
    tied_censored = (t[None, :] == t[:, None]) & ~e[None, :]
    comparable = e[:, None] & (later | tied_censored)
    if not bool(comparable.any()):
        return zero
    diff = (r[:, None] - r[None, :])[comparable]
    return F.softplus(-diff / sigma).mean() + zero
