"""``nnunet-hecktor evaluate`` as a Python API: HECKTOR metrics of a set of predictions.

Writes into the output folder:

- ``metrics.json``: ``task1`` / ``task2`` / ``task3`` blocks (only the tasks whose inputs were
  given), each with 95 % patient-level bootstrap intervals under ``ci95``, and ``settings``.
  Undefined values (e.g. a C-index without comparable pairs) are ``null``.
- ``per_patient.csv``: one row per patient: Task 1 statistics (volumes in mm³), targets and
  predictions of Tasks 2 and 3.
- ``dice_distribution.png``, ``kaplan_meier.png`` (median split of the predicted risk, log-rank
  p-value), ``roc_hpv.png``.

Cohorts: Task 1 = every case of the ground-truth folder (each needs a prediction). Tasks 2 and 3
= every row of ``predictions.csv``; patients absent from the clinical table or without the
task's target are left out of that task and counted.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_hecktor import schema
from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.dataset_conversion.geometry import GeometryTolerance
from nnunet_hecktor.strict_json import json_safe
from nnunet_hecktor.evaluation.outcome import (
    COL_HPV_PROBABILITY,
    COL_HPV_STATUS,
    COL_RISK,
    evaluate_task2,
    evaluate_task3,
    read_predictions_csv,
)
from nnunet_hecktor.evaluation.segmentation import evaluate_segmentation_folders
from nnunet_hecktor.fileio import write_json_atomic, write_text_atomic
from nnunet_hecktor.metrics.bootstrap import bootstrap_task1, percentile_interval, resampling_weights
from nnunet_hecktor.metrics.segmentation import SegmentationMetricOptions, Task1Arrays, aggregate_task1
from nnunet_hecktor.schema import FILE_ENDING

METRICS_FILE = "metrics.json"
PER_PATIENT_FILE = "per_patient.csv"
DICE_PLOT = "dice_distribution.png"
KM_PLOT = "kaplan_meier.png"
ROC_PLOT = "roc_hpv.png"


@dataclass
class EvaluationResult:
    """What :func:`evaluate` computed and wrote (``metrics`` = the content of ``metrics.json``)."""

    metrics: dict
    per_patient: list[dict] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def _ci(replicates: dict[str, np.ndarray], level: float) -> dict[str, list]:
    out = {}
    for name, values in replicates.items():
        interval = percentile_interval(values, level)
        out[name] = [interval.low, interval.high]
    return out


def evaluate(gt_dir: str | os.PathLike | None = None, pred_dir: str | os.PathLike | None = None,
             clinical_csv: str | os.PathLike | None = None, predictions_csv: str | os.PathLike | None = None,
             output_dir: str | os.PathLike | None = None, *, num_processes: int = 1, n_bootstrap: int = 1000,
             seed: int = 0, level: float = 0.95,
             options: SegmentationMetricOptions = SegmentationMetricOptions(),
             tolerance: GeometryTolerance = GeometryTolerance(), file_ending: str = FILE_ENDING,
             plots: bool = True, progress: bool = True) -> EvaluationResult:
    """Compute the HECKTOR metrics and write ``metrics.json``, ``per_patient.csv`` and the PNGs.

    Parameters
    ----------
    gt_dir, pred_dir : path-like, optional
        Label and prediction folders (``<PID>.nii.gz``, 0 background / 1 GTVp / 2 GTVn, same grid)
        for Task 1. Give both or neither.
    clinical_csv : path-like, optional
        Clinical table with the targets ``RFS`` (days), ``Relapse`` (1 = event), ``HPV Status``
        (1 = positive). Needed with ``predictions_csv``.
    predictions_csv : path-like, optional
        ``PatientID,hpv_probability,hpv_status,risk`` (risk higher = earlier relapse).
    output_dir : path-like, optional
        Where the files go; nothing is written when ``None``.
    num_processes : int
        Worker processes for the Task 1 images.
    n_bootstrap : int
        Bootstrap replicates for the confidence intervals (0 = none).
    seed : int
        Seed of the bootstrap.
    level : float
        Confidence level of the intervals (default 0.95).
    options : SegmentationMetricOptions
        Task 1 choices (connectivity, IoU threshold, empty-GTVp rules).
    tolerance : GeometryTolerance
        Round-off accepted between prediction and label grids.
    file_ending : str
        Image file ending (default ``.nii.gz``).
    plots, progress : bool
        Write the PNGs; show a progress bar.

    Returns
    -------
    EvaluationResult
    """
    if (gt_dir is None) != (pred_dir is None):
        raise HecktorError("give both a ground-truth folder (--gt) and a prediction folder (--pred), or neither")
    if (clinical_csv is None) != (predictions_csv is None):
        raise HecktorError("Tasks 2 and 3 need both the clinical table (--clinical, targets) and "
                           "the patient-level predictions (--predictions)")
    if gt_dir is None and predictions_csv is None:
        raise HecktorError("nothing to evaluate: give --gt/--pred (Task 1) and/or --clinical/--predictions (Tasks 2, 3)")

    metrics: dict[str, Any] = {}
    rows: dict[str, dict] = {}
    files: list[Path] = []
    output = Path(output_dir) if output_dir is not None else None

    task1_arrays = None
    if gt_dir is not None:
        folder = evaluate_segmentation_folders(gt_dir, pred_dir, options, num_processes, progress, file_ending, tolerance)
        task1 = aggregate_task1(folder.stats, options)
        task1_arrays = Task1Arrays.from_stats(folder.stats, options)
        block = task1.to_dict()
        block.pop("options")  # recorded once, under settings
        block["extra_predictions_ignored"] = len(folder.extra_predictions)
        if n_bootstrap > 0:
            weights = resampling_weights(len(folder.stats), n_bootstrap, np.random.SeedSequence([seed, 1]))
            block["ci95"] = _ci(bootstrap_task1(task1_arrays, weights), level)
        metrics["task1"] = block
        for stat in folder.stats:
            rows.setdefault(stat.patient, {}).update(stat.as_row(options))

    clinical = predictions = None
    if predictions_csv is not None:
        from nnunet_hecktor.clinical import read_clinical_csv

        clinical = read_clinical_csv(clinical_csv)
        predictions = read_predictions_csv(predictions_csv)
        cohort = list(predictions.rows)
        not_predicted = [p for p in clinical if p not in predictions.rows]
        for pid in cohort:
            row = rows.setdefault(pid, {"PatientID": pid})
            record = clinical.get(pid) or {}
            for column in (schema.COL_RFS, schema.COL_RELAPSE, schema.COL_HPV):
                row[column] = record.get(column)
            row.update(predictions.rows[pid])
        if predictions.has(COL_RISK):
            task2 = evaluate_task2(cohort, clinical, predictions, n_bootstrap, seed, level)
            metrics["task2"] = task2.to_dict()
            metrics["task2"]["clinical_patients_without_prediction"] = sum(
                1 for p in not_predicted if clinical[p].get(schema.COL_RFS) is not None)
            if task2.risk_groups is not None:
                for pid in cohort:
                    if pid in task2.excluded_patients:
                        continue
                    rows[pid]["risk_group"] = "high" if rows[pid][COL_RISK] > task2.risk_groups.threshold else "low"
        if predictions.has(COL_HPV_STATUS):
            task3 = evaluate_task3(cohort, clinical, predictions, n_bootstrap, seed, level)
            metrics["task3"] = task3.to_dict()
            metrics["task3"]["clinical_patients_without_prediction"] = sum(
                1 for p in not_predicted if clinical[p].get(schema.COL_HPV) is not None)
        if not (predictions.has(COL_RISK) or predictions.has(COL_HPV_STATUS)):
            raise HecktorError(f"{predictions_csv}: no 'risk' or 'hpv_status' values to evaluate")

    metrics["settings"] = json_safe({
        "gt": str(gt_dir) if gt_dir is not None else None,
        "pred": str(pred_dir) if pred_dir is not None else None,
        "clinical": str(clinical_csv) if clinical_csv is not None else None,
        "predictions": str(predictions_csv) if predictions_csv is not None else None,
        "segmentation_options": asdict(options),
        "bootstrap": {"replicates": n_bootstrap, "seed": seed, "level": level, "method": "percentile",
                      "resampling": "patients, with replacement, per task"},
    })
    metrics = json_safe(metrics)
    per_patient = [rows[p] for p in sorted(rows)]

    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        write_json_atomic(output / METRICS_FILE, metrics)
        write_text_atomic(output / PER_PATIENT_FILE, _rows_to_csv(per_patient))
        files += [output / METRICS_FILE, output / PER_PATIENT_FILE]
        if plots:
            files += _write_plots(output, metrics, per_patient, clinical, predictions)
    return EvaluationResult(metrics, per_patient, files)


def _rows_to_csv(rows: list[dict]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _csv_value(row.get(c)) for c in columns})
    return buffer.getvalue()


def _csv_value(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.1f}"
    return str(value)


def _write_plots(output: Path, metrics: dict, rows: list[dict], clinical, predictions) -> list[Path]:
    from nnunet_hecktor.evaluation import plots

    written = []
    if "task1" in metrics:
        task1 = metrics["task1"]
        plots.plot_dice_distribution([r["gtvp_dice"] for r in rows if "gtvp_dice" in r],
                                     [r["gtvn_dice"] for r in rows if "gtvn_dice" in r], output / DICE_PLOT,
                                     _num(task1["gtvp_dice_mean"]), _num(task1["gtvn_dice_agg"]))
        written.append(output / DICE_PLOT)
    if "task2" in metrics and metrics["task2"]["n"] > 0:
        kept = [r for r in rows if r.get(COL_RISK) is not None and r.get(schema.COL_RFS) is not None
                and r.get(schema.COL_RELAPSE) is not None]
        plots.plot_kaplan_meier([r[schema.COL_RFS] for r in kept], [r[schema.COL_RELAPSE] for r in kept],
                                [r[COL_RISK] for r in kept], output / KM_PLOT)
        written.append(output / KM_PLOT)
    if "task3" in metrics and metrics["task3"]["n"] > 0:
        kept = [r for r in rows if r.get(COL_HPV_STATUS) is not None and r.get(schema.COL_HPV) is not None]
        probability = [r[COL_HPV_PROBABILITY] for r in kept] if predictions.has(COL_HPV_PROBABILITY) else None
        plots.plot_roc([r[schema.COL_HPV] for r in kept], probability, output / ROC_PLOT,
                       [r[COL_HPV_STATUS] for r in kept])
        written.append(output / ROC_PLOT)
    return written


def _num(value) -> float:
    return math.nan if value is None else float(value)


def format_summary(metrics: dict) -> str:
    """A few lines for the terminal: headline figures with their intervals and the counts."""

    def fmt(value, ci=None) -> str:
        text = "n/a" if value is None else f"{value:.4f}"
        if ci and ci[0] is not None:
            text += f" [{ci[0]:.4f}, {ci[1]:.4f}]"
        return text

    lines = []
    if "task1" in metrics:
        t = metrics["task1"]
        ci = t.get("ci95", {})
        lines.append(f"Task 1 ({t['n_patients']} patients): GTVp Dice {fmt(t['gtvp_dice_mean'], ci.get('gtvp_dice_mean'))}, "
                     f"GTVn DSCagg {fmt(t['gtvn_dice_agg'], ci.get('gtvn_dice_agg'))}, "
                     f"GTVn F1agg {fmt(t['gtvn_f1_agg'], ci.get('gtvn_f1_agg'))}")
        lines.append(f"  GTVn lesions TP {t['gtvn_tp']} FP {t['gtvn_fp']} FN {t['gtvn_fn']}; GTVp both empty "
                     f"{t['gtvp_both_empty']}, GT empty but predicted {t['gtvp_gt_empty_pred_nonempty']}, "
                     f"missed entirely {t['gtvp_pred_empty']}")
    if "task2" in metrics:
        t = metrics["task2"]
        ci = (t.get("ci95") or {}).get("c_index")
        p = (t.get("risk_groups") or {}).get("p_value")
        lines.append(f"Task 2 ({t['n']} patients, {t['n_events']} events): C-index {fmt(t['c_index'], ci)} over "
                     f"{t['comparable_pairs']} comparable pairs; log-rank p (median split) {fmt(p)}; "
                     f"excluded {t['excluded_not_in_clinical'] + t['excluded_unknown_target']}")
    if "task3" in metrics:
        t = metrics["task3"]
        ci = t.get("ci95") or {}
        lines.append(f"Task 3 ({t['n']} patients, {t['n_positive']} HPV+): balanced accuracy "
                     f"{fmt(t['balanced_accuracy'], ci.get('balanced_accuracy'))}, sensitivity {fmt(t['sensitivity'])}, "
                     f"specificity {fmt(t['specificity'])}, AUC {fmt(t['auc'], ci.get('auc'))}; excluded "
                     f"{t['excluded_not_in_clinical'] + t['excluded_unknown_target']}")
    return "\n".join(lines)
