"""Candidate survival models of the prognosis stage and their ensemble.

Every candidate is a :class:`~sklearn.pipeline.Pipeline` ``preprocess -> model`` so that
imputation/scaling/encoding are refitted inside each training fold. Risks are "higher =
earlier relapse" for all of them. Their scales differ (a Cox linear predictor, a forest's
cumulative hazard, an ICARE average of z-scores), so before pooling predictions across folds
or averaging models, each fitted model's risks are standardised with the mean and standard
deviation of its own predictions on its training rows (:class:`RiskScale`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, clone
from sksurv.base import SurvivalAnalysisMixin  # a hard dependency

from nnunet_hecktor.prognosis.icare import BaggedIcareSurvival, survival_arrays, univariate_concordance
from nnunet_hecktor.prognosis.preprocessing import ColumnRoles, make_preprocessor

SURVIVAL_CANDIDATES: tuple[str, ...] = ("coxnet", "rsf", "gbsa", "icare")
ENSEMBLE = "ensemble"


class CoxnetCV(SurvivalAnalysisMixin, BaseEstimator):
    """Elastic-net Cox model (:class:`sksurv.linear_model.CoxnetSurvivalAnalysis`) whose penalty is
    chosen by an inner cross-validation on the training rows (Harrell's C-index).

    Parameters
    ----------
    l1_ratio : float
        Elastic-net mixing (1 = lasso).
    n_alphas, alpha_min_ratio : int, float
        The penalty path (see scikit-survival).
    inner_folds : int
        Folds of the inner cross-validation, stratified on the event indicator.
    random_state : int

    Attributes
    ----------
    model_ : the fitted CoxnetSurvivalAnalysis path
    alpha_ : the chosen penalty
    """

    def __init__(self, l1_ratio: float = 0.5, n_alphas: int = 30, alpha_min_ratio: float = 0.01,
                 inner_folds: int = 3, random_state: int = 0):
        self.l1_ratio = l1_ratio
        self.n_alphas = n_alphas
        self.alpha_min_ratio = alpha_min_ratio
        self.inner_folds = inner_folds
        self.random_state = random_state

    def _path(self, alphas=None, alpha_min_ratio=None):
        from sksurv.linear_model import CoxnetSurvivalAnalysis

        return CoxnetSurvivalAnalysis(l1_ratio=self.l1_ratio, n_alphas=self.n_alphas, alphas=alphas,
                                      alpha_min_ratio=alpha_min_ratio or self.alpha_min_ratio, max_iter=100000)

    def _fit_path(self, X, y, alphas=None):
        # A too-small penalty can make the path diverge on collinear features; shorten it then.
        ratio = self.alpha_min_ratio
        for _ in range(4):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return self._path(alphas, ratio).fit(X, y)
            except ArithmeticError:
                if alphas is not None:
                    alphas = alphas[: max(1, len(alphas) * 3 // 4)]
                ratio = min(0.5, ratio * 5)
        raise ArithmeticError("elastic-net Cox model did not converge even with strong penalties")

    def fit(self, X, y):
        """Fit the penalty path on all rows, pick the penalty by inner cross-validation."""
        from sklearn.model_selection import StratifiedKFold

        X = np.asarray(X, dtype=float)
        event, time = survival_arrays(y)
        self.model_ = self._fit_path(X, y)
        alphas = np.asarray(self.model_.alphas_)
        scores = np.zeros(len(alphas))
        counts = np.zeros(len(alphas))
        n_splits = int(min(self.inner_folds, event.sum(), (~event).sum()))
        if n_splits >= 2:
            splitter = StratifiedKFold(n_splits, shuffle=True, random_state=self.random_state)
            for train, val in splitter.split(X, event):
                try:
                    inner = self._fit_path(X[train], y[train], alphas)
                except ArithmeticError:
                    continue
                for k, alpha in enumerate(inner.alphas_):
                    risk = inner.predict(X[val], alpha=alpha)
                    c = univariate_concordance(risk[:, None], time[val], event[val])[0]
                    idx = int(np.argmin(np.abs(alphas - alpha)))
                    scores[idx] += c
                    counts[idx] += 1
        mean = np.where(counts > 0, scores / np.maximum(counts, 1), -np.inf)
        # Ties go to the larger penalty (the simpler model): alphas are in decreasing order.
        best = int(np.argmax(mean)) if np.isfinite(mean).any() else len(alphas) // 2
        self.alpha_ = float(alphas[best])
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X) -> np.ndarray:
        """Linear predictor at the chosen penalty (higher = earlier event)."""
        return self.model_.predict(np.asarray(X, dtype=float), alpha=self.alpha_)


def survival_estimator(name: str, random_state: int = 0, n_jobs: int = 1):
    """The unfitted model behind a candidate name (see :data:`SURVIVAL_CANDIDATES`)."""
    if name == "coxnet":
        return CoxnetCV(l1_ratio=0.5, random_state=random_state)
    if name == "rsf":
        from sksurv.ensemble import RandomSurvivalForest

        return RandomSurvivalForest(n_estimators=200, min_samples_leaf=10, max_features="sqrt",
                                    random_state=random_state, n_jobs=n_jobs)
    if name == "gbsa":
        from sksurv.ensemble import GradientBoostingSurvivalAnalysis

        return GradientBoostingSurvivalAnalysis(n_estimators=150, learning_rate=0.05, max_depth=2, subsample=0.8,
                                                random_state=random_state)
    if name == "icare":
        return BaggedIcareSurvival(n_estimators=100, random_state=random_state)
    raise ValueError(f"unknown survival model {name!r}; choose from {', '.join(SURVIVAL_CANDIDATES)}")


def survival_pipeline(roles: ColumnRoles, name: str, random_state: int = 0, n_jobs: int = 1):
    """``Pipeline([("preprocess", ...), ("model", ...)])`` for candidate ``name``."""
    from sklearn.pipeline import Pipeline

    return Pipeline([("preprocess", make_preprocessor(roles)),
                     ("model", survival_estimator(name, random_state, n_jobs))])


@dataclass(frozen=True)
class RiskScale:
    """Mean and standard deviation of a fitted model's risks on its own training rows."""

    mean: float
    std: float

    @classmethod
    def of(cls, risks) -> "RiskScale":
        risks = np.asarray(risks, dtype=float)
        std = float(risks.std())
        return cls(float(risks.mean()), std if std > 1e-12 else 1.0)

    def apply(self, risks) -> np.ndarray:
        return (np.asarray(risks, dtype=float) - self.mean) / self.std


class RiskEnsemble(SurvivalAnalysisMixin, BaseEstimator):
    """Average of the standardised risks of several survival pipelines (higher = earlier event).

    Parameters
    ----------
    estimators : list of (name, estimator)
        Unfitted survival estimators (pipelines); each is cloned and fitted on the same rows.

    Attributes
    ----------
    estimators_ : list of (name, fitted estimator, RiskScale)
    """

    def __init__(self, estimators):
        self.estimators = estimators

    def fit(self, X, y):
        self.estimators_ = []
        for name, estimator in self.estimators:
            fitted = clone(estimator).fit(X, y)
            self.estimators_.append((name, fitted, RiskScale.of(fitted.predict(X))))
        return self

    def predict(self, X) -> np.ndarray:
        return np.mean([scale.apply(model.predict(X)) for _, model, scale in self.estimators_], axis=0)
