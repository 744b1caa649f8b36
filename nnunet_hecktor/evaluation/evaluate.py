"""``nnunet-hecktor evaluate`` as a Python API: HECKTOR metrics of a set of predictions.

Writes into the output folder:

- ``metrics.json``: ``task1`` / ``task2`` / ``task3`` / ``t_stage`` / ``n_stage`` blocks (only the
  tasks whose inputs were given), each with 95 % patient-level bootstrap intervals under ``ci95``
  and ``notes`` saying why a figure is undefined or conventional; ``edition_score`` (HECKTOR 2026's
  weighted score, :mod:`.edition_score`); ``per_centre``; ``notes``; ``settings``. Undefined values
  (e.g. a C-index without comparable pairs, a balanced accuracy with one class) are ``null``.
- ``per_patient.csv``: one row per patient: Task 1 statistics (volumes in mm³), targets and
  predictions of the patient-level tasks; ``per_centre.csv``: the figures per centre.
- ``dice_distribution.png``, ``kaplan_meier.png`` (risk groups with 95 % bands, months, numbers at
  risk, log-rank p), ``roc_hpv.png``, ``calibration_hpv.png``, ``confusion_<task>.png``.

Cohorts: Task 1 = every case of the ground-truth folder (each needs a prediction). Tasks 2 and 3
= every row of ``predictions.csv``; patients absent from the clinical table or without the
task's target are left out of that task and counted. A patient with the task's target in the
clinical table but no prediction is an error, as in Task 1, unless ``score_subset``
(``--score-subset``) is given: then the predicted subset is scored and the patients left out are
counted and listed (``patients_without_prediction``) and logged.

Predictions are read from ``--pred`` (``<PID>.nii.gz``, ``.nii``, ``.mha`` or ``.nrrd``; ground truth
likewise) and ``--predictions`` (``predictions.csv``), or from the challenge container's output layout
of the edition (``--challenge-outputs``, :mod:`.challenge_outputs`).
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
from nnunet_hecktor.dataset_conversion.geometry import GeometryTolerance
from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.evaluation.outcome import (
    COL_HPV_STATUS,
    COL_N_STAGE,
    COL_RISK,
    COL_T_STAGE,
    PredictionTable,
    evaluate_task2,
    evaluate_task3,
    read_predictions_csv,
)
from nnunet_hecktor.evaluation.segmentation import evaluate_segmentation_folders
from nnunet_hecktor.fileio import write_json_atomic, write_text_atomic
from nnunet_hecktor.metrics.bootstrap import bootstrap_task1, percentile_interval, resampling_weights
from nnunet_hecktor.metrics.segmentation import (
    PatientSegmentationStats,
    SegmentationMetricOptions,
    Task1Arrays,
    aggregate_task1,
)
from nnunet_hecktor.schema import FILE_ENDING
from nnunet_hecktor.strict_json import json_safe

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
PER_PATIENT_FILE = "per_patient.csv"
PER_CENTRE_FILE = "per_centre.csv"
DICE_PLOT = "dice_distribution.png"
KM_PLOT = "kaplan_meier.png"
ROC_PLOT = "roc_hpv.png"
CALIBRATION_PLOT = "calibration_hpv.png"
#: Notes of the Task 1 figures that hold by definition rather than by measurement.
NO_GTVN_NOTE = "no GTVn in ground truth or prediction: GTVn DSCagg and F1agg are 1.0 by definition"


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
             case_map: str | os.PathLike | None = None, edition: str | None = None,
             rfs_convention: str | None = None, risk_cut: float | str | os.PathLike | None = None,
             dice_rule: str = "hecktor2025") -> EvaluationResult:
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
    edition : str, optional
        HECKTOR edition (default ``editions.DEFAULT_EDITION``): the container output layout, the
        header aliases of the clinical table and, for 2026, the weighted score.
    rfs_convention : {"risk", "time"}, optional
        What the containers' ``rfs.json`` holds (default: ``time`` for 2026, else ``risk``;
        :mod:`.challenge_outputs`).
    risk_cut : float or path-like, optional
        Cut of the two risk groups fixed beforehand (:func:`resolve_risk_cut`): a number, or a
        prognosis model folder / ``oof_predictions.csv`` whose median out-of-fold risk is used.
        Default: the median risk of the scored patients (noted as not independent of them).
    dice_rule : str
        Dice of the 2026 score (:data:`.edition_score.DICE_RULES`; default ``hecktor2025``).

    Returns
    -------
    EvaluationResult
    """
    from nnunet_hecktor.editions import get_edition

    edition = get_edition(edition).name
    cut, cut_source = resolve_risk_cut(risk_cut)
    segmentations, predictions, predictions_source = _resolve_predictions(
        gt_dir, pred_dir, clinical_csv, predictions_csv, challenge_outputs, case_map, edition, rfs_convention)
    metrics: dict[str, Any] = {}
    rows: dict[str, dict] = {}
    notes: list[str] = []
    stats = None
    if gt_dir is not None:
        metrics["task1"], stats = _task1(gt_dir, segmentations, rows, options, num_processes, progress, file_ending,
                                         tolerance, n_bootstrap, seed, level)
    clinical = None
    if predictions is not None:
        from nnunet_hecktor.evaluation.targets import read_targets

        notes += [f"{predictions_source}: column {c!r} is empty for every patient: not evaluated"
                  for c in predictions.empty_columns]
        assert clinical_csv is not None  # a patient-level table comes with its clinical table (_resolve_predictions)
        clinical = read_targets(clinical_csv, edition)
        metrics.update(_patient_level(clinical, predictions, predictions_source, clinical_csv, rows, score_subset,
                                      n_bootstrap, seed, level, cut, cut_source))
    per_patient = [rows[p] for p in sorted(rows)]
    _add_diagnostics(metrics, per_patient, predictions)
    from nnunet_hecktor.evaluation.edition_score import edition_score
    from nnunet_hecktor.evaluation.per_patient import stage_arrays, survival_arrays

    stages = {k: found for k, column in (("t", COL_T_STAGE), ("n", COL_N_STAGE))
              if (found := stage_arrays(per_patient, column)) is not None}
    score = edition_score(edition, stats, options, stages, survival_arrays(per_patient), dice_rule, n_bootstrap,
                          seed, level)
    if score is not None:
        metrics["edition_score"] = score
    from nnunet_hecktor.evaluation.per_centre import per_centre

    centres = per_centre(per_patient)
    metrics["per_centre"] = centres
    metrics["notes"] = notes
    metrics["settings"] = json_safe({
        "edition": edition,
        "gt": str(gt_dir) if gt_dir is not None else None,
        "pred": str(pred_dir) if pred_dir is not None else None,
        "clinical": str(clinical_csv) if clinical_csv is not None else None,
        "predictions": str(predictions_csv) if predictions_csv is not None else None,
        "challenge_outputs": str(challenge_outputs) if challenge_outputs is not None else None,
        "case_map": str(case_map) if case_map is not None else None,
        "rfs_convention": _rfs_convention(challenge_outputs, rfs_convention, edition),
        "risk_cut": cut, "risk_cut_source": cut_source,
        "dice_rule": dice_rule,
        "score_subset": score_subset,
        "segmentation_options": asdict(options),
        "bootstrap": {"replicates": n_bootstrap, "seed": seed, "level": level, "method": "percentile",
                      "resampling": "patients, with replacement, per task"},
    })
    metrics = json_safe(metrics)
    files = _write_results(output_dir, metrics, per_patient, centres, plots, cut)
    return EvaluationResult(metrics, per_patient, files)


