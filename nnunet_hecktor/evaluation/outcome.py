"""Task 2 (recurrence-free survival) and Task 3 (HPV status) evaluation of patient-level predictions.

Inputs:

- ``predictions.csv`` as written by ``nnunet-hecktor predict``: columns ``PatientID``,
  ``hpv_probability`` (probability of HPV positive), ``hpv_status`` (0/1, 1 = positive),
  ``risk`` (higher = earlier relapse) and, for HECKTOR 2026, ``t_stage`` / ``n_stage`` (``T0``-``T4``,
  ``N0``-``N3``; sub-stages and ordinal codes are read as :func:`nnunet_hecktor.clinical.parse_stage`
  reads them; headers ``T-stage``, ``T_stage``, ``t stage`` are the same column). Optional
  ``survival_<days>`` columns hold a predicted relapse-free probability at that day (a survival
  function, for the integrated Brier score). A column may be absent when a model does not predict
  it; then that task is not evaluated. A column present but empty for every patient is treated the
  same way, with a warning naming it (:attr:`PredictionTable.empty_columns`). A partly empty column
  is an error.
- The clinical table (HECKTOR column names): targets ``RFS`` (days), ``Relapse`` (1 = event)
  and ``HPV Status`` (1 = positive). Patients without the target, or absent from the table, are
  left out of that task and counted.
"""

from __future__ import annotations

import csv
import logging
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
COL_T_STAGE = "t_stage"
COL_N_STAGE = "n_stage"
#: Prediction column -> the clinical target column it predicts (the stage columns).
STAGE_PREDICTIONS: dict[str, str] = {COL_T_STAGE: schema.COL_TSTAGE, COL_N_STAGE: schema.COL_NSTAGE}
#: Prefix of the survival-function columns: ``survival_<days>`` = predicted P(relapse-free at that day).
SURVIVAL_PREFIX = "survival_"
PREDICTION_COLUMNS: tuple[str, ...] = (schema.COL_PATIENT, COL_HPV_PROBABILITY, COL_HPV_STATUS, COL_RISK,
                                       COL_T_STAGE, COL_N_STAGE)

logger = logging.getLogger(__name__)


def _column_key(header: str) -> str:
    """Header spelling ignored: case, ``-``/``_``/spaces (``T-stage`` = ``t_stage`` = ``T stage``)."""
    return "".join(ch for ch in header.casefold() if ch.isalnum())


_KNOWN_KEYS = {_column_key(c): c for c in PREDICTION_COLUMNS[1:]}


@dataclass(frozen=True)
class PredictionTable:
    """Patient-level predictions: PatientID -> {column: value}, and which columns hold values."""

    rows: dict[str, dict[str, float | int | str]]
    columns: tuple[str, ...]
    path: str | None = None
    empty_columns: tuple[str, ...] = ()

    def has(self, column: str) -> bool:
        return column in self.columns


def _parse_prediction(column: str, raw: str, patient: str, path: Path) -> float | int | str:
    text = raw.strip()
    if column in STAGE_PREDICTIONS:
        from nnunet_hecktor.clinical import parse_stage

        try:
            stage = parse_stage(STAGE_PREDICTIONS[column], text)
        except ValueError as exc:
            raise InputDataError(f"column {column!r}: {exc}", patient, path) from None
        if stage is None:
            raise InputDataError(f"column {column!r}: {raw!r} is not a stage (a prediction must name one)",
                                 patient, path)
        return stage
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
    if (column == COL_HPV_PROBABILITY or column.startswith(SURVIVAL_PREFIX)) and not 0.0 <= value <= 1.0:
        raise InputDataError(f"column {column!r}: probability {raw!r} outside [0, 1]", patient, path)
    return value


def _survival_day(header: str) -> float | None:
    if not header.casefold().startswith(SURVIVAL_PREFIX):
        return None
    try:
        day = float(header[len(SURVIVAL_PREFIX):])
    except ValueError:
        return None
    return day if math.isfinite(day) and day >= 0 else None


