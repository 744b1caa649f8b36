"""T and N stage classifiers (HECKTOR 2026): class-weighted multinomial logistic regressions.

Stages are ordinal codes (:func:`nnunet_hecktor.schema.stage_code`: T0 = 0 ... T4 = 4, N0 = 0 ...
N3 = 3) inside the models and canonical labels (``"T2"``, ``"N1"``) outside. HECKTOR 2026 scores
each with the multi-class balanced accuracy (mean recall over the classes present,
:func:`sklearn.metrics.balanced_accuracy_score`), so a rare stage weighs as much as a common one:
each classifier weights its classes by the inverse of their training frequency
(``class_weight="balanced"``), and its penalty is chosen by inner stratified cross-validation on
balanced accuracy. Inputs are preprocessed inside each fit (:mod:`.preprocessing`): imputation,
scaling and encoding see training rows only.

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
    """Multinomial logistic regression with balanced class weights; penalty by inner CV on balanced accuracy.

    Parameters
    ----------
    Cs : sequence of float
        Inverse L2 penalties to try.
    inner_folds : int
        Folds of the inner stratified CV (reduced to the second-smallest class size, at least 2;
        no search below that).
    random_state : int

    Attributes
    ----------
    classes_ : the codes seen in training; C_ : chosen inverse penalty; model_ : the refitted
    LogisticRegression (a constant predictor when training holds a single class)
    """

    def __init__(self, Cs=DEFAULT_CS, inner_folds: int = 3, random_state: int = 0):
        self.Cs = Cs
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
                        model = _balanced_logistic(C).fit(X[train], y[train])
                        scores[i] += balanced_accuracy_score(y[val], model.predict(X[val]))
        self.C_ = float(Cs[int(np.argmax(scores))])  # argmax takes the first (strongest penalty) of ties
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model_ = _balanced_logistic(self.C_).fit(X, y)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities ``(n, len(classes_))`` in the order of ``classes_``."""
        check_is_fitted(self, "classes_")
        X = np.asarray(X, dtype=float)
        if self.model_ is None:
            return np.ones((X.shape[0], 1))
        return self.model_.predict_proba(X)

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def stage_pipeline(roles: ColumnRoles, random_state: int = 0, Cs=DEFAULT_CS):
    """``preprocess -> BalancedStageClassifier`` for one stage column."""
    from sklearn.pipeline import Pipeline

    return Pipeline([("preprocess", make_preprocessor(roles)),
                     ("model", BalancedStageClassifier(Cs=Cs, random_state=random_state))])


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

    Attributes (after :meth:`fit`)
    ------------------------------
    models : dict
        Stage column -> fitted pipeline (None when that column had no label at all).
    """

    def __init__(self, roles: ColumnRoles, random_state: int = 0, Cs=DEFAULT_CS):
        self.roles = roles
        self.random_state = random_state
        self.Cs = tuple(Cs)
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
            self.models[column] = stage_pipeline(self.roles, self.random_state, self.Cs).fit(
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
                parts.append(f"{column}: {classes} (C={m.C_:g})")
        return "; ".join(parts)


__all__ = ["BalancedStageClassifier", "DEFAULT_CS", "STAGE_COLUMNS", "TNStageModel", "stage_codes",
           "stage_pipeline"]
