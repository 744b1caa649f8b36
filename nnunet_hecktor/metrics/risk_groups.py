"""Risk groups for Task 2 reporting: quantile split, Kaplan-Meier curves and the log-rank test.

Convention: risk higher = earlier relapse; ``time`` is RFS in days, ``event`` 1 = relapse.
Kaplan-Meier and the log-rank test are scikit-survival's (``kaplan_meier_estimator``,
``compare_survival``); this module only adds the one grouping rule used by every report:

**Tie rule of the split.** Patients are cut at the risk quantiles; a patient whose risk equals a
cut goes to the *lower* group (``high`` = risk strictly above the median for two groups). Risks
[1, 2, 2, 3] give groups [0, 0, 0, 1].
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


def risk_groups(risk, n_groups: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Group index of each patient by risk quantiles (0 = lowest risk); ties at a cut go to the lower group.

    Returns
    -------
    (groups, cuts)
        ``groups`` ndarray (n,) of int in ``[0, n_groups)``; ``cuts`` the ``n_groups - 1`` quantiles.
    """
    risk = np.asarray(risk, dtype=float).ravel()
    if risk.size == 0:
        return np.zeros(0, dtype=int), np.full(n_groups - 1, math.nan)
    cuts = np.quantile(risk, np.linspace(0, 1, n_groups + 1)[1:-1])
    return np.searchsorted(cuts, risk, side="left"), cuts


def median_risk_split(risk) -> tuple[np.ndarray, float]:
    """Return (``high`` mask: risk > median, median): :func:`risk_groups` with two groups."""
    groups, cuts = risk_groups(risk, 2)
    return groups == 1, float(cuts[0])


def logrank_test(time, event, group) -> tuple[float, float]:
    """Log-rank chi² statistic and p-value between the groups (scikit-survival's ``compare_survival``).

    NaN, NaN when fewer than two groups are present or no event was observed.
    """
    time = np.asarray(time, dtype=float).ravel()
    event = np.asarray(event).astype(bool).ravel()
    group = np.asarray(group).ravel()
    if np.unique(group).size < 2 or not event.any():
        return math.nan, math.nan
    from sksurv.compare import compare_survival
    from sksurv.util import Surv

    try:
        chi2, p_value = compare_survival(Surv.from_arrays(event, time), group)
    except np.linalg.LinAlgError:
        return math.nan, math.nan
    return float(chi2), float(p_value)


def compare_risk_groups(time, event, risk, threshold: float | None = None) -> RiskGroupComparison:
    """Split patients at ``threshold`` (default: the median risk of these patients) and compare the
    groups' relapse-free survival (log-rank). ``high`` = risk strictly above the cut.

    A cut taken from the scored patients (the default) is not independent of them; a cut fixed on
    training data (e.g. the median out-of-fold training risk) is.
    """
    event = np.asarray(event).astype(bool).ravel()
    if threshold is None:
        high, threshold = median_risk_split(risk)
    else:
        high = np.asarray(risk, dtype=float).ravel() > float(threshold)
    chi2, p_value = logrank_test(time, event, high.astype(int))
    return RiskGroupComparison(threshold, int((~high).sum()), int(high.sum()), int(event[~high].sum()),
                               int(event[high].sum()), chi2, p_value)


def kaplan_meier(time, event) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier estimate (scikit-survival): distinct observed times, survival just after each time."""
    time = np.asarray(time, dtype=float).ravel()
    event = np.asarray(event).astype(bool).ravel()
    if time.size == 0:
        return np.array([]), np.array([])
    from sksurv.nonparametric import kaplan_meier_estimator

    times, survival = kaplan_meier_estimator(event, time)
    return np.asarray(times, dtype=float), np.asarray(survival, dtype=float)
