"""Assembling the model inputs of the prognosis stage: image features + clinical variables + targets.

Clinical encoding before any fitting is row-wise and stateless only (Performance Status mapped
onto ECOG, missing M-stage as its own category); everything estimated from data happens in
:mod:`nnunet_hecktor.prognosis.preprocessing`, inside each training fold.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnunet_hecktor import schema
from nnunet_hecktor.errors import HecktorError, InputDataError
from nnunet_hecktor.prognosis.feature_catalogue import PATIENT_COLUMN, SEG_SOURCE_COLUMN
from nnunet_hecktor.prognosis.preprocessing import MISSING_CATEGORY, ColumnRoles

FEATURE_SETS: tuple[str, ...] = ("all", "image", "clinical")

#: Clinical predictors by role. CenterID is never a predictor (it is the cross-validation group:
#: a model must not learn "which centre" when it will be used at a new one).
CLINICAL_ROLES: dict[str, str] = {
    schema.COL_AGE: "continuous",
    schema.COL_GENDER: "binary",
    schema.COL_TOBACCO: "binary",
    schema.COL_ALCOHOL: "binary",
    schema.COL_TREATMENT: "binary",
    schema.COL_HPV: "binary",
    schema.COL_PERFORMANCE: "ordinal",
    schema.COL_MSTAGE: "categorical",
}
#: Columns that are never predictors of the given target.
EXCLUDED_FOR: dict[str, tuple[str, ...]] = {
    "survival": (schema.COL_PATIENT, schema.COL_CENTER, schema.COL_RELAPSE, schema.COL_RFS),
    "hpv": (schema.COL_PATIENT, schema.COL_CENTER, schema.COL_RELAPSE, schema.COL_RFS, schema.COL_HPV),
    # T/N staging (HECKTOR 2026): the stages are the targets; outcomes come after staging.
    "stage": (schema.COL_PATIENT, schema.COL_CENTER, schema.COL_RELAPSE, schema.COL_RFS, schema.COL_TSTAGE,
              schema.COL_NSTAGE),
}
#: Columns the release adds in some years (2026: T-stage, N-stage); treated as categories.
EXTRA_CATEGORICAL: tuple[str, ...] = ("T-stage", "N-stage")


@dataclass
class StageInputs:
    """Raw predictors of each patient (``frame``, DataFrame indexed by PatientID) and their roles."""

    frame: Any
    roles: ColumnRoles
    image_columns: list[str]
    clinical_columns: list[str]
    seg_source: str | None
    clinical: dict[str, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def default_clinical_columns(task: str, available) -> list[str]:
    """Clinical predictor columns of ``task`` ("survival" or "hpv") present in ``available``."""
    excluded = EXCLUDED_FOR[task]
    known = [c for c in list(CLINICAL_ROLES) + list(EXTRA_CATEGORICAL) if c in set(available) and c not in excluded]
    return known


def clinical_frame(records: dict[str, dict], patients, columns: list[str], path=None):
    """Encode clinical records of ``patients`` (stateless, row-wise) into a DataFrame.

    Performance Status becomes ECOG (:func:`nnunet_hecktor.clinical.performance_status_to_ecog`);
    categorical values become strings with ``"missing"`` for a missing value; other values
    become floats with NaN for missing.
    """
    import pandas as pd

    from nnunet_hecktor.clinical import performance_status_to_ecog

    rows = []
    for pid in patients:
        record = records[pid]
        row: dict[str, str | float] = {}
        for column in columns:
            value = record.get(column)
            role = CLINICAL_ROLES.get(column, "categorical")
            if role == "categorical":
                row[column] = MISSING_CATEGORY if value is None else str(value)
            elif column == schema.COL_PERFORMANCE:
                try:
                    ecog = performance_status_to_ecog(value)
                except ValueError as exc:
                    raise InputDataError(str(exc), pid, path) from None
                row[column] = np.nan if ecog is None else float(ecog)
            else:
                try:
                    row[column] = np.nan if value is None else float(value)
                except (TypeError, ValueError):
                    raise InputDataError(f"column {column!r}: expected a number, got {value!r}", pid, path) from None
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index(list(patients), name=PATIENT_COLUMN), columns=columns)


def clinical_roles(columns: list[str]) -> dict[str, list[str]]:
    """Keyword arguments of :class:`ColumnRoles` for clinical ``columns``."""
    roles: dict[str, list[str]] = {"continuous": [], "binary": [], "ordinal": [], "categorical": []}
    for column in columns:
        roles[CLINICAL_ROLES.get(column, "categorical")].append(column)
    return roles


def image_feature_columns(feature_table) -> list[str]:
    """The feature columns of a feature table (everything but ``seg_source``)."""
    return [c for c in feature_table.columns if c != SEG_SOURCE_COLUMN]


def clinical_columns_in(records: dict[str, dict]) -> list[str]:
    """Columns holding at least one value in ``records``."""
    present: dict[str, None] = {}
    for record in records.values():
        for column, value in record.items():
            if value is not None:
                present.setdefault(column, None)
    return list(present)


def check_training_seg_source(feature_table, allow_ground_truth: bool, path=None) -> str:
    """The seg_source of a training table; refuse ground truth unless explicitly allowed.

    Raises
    ------
    HecktorError
        Features measured (partly) on ground-truth segmentations and ``allow_ground_truth`` is False.
    """
    sources = sorted(set(feature_table[SEG_SOURCE_COLUMN]))
    if sources == ["predicted"]:
        return "predicted"
    where = f" ({path})" if path else ""
    if not allow_ground_truth:
        raise HecktorError(
            f"the feature table{where} was measured on {' and '.join(sources)} segmentations. Models are "
            "trained on features of out-of-fold PREDICTED segmentations by default, because at deployment "
            "only predicted ones exist (training on ground truth and predicting on estimates is what made "
            "published HECKTOR models fail on test data). Compute features on the cross-validation "
            "predictions (fold_k/validation) or pass --allow-ground-truth-features to do it anyway.")
    warnings.warn(f"training on features of {'/'.join(sources)} segmentations{where}: the model will see "
                  "predicted segmentations at deployment, so its cross-validated figures are optimistic",
                  stacklevel=2)
    return "ground_truth" if sources == ["ground_truth"] else "mixed"


def assemble_inputs(task: str, feature_table=None, clinical: dict[str, dict] | None = None,
                    feature_set: str = "all", clinical_columns: list[str] | None = None,
                    patients=None, clinical_path=None, features_path=None) -> StageInputs:
    """Join image features and clinical predictors for ``task`` ("survival" or "hpv").

    Parameters
    ----------
    feature_table : DataFrame indexed by PatientID, optional
        From :func:`nnunet_hecktor.prognosis.features.read_feature_table`; needed unless
        ``feature_set == "clinical"``.
    clinical : dict, optional
        Clinical records by PatientID; needed unless ``feature_set == "image"``.
    feature_set : {"all", "image", "clinical"}
    clinical_columns : list of str, optional
        Clinical predictors; default: every known predictor present (HPV Status included for
        survival, excluded for HPV; CenterID, Relapse and RFS never).
    patients : list of str, optional
        Patients to keep (default: every patient of the feature table, or of the clinical
        records for ``feature_set == "clinical"``).

    Raises
    ------
    HecktorError
        A needed input is absent, a requested clinical column is unknown, or patients lack clinical rows.
    """
    import pandas as pd

    if feature_set not in FEATURE_SETS:
        raise HecktorError(f"feature set must be one of {', '.join(FEATURE_SETS)}, not {feature_set!r}")
    use_image = feature_set in ("all", "image")
    use_clinical = feature_set in ("all", "clinical")
    if use_image and feature_table is None:
        raise HecktorError(f"feature set {feature_set!r} needs a feature table (--features)")
    if use_clinical and clinical is None:
        raise HecktorError(f"feature set {feature_set!r} needs a clinical table (--clinical)")
    if patients is None:
        if use_image:
            patients = list(feature_table.index)
        else:
            assert clinical is not None  # feature set "clinical": checked above
            patients = list(clinical)
    patients = list(patients)

    frames = []
    image_columns: list[str] = []
    seg_source = None
    if use_image:
        missing = [p for p in patients if p not in feature_table.index]
        if missing:
            raise HecktorError(f"{len(missing)} patients have no row in the feature table {features_path or ''}: "
                               f"{', '.join(missing[:10])}")
        image_columns = image_feature_columns(feature_table)
        frames.append(feature_table.loc[patients, image_columns].astype(float))
        seg_source = "/".join(sorted(set(feature_table.loc[patients, SEG_SOURCE_COLUMN])))
    clinical_cols: list[str] = []
    if use_clinical:
        assert clinical is not None  # checked above
        lacking = [p for p in patients if p not in clinical]
        if lacking:
            raise HecktorError(f"{len(lacking)} patients have no row in the clinical table {clinical_path or ''}: "
                               f"{', '.join(lacking[:10])}")
        if clinical_columns is None:
            clinical_cols = default_clinical_columns(task, clinical_columns_in(clinical))
        else:
            forbidden = [c for c in clinical_columns if c in EXCLUDED_FOR[task]]
            if forbidden:
                raise HecktorError(f"{', '.join(forbidden)} cannot be a predictor of {task}")
            clinical_cols = list(clinical_columns)
        frames.append(clinical_frame(clinical, patients, clinical_cols, clinical_path))
    frame = pd.concat(frames, axis=1) if len(frames) > 1 else frames[0]
    roles = ColumnRoles.for_image_columns(image_columns, **clinical_roles(clinical_cols))
    return StageInputs(frame=frame, roles=roles, image_columns=image_columns, clinical_columns=clinical_cols,
                       seg_source=seg_source, clinical=clinical or {})


def survival_targets(clinical: dict[str, dict], patients) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    """``(kept patients, time days, event bool, dropped patients)``: patients with both RFS and Relapse."""
    kept, times, events, dropped = [], [], [], []
    for pid in patients:
        record = clinical.get(pid, {})
        rfs, relapse = record.get(schema.COL_RFS), record.get(schema.COL_RELAPSE)
        if rfs is None or relapse is None:
            dropped.append(pid)
            continue
        kept.append(pid)
        times.append(float(rfs))
        events.append(bool(relapse))
    return kept, np.asarray(times, dtype=float), np.asarray(events, dtype=bool), dropped


def hpv_targets(clinical: dict[str, dict], patients) -> tuple[list[str], np.ndarray, list[str]]:
    """``(kept patients, HPV status 0/1, dropped patients)``: patients with a known HPV status."""
    kept, labels, dropped = [], [], []
    for pid in patients:
        value = clinical.get(pid, {}).get(schema.COL_HPV)
        if value is None:
            dropped.append(pid)
            continue
        kept.append(pid)
        labels.append(int(value))
    return kept, np.asarray(labels, dtype=int), dropped


def stage_targets(clinical: dict[str, dict], patients) -> tuple[list[str], dict[str, list], list[str]]:
    """``(kept patients, {"T-stage": labels, "N-stage": labels}, dropped patients)``.

    Kept: patients with a T or an N stage (the other may be None); dropped: patients with neither.
    Labels are canonical (:data:`nnunet_hecktor.schema.T_STAGES` / ``N_STAGES``), as
    :func:`nnunet_hecktor.clinical.read_clinical_csv` parses them.
    """
    kept, dropped = [], []
    labels: dict[str, list] = {schema.COL_TSTAGE: [], schema.COL_NSTAGE: []}
    for pid in patients:
        record = clinical.get(pid, {})
        values = {column: record.get(column) for column in labels}
        if all(v is None for v in values.values()):
            dropped.append(pid)
            continue
        kept.append(pid)
        for column, value in values.items():
            labels[column].append(value)
    return kept, labels, dropped


def centre_groups(clinical: dict[str, dict], patients) -> np.ndarray:
    """Centre of each patient: the CenterID code when known, else the PatientID prefix."""
    codes = {v: k for k, v in schema.CENTER_CODES.items()}
    groups = []
    for pid in patients:
        code = clinical.get(pid, {}).get(schema.COL_CENTER)
        groups.append(codes.get(code, str(code)) if code is not None else schema.centre_of(pid))
    return np.asarray(groups, dtype=object)
