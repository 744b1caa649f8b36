"""Patient-level bootstrap confidence intervals for the HECKTOR metrics.

A bootstrap replicate draws ``n`` patients with replacement. Instead of copying data, each
replicate is represented by its *weights*: how many times each patient was drawn
(``weights[b, i]``). Every HECKTOR metric is a ratio of sums over patients or over pairs of
patients, so a replicate's value is a weighted sum, computed for all replicates at once with a
matrix product. This gives exactly the value the metric would have on the resampled data:

- Task 1: sums of per-patient statistics (GTVp Dice, GTVn mm³, TP/FP/FN) times the weights.
- C-index: ``w^T K w / w^T M w`` with ``K`` the concordance score of each ordered pair and
  ``M`` its comparability; two copies of one patient share time and event status and are
  never comparable, matching what a resampled data set would give.
- AUC: ``w_pos^T A w_neg / (Σw_pos Σw_neg)`` with ``A`` the pairwise win matrix (exact ties 0.5).

Intervals are percentile intervals (default 95 %) over the replicates where the metric is
defined (e.g. a replicate without a comparable pair has no C-index); the number of valid
replicates is reported. Pair matrices take ``O(n²)`` memory (8 MB for 1,000 patients).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from nnunet_hecktor.metrics.segmentation import Task1Arrays
from nnunet_hecktor.metrics.survival import concordance_pair_matrices, pair_score


@dataclass(frozen=True)
class ConfidenceInterval:
    """A percentile bootstrap interval; ``low``/``high`` are NaN when no replicate was valid."""

    low: float
    high: float
    level: float
    n_bootstrap: int
    n_valid: int

    def to_dict(self) -> dict:
        return asdict(self)


def resampling_weights(n: int, n_bootstrap: int, seed: int | np.random.SeedSequence | None = 0) -> np.ndarray:
    """Weights of ``n_bootstrap`` patient-level resamples of ``n`` patients.

    Returns
    -------
    ndarray of int, shape (n_bootstrap, n)
        ``weights[b, i]`` = how often patient ``i`` was drawn in replicate ``b`` (rows sum to ``n``).
    """
    rng = np.random.default_rng(seed)
    weights = np.zeros((n_bootstrap, n), dtype=np.int64)
    if n == 0:
        return weights
    draws = rng.integers(0, n, size=(n_bootstrap, n))
    rows = np.repeat(np.arange(n_bootstrap), n)
    np.add.at(weights, (rows, draws.ravel()), 1)
    return weights


def percentile_interval(values: np.ndarray, level: float = 0.95) -> ConfidenceInterval:
    """Percentile interval of the finite bootstrap ``values``."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return ConfidenceInterval(math.nan, math.nan, level, values.size, 0)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return ConfidenceInterval(float(low), float(high), level, values.size, int(finite.size))


def _ratio(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    out = np.full(num.shape, float(empty))
    np.divide(num, den, out=out, where=den > 0)
    return out


def bootstrap_task1(arrays: Task1Arrays, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Task 1 figures of each bootstrap replicate.

    Parameters
    ----------
    arrays : Task1Arrays
        Per-patient statistics (NaN GTVp Dice = patient left out of the mean).
    weights : ndarray, shape (n_bootstrap, n_patients)
        From :func:`resampling_weights`.

    Returns
    -------
    dict
        ``gtvp_dice_mean``, ``gtvn_dice_agg``, ``gtvn_f1_agg``: arrays of shape (n_bootstrap,).
    """
    w = np.asarray(weights, dtype=float)
    valid = ~np.isnan(arrays.gtvp_dice)
    gtvp = _ratio(w[:, valid] @ arrays.gtvp_dice[valid], w[:, valid].sum(axis=1), math.nan)
    gtvn_dice = _ratio(2.0 * (w @ arrays.gtvn_intersection_mm3), w @ arrays.gtvn_volume_sum_mm3, 1.0)
    tp, fp, fn = (w @ arrays.gtvn_tp.astype(float), w @ arrays.gtvn_fp.astype(float), w @ arrays.gtvn_fn.astype(float))
    gtvn_f1 = _ratio(2.0 * tp, 2.0 * tp + fp + fn, 1.0)
    return {"gtvp_dice_mean": gtvp, "gtvn_dice_agg": gtvn_dice, "gtvn_f1_agg": gtvn_f1}


def bootstrap_c_index(time, event, risk, weights: np.ndarray) -> np.ndarray:
    """Harrell's C-index of each bootstrap replicate (NaN where no pair is comparable).

    Pair rules and tie rule are those of :mod:`nnunet_hecktor.metrics.survival` (only exactly
    equal risks tie, as lifelines).
    """
    score, comparable = concordance_pair_matrices(time, event, risk)
    w = np.asarray(weights, dtype=float)
    numerator = np.einsum("bi,bi->b", w @ score, w)
    denominator = np.einsum("bi,bi->b", w @ comparable, w)
    return _ratio(numerator, denominator, math.nan)


def bootstrap_binary(y_true, y_pred, weights: np.ndarray, score=None) -> dict[str, np.ndarray]:
    """Balanced accuracy, sensitivity, specificity (hard labels) and AUC (``score``) per replicate.

    Positive class = 1 (HPV positive). As in :func:`nnunet_hecktor.metrics.classification.binary_metrics`,
    a replicate with one class only has a balanced accuracy equal to the recall of that class,
    and NaN sensitivity/specificity/AUC for the missing class.
    """
    y = np.asarray(y_true).astype(int).ravel() == 1
    p = np.asarray(y_pred).astype(int).ravel() == 1
    w = np.asarray(weights, dtype=float)
    n_pos, n_neg = w @ y.astype(float), w @ (~y).astype(float)
    sensitivity = _ratio(w @ (y & p).astype(float), n_pos, math.nan)
    specificity = _ratio(w @ (~y & ~p).astype(float), n_neg, math.nan)
    with np.errstate(all="ignore"):
        both = np.vstack([sensitivity, specificity])
        counts = np.sum(np.isfinite(both), axis=0)
        balanced = np.where(counts > 0, np.nansum(both, axis=0) / np.maximum(counts, 1), math.nan)
    out = {"balanced_accuracy": balanced, "sensitivity": sensitivity, "specificity": specificity}
    if score is not None:
        s = np.asarray(score, dtype=float).ravel()
        wins = pair_score(s[y][:, None] - s[~y][None, :])  # Mann-Whitney: exact ties count 0.5
        numerator = np.einsum("bi,bi->b", w[:, y] @ wins, w[:, ~y])
        out["auc"] = _ratio(numerator, n_pos * n_neg, math.nan)
    return out