def _rfs_convention(challenge_outputs, rfs_convention, edition) -> str | None:
    if challenge_outputs is None:
        return None
    from nnunet_hecktor.evaluation.challenge_outputs import default_rfs_convention

    return rfs_convention or default_rfs_convention(edition)


def resolve_risk_cut(value: float | str | os.PathLike | None) -> tuple[float | None, str | None]:
    """``(cut, where it comes from)`` of a ``--risk-cut`` value.

    A number is used as given. A folder (a prognosis model folder) or a CSV file with a ``risk``
    column (``oof_predictions.csv``, the out-of-fold risks of the training patients) gives the median
    of that column: a cut fixed on training data, independent of the scored patients. None: (None, None).

    Raises
    ------
    HecktorError
        Neither a number nor a readable file/folder with risks.
    """
    if value is None:
        return None, None
    try:
        cut = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        cut = None
    if cut is not None:
        if not math.isfinite(cut):
            raise HecktorError(f"--risk-cut must be a finite number, got {value!r}")
        return cut, "given (--risk-cut)"
    assert not isinstance(value, float)  # a number is a cut (above)
    path = Path(value)
    if path.is_dir():
        path = path / "oof_predictions.csv"
    if not path.is_file():
        raise HecktorError(f"--risk-cut {value}: neither a number nor a model folder / CSV with out-of-fold risks "
                           f"({path} does not exist)")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        risks = [row.get(COL_RISK, "") for row in csv.DictReader(handle)]
    values = [float(r) for r in risks if r not in ("", None)]
    if not values:
        raise HecktorError(f"--risk-cut {value}: {path} has no values in a {COL_RISK!r} column")
    return float(np.median(values)), f"median out-of-fold training risk of {len(values)} patients in {path}"


