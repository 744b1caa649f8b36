"""Association of a score with a factor, beyond what other variables explain (rank-based).

Used by the learning benchmark to ask which risk / HPV scores carry the synthetic rich world's
image-only factors (:mod:`nnunet_hecktor.synthetic.image_factors`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class PartialCorrelation:
    """A partial Spearman correlation with its percentile bootstrap interval (patients resampled)."""

    value: float
    low: float
    high: float
    n_patients: int

    @property
    def positive(self) -> bool:
        """True when the whole interval is above 0 (the score carries the factor)."""
        return bool(self.low > 0)

    def to_dict(self) -> dict:
        return {"value": self.value, "interval": [self.low, self.high], "n_patients": self.n_patients,
                "captured": self.positive}


def partial_spearman(score, factor, given, n_bootstrap: int = 500, seed: int = 0,
                     level: float = 0.95) -> PartialCorrelation:
    """Spearman correlation of ``score`` and ``factor`` given the variables ``given``.

    Ranks of ``score`` and ``factor`` are each regressed (least squares, with an intercept) on the
    ranks of every column of ``given``; the result is the Pearson correlation of the two residuals.
    With one column this equals the textbook first-order partial correlation of the ranks.

    Parameters
    ----------
    score, factor : array-like, shape (n,)
        E.g. a model's risk (any direction) and a generating factor.
    given : array-like, shape (n,) or (n, k)
        Variables whose (rank-linear) part is removed from both.
    n_bootstrap, seed, level :
        Percentile bootstrap over patients (replicates whose correlation is undefined are dropped).

    Returns
    -------
    PartialCorrelation
        In [-1, 1]; NaN when a residual is constant.
    """
    score, factor = np.asarray(score, float), np.asarray(factor, float)
    if not len(score) == len(factor) == len(np.asarray(given)):
        raise ValueError(f"score, factor and given differ in length ({len(score)}, {len(factor)}, "
                         f"{len(np.asarray(given))})")
    given = np.asarray(given, float).reshape(len(score), -1)

    def partial(idx: np.ndarray) -> float:
        return _partial(score[idx], factor[idx], given[idx])

    return _percentile_bootstrap(partial, len(score), n_bootstrap, seed, level)


def paired_partial_spearman(score_a, score_b, factor, given, n_bootstrap: int = 500, seed: int = 0,
                            level: float = 0.95) -> PartialCorrelation:
    """Difference of the partial Spearman correlations of two scores with the same factor (a minus b).

    Both are computed on the same bootstrap resamples of the same patients (as
    :func:`partial_spearman`), so the interval is that of the paired difference.
    """
    score_a, score_b = np.asarray(score_a, float), np.asarray(score_b, float)
    if len(score_a) != len(score_b):
        raise ValueError(f"the two scores differ in length ({len(score_a)}, {len(score_b)})")
    n = len(score_a)
    factor, given = np.asarray(factor, float), np.asarray(given, float).reshape(n, -1)

    def difference(idx: np.ndarray) -> float:
        return (_partial(score_a[idx], factor[idx], given[idx])
                - _partial(score_b[idx], factor[idx], given[idx]))

    return _percentile_bootstrap(difference, n, n_bootstrap, seed, level)


def _percentile_bootstrap(statistic: Callable[[np.ndarray], float], n: int, n_bootstrap: int, seed: int,
                          level: float) -> PartialCorrelation:
    """``statistic`` on all ``n`` patients, with the percentile interval over resamples of them
    (replicates where it is undefined are dropped)."""
    rng = np.random.default_rng(seed)
    replicates = np.array([statistic(rng.integers(0, n, n)) for _ in range(n_bootstrap)])
    replicates = replicates[np.isfinite(replicates)]
    tail = 100 * (1 - level) / 2
    low, high = (np.percentile(replicates, [tail, 100 - tail]) if replicates.size else (np.nan, np.nan))
    return PartialCorrelation(statistic(np.arange(n)), float(low), float(high), n)


def _partial(score: np.ndarray, factor: np.ndarray, given: np.ndarray) -> float:
    """Correlation of the rank residuals of ``score`` and ``factor`` given ``given`` (n x k)."""
    from scipy.stats import rankdata

    s, f = rankdata(score), rankdata(factor)
    design = np.column_stack([np.ones(len(s))] + [rankdata(given[:, j]) for j in range(given.shape[1])])
    rs = s - design @ np.linalg.lstsq(design, s, rcond=None)[0]
    rf = f - design @ np.linalg.lstsq(design, f, rcond=None)[0]
    denominator = float(np.sqrt((rs @ rs) * (rf @ rf)))
    return float(rs @ rf / denominator) if denominator > 0 else float("nan")
