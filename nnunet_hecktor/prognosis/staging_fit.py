"""``nnunet-hecktor staging fit|predict``: T and N stage (HECKTOR 2026) from mask geometry and clinical inputs.

Fitting follows the prognosis stage's path: features of out-of-fold PREDICTED segmentations
(``nnunet-hecktor features`` on the ``fold_k/validation`` folders; ground truth refused unless
allowed), joined with the clinical variables the edition supplies at test time
(:attr:`nnunet_hecktor.editions.Edition.test_inputs`; 2026: HPV status included, CenterID never),
cross-validated patient-wise (preprocessing and penalty chosen inside each training fold), then
refitted on all patients and saved with :func:`~nnunet_hecktor.prognosis.model_store.save_model`
(task ``"stage"``). The AJCC 7 geometry rule (:mod:`.staging_rules`) is scored on the same
patients, and the model's out-of-fold balanced accuracy is compared with it by a paired bootstrap
(:func:`~nnunet_hecktor.metrics.paired.paired_multiclass_balanced_accuracy`).

Stages are canonical labels (``schema.T_STAGES``/``N_STAGES``); metrics use the ordinal codes.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_hecktor import schema
from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.fileio import atomic_path, write_json_atomic
from nnunet_hecktor.prognosis.cross_validation import fold_assignment, make_folds
from nnunet_hecktor.prognosis.model_store import PrognosisModel, load_model, save_model
from nnunet_hecktor.prognosis.preprocessing import ColumnRoles
from nnunet_hecktor.prognosis.stage_data import centre_groups, clinical_roles, stage_targets
from nnunet_hecktor.prognosis.stage_geometry import STAGE_GEOMETRY_NAMES
from nnunet_hecktor.prognosis.stage_io import load_prediction_inputs, prediction_inputs, small_matrix_threads
from nnunet_hecktor.prognosis.stage_models import DEFAULT_CS, STAGE_COLUMNS, TNStageModel, stage_codes
from nnunet_hecktor.prognosis.staging_rules import RULE_FEATURES, ajcc7_rule_table
from nnunet_hecktor.strict_json import json_safe

logger = logging.getLogger(__name__)

TASK = "stage"
#: Image features a staging model takes by default (``image_columns="staging"``): the staging
#: geometry, presence flags, node count and volumes.
STAGING_IMAGE_FEATURES: tuple[str, ...] = STAGE_GEOMETRY_NAMES + (
    "gtvp_present", "gtvn_present", "gtvp_component_count", "gtvn_lesion_count", "gtvp_volume_ml",
    "gtvn_volume_ml", "gtvp_to_farthest_node_mm")
IMAGE_COLUMN_CHOICES: tuple[str, ...] = ("staging", "all")
#: Prediction CSV columns: predicted labels, then one probability column per stage.
PREDICTION_LABEL_COLUMNS: dict[str, str] = {schema.COL_TSTAGE: "t_stage", schema.COL_NSTAGE: "n_stage"}


@dataclass
class StagingFit:
    """What :func:`fit_staging` produced."""

    model: PrognosisModel
    summary: dict[str, Any]
    oof: Any  # DataFrame
    paths: dict[str, Path]


def default_stage_clinical_columns(available, edition: str = "2026") -> list[str]:
    """Clinical predictors of a staging model: the edition's test-time inputs present in ``available``
    (CenterID, outcomes and the stages themselves never)."""
    from nnunet_hecktor.editions import get_edition
    from nnunet_hecktor.prognosis.stage_data import default_clinical_columns

    permitted = set(get_edition(edition).test_inputs)
    return [c for c in default_clinical_columns(TASK, available) if c in permitted]


def stratification(t_codes: np.ndarray, n_splits: int) -> np.ndarray:
    """Strata for stratified folds: the T code, rare codes (fewer than ``n_splits`` patients, or
    unknown) merged into the most common one so every fold can hold each stratum."""
    strata = np.asarray(t_codes, dtype=int).copy()
    values, counts = np.unique(strata, return_counts=True)
    common = values[np.argmax(counts)]
    for value, count in zip(values, counts):
        if count < n_splits or value < 0:
            strata[strata == value] = common
    return strata


def _restrict_inputs(inputs, image_columns: str, table_path) -> None:
    """Keep the staging image features (``image_columns="staging"``) and rebuild the roles."""
    if image_columns not in IMAGE_COLUMN_CHOICES:
        raise HecktorError(f"image columns must be one of {', '.join(IMAGE_COLUMN_CHOICES)}, not {image_columns!r}")
    if not inputs.image_columns:
        return
    if image_columns == "staging":
        missing = [c for c in STAGING_IMAGE_FEATURES if c not in inputs.image_columns]
        if missing:
            raise HecktorError(f"the feature table {table_path} lacks the staging feature(s) {', '.join(missing)}; "
                               "recompute it with this version of 'nnunet-hecktor features'")
        inputs.image_columns = list(STAGING_IMAGE_FEATURES)
    inputs.frame = inputs.frame[inputs.image_columns + inputs.clinical_columns]
    inputs.roles = ColumnRoles.for_image_columns(inputs.image_columns, **clinical_roles(inputs.clinical_columns))


def _balanced_accuracy(y_codes: np.ndarray, pred_codes: np.ndarray) -> float:
    from sklearn.metrics import balanced_accuracy_score

    known = y_codes >= 0
    if known.sum() == 0 or len(np.unique(y_codes[known])) < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        return float(balanced_accuracy_score(y_codes[known], pred_codes[known]))


def _column_figures(column: str, y: np.ndarray, pred: np.ndarray, rule: np.ndarray | None, folds,
                    n_bootstrap: int, seed: int) -> dict[str, Any]:
    from sklearn.metrics import confusion_matrix

    from nnunet_hecktor.metrics.paired import paired_multiclass_balanced_accuracy

    known = y >= 0
    labels = list(range(len(schema.STAGES_OF_COLUMN[column])))
    out: dict[str, Any] = {
        "n_patients": int(known.sum()),
        "class_counts": {schema.stage_label(column, c): int((y == c).sum()) for c in labels},
        "balanced_accuracy": _balanced_accuracy(y, pred),
        "accuracy": float((y[known] == pred[known]).mean()) if known.any() else float("nan"),
        "per_fold_balanced_accuracy": {f.name: _balanced_accuracy(y[f.validation], pred[f.validation]) for f in folds},
        "confusion_matrix": {"labels": list(schema.STAGES_OF_COLUMN[column]),
                             "rows_true_columns_predicted": confusion_matrix(y[known], pred[known],
                                                                             labels=labels).tolist()},
    }
    if rule is not None:
        out["ajcc7_rule_balanced_accuracy"] = _balanced_accuracy(y, rule)
        if known.sum() >= 2 and len(np.unique(y[known])) >= 2:
            comparison = paired_multiclass_balanced_accuracy(y[known], pred[known], rule[known], "model",
                                                             "AJCC 7 rule", n_bootstrap=n_bootstrap, seed=seed)
            out["model_minus_rule"] = comparison.to_dict()
    return out


@small_matrix_threads
def fit_staging(clinical_csv, output_dir, features_csv=None, feature_set: str = "all", image_columns: str = "staging",
                cv: str = "kfold", n_splits: int = 5, random_state: int = 0, allow_ground_truth_features: bool = False,
                clinical_columns=None, edition: str = "2026", progress: bool = True, Cs=DEFAULT_CS,
                n_bootstrap: int = 2000) -> StagingFit:
    """Cross-validate the T and N classifiers, refit them on all patients, save them.

    Parameters
    ----------
    clinical_csv : path
        Clinical table with ``T-stage``/``N-stage`` (patients with neither are left out and listed).
    output_dir : path
        Receives ``model.joblib``, ``oof_predictions.csv`` and ``cv_summary.json``.
    features_csv : path, optional
        Feature table of ``nnunet-hecktor features`` on predicted segmentations (needed unless
        ``feature_set="clinical"``).
    feature_set : {"all", "image", "clinical"}
        ``clinical`` is the clinical-only baseline.
    image_columns : {"staging", "all"}
        ``staging``: :data:`STAGING_IMAGE_FEATURES`; ``all``: every feature of the table.
    cv : {"kfold", "centre"}
        Stratified k-fold (strata: T stage) or leave-one-centre-out.
    clinical_columns : list of str, optional
        Default: the edition's test-time inputs present in the table (2026: age, gender, tobacco,
        alcohol, performance status, treatment, HPV status).
    edition : str
        Whose test-time inputs are permitted.
    Cs : sequence of float
        Inverse penalties of the inner search.
    n_bootstrap : int
        Replicates of the paired comparison with the AJCC 7 rule.
    """
    import pandas as pd
    from tqdm import tqdm

    from nnunet_hecktor.clinical import read_clinical_csv
    from nnunet_hecktor.editions import get_edition
    from nnunet_hecktor.prognosis.stage_data import clinical_columns_in
    from nnunet_hecktor.prognosis.stage_io import load_training_inputs

    if clinical_columns is None:
        if clinical_csv is None:
            raise HecktorError("fitting needs the clinical table with the stages (--clinical)")
        clinical_columns = default_stage_clinical_columns(clinical_columns_in(read_clinical_csv(clinical_csv)), edition)
    else:
        outside = [c for c in clinical_columns if c not in get_edition(edition).test_inputs]
        if outside:
            warnings.warn(f"clinical column(s) {', '.join(outside)} are not among the {edition} test-time inputs: "
                          "the model cannot be deployed in that edition's container", stacklevel=2)
    inputs, report = load_training_inputs(TASK, features_csv, clinical_csv, feature_set, clinical_columns,
                                          allow_ground_truth_features)
    _restrict_inputs(inputs, image_columns, features_csv)
    patients, labels, dropped = stage_targets(inputs.clinical, list(inputs.frame.index))
    report["patients_without_stage"] = dropped
    if dropped:
        logger.info(f"note: {len(dropped)} patients without T or N stage are left out")
    if len(patients) < 10:
        raise HecktorError(f"staging needs at least 10 patients with a T or N stage, found {len(patients)}")
    X = inputs.frame.loc[patients]
    codes = {column: stage_codes(labels[column], column) for column in STAGE_COLUMNS}
    groups = centre_groups(inputs.clinical, patients)
    folds = make_folds(stratification(codes[schema.COL_TSTAGE], n_splits), groups, cv, n_splits, random_state)
    logger.info(f"staging: {len(patients)} patients, {X.shape[1]} inputs ({len(inputs.image_columns)} image, "
                f"{len(inputs.clinical_columns)} clinical), {len(folds)} folds ({cv})")

    oof = {column: np.full(len(patients), -1, dtype=int) for column in STAGE_COLUMNS}
    oof_proba = {column: pd.DataFrame(0.0, index=X.index, columns=list(schema.STAGES_OF_COLUMN[column]))
                 for column in STAGE_COLUMNS}
    for fold in tqdm(folds, desc="staging CV", unit="fold", disable=not progress):
        fold_model = TNStageModel(inputs.roles, random_state, Cs).fit(
            X.iloc[fold.train], codes[schema.COL_TSTAGE][fold.train], codes[schema.COL_NSTAGE][fold.train])
        validation = X.iloc[fold.validation]
        for column, probability in zip(STAGE_COLUMNS, fold_model.predict_proba(validation)):
            if probability.shape[1]:
                oof_proba[column].iloc[fold.validation] = probability.to_numpy()
                oof[column][fold.validation] = np.argmax(probability.to_numpy(), axis=1)

    rule = None
    if features_csv is not None:
        from nnunet_hecktor.prognosis.features import read_feature_table

        table = read_feature_table(features_csv)
        if all(c in table.columns for c in RULE_FEATURES):
            rule_labels = ajcc7_rule_table(table.loc[patients])
            rule = {column: stage_codes(rule_labels[column], column) for column in STAGE_COLUMNS}
    figures = {column: _column_figures(column, codes[column], oof[column], None if rule is None else rule[column],
                                       folds, n_bootstrap, random_state) for column in STAGE_COLUMNS}

    final = TNStageModel(inputs.roles, random_state, Cs).fit(X, codes[schema.COL_TSTAGE], codes[schema.COL_NSTAGE])
    model = PrognosisModel(
        task=TASK, estimator=final, image_columns=list(inputs.image_columns),
        clinical_columns=list(inputs.clinical_columns), feature_set=feature_set, chosen="balanced_logistic",
        description=(f"T and N: multinomial logistic regressions, balanced class weights, L2 penalty by inner CV on "
                     f"balanced accuracy, refitted on all {len(patients)} patients ({final.describe()})"),
        seg_source=inputs.seg_source if inputs.image_columns else None, cv=figures)

    oof_table = pd.DataFrame({schema.COL_PATIENT: patients, "centre": groups,
                              "fold": fold_assignment(folds, len(patients))})
    for column, short in PREDICTION_LABEL_COLUMNS.items():
        oof_table[column] = labels[column]
        oof_table[short] = [schema.stage_label(column, int(c)) if c >= 0 else None for c in oof[column]]
        if rule is not None:
            oof_table[f"{short}_ajcc7_rule"] = [schema.stage_label(column, int(c)) for c in rule[column]]
        for stage in schema.STAGES_OF_COLUMN[column]:
            oof_table[f"p_{stage}"] = oof_proba[column][stage].to_numpy()
    summary = {
        "task": "T and N stage (AJCC 7; canonical labels of schema.T_STAGES / N_STAGES)",
        "final_model_description": model.description, "edition": edition, "cv_scheme": cv, "n_folds": len(folds),
        "random_state": random_state, "n_patients": len(patients), "feature_set": feature_set,
        "image_columns": inputs.image_columns, "clinical_columns": inputs.clinical_columns,
        "seg_source": model.seg_source, "cross_validation": figures,
        "figures_note": "out-of-fold: every patient predicted by a model fitted without it (preprocessing and "
                        "penalty chosen inside the training folds); balanced accuracy = mean recall over the "
                        "stages present (sklearn balanced_accuracy_score)",
        "left_out": report,
    }
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"model": output_dir / "model.joblib", "oof": output_dir / "oof_predictions.csv",
             "summary": output_dir / "cv_summary.json"}
    # The answer for a patient the model cannot predict: the most frequent training stage.
    from nnunet_hecktor.prognosis.stage_target import most_frequent_stages

    model.fallback = most_frequent_stages({column: list(labels[column]) for column in PREDICTION_LABEL_COLUMNS})
    save_model(model, paths["model"])
    with atomic_path(paths["oof"]) as tmp:
        oof_table.to_csv(tmp, index=False, float_format="%.6g")
    write_json_atomic(paths["summary"], json_safe(summary))
    line = ", ".join(f"{c} balanced accuracy {figures[c]['balanced_accuracy']:.3f}"
                     + (f" (AJCC 7 rule {figures[c]['ajcc7_rule_balanced_accuracy']:.3f})" if rule is not None else "")
                     for c in STAGE_COLUMNS)
    logger.info(f"cross-validated staging: {line}\nfinal model: {model.description}")
    return StagingFit(model, summary, oof_table, paths)


def stage_prediction(model: PrognosisModel, feature_table=None, clinical: dict[str, dict] | None = None):
    """T and N stage per patient from tables in memory.

    Returns
    -------
    DataFrame indexed by PatientID
        ``t_stage``, ``n_stage`` (canonical labels) and ``p_T0``..``p_T4``, ``p_N0``..``p_N3``
        (probabilities; 0 for stages unseen in training).
    """
    if model.task != TASK:
        raise HecktorError(f"a {model.task} model cannot predict T/N stage")
    frame = prediction_inputs(model, feature_table, clinical).frame
    return _stage_outputs(model, frame)


def _stage_outputs(model: PrognosisModel, frame):
    import pandas as pd

    t, n = model.estimator.predict(frame)
    out = pd.DataFrame({"t_stage": t, "n_stage": n}, index=frame.index)
    for probability in model.estimator.predict_proba(frame):
        for stage in probability.columns:
            out[f"p_{stage}"] = probability[stage].to_numpy()
    return out


@small_matrix_threads
def predict_staging(model_path, output_csv, features_csv=None, clinical_csv=None):
    """Write ``PatientID,t_stage,n_stage,p_T0..p_T4,p_N0..p_N3`` for every patient of the inputs."""
    model = load_model(model_path, task=TASK)
    frame = load_prediction_inputs(model, features_csv, clinical_csv).frame
    out = _stage_outputs(model, frame)
    output_csv = Path(output_csv)
    output_csv.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output_csv) as tmp:
        out.to_csv(tmp, float_format="%.6g")
    logger.info(f"T/N stage of {len(out)} patients -> {output_csv}")
    return out


__all__ = ["STAGING_IMAGE_FEATURES", "StagingFit", "default_stage_clinical_columns", "fit_staging",
           "predict_staging", "stage_prediction", "stratification"]