def _resolve_predictions(gt_dir, pred_dir, clinical_csv, predictions_csv, challenge_outputs, case_map,
                         edition: str | None = None, rfs_convention: str | None = None):
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
        outputs = read_challenge_outputs(challenge_outputs, case_map, edition, rfs_convention)
        table = outputs.predictions if clinical_csv is not None else None
        return outputs.segmentations, table, str(challenge_outputs)
    if (gt_dir is None) != (pred_dir is None):
        raise HecktorError("give both a ground-truth folder (--gt) and a prediction folder (--pred), or neither")
    if rfs_convention is not None:
        raise HecktorError("--rfs-convention says what the containers' rfs.json holds: give it with "
                           "--challenge-outputs (predictions.csv's 'risk' is always higher = earlier relapse)")
    if (clinical_csv is None) != (predictions_csv is None):
        raise HecktorError("Tasks 2 and 3 need both the clinical table (--clinical, targets) and "
                           "the patient-level predictions (--predictions)")
    if gt_dir is None and predictions_csv is None:
        raise HecktorError("nothing to evaluate: give --gt/--pred (Task 1) and/or --clinical/--predictions (Tasks 2, 3)")
    table = read_predictions_csv(predictions_csv) if predictions_csv is not None else None
    return pred_dir, table, str(predictions_csv)


def _task1(gt_dir, segmentations, rows: dict, options, num_processes, progress, file_ending, tolerance,
           n_bootstrap, seed, level) -> tuple[dict, list[PatientSegmentationStats]]:
    """The ``task1`` block (aggregate, counts, bootstrap intervals, notes) and the per-patient statistics
    (also put into ``rows``)."""
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
    notes = []
    if task1.gtvn_volume_sum_mm3 == 0:
        notes.append(NO_GTVN_NOTE)
    elif task1.gtvn_gt_empty == task1.n_patients:
        notes.append("no GTVn in the ground truth: every predicted GTVn is a false positive")
    if task1.gtvp_both_empty:
        notes.append(f"{task1.gtvp_both_empty} patients without GTVp in ground truth or prediction: "
                     f"GTVp Dice {options.gtvp_both_empty} by convention" if options.gtvp_both_empty is not None else
                     f"{task1.gtvp_both_empty} patients without GTVp in ground truth or prediction: left out of the mean")
    block["notes"] = notes
    for stat in folder.stats:
        rows.setdefault(stat.patient, {}).update(stat.as_row(options))
    return block, folder.stats


