"""Task 2 (recurrence-free survival) and Task 3 (HPV status) evaluation of patient-level predictions.

Inputs:

- ``predictions.csv`` as written by ``nnunet-hecktor predict``: columns ``PatientID``,
  ``hpv_probability`` (probability of HPV positive), ``hpv_status`` (0/1, 1 = positive) and
  ``risk`` (higher = earlier relapse). A column may be absent, or entirely empty, when a model
  does not predict it; then that task is not evaluated. A partly empty column is an error.
- The clinical table (HECKTOR column names): targets ``RFS`` (days), ``Relapse`` (1 = event)
  and ``HPV Status`` (1 = positive). Patients without the target, or absent from the table, are
  left out of that task and counted.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from nnunet_hecktor import schema
from nnunet_hecktor.errors import InputDataError
from nnunet_hecktor.metrics.bootstrap import (
    ConfidenceInterval,
    bootstrap_binary,
    bootstrap_c_index,
    percentile_interval,
    resampling_weights,
)
from nnunet_hecktor.metrics.classification import binary_metrics
from nnunet_hecktor.metrics.risk_groups import RiskGroupComparison, compare_risk_groups
from nnunet_hecktor.metrics.survival import concordance_index

COL_HPV_PROBABILITY = "hpv_probability"
COL_HPV_STATUS = "hpv_status"
COL_RISK = "risk"
PREDICTION_COLUMNS: tuple[str, ...] = (schema.COL_PATIENT, COL_HPV_PROBABILITY, COL_HPV_STATUS, COL_RISK)


@dataclass(frozen=True)
class PredictionTable:
    """Patient-level predictions: PatientID -> {column: value}, and which columns hold values."""

    rows: dict[str, dict[str, float | int]]
    columns: tuple[str, ...]
    path: str | None = None

    def has(self, column: str) -> bool:
        return column in self.columns


def _parse_prediction(column: str, raw: str, patient: str, path: Path) -> float | int:
    text = raw.strip()
    try:
        value = float(text)
    except ValueError:
        if column == COL_HPV_STATUS and text.lower() in ("true", "false"):
            return int(text.lower() == "true")
        raise InputDataError(f"column {column!r}: not a number: {raw!r}", patient, path) from None
    if not math.isfinite(value):
        raise InputDataError(f"column {column!r}: not a finite number: {raw!r}", patient, path)
    if column == COL_HPV_STATUS:
        if value not in (0.0, 1.0):
            raise InputDataError(f"column {column!r}: expected 0 or 1 (1 = HPV positive), got {raw!r}", patient, path)
        return int(value)
    if column == COL_HPV_PROBABILITY and not 0.0 <= value <= 1.0:
        raise InputDataError(f"column {column!r}: probability {raw!r} outside [0, 1]", patient, path)
    return value


def read_predictions_csv(path: str | os.PathLike) -> PredictionTable:
    """Read ``predictions.csv`` (``PatientID,hpv_probability,hpv_status,risk``; risk higher = earlier relapse).

    Raises
    ------
    InputDataError
        Missing file or ``PatientID`` column, duplicate or empty PatientID, malformed value, or a
        column that is empty for some patients but not for others (those patients are named).
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError("predictions CSV is missing", None, path)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        if schema.COL_PATIENT not in header:
            raise InputDataError(f"no {schema.COL_PATIENT!r} column (columns: {', '.join(header) or 'none'})", None, path)
        raw_rows: dict[str, dict[str, str]] = {}
        for line, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "") for k, v in row.items()}
            pid = row.get(schema.COL_PATIENT, "").strip()
            if not pid:
                raise InputDataError(f"line {line}: empty {schema.COL_PATIENT}", None, path)
            if pid in raw_rows:
                raise InputDataError(f"duplicate PatientID (second row at line {line})", pid, path)
            raw_rows[pid] = row
    columns = []
    for column in (COL_HPV_PROBABILITY, COL_HPV_STATUS, COL_RISK):
        if column not in header:
            continue
        empty = [pid for pid, row in raw_rows.items() if not row.get(column, "").strip()]
        if len(empty) == len(raw_rows):
            continue  # the model does not predict this: the task is skipped, not an error
        if empty:
            raise InputDataError(f"column {column!r} is empty for {len(empty)} patients: {', '.join(empty[:20])}",
                                 None, path)
        columns.append(column)
    rows = {pid: {c: _parse_prediction(c, row[c], pid, path) for c in columns} for pid, row in raw_rows.items()}
    return PredictionTable(rows, tuple(columns), str(path))


def _interval_dict(interval: ConfidenceInterval) -> list[float | None]:
    return [None if math.isnan(interval.low) else interval.low, None if math.isnan(interval.high) else interval.high]


@dataclass
class CohortSelection:
    """Patients kept for a task and why the others were left out."""

    patients: list[str] = field(default_factory=list)
    not_in_clinical: list[str] = field(default_factory=list)
    unknown_target: list[str] = field(default_factory=list)


