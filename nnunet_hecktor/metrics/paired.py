"""Paired bootstrap comparisons of two prediction sets scored on the same patients.

A claim that model A beats model B is a statement about the *difference* of their metrics on the
same patients. Both metrics are computed on the same bootstrap replicates (the same
:func:`~nnunet_hecktor.metrics.bootstrap.resampling_weights`), so the interval of the difference
carries the correlation between the two models: it is much narrower than the two per-model
intervals suggest, and it is the interval that decides.

Verdict (:func:`verdict_of`): ``"better"`` when the interval of ``A - B`` lies above 0, ``"worse"``
when it lies below 0, ``"undecided"`` when it contains 0 (or no replicate was valid). For every
metric here higher is better (Dice, F1, C-index with risk higher = earlier event, AUC, balanced
accuracy).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from nnunet_hecktor.metrics.bootstrap import (
    ConfidenceInterval,
    bootstrap_binary,
    bootstrap_c_index,
    percentile_interval,
    resampling_weights,
)

#: Replicates of a paired comparison unless a caller says otherwise.
DEFAULT_PAIRED_BOOTSTRAP = 2000

VERDICTS: tuple[str, ...] = ("better", "worse", "undecided")


@dataclass(frozen=True)
class PairedComparison:
    """The difference ``A - B`` of one metric on the same patients, with its paired interval.

    Attributes
    ----------
    metric : str
    name_a, name_b : str
        The two prediction sets (``A`` is the one the verdict is about).
    value_a, value_b : float
        The metric of each on all patients.
    difference : float
        ``value_a - value_b``.
    interval : ConfidenceInterval
        Percentile interval of the replicate differences (replicates where both are defined).
    verdict : str
        ``"better"``, ``"worse"`` or ``"undecided"`` (:func:`verdict_of`).
    n_patients : int
    """

    metric: str
    name_a: str
    name_b: str
    value_a: float
    value_b: float
    difference: float
    interval: ConfidenceInterval
    verdict: str
    n_patients: int

    def to_dict(self) -> dict:
        out = asdict(self)
        out["interval"] = self.interval.to_dict()
        return out

    def describe(self, digits: int = 3) -> str:
        """One line: ``C-index: A - B = +0.031 [0.004, 0.058] (better)``."""
        f = f"{{:+.{digits}f}}"
        g = f"{{:.{digits}f}}"
        return (f"{self.metric}: {self.name_a} - {self.name_b} = {f.format(self.difference)} "
                f"[{g.format(self.interval.low)}, {g.format(self.interval.high)}] ({self.verdict})")


def verdict_of(interval: ConfidenceInterval) -> str:
    """``"better"`` / ``"worse"`` when the interval of ``A - B`` excludes 0 on that side, else ``"undecided"``."""
    if not (math.isfinite(interval.low) and math.isfinite(interval.high)):
        return "undecided"
    if interval.low > 0:
        return "better"
    if interval.high < 0:
        return "worse"
    return "undecided"


def compare_replicates(metric: str, name_a: str, name_b: str, value_a: float, value_b: float,
                       replicates_a: np.ndarray, replicates_b: np.ndarray, n_patients: int,
                       level: float = 0.95) -> PairedComparison:
    """A :class:`PairedComparison` from the two metrics' values on the **same** replicates.

    Replicates where either metric is undefined (NaN) are left out of the interval.
    """
    a, b = np.asarray(replicates_a, dtype=float), np.asarray(replicates_b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"{metric}: replicate arrays differ in shape ({a.shape} vs {b.shape}); "
                         "a paired comparison needs the same resamples for both")
    interval = percentile_interval(a - b, level)
    return PairedComparison(metric, name_a, name_b, float(value_a), float(value_b), float(value_a - value_b),
                            interval, verdict_of(interval), int(n_patients))


def paired_statistic(metric: str, statistic: Callable[[np.ndarray], np.ndarray], point: Callable[[], float],
                     n_patients: int, name_a: str, name_b: str, statistic_b: Callable[[np.ndarray], np.ndarray],
                     point_b: Callable[[], float], n_bootstrap: int = DEFAULT_PAIRED_BOOTSTRAP, seed: int = 0,
                     level: float = 0.95) -> PairedComparison:
    """Generic paired comparison: ``statistic(weights) -> replicate values`` for A and for B.

    ``weights`` has shape ``(n_bootstrap, n_patients)`` (:func:`resampling_weights`) and is the
    same for both; ``point()`` gives each metric on all patients.
    """
    weights = resampling_weights(n_patients, n_bootstrap, seed)
    return compare_replicates(metric, name_a, name_b, point(), point_b(), statistic(weights), statistic_b(weights),
                              n_patients, level)


def paired_c_index(time, event, risk_a, risk_b, name_a: str = "A", name_b: str = "B",
                   n_bootstrap: int = DEFAULT_PAIRED_BOOTSTRAP, seed: int = 0, level: float = 0.95) -> PairedComparison:
    """Paired comparison of Harrell's C-index of two risk scores (higher = earlier event)."""
    from nnunet_hecktor.metrics.survival import harrell_c_index

    time, event = np.asarray(time, dtype=float), np.asarray(event).astype(int)
    return paired_statistic(
        "C-index", lambda w: bootstrap_c_index(time, event, risk_a, w), lambda: harrell_c_index(time, event, risk_a),
        len(time), name_a, name_b, lambda w: bootstrap_c_index(time, event, risk_b, w),
        lambda: harrell_c_index(time, event, risk_b), n_bootstrap, seed, level)


