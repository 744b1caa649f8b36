"""``nnunet-hecktor prognosis fit|predict``: the patient-level recurrence-free-survival model.

Risk convention: higher = earlier relapse. The final model's risk is standardised so that the
training patients have mean 0 and standard deviation 1 (a z-score, comparable across refits).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sksurv.base import SurvivalAnalysisMixin  # a hard dependency

from nnunet_hecktor import schema
from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.fileio import atomic_path, write_json_atomic
from nnunet_hecktor.plots import plot_kaplan_meier
from nnunet_hecktor.prognosis.cross_validation import cross_validate_survival, fold_assignment, make_folds
from nnunet_hecktor.prognosis.model_store import PrognosisModel, load_model, save_model
from nnunet_hecktor.prognosis.stage_data import centre_groups, survival_targets
from nnunet_hecktor.prognosis.stage_io import (
    load_prediction_inputs,
    load_training_inputs,
    prediction_inputs,
    small_matrix_threads,
)
from nnunet_hecktor.prognosis.survival_models import (
    ENSEMBLE,
    SURVIVAL_CANDIDATES,
    RiskEnsemble,
    RiskScale,
    survival_pipeline,
)
from nnunet_hecktor.strict_json import json_safe

logger = logging.getLogger(__name__)

FINAL_CHOICES: tuple[str, ...] = ("best", ENSEMBLE) + SURVIVAL_CANDIDATES
MODEL_DESCRIPTIONS: dict[str, str] = {
    "coxnet": "elastic-net Cox model (penalty chosen by inner 3-fold CV)",
    "rsf": "random survival forest (200 trees)",
    "gbsa": "gradient-boosted Cox model (150 depth-2 trees)",
    "icare": "bagged ICARE model (100 bootstrap sign-weighted feature averages, median)",
}


class StandardisedRisk(SurvivalAnalysisMixin, BaseEstimator):
    """Wraps a survival estimator so its risks are z-scores of its training-set risks."""

    def __init__(self, estimator):
        self.estimator = estimator

    def fit(self, X, y):
        self.estimator_ = clone(self.estimator).fit(X, y)
        self.scale_ = RiskScale.of(self.estimator_.predict(X))
        return self

    def predict(self, X) -> np.ndarray:
        return self.scale_.apply(self.estimator_.predict(X))


@dataclass
class SurvivalFit:
    """What :func:`fit_survival` produced."""

    model: PrognosisModel
    summary: dict[str, Any]
    oof: Any  # DataFrame
    paths: dict[str, Path]


def _choose(final: str, cv_summary: dict[str, dict]) -> str:
    if final == "best":
        scores = {name: s["pooled_oof_c_index"] for name, s in cv_summary.items()}
        finite = {k: v for k, v in scores.items() if math.isfinite(v)}
        if not finite:
            raise HecktorError("no candidate model has a finite cross-validated C-index (too few events?)")
        return max(finite, key=lambda name: finite[name])
    if final not in cv_summary:
        raise HecktorError(f"final model {final!r} was not among the cross-validated models {', '.join(cv_summary)}")
    return final


@dataclass
class _SurvivalData:
    """The patients of a survival fit: inputs, outcomes, centres and folds."""

    inputs: Any  # StageInputs
    report: dict[str, Any]
    patients: list[str]
    X: Any  # DataFrame
    time: np.ndarray
    event: np.ndarray
    groups: np.ndarray
    folds: list


def _check_survival_options(models: list[str], final: str) -> None:
    unknown = [m for m in models if m not in SURVIVAL_CANDIDATES]
    if unknown or not models:
        raise HecktorError(f"unknown survival model(s) {', '.join(unknown) or '(none given)'}; "
                           f"choose from {', '.join(SURVIVAL_CANDIDATES)}")
    if final not in FINAL_CHOICES:
        raise HecktorError(f"--final must be one of {', '.join(FINAL_CHOICES)}")


def _survival_data(clinical_csv, features_csv, feature_set, clinical_columns, allow_ground_truth_features, cv,
                   n_splits, random_state) -> _SurvivalData:
    """Read the tables, keep the patients with RFS and Relapse (the others are listed), make the folds."""
    inputs, report = load_training_inputs("survival", features_csv, clinical_csv, feature_set, clinical_columns,
                                          allow_ground_truth_features)
    patients, time, event, dropped = survival_targets(inputs.clinical, list(inputs.frame.index))
    report["patients_without_outcome"] = dropped
    if dropped:
        logger.info(f"note: {len(dropped)} patients without RFS/Relapse are left out")
    if event.sum() < 2:
        raise HecktorError(f"only {int(event.sum())} relapses among {len(patients)} patients: too few to fit a model")
    groups = centre_groups(inputs.clinical, patients)
    return _SurvivalData(inputs, report, patients, inputs.frame.loc[patients], time, event, groups,
                         make_folds(event.astype(int), groups, cv, n_splits, random_state))


def _final_estimator(chosen: str, models: list[str], candidates: dict, n_patients: int):
    """The chosen candidate (or the ensemble of all) and its description."""
    if chosen == ENSEMBLE:
        return (RiskEnsemble([(m, candidates[m]) for m in models]),
                f"ensemble: mean of the standardised risks of {', '.join(models)}, each refitted on all "
                f"{n_patients} patients")
    return candidates[chosen], f"{MODEL_DESCRIPTIONS[chosen]}, refitted on all {n_patients} patients"


def _survival_oof_table(data: _SurvivalData, oof_risk: dict[str, np.ndarray], chosen: str):
    import pandas as pd

    return pd.DataFrame({
        schema.COL_PATIENT: data.patients, "centre": data.groups, "fold": fold_assignment(data.folds, len(data.patients)),
        schema.COL_RFS: data.time, schema.COL_RELAPSE: data.event.astype(int),
        "risk": oof_risk[chosen],
        **{f"risk_{name}": values for name, values in oof_risk.items()},
    })


def _survival_summary(data: _SurvivalData, model: PrognosisModel, cv_summary: dict, final: str, cv: str,
                      random_state: int, feature_set: str) -> dict[str, Any]:
    return {
        "task": "survival (recurrence-free survival; risk higher = earlier relapse)",
        "final_model": model.chosen, "final_model_description": model.description,
        "selection": "highest pooled out-of-fold C-index" if final == "best" else f"requested: {final}",
        "selection_note": "the chosen model's cross-validated figure is slightly optimistic: it won the comparison",
        "cv_scheme": cv, "n_folds": len(data.folds), "random_state": random_state,
        "n_patients": len(data.patients), "n_events": int(data.event.sum()),
        "feature_set": feature_set, "seg_source": model.seg_source,
        "image_columns": data.inputs.image_columns, "clinical_columns": data.inputs.clinical_columns,
        "input_roles": data.inputs.roles.to_json(),
        "cross_validation": cv_summary,
        "oof_c_index_final": cv_summary[model.chosen]["pooled_oof_c_index"],
        "left_out": data.report,
        "icare_selected_features": _icare_features(model.estimator),
    }


def _write_survival_outputs(output_dir: Path, model: PrognosisModel, oof, summary: dict, data: _SurvivalData,
                            make_plots: bool, cv: str) -> dict[str, Path]:
    """``model.joblib``, ``oof_predictions.csv``, ``cv_summary.json`` and ``km_oof.png``, each atomically.

    The log-rank test of the out-of-fold median split goes into ``summary`` when the figure is drawn.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"model": output_dir / "model.joblib", "oof": output_dir / "oof_predictions.csv",
             "summary": output_dir / "cv_summary.json"}
    if make_plots:
        paths["km"] = output_dir / "km_oof.png"
        test = plot_kaplan_meier(
            data.time, data.event, oof["risk"].to_numpy(), paths["km"],
            title=f"out-of-fold risk groups ({model.chosen}, {cv}), C = {summary['oof_c_index_final']:.3f}")
        summary["oof_logrank_median_split"] = {"chi2": test["chi2"], "p_value": test["p_value"]}
    save_model(model, paths["model"])
    with atomic_path(paths["oof"]) as tmp:
        oof.to_csv(tmp, index=False, float_format="%.6g")
    write_json_atomic(paths["summary"], json_safe(summary))
    return paths