def _select(cohort: Sequence[str], clinical: Mapping[str, Mapping], predictions: PredictionTable,
            targets: Sequence[str]) -> CohortSelection:
    missing = [pid for pid in cohort if pid not in predictions.rows]
    if missing:
        raise InputDataError(f"no prediction row for {len(missing)} patients: {', '.join(missing[:20])}",
                             None, predictions.path)
    selection = CohortSelection()
    for pid in cohort:
        record = clinical.get(pid)
        if record is None:
            selection.not_in_clinical.append(pid)
        elif any(record.get(t) is None for t in targets):
            selection.unknown_target.append(pid)
        else:
            selection.patients.append(pid)
    return selection


@dataclass(frozen=True)
class Task2Result:
    """Harrell's C-index of the predicted risk against RFS/Relapse, with counts and a bootstrap CI."""

    c_index: float
    comparable_pairs: int
    concordant: int
    discordant: int
    tied_risk: int
    n: int
    n_events: int
    excluded_not_in_clinical: int
    excluded_unknown_target: int
    ci95: ConfidenceInterval | None
    risk_groups: RiskGroupComparison | None
    excluded_patients: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        out = asdict(self)
        out["ci95"] = {"c_index": _interval_dict(self.ci95)} if self.ci95 else None
        out["excluded_patients"] = list(self.excluded_patients)
        return out


def evaluate_task2(cohort: Sequence[str], clinical: Mapping[str, Mapping], predictions: PredictionTable,
                   n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95) -> Task2Result:
    """C-index (HECKTOR tie rules) of ``risk`` over the ``cohort`` patients with known ``RFS`` and ``Relapse``.

    Parameters
    ----------
    cohort : sequence of str
        Patients to evaluate; each needs a row in ``predictions``.
    clinical : mapping
        PatientID -> typed clinical record (:func:`nnunet_hecktor.clinical.read_clinical_csv`).
    predictions : PredictionTable
        Must have the ``risk`` column (higher = earlier relapse).
    n_bootstrap, seed, level :
        Patient-level bootstrap (0 = no interval).
    """
    selection = _select(cohort, clinical, predictions, (schema.COL_RFS, schema.COL_RELAPSE))
    pids = selection.patients
    time = np.array([clinical[p][schema.COL_RFS] for p in pids], dtype=float)
    event = np.array([clinical[p][schema.COL_RELAPSE] for p in pids], dtype=int)
    risk = np.array([predictions.rows[p][COL_RISK] for p in pids], dtype=float)
    result = concordance_index(time, event, risk)
    interval = None
    if n_bootstrap > 0 and pids:
        weights = resampling_weights(len(pids), n_bootstrap, np.random.SeedSequence([seed, 2]))
        interval = percentile_interval(bootstrap_c_index(time, event, risk, weights), level)
    groups = compare_risk_groups(time, event, risk) if pids else None
    return Task2Result(result.c_index, result.comparable, result.concordant, result.discordant, result.tied_risk,
                       len(pids), int(event.sum()), len(selection.not_in_clinical), len(selection.unknown_target),
                       interval, groups, tuple(selection.not_in_clinical + selection.unknown_target))


@dataclass(frozen=True)
class Task3Result:
    """HPV status metrics (positive class = HPV positive) with bootstrap CIs."""

    balanced_accuracy: float
    sensitivity: float
    specificity: float
    auc: float
    n: int
    n_positive: int
    n_negative: int
    excluded_not_in_clinical: int
    excluded_unknown_target: int
    ci95: dict[str, ConfidenceInterval] | None
    excluded_patients: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        out = asdict(self)
        out["ci95"] = {k: _interval_dict(v) for k, v in self.ci95.items()} if self.ci95 else None
        out["excluded_patients"] = list(self.excluded_patients)
        return out


def evaluate_task3(cohort: Sequence[str], clinical: Mapping[str, Mapping], predictions: PredictionTable,
                   n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95) -> Task3Result:
    """Balanced accuracy, sensitivity, specificity of ``hpv_status`` and AUC of ``hpv_probability``.

    Hard labels come from ``hpv_status`` (1 = positive) as predicted; no threshold is chosen
    here. The AUC is NaN when ``hpv_probability`` is not in the table or one class is absent.
    """
    selection = _select(cohort, clinical, predictions, (schema.COL_HPV,))
    pids = selection.patients
    y = np.array([clinical[p][schema.COL_HPV] for p in pids], dtype=int)
    y_pred = np.array([predictions.rows[p][COL_HPV_STATUS] for p in pids], dtype=int)
    score = (np.array([predictions.rows[p][COL_HPV_PROBABILITY] for p in pids], dtype=float)
             if predictions.has(COL_HPV_PROBABILITY) else None)
    metrics = binary_metrics(y, y_pred, score) if pids else None
    intervals = None
    if n_bootstrap > 0 and pids:
        weights = resampling_weights(len(pids), n_bootstrap, np.random.SeedSequence([seed, 3]))
        replicates = bootstrap_binary(y, y_pred, weights, score)
        intervals = {name: percentile_interval(values, level) for name, values in replicates.items()}
    nan = math.nan
    return Task3Result(
        metrics.balanced_accuracy if metrics else nan, metrics.sensitivity if metrics else nan,
        metrics.specificity if metrics else nan, metrics.auc if metrics else nan, len(pids),
        int(y.sum()), int((y == 0).sum()), len(selection.not_in_clinical), len(selection.unknown_target),
        intervals, tuple(selection.not_in_clinical + selection.unknown_target))
