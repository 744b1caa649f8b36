"""HPV status classifier of the prognosis stage, its decision threshold and prevalence adjustment.

Positive class = HPV positive (1). The classifier is a well-regularised logistic regression
(penalty chosen by inner cross-validation on the log-loss, which keeps the probabilities
calibrated), optionally wrapped in :class:`~sklearn.calibration.CalibratedClassifierCV`.

Prevalence shift. A new centre can have a different share of HPV-positive patients (label
shift). If the class-conditional feature distributions stay the same, Bayes' rule gives the
probability at the new prevalence ``pi_new`` from the training one ``pi_train`` by scaling the
odds::

    odds_new = odds_train * (pi_new / (1 - pi_new)) / (pi_train / (1 - pi_train))

Balanced accuracy does not depend on prevalence, so under pure label shift the decision that
maximises it does not change: the threshold is mapped through the same transform and every
patient keeps the label it would have had (:func:`adjusted_decision`). The adjustment makes the
reported probability right for the new site; ``decision="accuracy"`` instead thresholds the
adjusted probability at 0.5 (fewest errors at the new prevalence).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from nnunet_hecktor.prognosis.preprocessing import ColumnRoles, make_preprocessor

CALIBRATIONS: tuple[str, ...] = ("none", "sigmoid", "isotonic")
DECISIONS: tuple[str, ...] = ("balanced_accuracy", "accuracy")
#: Elastic-net mixing used by default (0 = ridge). On the cohorts of
#: ``benchmarks/bench_prognosis.py`` neither 0.5 nor ridge was better overall: the difference in
#: out-of-fold balanced accuracy (0.5 minus ridge, means of 10 repeated 5-fold CVs) ranged from
#: -0.029 to +0.020 across cohort sizes, segmentation error models and CV seeds.
DEFAULT_L1_RATIO = 0.0
_EPS = 1e-12


def logistic_regression(C: float, l1_ratio: float = 0.0, random_state: int = 0):
    """A LogisticRegression with the given inverse penalty and elastic-net mixing (0 = L2, 1 = L1),
    spelled for the installed scikit-learn (``penalty`` is deprecated from 1.8 on).

    ``random_state`` seeds the saga solver's sample order (used whenever ``l1_ratio > 0``), so a
    fit on the same rows gives the same coefficients."""
    import inspect

    from sklearn.linear_model import LogisticRegression

    if l1_ratio == 0.0:
        return LogisticRegression(C=C, max_iter=5000)
    if inspect.signature(LogisticRegression).parameters["penalty"].default == "deprecated":
        return LogisticRegression(C=C, l1_ratio=l1_ratio, solver="saga", max_iter=5000, random_state=random_state)
    return LogisticRegression(C=C, penalty="elasticnet", l1_ratio=l1_ratio, solver="saga", max_iter=5000,
                              random_state=random_state)


class PenalisedLogisticRegression(ClassifierMixin, BaseEstimator):
    """Penalised logistic regression whose penalty strength is chosen by inner stratified CV on the log-loss.

    (scikit-learn's LogisticRegressionCV does the same but its parameters are changing between
    releases; this keeps the behaviour fixed.)

    Parameters
    ----------
    Cs : sequence of float
        Inverse penalties to try.
    l1_ratio : float
        Elastic-net mixing: 0 = L2 (ridge), 1 = L1 (lasso).
    inner_folds : int
    random_state : int

    Attributes
    ----------
    C_ : chosen inverse penalty; model_ : the LogisticRegression refitted on all rows; classes_
    """

    def __init__(self, Cs=(0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 10.0), l1_ratio: float = 0.0, inner_folds: int = 3,
                 random_state: int = 0):
        self.Cs = Cs
        self.l1_ratio = l1_ratio
        self.inner_folds = inner_folds
        self.random_state = random_state

    def fit(self, X, y):
        from sklearn.metrics import log_loss
        from sklearn.model_selection import StratifiedKFold

        X = np.asarray(X, dtype=float)
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) != 2:
            raise ValueError(f"need two classes, got {self.classes_}")
        Cs = list(self.Cs)
        k = int(min(self.inner_folds, np.bincount(np.searchsorted(self.classes_, y)).min()))
        losses = np.zeros(len(Cs))
        if k >= 2 and len(Cs) > 1:
            for train, val in StratifiedKFold(k, shuffle=True, random_state=self.random_state).split(X, y):
                for i, C in enumerate(Cs):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", ConvergenceWarning)  # weak penalties on separable folds
                        model = logistic_regression(C, self.l1_ratio, self.random_state).fit(X[train], y[train])
                    losses[i] += log_loss(y[val], model.predict_proba(X[val]), labels=self.classes_)
        # Ties go to the stronger penalty (smaller C, listed first).
        self.C_ = float(Cs[int(np.argmin(losses))])
        self.model_ = logistic_regression(self.C_, self.l1_ratio, self.random_state).fit(X, y)
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.model_.predict_proba(np.asarray(X, dtype=float))

    def predict(self, X) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]


def hpv_pipeline(roles: ColumnRoles, calibration: str = "none", random_state: int = 0,
                 l1_ratio: float = DEFAULT_L1_RATIO):
    """``preprocess -> PenalisedLogisticRegression`` (optionally calibrated with ``calibration``)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import Pipeline

    if calibration not in CALIBRATIONS:
        raise ValueError(f"calibration must be one of {', '.join(CALIBRATIONS)}")
    pipeline = Pipeline([("preprocess", make_preprocessor(roles)),
                         ("model", PenalisedLogisticRegression(l1_ratio=l1_ratio, random_state=random_state))])
    if calibration == "none":
        return pipeline
    return CalibratedClassifierCV(pipeline, method=calibration, cv=StratifiedKFold(3, shuffle=True,
                                  random_state=random_state))


