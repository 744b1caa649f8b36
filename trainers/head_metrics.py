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
from nnunet_hecktor.metrics.bootstrap import bootstrap_binary, bootstrap_c_index, percentile_interval, resampling_weights
from nnunet_hecktor.metrics.classification import binary_metrics
from nnunet_hecktor.metrics.survival import concordance_index
from nnunet_hecktor.strict_json import json_safe

VALIDATION_HEADS_JSON = "validation_heads.json"
VALIDATION_HEADS_CSV = "validation_heads.csv"


def mean_per_patient(patient_ids: Sequence[Any], *columns: Sequence[float] | np.ndarray) -> tuple[list, list[np.ndarray]]:
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
        values = np.asarray(column, dtype=float)
        out.append(np.array([np.mean(values[groups[p]]) for p in patients], dtype=float))
    return patients, out


def hpv_metrics(hpv_true: Sequence[float] | np.ndarray, probability: Sequence[float] | np.ndarray,
                threshold: float) -> dict[str, Any]:
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


def survival_metrics(rfs: Sequence[float] | np.ndarray, relapse: Sequence[float] | np.ndarray,
                     risk: Sequence[float] | np.ndarray) -> dict[str, Any]:
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


#: Below these counts a head-validation figure is flagged as too few to mean anything: with fewer
#: than 10 HPV negatives (or positives) one patient moves the specificity by > 10 points, and with
#: fewer than 10 events / 100 comparable pairs a C-index's 95 % interval is typically wider than
#: +-0.15 (the bootstrap interval is reported next to it either way).
MIN_HPV_CLASS_SIZE = 10
MIN_EVENTS = 10
MIN_COMPARABLE_PAIRS = 100


def head_validation_reliability(rows: Sequence[Mapping[str, Any]], threshold: float, n_bootstrap: int = 1000,
                                level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Bootstrap intervals and the counts behind the head-validation figures, with a verdict.

    Parameters
    ----------
    rows : sequence of mapping
        One row per patient with ``hpv_true``, ``hpv_probability``, ``rfs_days``, ``relapse``
        and ``risk`` (NaN = unknown), as written to ``validation_heads.csv``.
    threshold : float
        HPV decision threshold (positive when ``probability >= threshold``).
    n_bootstrap, level, seed
        Patient-level percentile bootstrap (:mod:`nnunet_hecktor.metrics.bootstrap`), resampling
        the patients with a known target separately for HPV and for RFS.

    Returns
    -------
    dict
        ``hpv`` and ``rfs`` blocks: point figures, ``{metric}_ci`` intervals, the numbers of
        patients, negatives/positives, events and comparable pairs, ``enough`` (bool) and
        ``warning`` (a sentence, or None).
    """
    def column(name):
        return np.array([float(r.get(name, math.nan)) if r.get(name) is not None else math.nan for r in rows],
                        dtype=float)

    y, prob = column("hpv_true"), column("hpv_probability")
    t, e, risk = column("rfs_days"), column("relapse"), column("risk")
    out: dict[str, Any] = {}
    known = np.isfinite(y) & np.isfinite(prob)
    hpv = hpv_metrics(y, prob, threshold)
    block: dict[str, Any] = {"auc": hpv["auc"], "balanced_accuracy": hpv["balanced_accuracy"],
                             "n_patients": hpv["n_known"], "n_positive": hpv["n_positive"],
                             "n_negative": hpv["n_negative"]}
    if known.any():
        w = resampling_weights(int(known.sum()), n_bootstrap, seed)
        reps = bootstrap_binary(y[known], (prob[known] >= threshold).astype(int), w, score=prob[known])
        for name in ("auc", "balanced_accuracy"):
            block[f"{name}_ci"] = percentile_interval(reps[name], level).to_dict()
    smallest = min(hpv["n_positive"], hpv["n_negative"])
    block["enough"] = bool(smallest >= MIN_HPV_CLASS_SIZE)
    block["warning"] = None if block["enough"] else (
        f"only {hpv['n_negative']} HPV-negative and {hpv['n_positive']} HPV-positive validation patients "
        f"(< {MIN_HPV_CLASS_SIZE} in a class): the HPV figures are too few to mean anything")
    out["hpv"] = block

    surv = survival_metrics(t, e, risk)
    block = {"c_index": surv["c_index"], "n_patients": surv["n_known"], "n_events": surv["n_events"],
             "comparable_pairs": surv["comparable_pairs"]}
    ok = np.isfinite(t) & np.isfinite(e) & np.isfinite(risk)
    if ok.any():
        w = resampling_weights(int(ok.sum()), n_bootstrap, seed + 1)
        block["c_index_ci"] = percentile_interval(bootstrap_c_index(t[ok], e[ok].astype(int), risk[ok], w),
                                                  level).to_dict()
    block["enough"] = bool(surv["n_events"] >= MIN_EVENTS and surv["comparable_pairs"] >= MIN_COMPARABLE_PAIRS)
    block["warning"] = None if block["enough"] else (
        f"only {surv['n_events']} events and {surv['comparable_pairs']} comparable pairs among the validation "
        f"patients (< {MIN_EVENTS} events or < {MIN_COMPARABLE_PAIRS} pairs): the C-index is too uncertain to "
        "mean anything")
    out["rfs"] = block
    out["bootstrap"] = {"replicates": int(n_bootstrap), "level": float(level), "seed": int(seed),
                        "unit": "patient"}
    return out


def write_validation_heads(output_folder: str | Path, rows: Iterable[Mapping[str, Any]],
                           summary: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``validation_heads.json`` (summary) and ``validation_heads.csv`` (one row per patient).

    Both files are written atomically into ``output_folder`` (the fold folder). When the rows
    carry the head outputs and targets, the summary gains a ``reliability`` block
    (:func:`head_validation_reliability`: bootstrap intervals, counts, and a warning when they
    are too few), and each warning is also listed under ``warnings``.
    """
    output_folder = Path(output_folder)
    rows = [dict(r) for r in rows]
    summary = dict(summary)
    needed = {"hpv_true", "hpv_probability", "rfs_days", "relapse", "risk"}
    if rows and needed <= set(rows[0]) and "reliability" not in summary:
        threshold = summary.get("hpv", {}).get("threshold", 0.5) if isinstance(summary.get("hpv"), Mapping) else 0.5
        reliability = head_validation_reliability(rows, float(threshold))
        summary["reliability"] = reliability
        summary["warnings"] = [b["warning"] for b in (reliability["hpv"], reliability["rfs"]) if b["warning"]]
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
