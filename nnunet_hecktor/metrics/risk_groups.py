"""Risk groups for Task 2 reporting: median split, Kaplan-Meier curves and the log-rank test.

Convention: risk higher = earlier relapse; ``time`` is RFS in days, ``event`` 1 = relapse.
Kaplan-Meier and the log-rank test are written here with numpy (a few lines each; importing
scikit-survival costs seconds) and checked against lifelines in the tests.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class RiskGroupComparison:
    """Median split of a risk score and the log-rank test between the two groups.

    ``high`` = risk strictly above the median ``threshold``; patients at the median go to the low
    group. ``chi2``/``p_value`` are NaN when a group is empty (e.g. all risks equal) or no event
    was observed.
    """

    threshold: float
    n_low: int
    n_high: int
    events_low: int
    events_high: int
    chi2: float
    p_value: float

    def to_dict(self) -> dict:
        return asdict(self)


def median_risk_split(risk) -> tuple[np.ndarray, float]:
    """Return (``high`` mask: risk > median, median)."""
    risk = np.asarray(risk, dtype=float).ravel()
    threshold = float(np.median(risk)) if risk.size else math.nan
    return risk > threshold, threshold


def logrank_test(time, event, group) -> tuple[float, float]:
    """Log-rank chi² statistic and p-value (chi² with K - 1 degrees of freedom) between the groups.

    NaN, NaN when fewer than two groups are present or no event was observed.
    """
    from scipy.special import gammaincc  # chi² survival function, without importing scipy.stats

    time = np.asarray(time, dtype=float).ravel()
    event = np.asarray(event).astype(bool).ravel()
    groups, index = np.unique(np.asarray(group).ravel(), return_inverse=True)
    if groups.size < 2 or not event.any():
        return math.nan, math.nan
    event_times = np.unique(time[event])
    # at_risk[t, g]: patients of group g with time >= t; deaths[t, g]: events of g at t.
    at_risk = np.stack([(time[None, index == g] >= event_times[:, None]).sum(axis=1) for g in range(groups.size)], 1)
    deaths = np.stack([((time[None, (index == g) & event] == event_times[:, None])).sum(axis=1)
                       for g in range(groups.size)], 1)
    n, d = at_risk.sum(axis=1).astype(float), deaths.sum(axis=1).astype(float)
    expected = (d[:, None] * at_risk / n[:, None]).sum(axis=0)
    observed = deaths.sum(axis=0)
    share = at_risk / n[:, None]
    factor = np.where(n > 1, d * (n - d) / np.maximum(n - 1, 1), 0.0)
    covariance = (factor[:, None, None] * (np.einsum("tg,gh->tgh", share, np.eye(groups.size))
                                            - share[:, :, None] * share[:, None, :])).sum(axis=0)
    diff = (observed - expected)[:-1]
    try:
        statistic = float(diff @ np.linalg.solve(covariance[:-1, :-1], diff))
    except np.linalg.LinAlgError:
        return math.nan, math.nan
    return statistic, float(gammaincc((groups.size - 1) / 2.0, statistic / 2.0))


def compare_risk_groups(time, event, risk) -> RiskGroupComparison:
    """Split patients at the median risk and compare the groups' relapse-free survival (log-rank)."""
    event = np.asarray(event).astype(bool).ravel()
    high, threshold = median_risk_split(risk)
    chi2, p_value = logrank_test(time, event, high.astype(int))
    return RiskGroupComparison(threshold, int((~high).sum()), int(high.sum()), int(event[~high].sum()),
                               int(event[high].sum()), chi2, p_value)


def kaplan_meier(time, event) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier estimate: (distinct observed times, survival probability just after each time)."""
    time = np.asarray(time, dtype=float).ravel()
    event = np.asarray(event).astype(bool).ravel()
    if time.size == 0:
        return np.array([]), np.array([])
    times = np.unique(time)
    at_risk = (time[None, :] >= times[:, None]).sum(axis=1)
    deaths = ((time[None, :] == times[:, None]) & event[None, :]).sum(axis=1)
    return times, np.cumprod(1.0 - deaths / at_risk)