#: Task -> (prediction column, targets it needs, name).
_OUTCOME_TASKS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "task2": (COL_RISK, (schema.COL_RFS, schema.COL_RELAPSE), "RFS and Relapse"),
    "task3": (COL_HPV_STATUS, (schema.COL_HPV,), "HPV Status"),
    "t_stage": (COL_T_STAGE, (schema.COL_TSTAGE,), "T-stage"),
    "n_stage": (COL_N_STAGE, (schema.COL_NSTAGE,), "N-stage"),
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
        line = (f"{_task_name(task)}: {len(missing)} patients of {clinical_csv} have {name} but no prediction in "
                f"{predictions_source}: {shown}")
        if score_subset:
            logger.warning("%s; left out (--score-subset)", line)
        else:
            problems.append(line)
    if problems:
        raise HecktorError("\n".join(problems) + "\n(give --score-subset to score only the predicted patients)")
    return left_out


def _task_name(task: str) -> str:
    return f"Task {task[-1]}" if task.startswith("task") else task.replace("_", " ").replace("t ", "T ").replace("n ", "N ")


def _patient_level(clinical: dict, predictions: PredictionTable, predictions_source: str, clinical_csv, rows: dict,
                   score_subset: bool, n_bootstrap: int, seed: int, level: float, risk_cut: float | None = None,
                   risk_cut_source: str | None = None) -> dict:
    """The ``task2``/``task3``/``t_stage``/``n_stage`` blocks of the tasks whose prediction column is present.

    ``rows`` receive each predicted patient's targets and predictions.
    """
    columns = [column for column, _, _ in _OUTCOME_TASKS.values()]
    if not any(predictions.has(c) for c in columns):
        empty = (f"; column(s) {', '.join(repr(c) for c in predictions.empty_columns)} are present but empty"
                 if predictions.empty_columns else "")
        raise HecktorError(f"{predictions_source}: no {', '.join(repr(c) for c in columns)} values to evaluate{empty}")
    left_out = _check_coverage(clinical, predictions, predictions_source, clinical_csv, score_subset)
    cohort = list(predictions.rows)
    for pid in cohort:
        row = rows.setdefault(pid, {"PatientID": pid})
        record = clinical.get(pid) or {}
        for column in (schema.COL_CENTER, schema.COL_RFS, schema.COL_RELAPSE, schema.COL_HPV, schema.COL_TSTAGE,
                       schema.COL_NSTAGE):
            if column in (schema.COL_CENTER, schema.COL_RFS, schema.COL_RELAPSE, schema.COL_HPV) or record.get(column):
                row[column] = record.get(column)
        row.update(predictions.rows[pid])
    blocks = {}
    if predictions.has(COL_RISK):
        task2 = evaluate_task2(cohort, clinical, predictions, n_bootstrap, seed, level, risk_cut, risk_cut_source)
        blocks["task2"] = task2.to_dict()
        if task2.risk_groups is not None:
            for pid in cohort:
                if pid not in task2.excluded_patients:
                    rows[pid]["risk_group"] = "high" if rows[pid][COL_RISK] > task2.risk_groups.threshold else "low"
    if predictions.has(COL_HPV_STATUS):
        blocks["task3"] = evaluate_task3(cohort, clinical, predictions, n_bootstrap, seed, level).to_dict()
    from nnunet_hecktor.evaluation.staging import evaluate_stage

    for task in ("t_stage", "n_stage"):
        column = _OUTCOME_TASKS[task][0]
        if predictions.has(column):
            blocks[task] = evaluate_stage(column, cohort, clinical, predictions, n_bootstrap, seed, level)
    for task, block in blocks.items():
        block["clinical_patients_without_prediction"] = len(left_out[task])
        block["patients_without_prediction"] = left_out[task]
        if block["n"] == 0:
            block.setdefault("notes", []).append(
                f"no scored patient: none of the {len(cohort)} predicted patients has {_OUTCOME_TASKS[task][2]} "
                f"in {clinical_csv}")
    return blocks


