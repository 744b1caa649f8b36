"""``nnunet-hecktor hpv fit|predict``: the patient-level HPV status classifier (1 = HPV positive).

The decision threshold targets balanced accuracy (the HECKTOR Task 3 metric; 0.5 is a poor
threshold when ~90 % of patients are positive) and follows the package's one threshold policy
(:mod:`nnunet_hecktor.metrics.classification`): by default the training prevalence of HPV positives,
the Bayes rule for balanced accuracy on calibrated probabilities; ``threshold_rule="search"``
maximises balanced accuracy on the out-of-fold probabilities instead. Reported cross-validated
balanced accuracy uses, for each fold, a threshold from that fold's training rows only (their
prevalence, or the maximiser on inner out-of-fold probabilities); the
figure at the final threshold is reported too (optimistic for ``search``, which chooses it on these
same out-of-fold probabilities).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_hecktor import schema
from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.fileio import atomic_path, write_json_atomic
from nnunet_hecktor.metrics.classification import (
    DEFAULT_THRESHOLD_RULE,
    THRESHOLD_RULES,
    BinaryMetrics,
    binary_metrics,
    choose_threshold,
)
from nnunet_hecktor.plots import plot_roc
from nnunet_hecktor.prognosis.cross_validation import cross_validate_classifier, fold_assignment, make_folds
from nnunet_hecktor.prognosis.hpv_models import (
    CALIBRATIONS,
    DECISIONS,
    DEFAULT_L1_RATIO,
    adjusted_decision,
    hpv_pipeline,
)
from nnunet_hecktor.prognosis.model_store import PrognosisModel, load_model, save_model
from nnunet_hecktor.prognosis.stage_data import centre_groups, hpv_targets
from nnunet_hecktor.prognosis.stage_io import (
    load_prediction_inputs,
    load_training_inputs,
    prediction_inputs,
    small_matrix_threads,
)
from nnunet_hecktor.strict_json import json_safe

logger = logging.getLogger(__name__)


@dataclass
class HpvFit:
    """What :func:`fit_hpv` produced."""

    model: PrognosisModel
    summary: dict[str, Any]
    oof: Any  # DataFrame
    paths: dict[str, Path]


def _metrics_json(m: BinaryMetrics) -> dict[str, float]:
    return {"balanced_accuracy": m.balanced_accuracy, "sensitivity": m.sensitivity,
            "specificity": m.specificity, "auc": m.auc, "n_positive": m.n_positive, "n_negative": m.n_negative}


@dataclass
class _TrainingData:
    """The patients of an HPV fit: inputs, labels, centres and folds."""

    inputs: Any  # StageInputs
    report: dict[str, Any]
    patients: list[str]
    X: Any  # DataFrame
    y: np.ndarray
    groups: np.ndarray
    folds: list


def _check_fit_options(calibration: str, threshold_rule: str, l1_ratio: float) -> None:
    if calibration not in CALIBRATIONS:
        raise HecktorError(f"--calibration must be one of {', '.join(CALIBRATIONS)}")
    if threshold_rule not in THRESHOLD_RULES:
        raise HecktorError(f"threshold rule must be one of {', '.join(THRESHOLD_RULES)}, not {threshold_rule!r}")
    if not 0.0 <= l1_ratio <= 1.0:
        raise HecktorError(f"--l1-ratio must lie between 0 and 1, got {l1_ratio}")


def _training_data(clinical_csv, features_csv, feature_set, clinical_columns, allow_ground_truth_features, cv,
                   n_splits, random_state) -> _TrainingData:
    """Read the tables, keep the patients with an HPV Status (the others are listed), make the folds."""
    inputs, report = load_training_inputs("hpv", features_csv, clinical_csv, feature_set, clinical_columns,
                                          allow_ground_truth_features)
    patients, y, dropped = hpv_targets(inputs.clinical, list(inputs.frame.index))
    report["patients_without_hpv_status"] = dropped
    if dropped:
        logger.info(f"note: {len(dropped)} patients without HPV Status are left out")
    counts = np.bincount(y, minlength=2)
    if counts.min() < 2:
        raise HecktorError(f"HPV Status needs at least 2 patients of each class, found {counts[1]} positive and "
                           f"{counts[0]} negative")
    groups = centre_groups(inputs.clinical, patients)
    return _TrainingData(inputs, report, patients, inputs.frame.loc[patients], y, groups,
                         make_folds(y, groups, cv, n_splits, random_state))


def _cross_validation_figures(data: _TrainingData, result, threshold: float) -> dict[str, Any]:
    """Out-of-fold figures: each fold's own threshold (honest), the final threshold (optimistic), 0.5."""
    y, oof_p = data.y, result.oof_probability
    per_fold = {}
    for fold in data.folds:
        v = fold.validation
        per_fold[fold.name] = _metrics_json(binary_metrics(y[v], (oof_p[v] >= result.nested_threshold[v]).astype(int),
                                                           oof_p[v]))
        per_fold[fold.name]["threshold"] = result.fold_thresholds[fold.name]
    return {"nested_threshold": _metrics_json(binary_metrics(y, (oof_p >= result.nested_threshold).astype(int), oof_p)),
            "final_threshold_on_oof": _metrics_json(binary_metrics(y, (oof_p >= threshold).astype(int), oof_p)),
            "threshold_0.5": _metrics_json(binary_metrics(y, (oof_p >= 0.5).astype(int), oof_p)),
            "per_fold": per_fold, "brier_score": float(np.mean((oof_p - y) ** 2))}