@small_matrix_threads
def fit_survival(clinical_csv, output_dir, features_csv=None, feature_set: str = "all",
                 models=SURVIVAL_CANDIDATES, final: str = "best", cv: str = "kfold", n_splits: int = 5,
                 random_state: int = 0, allow_ground_truth_features: bool = False, clinical_columns=None,
                 n_jobs: int = 1, progress: bool = True, make_plots: bool = True) -> SurvivalFit:
    """Cross-validate survival models, choose one (or their ensemble), refit it on all patients, save it.

    Parameters
    ----------
    clinical_csv : path
        Clinical table with ``RFS`` (days) and ``Relapse`` (1 = relapse); patients without both are left out.
    output_dir : path
        Receives ``model.joblib``, ``oof_predictions.csv``, ``cv_summary.json`` and ``km_oof.png``.
    features_csv : path, optional
        Feature table of ``nnunet-hecktor features``; must come from predicted segmentations
        unless ``allow_ground_truth_features``.
    feature_set : {"all", "image", "clinical"}
    models : sequence of names from :data:`SURVIVAL_CANDIDATES`
    final : "best", "ensemble" or a model name
        ``best``: the highest pooled out-of-fold C-index among the models and their ensemble.
    cv : {"kfold", "centre"}
        Stratified k-fold on the event, or leave one centre out.
    """
    models = list(models)
    _check_survival_options(models, final)
    data = _survival_data(clinical_csv, features_csv, feature_set, clinical_columns, allow_ground_truth_features,
                          cv, n_splits, random_state)
    inputs = data.inputs
    candidates = {m: survival_pipeline(inputs.roles, m, random_state, n_jobs) for m in models}
    logger.info(f"survival: {len(data.patients)} patients, {int(data.event.sum())} relapses, {data.X.shape[1]} "
                f"inputs ({len(inputs.image_columns)} image, {len(inputs.clinical_columns)} clinical), "
                f"{len(data.folds)} folds ({cv}), models: {', '.join(models)}")
    result = cross_validate_survival(data.X, data.time, data.event, candidates, data.folds,
                                     ensemble=len(models) > 1, progress=progress)
    cv_summary = result.summary()
    chosen = _choose(final, cv_summary)
    estimator, description = _final_estimator(chosen, models, candidates, len(data.patients))
    model = PrognosisModel(
        task="survival", estimator=StandardisedRisk(estimator).fit(data.X, _surv(data.event, data.time)),
        image_columns=inputs.image_columns, clinical_columns=inputs.clinical_columns, feature_set=feature_set,
        chosen=chosen, description=description, seg_source=inputs.seg_source if inputs.image_columns else None,
        cv=cv_summary,
    )
    # The stage's own neutral answer: a patient ranked in the middle of the training patients.
    model.fallback = {"risk": float(np.median(model.estimator.predict(data.X)))}
    oof = _survival_oof_table(data, result.oof_risk, chosen)
    summary = _survival_summary(data, model, cv_summary, final, cv, random_state, feature_set)
    paths = _write_survival_outputs(Path(output_dir), model, oof, summary, data, make_plots, cv)
    logger.info(_summary_lines(cv_summary, chosen, description))
    return SurvivalFit(model, summary, oof, paths)


