"""Harrell's concordance index with the HECKTOR Task 2 conventions.

Convention: ``risk`` higher = earlier relapse. A pair (i, j) is comparable when the
shorter time is an event; at equal times it is comparable only when exactly one of the
two is an event (the event counts as earlier). Risks within ``tied_tol`` count as tied
(0.5). This equals ``sksurv.metrics.concordance_index_censored(event, time, risk)[0]``
and ``lifelines.utils.concordance_index(time, -risk, event)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ConcordanceResult:
    """Harrell's C-index and its pair counts."""

    c_index: float
    concordant: int
    discordant: int
    tied_risk: int
    comparable: int


def _as_arrays(time, event, risk):
    time = np.asarray(time, dtype=float).ravel()
    event = np.asarray(event).ravel()
    risk = np.asarray(risk, dtype=float).ravel()
    if not (time.shape == event.shape == risk.shape):
        raise ValueError(f"time, event and risk differ in length: {time.size}, {event.size}, {risk.size}")
    if not np.isin(event, (0, 1, True, False)).all():
        raise ValueError("event must be 0/1 (1 = relapse observed)")
    if np.isnan(time).any() or np.isnan(risk).any():
        raise ValueError("time and risk must not contain NaN; drop patients with unknown values first")
    return time, event.astype(bool), risk


def concordance_index(time, event, risk, tied_tol: float = 1e-8, chunk: int = 2048) -> ConcordanceResult:
    """Harrell's C-index of a risk score (higher risk = earlier event).

    Parameters
    ----------
    time : array-like of float
        Time to event or censoring (RFS, days).
    event : array-like of {0, 1} or bool
        1 when the event (relapse) was observed, 0 when censored.
    risk : array-like of float
        Predicted risk, higher = earlier event.
    tied_tol : float
        Risks closer than this count as tied (0.5), as in scikit-survival.
    chunk : int
        Rows processed at once; memory is ``O(chunk * n)``.

    Returns
    -------
    ConcordanceResult
        ``c_index`` is NaN when no pair is comparable.
    """
    time, event, risk = _as_arrays(time, event, risk)
    concordant = discordant = tied = 0
    cases = np.flatnonzero(event)
    for start in range(0, cases.size, chunk):
        idx = cases[start:start + chunk]
        t_i = time[idx, None]
        # j is a control of case i when it outlived i, or was censored at i's time.
        comparable = (time[None, :] > t_i) | ((time[None, :] == t_i) & ~event[None, :])
        diff = risk[idx, None] - risk[None, :]
        is_tied = np.abs(diff) <= tied_tol
        concordant += int(np.count_nonzero(comparable & ~is_tied & (diff > 0)))
        discordant += int(np.count_nonzero(comparable & ~is_tied & (diff < 0)))
        tied += int(np.count_nonzero(comparable & is_tied))
    n = concordant + discordant + tied
    c = (concordant + 0.5 * tied) / n if n else float("nan")
    return ConcordanceResult(float(c), concordant, discordant, tied, n)


def harrell_c_index(time, event, risk, tied_tol: float = 1e-8) -> float:
    """Harrell's C-index as a float (see :func:`concordance_index`)."""
    return concordance_index(time, event, risk, tied_tol=tied_tol).c_index
