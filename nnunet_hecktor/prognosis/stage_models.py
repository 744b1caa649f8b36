"""T and N stage classifiers (HECKTOR 2026): class-weighted ordinal (T) and multinomial (N) logistic regressions.

Stages are ordinal codes (:func:`nnunet_hecktor.schema.stage_code`: T0 = 0 ... T4 = 4, N0 = 0 ...
N3 = 3) inside the models and canonical labels (``"T2"``, ``"N1"``) outside. HECKTOR 2026 scores
each with the multi-class balanced accuracy (mean recall over the classes present,
:func:`sklearn.metrics.balanced_accuracy_score`), so a rare stage weighs as much as a common one:
each classifier weights its classes by the inverse of their training frequency
(``class_weight="balanced"``), and its penalty is chosen by inner stratified cross-validation on
balanced accuracy. T is ordinal by default (a cumulative-logit model: one score moves a patient
along T1 < T2 < T3 < T4, as the AJCC size cut-offs do); N is multinomial (N2 gathers a large node,
several nodes and contralateral nodes, which no single score orders). Inputs are preprocessed
inside each fit (:mod:`.preprocessing`): imputation, scaling and encoding see training rows only.

:class:`TNStageModel` holds the two classifiers; ``predict(frame) -> (T labels, N labels)`` and
``predict_proba(frame) -> (T probabilities, N probabilities)`` (one column per canonical stage,
0 for a stage absent from training). It is what ``staging fit`` stores (``PrognosisModel.estimator``)
and what the deployment path applies.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from nnunet_hecktor import schema
from nnunet_hecktor.prognosis.preprocessing import ColumnRoles, make_preprocessor

#: Inverse penalties tried by the inner cross-validation (ties go to the stronger penalty).
DEFAULT_CS: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
#: Targets of a staging model, in output order.
STAGE_COLUMNS: tuple[str, ...] = (schema.COL_TSTAGE, schema.COL_NSTAGE)


def _balanced_logistic(C: float):
    from sklearn.linear_model import LogisticRegression

    # lbfgs fits the multinomial (softmax) model for more than two classes.
    return LogisticRegression(C=C, class_weight="balanced", max_iter=5000)


class BalancedStageClassifier(ClassifierMixin, BaseEstimator):
    """Multinomial or ordinal logistic regression with balanced class weights; penalty by inner CV on
    balanced accuracy.

    Parameters
    ----------
    Cs : sequence of float
        Inverse L2 penalties to try.
    kind : {"multinomial", "ordinal"}
        Softmax over the stages (scikit-learn's LogisticRegression) or :class:`OrdinalLogistic`.
    inner_folds : int
        Folds of the inner stratified CV (reduced to the second-smallest class size, at least 2;
        no search below that).
    random_state : int

    Attributes
    ----------
    classes_ : the codes seen in training; C_ : chosen inverse penalty; model_ : the refitted
    LogisticRegression (a constant predictor when training holds a single class)
    """

    def __init__(self, Cs=DEFAULT_CS, inner_folds: int = 3, random_state: int = 0, kind: str = "multinomial"):
        self.Cs = Cs
        self.kind = kind
        self.inner_folds = inner_folds
        self.random_state = random_state

    def fit(self, X, y):
        from sklearn.metrics import balanced_accuracy_score
        from sklearn.model_selection import StratifiedKFold

        X = np.asarray(X, dtype=float)
        y = np.asarray(y).astype(int)
        self.classes_ = np.unique(y)
        self.n_features_in_ = X.shape[1]
        Cs = list(self.Cs)
        if len(self.classes_) == 1:
            self.C_, self.model_ = float("nan"), None
            return self
        counts = np.sort(np.bincount(np.searchsorted(self.classes_, y)))
        # A singleton class cannot appear in every inner fold; the folds follow the others.
        k = int(min(self.inner_folds, counts[1] if len(counts) > 2 else counts[0]))
        scores = np.zeros(len(Cs))
        if k >= 2 and len(Cs) > 1:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", UserWarning)  # "least populated class" of StratifiedKFold
                for train, val in StratifiedKFold(k, shuffle=True, random_state=self.random_state).split(X, y):
                    for i, C in enumerate(Cs):
                        if len(np.unique(y[train])) < 2:
                            continue
                        model = self._model(C).fit(X[train], y[train])
                        scores[i] += balanced_accuracy_score(y[val], model.predict(X[val]))
        self.C_ = float(Cs[int(np.argmax(scores))])  # argmax takes the first (strongest penalty) of ties
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model_ = self._model(self.C_).fit(X, y)
        return self

    def _model(self, C: float):
        return OrdinalLogistic(C) if self.kind == "ordinal" else _balanced_logistic(C)

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities ``(n, len(classes_))`` in the order of ``classes_``."""
        check_is_fitted(self, "classes_")
        X = np.asarray(X, dtype=float)
        if self.model_ is None:
            return np.ones((X.shape[0], 1))
        return self.model_.predict_proba(X)

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class OrdinalLogistic(ClassifierMixin, BaseEstimator):
    """Cumulative-logit (proportional-odds) model with class weights and an L2 penalty.

    ``P(y <= k | x) = sigmoid(theta_k - x . beta)`` with increasing thresholds ``theta`` over the
    classes present in training (in code order): one score ``x . beta`` moves a patient up or down
    the stage scale, which suits a stage defined by a size (T). Fitted by L-BFGS on the weighted
    mean negative log-likelihood plus ``0.5 |beta|^2 / (C n)`` (scikit-learn's scaling of C);
    ``class_weight="balanced"`` weights each class by ``n / (k n_c)``, ``None`` gives every row 1.

    Parameters
    ----------
    C : float
    class_weight : {"balanced", None}
    """

    def __init__(self, C: float = 1.0, class_weight: str | None = "balanced"):
        self.C = C
        self.class_weight = class_weight

    @staticmethod
    def _thresholds(v: np.ndarray) -> np.ndarray:
        # theta_0 free, then positive steps: the thresholds stay ordered without constraints.
        return np.concatenate([v[:1], v[0] + np.cumsum(np.exp(v[1:]))])

    def objective(self, X, y):
        """``f(v) -> (loss, gradient)`` of the fit on ``X, y``; ``v`` = coefficients, first threshold,
        then the log steps between thresholds (classes: those of ``y``)."""
        from scipy.special import expit

        X = np.asarray(X, dtype=float)
        classes = np.unique(np.asarray(y).astype(int))
        index = np.searchsorted(classes, np.asarray(y).astype(int))
        n, p = X.shape
        k = len(classes)
        weights = np.ones(n)
        if self.class_weight == "balanced":
            weights = (n / (k * np.bincount(index, minlength=k)))[index]
        rows = np.arange(n)

        def objective(v):
            beta, theta = v[:p], self._thresholds(v[p:])
            cumulative = expit(theta[None, :] - (X @ beta)[:, None])
            cumulative = np.hstack([np.zeros((n, 1)), cumulative, np.ones((n, 1))])
            density = cumulative * (1.0 - cumulative)  # 0 at the two infinite thresholds
            high, low = cumulative[rows, index + 1], cumulative[rows, index]
            probability = np.clip(high - low, 1e-12, None)
            f_high, f_low = density[rows, index + 1], density[rows, index]
            loss = -(weights * np.log(probability)).sum() / n + 0.5 * (beta @ beta) / (self.C * n)
            grad_beta = X.T @ (weights * (f_high - f_low) / probability) / n + beta / (self.C * n)
            # d(-log p)/d theta_j: -f_high where j is the upper threshold of the row, +f_low the lower one.
            grad_theta = np.zeros(k - 1)
            upper, lower = index < k - 1, index > 0
            np.add.at(grad_theta, index[upper], -(weights * f_high / probability)[upper] / n)
            np.add.at(grad_theta, index[lower] - 1, (weights * f_low / probability)[lower] / n)
            tail = np.cumsum(grad_theta[::-1])[::-1]  # sum over j >= i
            grad_steps = np.exp(v[p + 1:]) * tail[1:]
            return loss, np.concatenate([grad_beta, [grad_theta.sum()], grad_steps])

        return objective

    def fit(self, X, y):
        from scipy.optimize import minimize

        X = np.asarray(X, dtype=float)
        y = np.asarray(y).astype(int)
        self.classes_ = np.unique(y)
        self.n_features_in_ = X.shape[1]
        p, k = X.shape[1], len(self.classes_)
        if k == 1:
            self.coef_, self.thresholds_ = np.zeros(p), np.zeros(0)
            return self
        first = float((y == self.classes_[0]).mean())
        start = np.concatenate([np.zeros(p), [np.log(first / (1.0 - first))], np.zeros(k - 2)])
        result = minimize(self.objective(X, y), start, jac=True, method="L-BFGS-B")
        self.coef_, self.thresholds_ = result.x[:p], self._thresholds(result.x[p:])
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities ``(n, len(classes_))`` in the order of ``classes_``."""
        from scipy.special import expit

        check_is_fitted(self, "coef_")
        X = np.asarray(X, dtype=float)
        cumulative = expit(self.thresholds_[None, :] - (X @ self.coef_)[:, None])
        ones = np.ones((X.shape[0], 1))
        return np.diff(np.hstack([0 * ones, cumulative, ones]), axis=1)

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


#: The two model kinds a stage column can use.
STAGE_MODEL_KINDS: tuple[str, ...] = ("multinomial", "ordinal")
#: Default kind per column: T is a size scale (one score orders T1 < T2 < T3 < T4, T0 = no primary);
#: N2 gathers unlike patterns (a large node, several nodes, a contralateral node), so N is multinomial.
DEFAULT_STAGE_MODELS: dict[str, str] = {schema.COL_TSTAGE: "ordinal", schema.COL_NSTAGE: "multinomial"}


def stage_pipeline(roles: ColumnRoles, random_state: int = 0, Cs=DEFAULT_CS, kind: str = "multinomial"):
    """``preprocess -> BalancedStageClassifier`` for one stage column (``kind``: multinomial or ordinal)."""
    from sklearn.pipeline import Pipeline

    if kind not in STAGE_MODEL_KINDS:
        raise ValueError(f"stage model kind must be one of {', '.join(STAGE_MODEL_KINDS)}, not {kind!r}")
    return Pipeline([("preprocess", make_preprocessor(roles)),
                     ("model", BalancedStageClassifier(Cs=Cs, random_state=random_state, kind=kind))])


def stage_codes(values, column: str) -> np.ndarray:
    """Ordinal codes of canonical labels (``None``/NaN -> -1, meaning unknown)."""
    out = []
    for value in values:
        if value is None or (isinstance(value, float) and value != value):
            out.append(-1)
        else:
            out.append(schema.stage_code(column, str(value)))
    return np.asarray(out, dtype=int)


class TNStageModel:
    """The T and N classifiers of one staging model, fitted on the same inputs.

    Parameters
    ----------
    roles : ColumnRoles
        Input columns and how each is preprocessed.
    random_state : int
    Cs : sequence of float
        Inverse penalties the inner CV chooses from.
    kinds : dict, optional
        Stage column -> ``"multinomial"`` or ``"ordinal"`` (default :data:`DEFAULT_STAGE_MODELS`).

    Attributes (after :meth:`fit`)
    ------------------------------
    models : dict
        Stage column -> fitted pipeline (None when that column had no label at all).
    """

    def __init__(self, roles: ColumnRoles, random_state: int = 0, Cs=DEFAULT_CS,
                 kinds: dict[str, str] | None = None):
        self.roles = roles
        self.random_state = random_state
        self.Cs = tuple(Cs)
        self.kinds = dict(DEFAULT_STAGE_MODELS if kinds is None else kinds)
        self.models: dict[str, Any] = {}

    def fit(self, X, t_codes, n_codes) -> "TNStageModel":
        """Fit each classifier on the rows where its stage is known (code >= 0).

        Raises
        ------
        ValueError
            No row has a known T or N stage.
        """
        self.models = {}
        for column, codes in zip(STAGE_COLUMNS, (t_codes, n_codes)):
            codes = np.asarray(codes, dtype=int)
            known = codes >= 0
            if not known.any():
                self.models[column] = None
                continue
            self.models[column] = stage_pipeline(self.roles, self.random_state, self.Cs, self.kinds[column]).fit(
                X.iloc[np.flatnonzero(known)], codes[known])
        if all(m is None for m in self.models.values()):
            raise ValueError("no patient has a known T or N stage")
        self.input_columns = list(X.columns)
        return self

    def _proba(self, column: str, X):
        import pandas as pd

        labels = schema.STAGES_OF_COLUMN[column]
        out = pd.DataFrame(0.0, index=X.index, columns=list(labels))
        model = self.models.get(column)
        if model is None:
            return out.iloc[:, :0]
        probability = model.predict_proba(X)
        for j, code in enumerate(model.named_steps["model"].classes_):
            out[labels[int(code)]] = probability[:, j]
        return out

    def predict_proba(self, X):
        """``(T, N)``: DataFrames indexed like ``X`` with one probability column per canonical stage
        (``T0``..``T4``, ``N0``..``N3``; 0 for stages unseen in training; no columns for a stage
        column that had no labels)."""
        return self._proba(schema.COL_TSTAGE, X), self._proba(schema.COL_NSTAGE, X)

    def predict(self, X):
        """``(T labels, N labels)``: arrays of canonical labels (the most probable stage; None when
        the model has no classifier for that column)."""
        out = []
        for column, probability in zip(STAGE_COLUMNS, self.predict_proba(X)):
            if probability.shape[1] == 0:
                out.append(np.full(len(X), None, dtype=object))
            else:
                out.append(np.asarray(probability.columns)[np.argmax(probability.to_numpy(), axis=1)].astype(object))
        return out[0], out[1]

    def describe(self) -> str:
        parts = []
        for column, model in self.models.items():
            if model is None:
                parts.append(f"{column}: no labels")
            else:
                m = model.named_steps["model"]
                classes = ", ".join(schema.stage_label(column, int(c)) for c in m.classes_)
                parts.append(f"{column}: {m.kind}, {classes} (C={m.C_:g})")
        return "; ".join(parts)


__all__ = ["BalancedStageClassifier", "DEFAULT_CS", "DEFAULT_STAGE_MODELS", "OrdinalLogistic", "STAGE_COLUMNS",
           "STAGE_MODEL_KINDS", "TNStageModel", "stage_codes", "stage_pipeline"]
