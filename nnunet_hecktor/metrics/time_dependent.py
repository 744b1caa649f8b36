"""Time-dependent discrimination and prediction error of relapse-free survival predictions.

Conventions: ``time`` RFS in days, ``event`` 1 = relapse, ``risk`` higher = earlier relapse,
``survival[i, k]`` = predicted probability that patient ``i`` is relapse-free at ``times[k]``.

Both metrics are scikit-survival's (``cumulative_dynamic_auc``, ``integrated_brier_score``). They
weight patients by the inverse probability of censoring, estimated by Kaplan-Meier from a
"training" cohort; without the training cohort at hand the scored cohort itself is used, which the
results record (``censoring_from``). Evaluation times must lie inside the follow-up of the scored
patients: :func:`evaluation_times` picks them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: Default horizons in days (1, 2, 3 and 5 years), kept where the follow-up allows.
DEFAULT_HORIZONS_DAYS: tuple[float, ...] = (365.25, 730.5, 1095.75, 1826.25)


def evaluation_times(time, event, horizons=DEFAULT_HORIZONS_DAYS) -> np.ndarray:
    """The ``horizons`` (days) that lie strictly inside the follow-up and after the first relapse.

    scikit-survival needs every evaluation time below the largest observed time; a horizon before
    the first event has no case and no AUC.
    """
    time = np.asarray(time, dtype=float).ravel()
    event = np.asarray(event).astype(bool).ravel()
    if not event.any():
        return np.array([])
    first, last = time[event].min(), time.max()
    return np.array([h for h in horizons if first <= h < last], dtype=float)


@dataclass(frozen=True)
class TimeDependentResult:
    """Cumulative/dynamic AUC at each time (and its mean), and the integrated Brier score when
    survival functions were given. NaN where undefined."""

    times: list[float]
    auc: list[float]
    mean_auc: float
    integrated_brier: float = math.nan
    censoring_from: str = "scored patients"
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"times_days": self.times, "auc": self.auc, "mean_auc": self.mean_auc,
                "integrated_brier_score": self.integrated_brier, "censoring_from": self.censoring_from,
                "notes": list(self.notes)}


def time_dependent_metrics(time, event, risk, times=None, survival=None, survival_times=None,
                           train_time=None, train_event=None) -> TimeDependentResult:
    """Cumulative/dynamic AUC of ``risk`` (and the integrated Brier score of ``survival``).

    Parameters
    ----------
    time, event, risk : array-like (n,)
        Scored patients; risk higher = earlier relapse.
    times : array-like, optional
        Evaluation times in days (default :func:`evaluation_times`).
    survival : array (n, m), optional
        Predicted relapse-free probability at ``survival_times`` (m >= 2): gives the integrated
        Brier score over the ``survival_times`` inside the follow-up.
    survival_times : array (m,), optional
    train_time, train_event : array-like, optional
        The cohort the censoring distribution is estimated from (default: the scored patients).
    """
    from sksurv.metrics import cumulative_dynamic_auc, integrated_brier_score
    from sksurv.util import Surv

    time = np.asarray(time, dtype=float).ravel()
    event = np.asarray(event).astype(bool).ravel()
    risk = np.asarray(risk, dtype=float).ravel()
    notes = []
    censoring_from = "training patients"
    if train_time is None:
        train_time, train_event = time, event
        censoring_from = "scored patients"
        notes.append("censoring weights estimated on the scored patients themselves (no training cohort given)")
    test = Surv.from_arrays(event, time)
    train = Surv.from_arrays(np.asarray(train_event).astype(bool), np.asarray(train_time, dtype=float))
    times = evaluation_times(time, event) if times is None else np.asarray(times, dtype=float)
    auc_values: list[float] = []
    mean_auc = math.nan
    if times.size:
        try:
            auc, mean = cumulative_dynamic_auc(train, test, risk, times)
            auc_values, mean_auc = [float(a) for a in np.atleast_1d(auc)], float(mean)
        except ValueError as exc:
            notes.append(f"time-dependent AUC undefined: {exc}")
            auc_values = [math.nan] * times.size
    else:
        notes.append("no evaluation time inside the follow-up after the first relapse: time-dependent AUC undefined")
    ibs = math.nan
    if survival is None:
        notes.append("integrated Brier score needs predicted survival functions; only a risk score was given")
    else:
        grid = np.asarray(survival_times, dtype=float)
        keep = (grid >= time.min()) & (grid < time.max())
        if keep.sum() < 2:
            notes.append("integrated Brier score undefined: fewer than two survival times inside the follow-up")
        else:
            try:
                ibs = float(integrated_brier_score(train, test, np.asarray(survival, dtype=float)[:, keep], grid[keep]))
            except ValueError as exc:
                notes.append(f"integrated Brier score undefined: {exc}")
    return TimeDependentResult([float(t) for t in times], auc_values, mean_auc, ibs, censoring_from, notes)