def _describe_model(n_patients: int, l1_ratio: float, calibration: str, threshold: float, threshold_rule: str) -> str:
    penalty = "L2" if l1_ratio == 0 else ("L1" if l1_ratio == 1 else f"elastic net, l1_ratio {l1_ratio:g}")
    return (f"logistic regression ({penalty}, penalty by inner CV on log-loss"
            f"{'' if calibration == 'none' else f', {calibration} calibration'}) refitted on all "
            f"{n_patients} patients; threshold {threshold:.4f} "
            + ("= training prevalence of HPV positives (Bayes rule for balanced accuracy)"
               if threshold_rule == "prevalence" else "maximises out-of-fold balanced accuracy"))


def _oof_table(data: _TrainingData, result, threshold: float):
    import pandas as pd

    oof_p = result.oof_probability
    return pd.DataFrame({
        schema.COL_PATIENT: data.patients, "centre": data.groups, "fold": fold_assignment(data.folds, len(data.y)),
        schema.COL_HPV: data.y, "hpv_probability": oof_p, "hpv_status": (oof_p >= threshold).astype(int),
        "fold_threshold": result.nested_threshold,
        "hpv_status_fold_threshold": (oof_p >= result.nested_threshold).astype(int),
    })


def _summary(data: _TrainingData, model: PrognosisModel, cv_figures: dict, threshold_rule: str, cv: str,
             random_state: int, feature_set: str) -> dict[str, Any]:
    counts = np.bincount(data.y, minlength=2)
    return {
        "task": "HPV status (1 = positive)", "final_model_description": model.description,
        "threshold": model.threshold, "training_prevalence": model.training_prevalence,
        "cv_scheme": cv, "n_folds": len(data.folds), "random_state": random_state,
        "n_patients": len(data.patients), "n_positive": int(counts[1]), "n_negative": int(counts[0]),
        "feature_set": feature_set, "seg_source": model.seg_source,
        "image_columns": data.inputs.image_columns, "clinical_columns": data.inputs.clinical_columns,
        "input_roles": data.inputs.roles.to_json(),
        "cross_validation": cv_figures,
        "threshold_rule": threshold_rule,
        "figures_note": ("nested_threshold: each fold's threshold chosen on its training rows only (honest); "
                         "final_threshold_on_oof: the final threshold (all patients' prevalence, or for the "
                         "'search' rule chosen on these same predictions: optimistic); threshold_0.5 for comparison"),
        "left_out": data.report,
    }


