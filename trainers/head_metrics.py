"""Patient-level metrics of the HPV and risk heads, and the ``validation_heads`` files.

Conventions: HPV 1 = positive (the positive class); risk higher = earlier relapse; RFS in days;
Relapse 1 = event; NaN = unknown (left out of the metric it concerns). Metrics come from
:mod:`nnunet_hecktor.metrics` (AUC, balanced accuracy, Harrell's C-index with HECKTOR's tie rules).
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from nnunet_hecktor.fileio import atomic_path, write_json_atomic
from nnunet_hecktor.metrics.classification import binary_metrics
from nnunet_hecktor.metrics.survival import concordance_index
from nnunet_hecktor.strict_json import json_safe

VALIDATION_HEADS_JSON = "validation_heads.json"
VALIDATION_HEADS_CSV = "validation_heads.csv"


def mean_per_patient(patient_ids: Sequence[Any], *columns: Sequence[float]) -> tuple[list, list[np.ndarray]]:
    """Average each column over the samples of each patient (patches of one patient -> one value).

    Returns
    -------
    (patients, [column means])
        Patients in first-seen order; one array per input column.
    """
    groups: dict[Any, list[int]] = defaultdict(list)
    for i, pid in enumerate(patient_ids):
        groups[pid].append(i)
    patients = list(groups)
    out = []
    for column in columns:
        column = np.asarray(column, dtype=float)
        out.append(np.array([np.mean(column[groups[p]]) for p in patients], dtype=float))
    return patients, out


def hpv_metrics(hpv_true: Sequence[float], probability: Sequence[float], threshold: float) -> dict[str, Any]:
    """AUC, balanced accuracy, sensitivity and specificity of HPV predictions (unknown labels dropped).

    Parameters
    ----------
    hpv_true : sequence of float
        1 = positive, 0 = negative, NaN = unknown.
    probability : sequence of float
        Predicted probability of HPV positive.
    threshold : float
        Predict positive when ``probability >= threshold``.
    """
    y = np.asarray(hpv_true, dtype=float)
    p = np.asarray(probability, dtype=float)
    known = np.isfinite(y) & np.isfinite(p)
    y, p = y[known].astype(int), p[known]
    if y.size == 0:
        return {"auc": math.nan, "balanced_accuracy": math.nan, "sensitivity": math.nan,
                "specificity": math.nan, "threshold": float(threshold), "n_known": 0, "n_positive": 0,
                "n_negative": 0}
    m = binary_metrics(y, (p >= threshold).astype(int), p)
    return {"auc": m.auc, "balanced_accuracy": m.balanced_accuracy, "sensitivity": m.sensitivity,
            "specificity": m.specificity, "threshold": float(threshold), "n_known": int(y.size),
            "n_positive": m.n_positive, "n_negative": m.n_negative}


def survival_metrics(rfs: Sequence[float], relapse: Sequence[float], risk: Sequence[float]) -> dict[str, Any]:
    """Harrell's C-index of the risk (HECKTOR rules), patients with unknown RFS/Relapse dropped."""
    t = np.asarray(rfs, dtype=float)
    e = np.asarray(relapse, dtype=float)
    r = np.asarray(risk, dtype=float)
    known = np.isfinite(t) & np.isfinite(e) & np.isfinite(r)
    if not known.any():
        return {"c_index": math.nan, "comparable_pairs": 0, "n_known": 0, "n_events": 0}
    result = concordance_index(t[known], e[known].astype(int), r[known])
    return {"c_index": result.c_index, "comparable_pairs": result.comparable, "n_known": int(known.sum()),
            "n_events": int(e[known].sum())}


def write_validation_heads(output_folder: str | Path, rows: Iterable[Mapping[str, Any]],
                           summary: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``validation_heads.json`` (summary) and ``validation_heads.csv`` (one row per patient).

    Both files are written atomically into ``output_folder`` (the fold folder).
    """
    output_folder = Path(output_folder)
    rows = [dict(r) for r in rows]
    csv_path = output_folder / VALIDATION_HEADS_CSV
    json_path = output_folder / VALIDATION_HEADS_JSON
    fields = list(rows[0]) if rows else ["PatientID"]
    with atomic_path(csv_path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: ("" if v is None or (isinstance(v, float) and not math.isfinite(v)) else v)
                                 for k, v in row.items()})
    write_json_atomic(json_path, json_safe(dict(summary)))
    return json_path, csv_path