def _logit(p):
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def prevalence_log_odds_shift(training_prevalence: float, new_prevalence: float) -> float:
    """``log[(pi_new / (1 - pi_new)) / (pi_train / (1 - pi_train))]``."""
    for name, value in (("training prevalence", training_prevalence), ("expected prevalence", new_prevalence)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must lie strictly between 0 and 1, got {value}")
    return float(_logit(new_prevalence) - _logit(training_prevalence))


def adjust_for_prevalence(probability, training_prevalence: float, new_prevalence: float) -> np.ndarray:
    """Probabilities of HPV positive at a site whose prevalence is ``new_prevalence`` (label-shift correction).

    Scales the odds by ``(pi_new / (1 - pi_new)) / (pi_train / (1 - pi_train))``; probabilities
    of exactly 0 or 1 stay there. Identity when both prevalences are equal.
    """
    p = np.asarray(probability, dtype=float)
    shift = prevalence_log_odds_shift(training_prevalence, new_prevalence)
    adjusted = 1.0 / (1.0 + np.exp(-(_logit(p) + shift)))
    return np.where(p <= 0.0, 0.0, np.where(p >= 1.0, 1.0, adjusted))


def adjusted_decision(probability, threshold: float, training_prevalence: float,
                      new_prevalence: float | None = None, decision: str = "balanced_accuracy"):
    """Probabilities and labels (1 = HPV positive) at the new site's prevalence.

    Parameters
    ----------
    probability : array
        Model probabilities (training prevalence).
    threshold : float
        Threshold on the model probabilities, chosen on out-of-fold predictions.
    training_prevalence, new_prevalence : float
        Share of HPV-positive patients in training / expected at the new site (None = same).
    decision : {"balanced_accuracy", "accuracy"}
        ``balanced_accuracy``: keep the balanced-accuracy rule (threshold mapped with the
        probabilities, labels unchanged under pure label shift); ``accuracy``: adjusted
        probability >= 0.5.

    Returns
    -------
    (adjusted probability, adjusted threshold, labels)
    """
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}")
    p = np.asarray(probability, dtype=float)
    if new_prevalence is None:
        new_prevalence = training_prevalence
    p_new = adjust_for_prevalence(p, training_prevalence, new_prevalence)
    if decision == "accuracy":
        return p_new, 0.5, (p_new >= 0.5).astype(int)
    t_new = float(adjust_for_prevalence(np.array([threshold]), training_prevalence, new_prevalence)[0])
    # The map is monotone, so p >= threshold <=> p_new >= t_new; comparing the unmapped values
    # keeps the labels exactly unchanged despite rounding.
    return p_new, t_new, (p >= threshold).astype(int)