def _write_outputs(output_dir: Path, model: PrognosisModel, oof, summary: dict, make_plots: bool,
                   cv: str) -> dict[str, Path]:
    """``model.joblib``, ``oof_predictions.csv``, ``cv_summary.json`` and ``roc_oof.png``, each atomically."""
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"model": output_dir / "model.joblib", "oof": output_dir / "oof_predictions.csv",
             "summary": output_dir / "cv_summary.json"}
    if make_plots:
        paths["roc"] = output_dir / "roc_oof.png"
        probability = oof["hpv_probability"].to_numpy()
        plot_roc(oof[schema.COL_HPV].to_numpy(), probability, paths["roc"],
                 y_pred=(probability >= model.threshold).astype(int),
                 title=f"HPV, out-of-fold ({cv}), threshold {model.threshold:.3f}")
    save_model(model, paths["model"])
    with atomic_path(paths["oof"]) as tmp:
        oof.to_csv(tmp, index=False, float_format="%.6g")
    write_json_atomic(paths["summary"], json_safe(summary))
    return paths


@small_matrix_threads
def fit_hpv(clinical_csv, output_dir, features_csv=None, feature_set: str = "all", calibration: str = "none",
            cv: str = "kfold", n_splits: int = 5, random_state: int = 0, allow_ground_truth_features: bool = False,
            clinical_columns=None, progress: bool = True, make_plots: bool = True, l1_ratio: float = DEFAULT_L1_RATIO,
            threshold_rule: str = DEFAULT_THRESHOLD_RULE) -> HpvFit:
    """Cross-validate the HPV classifier, choose its threshold, refit on all patients, save it.

    Parameters
    ----------
    clinical_csv : path
        Clinical table with ``HPV Status`` (1 positive, 0 negative); patients without it are left out.
    output_dir : path
        Receives ``model.joblib``, ``oof_predictions.csv``, ``cv_summary.json`` and ``roc_oof.png``.
    features_csv : path, optional
        Feature table of ``nnunet-hecktor features`` (its ``net_hpv_probability`` column, when
        present, is used as an input); predicted segmentations unless ``allow_ground_truth_features``.
    feature_set : {"all", "image", "clinical"}
    calibration : {"none", "sigmoid", "isotonic"}
        ``none``: logistic regression with its penalty chosen on the log-loss (already calibrated in
        practice); otherwise wrapped in CalibratedClassifierCV.
    cv : {"kfold", "centre"}
    l1_ratio : float
        Elastic-net mixing of the logistic regression (0 = L2, 1 = L1; default
        :data:`~nnunet_hecktor.prognosis.hpv_models.DEFAULT_L1_RATIO`, 0 = ridge).
    threshold_rule : {"prevalence", "search"}
        The package's threshold policy (:func:`nnunet_hecktor.metrics.classification.choose_threshold`):
        ``prevalence`` (default) predicts positive when the probability is at least the training share
        of HPV positives (Bayes rule for balanced accuracy on calibrated probabilities); ``search``
        maximises balanced accuracy on the out-of-fold probabilities.
    """
    _check_fit_options(calibration, threshold_rule, l1_ratio)
    data = _training_data(clinical_csv, features_csv, feature_set, clinical_columns, allow_ground_truth_features,
                          cv, n_splits, random_state)
    counts = np.bincount(data.y, minlength=2)
    inputs = data.inputs
    logger.info(f"hpv: {len(data.patients)} patients ({counts[1]} positive, {counts[0]} negative), {data.X.shape[1]} "
                f"inputs ({len(inputs.image_columns)} image, {len(inputs.clinical_columns)} clinical), "
                f"{len(data.folds)} folds ({cv})")
    estimator = hpv_pipeline(inputs.roles, calibration, random_state, l1_ratio)
    result = cross_validate_classifier(data.X, data.y, estimator, data.folds, random_state=random_state,
                                       progress=progress, threshold_rule=threshold_rule)
    threshold = choose_threshold(data.y, threshold_rule, result.oof_probability)
    cv_figures = _cross_validation_figures(data, result, threshold)
    model = PrognosisModel(
        task="hpv", estimator=estimator.fit(data.X, data.y), image_columns=inputs.image_columns,
        clinical_columns=inputs.clinical_columns, feature_set=feature_set,
        chosen="logistic" if calibration == "none" else f"logistic+{calibration}",
        description=_describe_model(len(data.patients), l1_ratio, calibration, threshold, threshold_rule),
        seg_source=inputs.seg_source if inputs.image_columns else None, threshold=float(threshold),
        training_prevalence=float(data.y.mean()), cv=cv_figures,
        fallback={"hpv_probability": float(data.y.mean()), "hpv_status": int(2 * data.y.sum() >= len(data.y))},
    )
    oof = _oof_table(data, result, threshold)
    summary = _summary(data, model, cv_figures, threshold_rule, cv, random_state, feature_set)
    paths = _write_outputs(Path(output_dir), model, oof, summary, make_plots, cv)
    honest, optimistic, at_half = (cv_figures[k] for k in ("nested_threshold", "final_threshold_on_oof", "threshold_0.5"))
    logger.info(f"cross-validated HPV: AUC {honest['auc']:.3f}, balanced accuracy {honest['balanced_accuracy']:.3f} "
                f"(thresholds from training folds, rule {threshold_rule}; "
                f"{optimistic['balanced_accuracy']:.3f} at the final threshold "
                f"{threshold:.3f}, {at_half['balanced_accuracy']:.3f} at 0.5)\nfinal model: {model.description}")
    return HpvFit(model, summary, oof, paths)