def paired_binary(y_true, metric: str, name_a: str = "A", name_b: str = "B", *, pred_a=None, pred_b=None,
                  score_a=None, score_b=None, n_bootstrap: int = DEFAULT_PAIRED_BOOTSTRAP, seed: int = 0,
                  level: float = 0.95) -> PairedComparison:
    """Paired comparison of a binary metric: ``"auc"`` (from scores) or ``"balanced_accuracy"``,
    ``"sensitivity"``, ``"specificity"`` (from hard labels; positive class = 1).

    Balanced accuracy is NaN (left out of the interval) on a replicate holding one class only, as in
    :func:`bootstrap_multiclass_balanced_accuracy`.
    """
    y = np.asarray(y_true).astype(int).ravel()
    n = y.size
    if metric == "auc":
        if score_a is None or score_b is None:
            raise ValueError("the AUC comparison needs score_a and score_b")
        dummy = np.zeros(n, dtype=int)

        def replicates(score):
            return lambda w: bootstrap_binary(y, dummy, w, score)["auc"]

        def whole(score):
            return lambda: float(replicates(score)(np.ones((1, n)))[0])

        return paired_statistic("AUC", replicates(score_a), whole(score_a), n, name_a, name_b,
                                replicates(score_b), whole(score_b), n_bootstrap, seed, level)
    if pred_a is None or pred_b is None:
        raise ValueError(f"the {metric} comparison needs pred_a and pred_b (hard labels)")

    def replicates_of(pred):
        def values(w):
            out = bootstrap_binary(y, pred, w)[metric]
            if metric == "balanced_accuracy":
                # Undefined on a replicate with one class (the recall of that class would stand in for it).
                n_pos = np.asarray(w, dtype=float) @ (y == 1).astype(float)
                out = np.where((n_pos == 0) | (n_pos == np.asarray(w, dtype=float).sum(axis=1)), math.nan, out)
            return out

        return values

    def whole_of(pred):
        return lambda: float(replicates_of(pred)(np.ones((1, n)))[0])

    return paired_statistic(metric.replace("_", " "), replicates_of(pred_a), whole_of(pred_a), n, name_a, name_b,
                            replicates_of(pred_b), whole_of(pred_b), n_bootstrap, seed, level)


