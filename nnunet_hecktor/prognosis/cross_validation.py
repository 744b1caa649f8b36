"""Patient-level cross-validation of the prognosis stage: folds, out-of-fold predictions, figures.

Two schemes: ``kfold`` (stratified on the event indicator / the HPV label, shuffled with a
seed) and ``centre`` (leave one centre out: HECKTOR tests on unseen centres). Every model is
cloned and fitted on the training rows of a fold only; its preprocessing is part of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone

from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.metrics.classification import DEFAULT_THRESHOLD_RULE
from nnunet_hecktor.metrics.survival import harrell_c_index
from nnunet_hecktor.prognosis.survival_models import ENSEMBLE, RiskScale
from nnunet_hecktor.prognosis.threads import small_matrix_threads

CV_SCHEMES: tuple[str, ...] = ("kfold", "centre")


@dataclass(frozen=True)
class Fold:
    """Row positions of one fold's training and validation patients; ``name`` e.g. ``"fold_0"`` or ``"MDA"``."""

    name: str
    train: np.ndarray
    validation: np.ndarray


def make_folds(strata, groups=None, scheme: str = "kfold", n_splits: int = 5, random_state: int = 0) -> list[Fold]:
    """Cross-validation folds over patients.

    Parameters
    ----------
    strata : array of int/bool
        Stratification labels for ``kfold`` (events, or HPV status).
    groups : array of str, optional
        Centre of each patient; required for ``centre``.
    scheme : {"kfold", "centre"}
    n_splits : int
        Folds for ``kfold`` (reduced to the smallest stratum size when needed, at least 2).

    Raises
    ------
    HecktorError
        Too few patients or centres to cross-validate.
    """
    from sklearn.model_selection import LeaveOneGroupOut, StratifiedKFold

    strata = np.asarray(strata)
    n = strata.shape[0]
    if scheme == "kfold":
        counts = np.unique(strata, return_counts=True)[1]
        k = int(min(n_splits, counts.min())) if len(counts) > 1 else int(min(n_splits, n))
        if k < 2:
            values, counts = np.unique(strata, return_counts=True)
            per_class = dict(zip(values.tolist(), counts.tolist()))
            raise HecktorError(f"too few patients per class to cross-validate ({per_class})")
        splitter = StratifiedKFold(k, shuffle=True, random_state=random_state)
        return [Fold(f"fold_{i}", tr, va) for i, (tr, va) in enumerate(splitter.split(np.zeros(n), strata))]
    if scheme == "centre":
        if groups is None:
            raise HecktorError("leave-one-centre-out needs the centre of every patient")
        groups = np.asarray(groups)
        if len(set(groups)) < 2:
            raise HecktorError(f"leave-one-centre-out needs at least two centres, found only {sorted(set(groups))}")
        folds = []
        for tr, va in LeaveOneGroupOut().split(np.zeros(n), strata, groups):
            folds.append(Fold(str(groups[va[0]]), tr, va))
        return folds
    raise HecktorError(f"cross-validation scheme must be one of {', '.join(CV_SCHEMES)}, not {scheme!r}")


def fold_assignment(folds: list[Fold], n: int) -> np.ndarray:
    """Name of the validation fold of each row."""
    names = np.empty(n, dtype=object)
    for fold in folds:
        names[fold.validation] = fold.name
    return names


# --------------------------------------------------------------------------- survival