def _add_diagnostics(metrics: dict, rows: list[dict], predictions: PredictionTable | None) -> None:
    """HPV confusion matrix and calibration into ``task3``; time-dependent AUC / IBS into ``task2``."""
    from nnunet_hecktor.evaluation.diagnostics import hpv_diagnostics, survival_diagnostics

    if "task3" in metrics and metrics["task3"]["n"] > 0:
        found = hpv_diagnostics([r for r in rows if r.get(schema.COL_PATIENT) not in
                                 set(metrics["task3"]["excluded_patients"])])
        if found is not None:
            metrics["task3"].update(found)
    if "task2" in metrics and metrics["task2"]["n"] > 0:
        found = survival_diagnostics(rows, predictions)
        if found is not None:
            metrics["task2"]["time_dependent"] = found


def _write_results(output_dir, metrics: dict, per_patient: list[dict], centres: list[dict], plots: bool,
                   risk_cut: float | None) -> list[Path]:
    """``metrics.json``, ``per_patient.csv``, ``per_centre.csv`` and the figures (nothing when ``output_dir`` is None)."""
    if output_dir is None:
        return []
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output / METRICS_FILE, metrics)
    write_text_atomic(output / PER_PATIENT_FILE, _rows_to_csv(per_patient))
    write_text_atomic(output / PER_CENTRE_FILE, _rows_to_csv(centres))
    files = [output / METRICS_FILE, output / PER_PATIENT_FILE, output / PER_CENTRE_FILE]
    if plots:
        files += _write_plots(output, metrics, per_patient, risk_cut)
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


def _write_plots(output: Path, metrics: dict, rows: list[dict], risk_cut: float | None) -> list[Path]:
    from nnunet_hecktor import plots
    from nnunet_hecktor.evaluation.per_patient import hpv_arrays, stage_arrays, survival_arrays

    written = []
    if "task1" in metrics:
        task1 = metrics["task1"]
        plots.plot_dice_distribution([r["gtvp_dice"] for r in rows if "gtvp_dice" in r],
                                     [r["gtvn_dice"] for r in rows if "gtvn_dice" in r], output / DICE_PLOT,
                                     _num(task1["gtvp_dice_mean"]), _num(task1["gtvn_dice_agg"]))
        written.append(output / DICE_PLOT)
    survival = survival_arrays(rows) if "task2" in metrics else None
    if survival is not None:
        source = metrics["task2"].get("risk_cut_source")
        plots.plot_kaplan_meier(survival[1], survival[2], survival[3], output / KM_PLOT, cut=risk_cut,
                                cut_source=source)
        written.append(output / KM_PLOT)
    hpv = hpv_arrays(rows) if "task3" in metrics else None
    if hpv is not None:
        plots.plot_roc(hpv[1], hpv[3], output / ROC_PLOT, hpv[2])
        written.append(output / ROC_PLOT)
        plots.plot_confusion_matrix(metrics["task3"]["confusion_matrix"]["matrix"], ["negative", "positive"],
                                    output / "confusion_hpv.png", "HPV status (hpv_status)")
        written.append(output / "confusion_hpv.png")
        if hpv[3] is not None:
            plots.plot_calibration(hpv[1], hpv[3], output / CALIBRATION_PLOT)
            written.append(output / CALIBRATION_PLOT)
    for task, column in (("t_stage", COL_T_STAGE), ("n_stage", COL_N_STAGE)):
        if task in metrics and stage_arrays(rows, column) is not None:
            block = metrics[task]
            plots.plot_confusion_matrix(block["confusion_matrix"], block["stages"], output / f"confusion_{task}.png",
                                        f"{task.replace('_', ' ').upper()[0]} stage, balanced accuracy "
                                        f"{_fmt(block['balanced_accuracy'])}")
            written.append(output / f"confusion_{task}.png")
    return written


