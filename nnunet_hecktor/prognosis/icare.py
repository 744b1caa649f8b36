"""ICARE-style survival models: binary-weighted averages of standardised features, and their bagging.

The HECKTOR 2022 outcome winner used a bagged ICARE model over nnU-Net-derived features
(Rebaud et al., "Simplicity is all you need", HECKTOR 2022). One model: standardise the features, rank them by how far their
univariate C-index lies from 0.5, keep those far enough from it while skipping any feature
highly correlated with one already kept, give each kept feature the weight +1 or -1 by the
direction of its C-index, and predict the average weighted value. The bagged model fits one
such model per bootstrap sample (optionally on a random subset of features) and predicts the
median of their risks. Written here because the ``icare`` package on PyPI no longer works
with current scikit-learn.

Conventions follow scikit-survival: ``y`` is a structured array with an event field (bool)
then a time field (days), e.g. from :func:`sksurv.util.Surv.from_arrays`, and ``predict``
returns a risk score, higher = earlier event.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from sksurv.base import SurvivalAnalysisMixin  # score() = Harrell's C-index, as for sksurv's own estimators

from nnunet_hecktor.metrics.survival import concordance_counts


def survival_arrays(y) -> tuple[np.ndarray, np.ndarray]:
    """``(event bool, time float)`` from a scikit-survival structured array (event field first)."""
    y = np.asarray(y)
    if y.dtype.names is None or len(y.dtype.names) != 2:
        raise ValueError("y must be a structured array (event, time), e.g. sksurv.util.Surv.from_arrays(event, time)")
    event_field, time_field = y.dtype.names
    return y[event_field].astype(bool), y[time_field].astype(float)


def univariate_concordance(X, time, event, max_block: int = 8_000_000) -> np.ndarray:
    """Harrell's C-index of every column of ``X`` used as a risk score (higher = earlier event).

    Computed by :func:`nnunet_hecktor.metrics.survival.concordance_counts` (its pair rules and
    tie rule: only exactly equal values tie). Pairs with a NaN in the column are left out; a
    column without a usable comparable pair gets 0.5.

    Parameters
    ----------
    X : array ``(n_samples, n_features)``
    time : array ``(n_samples,)``, days
    event : array ``(n_samples,)`` of bool, True = event observed
    max_block : int
        Elements of the largest temporary array (memory bound).

    Returns
    -------
    numpy.ndarray ``(n_features,)``
    """
    concordant, discordant, tied = concordance_counts(X, time, event, max_block=max_block)
    total = concordant + discordant + tied
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (concordant + 0.5 * tied) / total
    return np.where(total > 0, c, 0.5)


def _as_matrix(X) -> tuple[np.ndarray, np.ndarray | None]:
    names = np.asarray(X.columns, dtype=object) if hasattr(X, "columns") else None
    return np.asarray(X, dtype=float), names


class IcareSurvival(SurvivalAnalysisMixin, BaseEstimator):
    """One ICARE model: sign-weighted mean of selected standardised features.

    Parameters
    ----------
    correlation_threshold : float
        Of two features whose absolute Pearson correlation exceeds this, only the one with the
        stronger univariate association is kept.
    min_c_index_margin : float
        A feature is kept only when ``|C - 0.5| >= min_c_index_margin`` (its univariate C-index
        C). When none qualifies, the single strongest feature is kept so the model is defined.

    Attributes
    ----------
    mean_, scale_ : arrays of the training standardisation (scale 1 for constant features)
    univariate_c_index_ : array, the training C-index of each feature (higher value = earlier event)
    weights_ : array of {-1, 0, +1}, the weight of each feature (0 = not selected)
    selected_ : indices of the selected features, strongest first
    feature_names_in_ : names when fitted on a DataFrame

    Notes
    -----
    Missing values (NaN) are allowed: they are left out of the standardisation, the C-indices,
    and the average of each patient (a patient with no selected value gets risk 0).
    """

    def __init__(self, correlation_threshold: float = 0.8, min_c_index_margin: float = 0.05):
        self.correlation_threshold = correlation_threshold
        self.min_c_index_margin = min_c_index_margin

    def fit(self, X, y):
        """Fit on features ``X`` and the structured survival array ``y``."""
        X, names = _as_matrix(X)
        event, time = survival_arrays(y)
        if X.shape[0] != event.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {event.shape[0]}")
        if names is not None:
            self.feature_names_in_ = names
        self.n_features_in_ = X.shape[1]
        with np.errstate(invalid="ignore"):
            mean = np.nanmean(X, axis=0) if X.size else np.zeros(X.shape[1])
            scale = np.nanstd(X, axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        scale = np.where(np.isfinite(scale) & (scale > 1e-12), scale, 1.0)
        self.mean_, self.scale_ = mean, scale
        Z = (X - mean) / scale
        c = univariate_concordance(Z, time, event)
        strength = np.abs(c - 0.5)
        # Correlations on mean-filled standardised values (a missing value adds nothing to the
        # sums), computed only against the features already kept: cheap, and no BLAS threads.
        filled = np.nan_to_num(Z, nan=0.0)
        norms = np.sqrt((filled ** 2).sum(axis=0))
        order = np.argsort(-strength, kind="stable")
        selected: list[int] = []
        for j in order:
            if strength[j] < self.min_c_index_margin:
                break
            if selected and norms[j] > 0:
                kept = np.asarray(selected)
                dots = (filled[:, kept] * filled[:, [j]]).sum(axis=0)
                corr = dots / np.maximum(norms[kept] * norms[j], 1e-300)
                if np.any(np.abs(corr) > self.correlation_threshold):
                    continue
            selected.append(int(j))
        if not selected:
            selected = [int(order[0])]
        weights = np.zeros(X.shape[1])
        weights[selected] = np.where(c[selected] >= 0.5, 1.0, -1.0)
        self.univariate_c_index_ = c
        self.weights_ = weights
        self.selected_ = np.asarray(selected, dtype=int)
        return self

    def predict(self, X) -> np.ndarray:
        """Risk score (higher = earlier event): mean of ``weight * standardised value`` over the
        selected features present for each patient."""
        check_is_fitted(self, "weights_")
        X, _ = _as_matrix(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model was fitted on {self.n_features_in_}")
        Z = (X[:, self.selected_] - self.mean_[self.selected_]) / self.scale_[self.selected_]
        weighted = Z * self.weights_[self.selected_]
        present = ~np.isnan(weighted)
        counts = present.sum(axis=1)
        sums = np.where(present, weighted, 0.0).sum(axis=1)
        return np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)


class BaggedIcareSurvival(SurvivalAnalysisMixin, BaseEstimator):
    """Bagged ICARE: :class:`IcareSurvival` models on bootstrap samples, median of their risks.

    Parameters
    ----------
    n_estimators : int
        Number of bootstrap models.
    max_samples : float
        Bootstrap sample size as a fraction of the training rows (drawn with replacement).
    max_features : float
        Fraction of the features offered to each model (random subspace); 1.0 = all.
    correlation_threshold, min_c_index_margin : float
        Passed to each :class:`IcareSurvival`.
    random_state : int or None

    Attributes
    ----------
    estimators_ : list of (feature indices, fitted IcareSurvival)
    feature_weights_ : array, mean weight of each feature over the models that were offered it
        (between -1 and +1: the direction and how consistently it was selected)
    """

    def __init__(self, n_estimators: int = 100, max_samples: float = 1.0, max_features: float = 1.0,
                 correlation_threshold: float = 0.8, min_c_index_margin: float = 0.05, random_state=None):
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.correlation_threshold = correlation_threshold
        self.min_c_index_margin = min_c_index_margin
        self.random_state = random_state

    def fit(self, X, y):
        """Fit ``n_estimators`` ICARE models on bootstrap samples of ``(X, y)``."""
        X, names = _as_matrix(X)
        event, _ = survival_arrays(y)
        if not event.any():
            raise ValueError("no events in the training data: a survival model cannot be fitted")
        if names is not None:
            self.feature_names_in_ = names
        n, p = X.shape
        self.n_features_in_ = p
        rng = np.random.default_rng(self.random_state)
        n_draw = max(2, int(round(self.max_samples * n)))
        n_feat = max(1, int(round(self.max_features * p)))
        self.estimators_ = []
        weight_sum = np.zeros(p)
        offered = np.zeros(p)
        for _ in range(int(self.n_estimators)):
            rows = rng.integers(0, n, size=n_draw)
            if not event[rows].any():  # a bootstrap sample without events says nothing; redraw once
                rows = rng.integers(0, n, size=n_draw)
            cols = np.sort(rng.choice(p, size=n_feat, replace=False)) if n_feat < p else np.arange(p)
            model = IcareSurvival(self.correlation_threshold, self.min_c_index_margin)
            model.fit(X[np.ix_(rows, cols)], y[rows])
            self.estimators_.append((cols, model))
            weight_sum[cols] += model.weights_
            offered[cols] += 1
        self.feature_weights_ = np.divide(weight_sum, offered, out=np.zeros(p), where=offered > 0)
        return self

    def predict(self, X) -> np.ndarray:
        """Median over the bootstrap models of their risk scores (higher = earlier event)."""
        check_is_fitted(self, "estimators_")
        X, _ = _as_matrix(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model was fitted on {self.n_features_in_}")
        risks = np.stack([model.predict(X[:, cols]) for cols, model in self.estimators_])
        return np.median(risks, axis=0)

    def selected_features(self, min_abs_weight: float = 0.5) -> dict[str, float]:
        """Features whose mean weight is at least ``min_abs_weight`` in absolute value: name -> weight."""
        check_is_fitted(self, "feature_weights_")
        names = getattr(self, "feature_names_in_", None)
        names = names if names is not None else [f"x{i}" for i in range(self.n_features_in_)]
        order = np.argsort(-np.abs(self.feature_weights_), kind="stable")
        return {str(names[i]): float(self.feature_weights_[i]) for i in order
                if abs(self.feature_weights_[i]) >= min_abs_weight}