def hpv_prediction(model: PrognosisModel, feature_table=None, clinical: dict[str, dict] | None = None,
                   expected_prevalence: float | None = None, decision: str = "balanced_accuracy",
                   threshold: float | None = None):
    """HPV probability and status per patient from tables in memory.

    Returns
    -------
    (DataFrame indexed by PatientID with ``hpv_probability`` and ``hpv_status``, threshold used)
        Probabilities corrected to ``expected_prevalence`` when given (see :func:`predict_hpv`).
    """
    if model.task != "hpv":
        raise HecktorError(f"a {model.task} model cannot predict HPV status")
    return _hpv_outputs(model, prediction_inputs(model, feature_table, clinical).frame, expected_prevalence,
                        decision, threshold)


def _hpv_outputs(model: PrognosisModel, frame, expected_prevalence, decision, threshold):
    import pandas as pd

    # Callers pass HPV models only (task checked), and fit_hpv sets both of these on every HPV model.
    assert model.threshold is not None and model.training_prevalence is not None
    probability = model.estimator.predict_proba(frame)[:, 1]
    used_threshold = model.threshold if threshold is None else float(threshold)
    p_new, t_new, status = adjusted_decision(probability, used_threshold, model.training_prevalence,
                                             expected_prevalence, decision)
    return pd.DataFrame({"hpv_probability": p_new, "hpv_status": status}, index=frame.index), t_new


@small_matrix_threads
def predict_hpv(model_path, output_csv, features_csv=None, clinical_csv=None, expected_prevalence: float | None = None,
                decision: str = "balanced_accuracy", threshold: float | None = None):
    """HPV probability and status of every patient (``PatientID,hpv_probability,hpv_status``).

    Parameters
    ----------
    expected_prevalence : float, optional
        Share of HPV-positive patients expected at this site; probabilities are corrected for the
        label shift from the training prevalence (odds scaled by the prior-odds ratio) and the
        threshold is mapped with them (see :mod:`nnunet_hecktor.prognosis.hpv_models`).
    decision : {"balanced_accuracy", "accuracy"}
    threshold : float, optional
        Overrides the model's threshold (on the model's unadjusted probability scale).
    """
    if decision not in DECISIONS:
        raise HecktorError(f"--decision must be one of {', '.join(DECISIONS)}")
    if expected_prevalence is not None and not 0.0 < expected_prevalence < 1.0:
        raise HecktorError(f"--expected-prevalence must lie strictly between 0 and 1, got {expected_prevalence}")
    model = load_model(model_path, task="hpv")
    inputs = load_prediction_inputs(model, features_csv, clinical_csv)
    outputs, t_new = _hpv_outputs(model, inputs.frame, expected_prevalence, decision, threshold)
    predictions = outputs.reset_index().rename(columns={"index": schema.COL_PATIENT})
    status = predictions["hpv_status"].to_numpy()
    output_csv = Path(output_csv)
    with atomic_path(output_csv) as tmp:
        predictions.to_csv(tmp, index=False, float_format="%.6g")
    shift = "" if expected_prevalence is None else (
        f", probabilities adjusted from prevalence {model.training_prevalence:.3f} to {expected_prevalence:.3f}")
    logger.info(f"HPV status of {len(predictions)} patients written to {output_csv} ({int(status.sum())} positive; "
                f"threshold {t_new:.4f}{shift})")
    return predictions
