"""The evaluation's per-patient rows (``per_patient.csv``) as metric inputs.

Per-patient rows carry every statistic the HECKTOR figures are computed from (Task 1 volumes in
mm³ and lesion counts, targets and predictions of the patient-level tasks), so per-centre figures
and paired comparisons of two prediction sets are computed from them without reading images again.
Rows may come from :func:`nnunet_hecktor.evaluation.evaluate.evaluate` (typed values) or from a
``per_patient.csv`` file (strings; empty = missing): :func:`read_rows` and :func:`number` read both.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from nnunet_hecktor import schema
from nnunet_hecktor.metrics.segmentation import Task1Arrays

from .outcome import COL_HPV_PROBABILITY, COL_HPV_STATUS, COL_N_STAGE, COL_RISK, COL_T_STAGE

#: Prediction column -> truth column of the two stages.
STAGE_TRUTH: dict[str, str] = {COL_T_STAGE: schema.COL_TSTAGE, COL_N_STAGE: schema.COL_NSTAGE}


def read_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a ``per_patient.csv`` ([] when the file does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def number(value: Any) -> float:
    """A row value as float; NaN for missing (None, NaN, empty string)."""
    if value is None or value == "":
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _has(row: Mapping, column: str) -> bool:
    value = row.get(column)
    return value is not None and value != "" and not (isinstance(value, float) and math.isnan(value))


def centre(row: Mapping) -> str:
    """Centre of a row: the PatientID prefix (``CHUP-000`` -> ``CHUP``), else ``CenterID``, else ``unknown``."""
    pid = str(row.get(schema.COL_PATIENT, ""))
    if "-" in pid:
        return schema.centre_of(pid)
    if _has(row, schema.COL_CENTER):
        return f"CenterID {int(number(row[schema.COL_CENTER]))}"
    return "unknown"


def task1_arrays(rows: Sequence[Mapping]) -> Task1Arrays | None:
    """Task 1 per-patient columns of the rows scored for Task 1 (None when there are none)."""
    kept = [r for r in rows if _has(r, "gtvn_tp")]
    if not kept:
        return None

    def col(name):
        return np.array([number(r.get(name)) for r in kept], dtype=float)

    return Task1Arrays(
        patients=tuple(str(r[schema.COL_PATIENT]) for r in kept),
        gtvp_dice=col("gtvp_dice"),
        gtvn_intersection_mm3=col("gtvn_intersection_mm3"),
        gtvn_volume_sum_mm3=col("gtvn_gt_mm3") + col("gtvn_pred_mm3"),
        gtvn_tp=col("gtvn_tp").astype(np.int64), gtvn_fp=col("gtvn_fp").astype(np.int64),
        gtvn_fn=col("gtvn_fn").astype(np.int64),
    )


def survival_arrays(rows: Sequence[Mapping]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray] | None:
    """(patients, RFS days, Relapse, risk) of the rows with all three; None when there are none."""
    kept = [r for r in rows if all(_has(r, c) for c in (COL_RISK, schema.COL_RFS, schema.COL_RELAPSE))]
    if not kept:
        return None
    return ([str(r[schema.COL_PATIENT]) for r in kept], np.array([number(r[schema.COL_RFS]) for r in kept]),
            np.array([int(number(r[schema.COL_RELAPSE])) for r in kept]), np.array([number(r[COL_RISK]) for r in kept]))


def hpv_arrays(rows: Sequence[Mapping]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray | None] | None:
    """(patients, HPV truth, hpv_status, hpv_probability or None); None without hard labels."""
    kept = [r for r in rows if _has(r, COL_HPV_STATUS) and _has(r, schema.COL_HPV)]
    if not kept:
        return None
    probability = (np.array([number(r[COL_HPV_PROBABILITY]) for r in kept])
                   if all(_has(r, COL_HPV_PROBABILITY) for r in kept) else None)
    return ([str(r[schema.COL_PATIENT]) for r in kept], np.array([int(number(r[schema.COL_HPV])) for r in kept]),
            np.array([int(number(r[COL_HPV_STATUS])) for r in kept]), probability)


def stage_arrays(rows: Sequence[Mapping], column: str) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """(patients, true codes, predicted codes) of a stage (``t_stage``/``n_stage``); None without any."""
    truth = STAGE_TRUTH[column]
    kept = [r for r in rows if _has(r, column) and _has(r, truth)]
    if not kept:
        return None
    return ([str(r[schema.COL_PATIENT]) for r in kept],
            np.array([schema.stage_code(truth, str(r[truth])) for r in kept], dtype=int),
            np.array([schema.stage_code(truth, str(r[column])) for r in kept], dtype=int))
