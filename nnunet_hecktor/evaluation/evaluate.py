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
task's target are left out of that task and counted. A patient with the task's target in the
clinical table but no prediction is an error, as in Task 1, unless ``score_subset``
(``--score-subset``) is given: then the predicted subset is scored and the patients left out are
counted and listed (``patients_without_prediction``) and logged.

Predictions are read from ``--pred`` (``<PID>.nii.gz``, ``.nii``, ``.mha`` or ``.nrrd``) and
``--predictions`` (``predictions.csv``), or from the challenge container's output layout
(``--challenge-outputs``, :mod:`.challenge_outputs`).
"""

from __future__ import annotations

import csv
import io
import logging
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
    PredictionTable,
    evaluate_task2,
    evaluate_task3,
    read_predictions_csv,
)
from nnunet_hecktor.evaluation.segmentation import evaluate_segmentation_folders
from nnunet_hecktor.fileio import write_json_atomic, write_text_atomic
from nnunet_hecktor.metrics.bootstrap import bootstrap_task1, percentile_interval, resampling_weights
from nnunet_hecktor.metrics.segmentation import SegmentationMetricOptions, Task1Arrays, aggregate_task1
from nnunet_hecktor.schema import FILE_ENDING

logger = logging.getLogger(__name__)

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
             plots: bool = True, progress: bool = True, score_subset: bool = False,
             challenge_outputs: str | os.PathLike | None = None,
             case_map: str | os.PathLike | None = None) -> EvaluationResult:
    """Compute the HECKTOR metrics and write ``metrics.json``, ``per_patient.csv`` and the PNGs.

    Parameters
    ----------
    gt_dir : path-like, optional
        Label folder (``<PID>.nii.gz``, 0 background / 1 GTVp / 2 GTVn) for Task 1.
    pred_dir : path-like, optional
        Prediction folder (``<PID>`` + ``.nii.gz``, ``.nii``, ``.mha`` or ``.nrrd``, on the label's
        grid). Task 1 needs ``gt_dir`` and ``pred_dir`` (or ``challenge_outputs``).
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
        Label file ending (default ``.nii.gz``).
    plots, progress : bool
        Write the PNGs; show a progress bar.
    score_subset : bool
        Tasks 2/3: score only the predicted patients when some patients with a target have no
        prediction (default: an error listing them).
    challenge_outputs : path-like, optional
        Folder of challenge container outputs, one folder per case (:mod:`.challenge_outputs`):
        replaces ``pred_dir`` and ``predictions_csv``.
    case_map : path-like, optional
        CSV ``case,PatientID`` naming the patient of each case folder of ``challenge_outputs``
        (default: folder name = PatientID).

    Returns
    -------
    EvaluationResult
    """
    segmentations, predictions, predictions_source = _resolve_predictions(
        gt_dir, pred_dir, clinical_csv, predictions_csv, challenge_outputs, case_map)
    metrics: dict[str, Any] = {}
    rows: dict[str, dict] = {}
    if gt_dir is not None:
        metrics["task1"] = _task1(gt_dir, segmentations, rows, options, num_processes, progress, file_ending,
                                  tolerance, n_bootstrap, seed, level)
    clinical = None
    if predictions is not None:
        from nnunet_hecktor.clinical import read_clinical_csv

        clinical = read_clinical_csv(clinical_csv)
        metrics.update(_tasks_2_and_3(clinical, predictions, predictions_source, clinical_csv, rows, score_subset,
                                      n_bootstrap, seed, level))
    metrics["settings"] = json_safe({
        "gt": str(gt_dir) if gt_dir is not None else None,
        "pred": str(pred_dir) if pred_dir is not None else None,
        "clinical": str(clinical_csv) if clinical_csv is not None else None,
        "predictions": str(predictions_csv) if predictions_csv is not None else None,
        "challenge_outputs": str(challenge_outputs) if challenge_outputs is not None else None,
        "case_map": str(case_map) if case_map is not None else None,
        "score_subset": score_subset,
        "segmentation_options": asdict(options),
        "bootstrap": {"replicates": n_bootstrap, "seed": seed, "level": level, "method": "percentile",
                      "resampling": "patients, with replacement, per task"},
    })
    metrics = json_safe(metrics)
    per_patient = [rows[p] for p in sorted(rows)]
    files = _write_results(output_dir, metrics, per_patient, clinical, predictions, plots)
    return EvaluationResult(metrics, per_patient, files)


def _resolve_predictions(gt_dir, pred_dir, clinical_csv, predictions_csv, challenge_outputs, case_map):
    """Check which tasks the arguments ask for; return (Task 1 predictions, patient-level table, its source)."""
    if challenge_outputs is not None and (pred_dir is not None or predictions_csv is not None):
        raise HecktorError("give either the challenge outputs (--challenge-outputs) or --pred/--predictions, not both")
    if case_map is not None and challenge_outputs is None:
        raise HecktorError("--case-map maps the case folders of --challenge-outputs; give that folder too")
    if challenge_outputs is not None:
        from nnunet_hecktor.evaluation.challenge_outputs import read_challenge_outputs

        if gt_dir is None and clinical_csv is None:
            raise HecktorError("nothing to evaluate: give --gt (Task 1) and/or --clinical (Tasks 2, 3) with "
                               "--challenge-outputs")
        outputs = read_challenge_outputs(challenge_outputs, case_map)
        table = outputs.predictions if clinical_csv is not None else None
        return outputs.segmentations, table, str(challenge_outputs)
    if (gt_dir is None) != (pred_dir is None):
        raise HecktorError("give both a ground-truth folder (--gt) and a prediction folder (--pred), or neither")
    if (clinical_csv is None) != (predictions_csv is None):
        raise HecktorError("Tasks 2 and 3 need both the clinical table (--clinical, targets) and "
                           "the patient-level predictions (--predictions)")
    if gt_dir is None and predictions_csv is None:
        raise HecktorError("nothing to evaluate: give --gt/--pred (Task 1) and/or --clinical/--predictions (Tasks 2, 3)")
    table = read_predictions_csv(predictions_csv) if predictions_csv is not None else None
    return pred_dir, table, str(predictions_csv)


def _task1(gt_dir, segmentations, rows: dict, options, num_processes, progress, file_ending, tolerance,
           n_bootstrap, seed, level) -> dict:
    """The ``task1`` block (aggregate, counts, bootstrap intervals); per-patient statistics go into ``rows``."""
    folder = evaluate_segmentation_folders(gt_dir, segmentations, options, num_processes, progress, file_ending,
                                           tolerance)
    task1 = aggregate_task1(folder.stats, options)
    block = task1.to_dict()
    block.pop("options")  # recorded once, under settings
    block["extra_predictions_ignored"] = len(folder.extra_predictions)
    if n_bootstrap > 0:
        arrays = Task1Arrays.from_stats(folder.stats, options)
        weights = resampling_weights(len(folder.stats), n_bootstrap, np.random.SeedSequence([seed, 1]))
        block["ci95"] = _ci(bootstrap_task1(arrays, weights), level)
    for stat in folder.stats:
        rows.setdefault(stat.patient, {}).update(stat.as_row(options))
    return block


#: Task -> (prediction column, targets it needs, name).
_OUTCOME_TASKS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "task2": (COL_RISK, (schema.COL_RFS, schema.COL_RELAPSE), "RFS and Relapse"),
    "task3": (COL_HPV_STATUS, (schema.COL_HPV,), "HPV Status"),
}


def patients_without_prediction(clinical: dict, predictions: PredictionTable, targets: tuple[str, ...]) -> list[str]:
    """Patients of the clinical table with every target of a task known but no prediction row."""
    return [pid for pid, record in clinical.items()
            if all(record.get(t) is not None for t in targets) and pid not in predictions.rows]


def _check_coverage(clinical: dict, predictions: PredictionTable, predictions_source: str, clinical_csv,
                    score_subset: bool) -> dict[str, list[str]]:
    """Task -> patients with a target but no prediction; an error listing them unless ``score_subset``."""
    left_out = {}
    problems = []
    for task, (column, targets, name) in _OUTCOME_TASKS.items():
        if not predictions.has(column):
            continue
        missing = patients_without_prediction(clinical, predictions, targets)
        left_out[task] = missing
        if not missing:
            continue
        shown = ", ".join(missing[:20]) + (f" ... ({len(missing)} in all)" if len(missing) > 20 else "")
        line = (f"Task {task[-1]}: {len(missing)} patients of {clinical_csv} have {name} but no prediction in "
                f"{predictions_source}: {shown}")
        if score_subset:
            logger.warning("%s; left out (--score-subset)", line)
        else:
            problems.append(line)
    if problems:
        raise HecktorError("\n".join(problems) + "\n(give --score-subset to score only the predicted patients)")
    return left_out


def _tasks_2_and_3(clinical: dict, predictions: PredictionTable, predictions_source: str, clinical_csv, rows: dict,
                   score_subset: bool, n_bootstrap: int, seed: int, level: float) -> dict:
    """The ``task2``/``task3`` blocks of the tasks whose prediction column is present.

    ``rows`` receive each predicted patient's targets and predictions.
    """
    if not (predictions.has(COL_RISK) or predictions.has(COL_HPV_STATUS)):
        raise HecktorError(f"{predictions_source}: no 'risk' or 'hpv_status' values to evaluate")
    left_out = _check_coverage(clinical, predictions, predictions_source, clinical_csv, score_subset)
    cohort = list(predictions.rows)
    for pid in cohort:
        row = rows.setdefault(pid, {"PatientID": pid})
        record = clinical.get(pid) or {}
        for column in (schema.COL_RFS, schema.COL_RELAPSE, schema.COL_HPV):
            row[column] = record.get(column)
        row.update(predictions.rows[pid])
    blocks = {}
    if predictions.has(COL_RISK):
        task2 = evaluate_task2(cohort, clinical, predictions, n_bootstrap, seed, level)
        blocks["task2"] = task2.to_dict()
        if task2.risk_groups is not None:
            for pid in cohort:
                if pid not in task2.excluded_patients:
                    rows[pid]["risk_group"] = "high" if rows[pid][COL_RISK] > task2.risk_groups.threshold else "low"
    if predictions.has(COL_HPV_STATUS):
        blocks["task3"] = evaluate_task3(cohort, clinical, predictions, n_bootstrap, seed, level).to_dict()
    for task, block in blocks.items():
        block["clinical_patients_without_prediction"] = len(left_out[task])
        block["patients_without_prediction"] = left_out[task]
    return blocks


def _write_results(output_dir, metrics: dict, per_patient: list[dict], clinical, predictions,
                   plots: bool) -> list[Path]:
    """``metrics.json``, ``per_patient.csv`` and the figures (nothing when ``output_dir`` is None)."""
    if output_dir is None:
        return []
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output / METRICS_FILE, metrics)
    write_text_atomic(output / PER_PATIENT_FILE, _rows_to_csv(per_patient))
    files = [output / METRICS_FILE, output / PER_PATIENT_FILE]
    if plots:
        files += _write_plots(output, metrics, per_patient, clinical, predictions)
    return files


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
                     f"excluded {t['excluded_not_in_clinical'] + t['excluded_unknown_target']}"
                     + _left_out(t))
    if "task3" in metrics:
        t = metrics["task3"]
        ci = t.get("ci95") or {}
        lines.append(f"Task 3 ({t['n']} patients, {t['n_positive']} HPV+): balanced accuracy "
                     f"{fmt(t['balanced_accuracy'], ci.get('balanced_accuracy'))}, sensitivity {fmt(t['sensitivity'])}, "
                     f"specificity {fmt(t['specificity'])}, AUC {fmt(t['auc'], ci.get('auc'))}; excluded "
                     f"{t['excluded_not_in_clinical'] + t['excluded_unknown_target']}" + _left_out(t))
    return "\n".join(lines)


def _left_out(block: dict) -> str:
    n = block.get("clinical_patients_without_prediction") or 0
    return f"; left out {n} patients with a target but no prediction (--score-subset)" if n else ""