def _surv(event, time):
    from sksurv.util import Surv

    return Surv.from_arrays(np.asarray(event, dtype=bool), np.asarray(time, dtype=float))


def _icare_features(final_model: StandardisedRisk) -> dict[str, dict[str, float]]:
    """Features the bagged ICARE model(s) inside the final model selected: name -> mean weight."""
    out = {}
    inner = final_model.estimator_
    members = [(name, m) for name, m, _ in inner.estimators_] if isinstance(inner, RiskEnsemble) else [("", inner)]
    for name, pipeline in members:
        model = getattr(pipeline, "named_steps", {}).get("model")
        if model is not None and hasattr(model, "selected_features"):
            out[name or "icare"] = model.selected_features(0.5)
    return out


def _summary_lines(cv_summary: dict[str, dict], chosen: str, description: str) -> str:
    lines = ["cross-validated C-index (pooled out-of-fold | mean +- sd over folds):"]
    for name, s in sorted(cv_summary.items(), key=lambda kv: -np.nan_to_num(kv[1]["pooled_oof_c_index"], nan=-1)):
        mark = "  <- final" if name == chosen else ""
        lines.append(f"  {name:9s} {s['pooled_oof_c_index']:.3f} | {s['mean_fold_c_index']:.3f} +- "
                     f"{s['sd_fold_c_index']:.3f}{mark}")
    lines.append(f"final model: {description}")
    return "\n".join(lines)


def survival_risk(model: PrognosisModel, feature_table=None, clinical: dict[str, dict] | None = None):
    """Risk per patient from tables in memory (pandas Series indexed by PatientID; higher = earlier
    relapse, z-score of the training risks). See :func:`~nnunet_hecktor.prognosis.stage_io.prediction_inputs`."""
    import pandas as pd

    if model.task != "survival":
        raise HecktorError(f"a {model.task} model cannot predict recurrence risk")
    inputs = prediction_inputs(model, feature_table, clinical)
    return pd.Series(model.estimator.predict(inputs.frame), index=inputs.frame.index, name="risk")


@small_matrix_threads
def predict_survival(model_path, output_csv, features_csv=None, clinical_csv=None):
    """Risk of every patient (``PatientID,risk``; higher = earlier relapse, z-score of the training risks).

    Raises
    ------
    HecktorError
        The model needs features or clinical columns the given tables lack (all are named).
    """
    import pandas as pd

    model = load_model(model_path, task="survival")
    inputs = load_prediction_inputs(model, features_csv, clinical_csv)
    risk = model.estimator.predict(inputs.frame)
    predictions = pd.DataFrame({schema.COL_PATIENT: list(inputs.frame.index), "risk": risk})
    output_csv = Path(output_csv)
    with atomic_path(output_csv) as tmp:
        predictions.to_csv(tmp, index=False, float_format="%.6g")
    logger.info(f"risk of {len(predictions)} patients written to {output_csv} (model: {model.chosen})")
    return predictions