def read_predictions_csv(path: str | os.PathLike) -> PredictionTable:
    """Read ``predictions.csv`` (``PatientID,hpv_probability,hpv_status,risk[,t_stage,n_stage]``; risk
    higher = earlier relapse; see the module docstring).

    Raises
    ------
    InputDataError
        Missing file or ``PatientID`` column, duplicate or empty PatientID, malformed value, two
        headers for one column, or a column that is empty for some patients but not for others
        (those patients are named).
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
    sources: dict[str, str] = {}  # our column -> header as written
    for raw in header:
        column = _KNOWN_KEYS.get(_column_key(raw))
        if column is None:
            day = _survival_day(raw)
            column = f"{SURVIVAL_PREFIX}{day:g}" if day is not None else None
        if column is None:
            continue
        if column in sources:
            raise InputDataError(f"two headers give the column {column!r}: {sources[column]!r} and {raw!r}", None, path)
        sources[column] = raw
    columns, empty_columns = [], []
    for column, raw_header in sources.items():
        empty = [pid for pid, row in raw_rows.items() if not row.get(raw_header, "").strip()]
        if raw_rows and len(empty) == len(raw_rows):
            # The model does not predict this: the task is skipped, and said so.
            empty_columns.append(raw_header)
            logger.warning("%s: column %r is empty for every patient: not evaluated", path, raw_header)
            continue
        if empty:
            raise InputDataError(f"column {raw_header!r} is empty for {len(empty)} patients: {', '.join(empty[:20])}",
                                 None, path)
        columns.append(column)
    rows = {pid: {c: _parse_prediction(c, row[sources[c]], pid, path) for c in columns}
            for pid, row in raw_rows.items()}
    return PredictionTable(rows, tuple(columns), str(path), tuple(empty_columns))


def survival_functions(predictions: PredictionTable, patients) -> tuple[np.ndarray, np.ndarray] | None:
    """``(days, survival[n_patients, n_days])`` from the ``survival_<days>`` columns; None without them."""
    days = sorted((float(c[len(SURVIVAL_PREFIX):]), c) for c in predictions.columns if c.startswith(SURVIVAL_PREFIX))
    if not days:
        return None
    matrix = np.array([[predictions.rows[p][c] for _, c in days] for p in patients], dtype=float)
    return np.array([d for d, _ in days]), matrix


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
    risk_cut_source: str = "median of the scored patients (not independent of them)"
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        out = asdict(self)
        out["ci95"] = {"c_index": _interval_dict(self.ci95)} if self.ci95 else None
        out["excluded_patients"] = list(self.excluded_patients)
        out["notes"] = list(self.notes)
        return out


def evaluate_task2(cohort: Sequence[str], clinical: Mapping[str, Mapping], predictions: PredictionTable,
                   n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95,
                   risk_cut: float | None = None, risk_cut_source: str | None = None) -> Task2Result:
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
    risk_cut, risk_cut_source : float, str, optional
        Cut of the two risk groups (log-rank test, Kaplan-Meier) fixed beforehand, e.g. on
        training data, and where it comes from; default: the median risk of the scored patients.
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
    groups = compare_risk_groups(time, event, risk, risk_cut) if pids else None
    notes = []
    if risk_cut is None:
        source = "median of the scored patients (not independent of them)"
        notes.append("risk groups cut at the median risk of the scored patients: not independent of them "
                     "(give --risk-cut VALUE or --risk-cut MODEL_FOLDER for a cut fixed on training data)")
    else:
        source = risk_cut_source or "given"
    if pids and not event.any():
        notes.append("no relapse among the scored patients: C-index undefined")
    return Task2Result(result.c_index, result.comparable, result.concordant, result.discordant, result.tied_risk,
                       len(pids), int(event.sum()), len(selection.not_in_clinical), len(selection.unknown_target),
                       interval, groups, tuple(selection.not_in_clinical + selection.unknown_target), source,
                       tuple(notes))


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
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        out = asdict(self)
        out["ci95"] = {k: _interval_dict(v) for k, v in self.ci95.items()} if self.ci95 else None
        out["excluded_patients"] = list(self.excluded_patients)
        out["notes"] = list(self.notes)
        return out


def evaluate_task3(cohort: Sequence[str], clinical: Mapping[str, Mapping], predictions: PredictionTable,
                   n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95) -> Task3Result:
    """Balanced accuracy, sensitivity, specificity of ``hpv_status`` and AUC of ``hpv_probability``.

    Hard labels come from ``hpv_status`` (1 = positive) as predicted; no threshold is chosen
    here. The AUC is NaN when ``hpv_probability`` is not in the table or one class is absent.
    With one HPV class only among the scored patients, balanced accuracy is undefined (a constant
    classifier would score 1.0): it is NaN, with its interval, and a note says why.
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
        # A replicate with one class has no balanced accuracy (bootstrap_binary gives that class's recall).
        n_pos = weights @ (y == 1).astype(float)
        one_class = (n_pos == 0) | (n_pos == weights.sum(axis=1))
        replicates["balanced_accuracy"] = np.where(one_class, math.nan, replicates["balanced_accuracy"])
        intervals = {name: percentile_interval(values, level) for name, values in replicates.items()}
    nan = math.nan
    notes = []
    balanced = metrics.balanced_accuracy if metrics else nan
    if pids and np.unique(y).size < 2:
        balanced = nan
        notes.append(f"one HPV class only among the {len(pids)} scored patients "
                     f"({'all positive' if y.all() else 'all negative'}): balanced accuracy undefined")
    return Task3Result(
        balanced, metrics.sensitivity if metrics else nan,
        metrics.specificity if metrics else nan, metrics.auc if metrics else nan, len(pids),
        int(y.sum()), int((y == 0).sum()), len(selection.not_in_clinical), len(selection.unknown_target),
        intervals, tuple(selection.not_in_clinical + selection.unknown_target), tuple(notes))