def bootstrap_multiclass_balanced_accuracy(y_true, y_pred, weights: np.ndarray) -> np.ndarray:
    """Multi-class balanced accuracy (mean recall over the classes present) of each replicate.

    The same definition as :func:`sklearn.metrics.balanced_accuracy_score` (classes are those of
    ``y_true`` in the replicate); used for T and N stage (ordinal codes, ``schema.stage_code``).
    A replicate with one class only is NaN: balanced accuracy is undefined there.
    """
    y = np.asarray(y_true).astype(int).ravel()
    p = np.asarray(y_pred).astype(int).ravel()
    w = np.asarray(weights, dtype=float)
    recalls = []
    present = []
    for k in np.unique(y):
        in_class = (y == k).astype(float)
        count = w @ in_class
        hits = w @ (in_class * (p == k))
        with np.errstate(all="ignore"):
            recalls.append(np.where(count > 0, hits / np.maximum(count, 1e-300), 0.0))
        present.append(count > 0)
    if not recalls:
        return np.full(w.shape[0], math.nan)
    recall, has = np.vstack(recalls), np.vstack(present)
    n_classes = has.sum(axis=0)
    with np.errstate(all="ignore"):
        return np.where(n_classes >= 2, (recall * has).sum(axis=0) / np.maximum(n_classes, 1), math.nan)


def paired_multiclass_balanced_accuracy(y_true, pred_a, pred_b, name_a: str = "A", name_b: str = "B",
                                        metric: str = "balanced accuracy",
                                        n_bootstrap: int = DEFAULT_PAIRED_BOOTSTRAP, seed: int = 0,
                                        level: float = 0.95) -> PairedComparison:
    """Paired comparison of the multi-class balanced accuracy of two hard-label predictions."""
    y = np.asarray(y_true).astype(int).ravel()
    n = y.size

    def replicates(pred):
        return lambda w: bootstrap_multiclass_balanced_accuracy(y, pred, w)

    def whole(pred):
        return lambda: float(replicates(pred)(np.ones((1, n)))[0])

    return paired_statistic(metric, replicates(pred_a), whole(pred_a), n, name_a, name_b, replicates(pred_b),
                            whole(pred_b), n_bootstrap, seed, level)


#: Task 1 figures of :func:`paired_task1`: key of :func:`~nnunet_hecktor.metrics.bootstrap.bootstrap_task1` -> name.
TASK1_FIGURES: dict[str, str] = {"gtvp_dice_mean": "GTVp mean Dice", "gtvn_dice_agg": "GTVn DSCagg",
                                 "gtvn_f1_agg": "GTVn F1agg"}


def paired_task1(arrays_a, arrays_b, name_a: str = "A", name_b: str = "B",
                 n_bootstrap: int = DEFAULT_PAIRED_BOOTSTRAP, seed: int = 0,
                 level: float = 0.95) -> dict[str, PairedComparison]:
    """Paired comparisons of the three Task 1 figures of two segmentations of the same patients.

    Parameters
    ----------
    arrays_a, arrays_b : Task1Arrays
        Per-patient statistics (:class:`~nnunet_hecktor.metrics.segmentation.Task1Arrays`) of the
        two prediction sets, for the same patients in the same order.
    name_a, name_b : str
    n_bootstrap, seed, level :
        One set of resampling weights drives all three figures of both sets, so each difference is
        the difference on the same resampled cohort (GTVp mean Dice over the patients in the mean;
        GTVn DSCagg and F1agg from the resampled sums).

    Returns
    -------
    dict
        ``gtvp_dice_mean``, ``gtvn_dice_agg``, ``gtvn_f1_agg`` -> :class:`PairedComparison`.
    """
    from nnunet_hecktor.metrics.bootstrap import bootstrap_task1

    if tuple(arrays_a.patients) != tuple(arrays_b.patients):
        raise ValueError("a paired Task 1 comparison needs the same patients in the same order "
                         f"({len(arrays_a.patients)} vs {len(arrays_b.patients)} patients)")
    n = len(arrays_a.patients)
    weights = resampling_weights(n, n_bootstrap, seed)
    whole = np.ones((1, n))
    rep_a, rep_b = bootstrap_task1(arrays_a, weights), bootstrap_task1(arrays_b, weights)
    point_a, point_b = bootstrap_task1(arrays_a, whole), bootstrap_task1(arrays_b, whole)
    return {key: compare_replicates(label, name_a, name_b, float(point_a[key][0]), float(point_b[key][0]),
                                    rep_a[key], rep_b[key], n, level)
            for key, label in TASK1_FIGURES.items()}
