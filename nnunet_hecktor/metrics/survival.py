"""Harrell's concordance index: the one implementation used by evaluation, bootstrap, training and prognosis.

Conventions
-----------
- ``risk`` higher = earlier relapse; ``time`` is RFS in days; ``event`` 1 = relapse observed.
- Comparable pair (i, j): i had the event and j outlived i (``time[j] > time[i]``), or j was
  censored at i's time (an event at the same time as a censoring counts as earlier). Two events
  at the same time are not comparable.
- Tie rule: only **exactly equal** risks tie and score 0.5. This is the rule of
  ``lifelines.utils.concordance_index(time, -risk, event)``, which the HECKTOR organisers score
  with. (scikit-survival's ``concordance_index_censored`` instead ties risks within
  ``tied_tol=1e-8``, so risks of order 1e-9 would all tie there.)

:func:`comparable_pairs` and :func:`pair_score` are the single definitions of these two rules;
:func:`concordance_counts` (many score columns, NaN-aware), :func:`concordance_index` and
:func:`concordance_pair_matrices` (for the bootstrap) are built from them.
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


def comparable_pairs(time: np.ndarray, event: np.ndarray, cases: np.ndarray | None = None) -> np.ndarray:
    """Comparable-pair mask: row ``k`` = patient ``cases[k]`` as the earlier event, column ``j`` = control.

    Parameters
    ----------
    time : ndarray (n,) of float
    event : ndarray (n,) of bool
    cases : ndarray of int, optional
        Rows to build (default: all patients). Rows of censored patients are all False.

    Returns
    -------
    ndarray (len(cases), n) of bool
    """
    rows = np.arange(time.size) if cases is None else np.asarray(cases)
    t_i = time[rows, None]
    later = (time[None, :] > t_i) | ((time[None, :] == t_i) & ~event[None, :])
    return later & event[rows, None]


def pair_score(difference: np.ndarray) -> np.ndarray:
    """Score of a comparable pair from ``risk[case] - risk[control]``: 1 concordant, 0.5 exact tie, 0 discordant."""
    return (np.sign(difference) + 1.0) / 2.0


def _validated(time, event, risk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def concordance_counts(scores, time, event, max_block: int = 8_000_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concordant, discordant and tied comparable pairs of every column of ``scores`` used as a risk.

    Pairs with a NaN score in a column are left out of that column's counts.

    Parameters
    ----------
    scores : array (n,) or (n, p) of float
        Higher = earlier event.
    time : array (n,) of float
    event : array (n,) of bool
    max_block : int
        Elements of the largest temporary array (memory bound).

    Returns
    -------
    (concordant, discordant, tied) : three ndarrays (p,) of int
    """
    X = np.asarray(scores, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    time = np.asarray(time, dtype=float).ravel()
    event = np.asarray(event).astype(bool).ravel()
    n, p = X.shape
    valid = ~np.isnan(X)
    Xf = np.where(valid, X, 0.0)
    counts = np.zeros((3, p), dtype=np.int64)
    cases = np.flatnonzero(event)
    chunk = max(1, int(max_block // max(1, n * p)))
    for start in range(0, cases.size, chunk):
        idx = cases[start:start + chunk]
        usable = comparable_pairs(time, event, idx)[:, :, None] & valid[idx, None, :] & valid[None, :, :]
        score = pair_score(Xf[idx, None, :] - Xf[None, :, :])
        for k, value in enumerate((1.0, 0.0, 0.5)):
            counts[k] += np.count_nonzero(usable & (score == value), axis=(0, 1))
    return counts[0], counts[1], counts[2]


def concordance_index(time, event, risk, chunk: int = 2048) -> ConcordanceResult:
    """Harrell's C-index of a risk score (higher risk = earlier event), lifelines' tie rule.

    Parameters
    ----------
    time : array-like of float
        Time to event or censoring (RFS, days).
    event : array-like of {0, 1} or bool
        1 when the event (relapse) was observed, 0 when censored.
    risk : array-like of float
        Predicted risk, higher = earlier event. Only exactly equal risks tie (0.5).
    chunk : int
        Case rows processed at once; memory is ``O(chunk * n)``.

    Returns
    -------
    ConcordanceResult
        ``c_index`` is NaN when no pair is comparable.

    Raises
    ------
    ValueError
        Lengths differ, ``event`` is not 0/1, or a time or risk is NaN.
    """
    time, event, risk = _validated(time, event, risk)
    concordant, discordant, tied = (int(c[0]) for c in
                                    concordance_counts(risk, time, event, max_block=max(1, chunk) * max(1, time.size)))
    n = concordant + discordant + tied
    c = (concordant + 0.5 * tied) / n if n else float("nan")
    return ConcordanceResult(float(c), concordant, discordant, tied, n)


def harrell_c_index(time, event, risk) -> float:
    """Harrell's C-index as a float (see :func:`concordance_index`)."""
    return concordance_index(time, event, risk).c_index


def concordance_pair_matrices(time, event, risk) -> tuple[np.ndarray, np.ndarray]:
    """Pair matrices of Harrell's C-index, for weighted (bootstrap) sums.

    Returns
    -------
    score : ndarray (n, n)
        :func:`pair_score` of ``risk[i] - risk[j]`` for a comparable ordered pair (i = the case
        with the earlier event, j = control), 0 for non-comparable pairs.
    comparable : ndarray (n, n) of float
        :func:`comparable_pairs` as 0/1.
    """
    time, event, risk = _validated(time, event, risk)
    comparable = comparable_pairs(time, event)
    score = pair_score(risk[:, None] - risk[None, :]) * comparable
    return score, comparable.astype(float)