@dataclass
class SurvivalCVResult:
    """Out-of-fold risks (standardised per fold model, see :class:`RiskScale`) and figures per candidate."""

    folds: list[Fold]
    oof_risk: dict[str, np.ndarray]
    fold_c_index: dict[str, list[float]]
    pooled_c_index: dict[str, float]
    fitted: dict[str, list[Any]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        out = {}
        for name in self.oof_risk:
            per_fold = np.asarray(self.fold_c_index[name], dtype=float)
            ok = per_fold[np.isfinite(per_fold)]
            out[name] = {
                "pooled_oof_c_index": self.pooled_c_index[name],
                "mean_fold_c_index": float(ok.mean()) if ok.size else float("nan"),
                "sd_fold_c_index": float(ok.std(ddof=1)) if ok.size > 1 else float("nan"),
                "fold_c_index": {f.name: float(c) for f, c in zip(self.folds, per_fold)},
            }
        return out


@small_matrix_threads
def cross_validate_survival(X, time, event, candidates: dict[str, Any], folds: list[Fold],
                            ensemble: bool = True, keep_fitted: bool = False,
                            progress: bool = False) -> SurvivalCVResult:
    """Out-of-fold risks of every candidate (and of their ensemble).

    Parameters
    ----------
    X : DataFrame indexed by PatientID
        Raw predictors (preprocessing is inside each candidate pipeline).
    time, event : arrays
        RFS (days) and relapse indicator.
    candidates : dict name -> unfitted estimator
        Cloned per fold.
    ensemble : bool
        Also score the average of the candidates' standardised risks (:data:`ENSEMBLE`), computed
        from the same fold models, i.e. exactly what :class:`RiskEnsemble` would predict.
    keep_fitted : bool
        Keep every fold's fitted models in ``fitted`` (tests inspect what they were fitted on).

    Returns
    -------
    SurvivalCVResult
        ``pooled_c_index`` is the C-index of the pooled out-of-fold risks, each fold's risks
        standardised by its own model's training risks; ``fold_c_index`` per validation fold
        (NaN when a fold has no comparable pair).
    """
    from sksurv.util import Surv
    from tqdm import tqdm

    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    y = Surv.from_arrays(event, time)
    n = len(time)
    names = list(candidates) + ([ENSEMBLE] if ensemble and len(candidates) > 1 else [])
    oof = {name: np.full(n, np.nan) for name in names}
    fitted: dict[str, list[Any]] = {name: [] for name in candidates}
    steps = [(fold, name) for fold in folds for name in candidates]
    for fold, name in tqdm(steps, desc="survival CV", unit="fit", disable=not progress):
        Xtr, Xva = X.iloc[fold.train], X.iloc[fold.validation]
        model = clone(candidates[name]).fit(Xtr, y[fold.train])
        scale = RiskScale.of(model.predict(Xtr))
        oof[name][fold.validation] = scale.apply(model.predict(Xva))
        if keep_fitted:
            fitted[name].append(model)
    if ENSEMBLE in oof:
        oof[ENSEMBLE] = np.mean([oof[name] for name in candidates], axis=0)
    fold_c = {name: [harrell_c_index(time[f.validation], event[f.validation], oof[name][f.validation]) for f in folds]
              for name in names}
    pooled = {name: harrell_c_index(time, event, oof[name]) for name in names}
    return SurvivalCVResult(folds, oof, fold_c, pooled, fitted if keep_fitted else {})


# --------------------------------------------------------------------------- HPV


@dataclass
class ClassifierCVResult:
    """Out-of-fold probabilities and, per fold, the threshold chosen on that fold's training rows only."""

    folds: list[Fold]
    oof_probability: np.ndarray
    nested_threshold: np.ndarray  # per row: threshold chosen inside its fold's training rows
    fold_thresholds: dict[str, float]
    fitted: list[Any] = field(default_factory=list)


def _frozen_hyperparameters(estimator, fitted):
    """An unfitted copy of ``estimator`` whose penalty search is fixed to what ``fitted`` chose.

    The penalty was chosen on the same training rows, so reusing it for the inner threshold
    cross-validation leaks nothing and saves one nested search per inner fold.
    """
    copy = clone(estimator)
    model = getattr(fitted, "named_steps", {}).get("model")
    if model is not None and hasattr(model, "C_") and "model__Cs" in copy.get_params():
        copy.set_params(model__Cs=(model.C_,))
    return copy


@small_matrix_threads
def cross_validate_classifier(X, y, estimator, folds: list[Fold], inner_splits: int = 4, random_state: int = 0,
                              keep_fitted: bool = False, progress: bool = False,
                              threshold_rule: str = DEFAULT_THRESHOLD_RULE) -> ClassifierCVResult:
    """Out-of-fold probabilities of the positive class, with an honestly chosen threshold per fold.

    Each outer fold's threshold comes from its training rows only, so the validation rows
    inform neither the model nor the threshold applied to them: ``threshold_rule="prevalence"``
    (the default policy) uses the training rows' share of positives (Bayes rule for balanced
    accuracy); ``"search"`` maximises balanced accuracy on *inner* out-of-fold probabilities of the
    training rows (see :func:`~nnunet_hecktor.metrics.classification.choose_threshold`).
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from tqdm import tqdm

    from nnunet_hecktor.metrics.classification import THRESHOLD_RULES, choose_threshold

    if threshold_rule not in THRESHOLD_RULES:
        raise HecktorError(f"threshold rule must be one of {', '.join(THRESHOLD_RULES)}, not {threshold_rule!r}")
    y = np.asarray(y, dtype=int)
    oof = np.full(len(y), np.nan)
    nested = np.full(len(y), np.nan)
    thresholds: dict[str, float] = {}
    fitted = []
    for fold in tqdm(folds, desc="HPV CV", unit="fold", disable=not progress):
        Xtr, ytr = X.iloc[fold.train], y[fold.train]
        model = clone(estimator).fit(Xtr, ytr)
        oof[fold.validation] = model.predict_proba(X.iloc[fold.validation])[:, 1]
        k = int(min(inner_splits, np.bincount(ytr, minlength=2).min()))
        if threshold_rule == "prevalence":
            threshold = choose_threshold(ytr, "prevalence")
        elif k >= 2:
            inner = StratifiedKFold(k, shuffle=True, random_state=random_state)
            inner_prob = cross_val_predict(_frozen_hyperparameters(estimator, model), Xtr, ytr, cv=inner,
                                           method="predict_proba")[:, 1]
            threshold = choose_threshold(ytr, "search", inner_prob)
        else:
            threshold = 0.5
        thresholds[fold.name] = float(threshold)
        nested[fold.validation] = threshold
        if keep_fitted:
            fitted.append(model)
    return ClassifierCVResult(folds, oof, nested, thresholds, fitted)