def _fmt(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _num(value) -> float:
    return math.nan if value is None else float(value)


def format_summary(metrics: dict) -> str:
    """A few lines for the terminal: headline figures with their intervals, the counts and the notes."""

    def fmt(value, ci=None) -> str:
        text = "n/a" if value is None else f"{value:.4f}"
        if ci and ci[0] is not None:
            text += f" [{ci[0]:.4f}, {ci[1]:.4f}]"
        return text

    def noted(block: dict) -> None:
        lines.extend(f"  note: {n}" for n in block.get("notes") or [])

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
        noted(t)
    if "task2" in metrics:
        t = metrics["task2"]
        ci = (t.get("ci95") or {}).get("c_index")
        p = (t.get("risk_groups") or {}).get("p_value")
        cut = "median split" if t.get("risk_cut_source", "").startswith("median of the scored") else "fixed cut"
        lines.append(f"Task 2 ({t['n']} patients, {t['n_events']} events): C-index {fmt(t['c_index'], ci)} over "
                     f"{t['comparable_pairs']} comparable pairs; log-rank p ({cut}) {fmt(p)}; "
                     f"excluded {t['excluded_not_in_clinical'] + t['excluded_unknown_target']}"
                     + _left_out(t))
        td = t.get("time_dependent") or {}
        if td.get("times_days"):
            aucs = ", ".join(f"{d / 365.25:.0f} y {fmt(a)}" for d, a in zip(td["times_days"], td["auc"]))
            lines.append(f"  time-dependent AUC {aucs}; integrated Brier score {fmt(td.get('integrated_brier_score'))}")
        noted(t)
    if "task3" in metrics:
        t = metrics["task3"]
        ci = t.get("ci95") or {}
        lines.append(f"Task 3 ({t['n']} patients, {t['n_positive']} HPV+): balanced accuracy "
                     f"{fmt(t['balanced_accuracy'], ci.get('balanced_accuracy'))}, sensitivity {fmt(t['sensitivity'])}, "
                     f"specificity {fmt(t['specificity'])}, AUC {fmt(t['auc'], ci.get('auc'))}; excluded "
                     f"{t['excluded_not_in_clinical'] + t['excluded_unknown_target']}" + _left_out(t))
        if t.get("calibration"):
            lines.append(f"  Brier score {fmt(t['calibration']['brier'])} (prevalence only "
                         f"{fmt(t['calibration']['brier_prevalence'])})")
        noted(t)
    for task, name in (("t_stage", "T stage"), ("n_stage", "N stage")):
        if task in metrics:
            t = metrics[task]
            ci = (t.get("ci95") or {}).get("balanced_accuracy")
            lines.append(f"{name} ({t['n']} patients): balanced accuracy {fmt(t['balanced_accuracy'], ci)}; excluded "
                         f"{t['excluded_not_in_clinical'] + t['excluded_unknown_target']}" + _left_out(t))
            noted(t)
    if "edition_score" in metrics:
        t = metrics["edition_score"]
        if t.get("score") is not None:
            parts = t["parts"]
            w = t["weights"]
            lines.append(f"HECKTOR {t['edition']} score {fmt(t['score'], (t.get('ci95') or {}).get('score'))} = "
                         f"{w['dice']:.2f} x Dice {fmt(t['components']['dice'])} (GTVp {fmt(parts['gtvp_dice'])}, "
                         f"GTVn {fmt(parts['gtvn_dice'])}, rule {t['dice_rule']}) + {w['stage_balanced_accuracy']:.2f} x "
                         f"stage BA {fmt(t['components']['stage_balanced_accuracy'])} (T "
                         f"{fmt(parts['t_balanced_accuracy'])}, N {fmt(parts['n_balanced_accuracy'])}) + "
                         f"{w['c_index']:.2f} x C-index {fmt(parts['c_index'])}")
        noted(t)
    centres = [c for c in metrics.get("per_centre") or [] if c["centre"] != "all"]
    if len(centres) > 1:
        lines.append("per centre (see per_centre.csv): " + "; ".join(f"{c['centre']} n={c['n_patients']}"
                                                                      for c in centres))
    lines.extend(f"note: {n}" for n in metrics.get("notes") or [])
    return "\n".join(lines)


def _left_out(block: dict) -> str:
    n = block.get("clinical_patients_without_prediction") or 0
    return f"; left out {n} patients with a target but no prediction (--score-subset)" if n else ""
