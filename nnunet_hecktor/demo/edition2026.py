"""The HECKTOR 2026 demo (``nnunet-hecktor demo --edition 2026``): stage fitting, baselines, table, report.

Design (docs/tutorials/demo.md, "HECKTOR 2026"): the demo trains fold 0 only, and fold 0's validation
patients (~20) are too few to fit T stage (5 classes), N stage (4) and risk. A third synthetic
cohort, the *stage cohort* (never seen by the network), stands in for the out-of-fold patients: a
splits file names it fold 0's validation set, and :func:`nnunet_hecktor.model_folder.build.build_stage`
predicts its masks with the fold-0 network exactly as ``predict`` does for new patients (same
checkpoint, no mirroring, same post-processing), then fits every 2026 target (T stage, N stage,
risk) on those masks and the 2026 test-time clinical inputs (HPV status included), and stages them
in the model folder. The new patients are a fourth, disjoint set of patients.

Conventions: risk higher = earlier relapse; stages are canonical labels (``schema.T_STAGES`` /
``N_STAGES``); labels 0 background, 1 GTVp, 2 GTVn.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

from nnunet_hecktor import schema
from nnunet_hecktor.demo.summary import paired_entry
from nnunet_hecktor.fileio import write_json_atomic

EDITION = "2026"


def fit_stage_on_stage_cohort(model_dir: str | os.PathLike, stage_dataset: str | os.PathLike,
                              train_dataset: str | os.PathLike, device: str = "cpu", n_bootstrap: int = 200,
                              random_state: int = 0) -> dict[str, Any]:
    """Fit and stage the 2026 prognosis stage of ``model_dir`` on the stage cohort (module docstring).

    :func:`nnunet_hecktor.model_folder.held_out.build_stage_on_held_out_cohort` with the 2026 targets
    (T stage, N stage, risk) and inputs, masks predicted without mirroring as the demo predicts.
    """
    from nnunet_hecktor.model_folder.held_out import build_stage_on_held_out_cohort

    return build_stage_on_held_out_cohort(model_dir, stage_dataset, train_dataset, edition=EDITION, device=device,
                                          n_bootstrap=n_bootstrap, random_state=random_state, use_mirroring=False)


# --------------------------------------------------------------------------------------------------
# Baselines

#: Baseline name -> what it is (row label). Every baseline is scored on the same new patients by
#: ``evaluate --edition 2026``.
BASELINES_2026: dict[str, str] = {
    "pet_pipeline": "no network: SUV > 2.5 PET rule masks, AJCC 7 rule on them (T/N), clinical-only Cox (risk)",
    "ajcc7_model_masks": "AJCC 7 rule on the model's masks (T/N), clinical-only Cox (risk); the model's segmentation",
    "clinical_only": "clinical only: T/N model and Cox on the 2026 test-time inputs; the model's segmentation",
    "pet_suvmax40": "PET rule: 40 % of SUVmax, brain masked (GTVp only; no weighted score)",
    "ceiling": "ceiling: the generator's true risk (C-index only; no weighted score)",
}
#: Baselines whose segmentation is the model's own: their weighted score differs from the model's
#: only through T, N and risk.
WITH_MODEL_SEGMENTATION = ("ajcc7_model_masks", "clinical_only")
#: Figures (paired-comparison metric names) each baseline is compared on; a figure the baseline
#: shares with the model (the model's own masks) is not compared.
COMPARED_FIGURES: dict[str, tuple[str, ...]] = {
    "pet_pipeline": ("weighted score", "GTVp mean Dice", "GTVn DSCagg", "T stage balanced accuracy",
                     "N stage balanced accuracy", "C-index"),
    "ajcc7_model_masks": ("weighted score", "T stage balanced accuracy", "N stage balanced accuracy"),
    "clinical_only": ("weighted score", "T stage balanced accuracy", "N stage balanced accuracy", "C-index"),
    "pet_suvmax40": ("GTVp mean Dice",),
    "ceiling": ("C-index",),
}
#: Table columns of the baselines that predict only part of what the score needs (the 40 % SUVmax
#: rule draws no node, so its GTVn figures would be zeros by construction, not a result).
SHOWN_COLUMNS: dict[str, tuple[str, ...]] = {"pet_suvmax40": ("gtvp_dice",), "ceiling": ("c_index",)}
DONE_FILE = "done.json"
MODEL_ROW = "model"
PER_PATIENT = "per_patient.csv"
#: Replicates of the demo's paired comparisons (as the 2025 demo).
PAIRED_BOOTSTRAP = 2000


def run_baselines_2026(train_dataset: str | os.PathLike, new_dataset: str | os.PathLike,
                       model_predictions: str | os.PathLike, output_dir: str | os.PathLike,
                       train_ground_truth: str | os.PathLike | None = None,
                       new_ground_truth: str | os.PathLike | None = None, n_bootstrap: int = 200, seed: int = 0,
                       num_processes: int = 1, progress: bool = True) -> dict[str, dict]:
    """Compute and score the 2026 baselines on the new patients (``evaluate --edition 2026``).

    Parameters
    ----------
    train_dataset, new_dataset : path-like
        Converted datasets (``imagesTr`` with PET on the CT grid, ``labelsTr``, ``clinical.csv``
        with T-stage / N-stage). The clinical-only models are fitted on the training table; the
        new patients' stages and outcomes are only read by ``evaluate``.
    model_predictions : path-like
        The model's ``predict`` folder (``<PID>.nii.gz``): the AJCC 7 rule's masks and the
        segmentation of the baselines in :data:`WITH_MODEL_SEGMENTATION`.
    output_dir : path-like
        ``<baseline>/predictions.csv``, ``<baseline>/evaluation/``, PET rule masks, ``done.json`` (last).
    train_ground_truth, new_ground_truth : path-like, optional
        ``synthetic_ground_truth.json`` of both cohorts: the ceiling row (true risk).
    n_bootstrap, seed, num_processes, progress
        As ``evaluate``.

    Returns
    -------
    dict
        Baseline -> its ``metrics.json``.
    """
    from nnunet_hecktor.baselines.clinical_models import clinical_only_predictions
    from nnunet_hecktor.baselines.pet_rules import segment_folder
    from nnunet_hecktor.baselines.staging import ajcc7_rule_stages, clinical_only_stages
    from nnunet_hecktor.baselines.tables import write_predictions_csv
    from nnunet_hecktor.clinical import read_clinical_csv
    from nnunet_hecktor.evaluation.evaluate import evaluate

    output_dir, train_dataset, new_dataset = Path(output_dir), Path(train_dataset), Path(new_dataset)
    model_predictions = Path(model_predictions)
    labels, clinical, images = new_dataset / "labelsTr", new_dataset / "clinical.csv", new_dataset / "imagesTr"
    new_ids = sorted(read_clinical_csv(clinical))
    metrics: dict[str, dict] = {}

    def score(name: str, seg_dir: Path | None, rows: dict | None) -> None:
        csv_path = None if rows is None else write_predictions_csv(output_dir / name / "predictions.csv", rows)
        metrics[name] = evaluate(labels if seg_dir else None, seg_dir, clinical if csv_path else None, csv_path,
                                 output_dir / name / "evaluation", n_bootstrap=n_bootstrap, seed=seed,
                                 num_processes=num_processes, plots=False, progress=progress,
                                 edition=EDITION).metrics

    # Clinical-only risk on the 2026 test-time inputs (HPV status included, never T/N or M stage).
    risk = clinical_only_predictions(train_dataset / "clinical.csv", clinical, random_state=seed, edition=EDITION)
    clinical_risk = {pid: {"risk": risk.rows[pid]["risk"]} for pid in new_ids}
    clinical_stages = clinical_only_stages(train_dataset / "clinical.csv", clinical, random_state=seed,
                                           edition=EDITION)

    for rule in ("suv2.5", "suvmax40"):
        segment_folder(images, output_dir / f"pet_{rule}" / "segmentations", rule, progress=progress)
    pet_masks = output_dir / "pet_suv2.5" / "segmentations"
    pet_stages = ajcc7_rule_stages(pet_masks, new_ids, images_dir=images)
    score("pet_pipeline", pet_masks, {pid: {**clinical_risk[pid], **pet_stages[pid]} for pid in new_ids})

    model_stages = ajcc7_rule_stages(model_predictions, new_ids, images_dir=images)
    score("ajcc7_model_masks", model_predictions,
          {pid: {**clinical_risk[pid], **model_stages[pid]} for pid in new_ids})
    score("clinical_only", model_predictions, {pid: {**clinical_risk[pid], **clinical_stages[pid]} for pid in new_ids})
    score("pet_suvmax40", output_dir / "pet_suvmax40" / "segmentations", None)
    if train_ground_truth is not None and new_ground_truth is not None:
        from nnunet_hecktor.baselines.ceilings import ceiling_predictions

        rows, _ = ceiling_predictions(new_ground_truth, train_ground_truth)
        score("ceiling", None, {pid: {"risk": rows[pid]["risk"]} for pid in new_ids if pid in rows})
    write_json_atomic(output_dir / DONE_FILE, {"edition": EDITION, "metrics": metrics,
                                               "notes": {"clinical_only_risk_columns": risk.risk_columns}})
    return metrics


# --------------------------------------------------------------------------------------------------
# Table and paired comparisons

#: Table columns: (key, header, metrics.json block, key in the block, key of its interval).
COLUMNS_2026: tuple[tuple[str, str, str, str, str], ...] = (
    ("score", "weighted score", "edition_score", "score", "score"),
    ("gtvp_dice", "GTVp mean Dice", "task1", "gtvp_dice_mean", "gtvp_dice_mean"),
    ("gtvn_dice_agg", "GTVn DSCagg", "task1", "gtvn_dice_agg", "gtvn_dice_agg"),
    ("t_ba", "T stage BA", "t_stage", "balanced_accuracy", "balanced_accuracy"),
    ("n_ba", "N stage BA", "n_stage", "balanced_accuracy", "balanced_accuracy"),
    ("c_index", "risk C-index", "task2", "c_index", "c_index"),
)


def _number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if value != value else value


def table_row_2026(name: str, description: str, metrics: dict, per_patient: Path | None,
                   segmentation: str) -> dict[str, Any]:
    """One row: ``{"name", "description", "segmentation", <column>: value or None, "<column>_ci": [lo, hi]
    or None, "per_patient"}`` from an evaluation's ``metrics.json`` (2026)."""
    row: dict[str, Any] = {"name": name, "description": description, "segmentation": segmentation,
                           "per_patient": None if per_patient is None else str(per_patient)}
    shown = SHOWN_COLUMNS.get(name)
    for column, _, block, key, ci_key in COLUMNS_2026:
        found = (metrics.get(block) or {}) if shown is None or column in shown else {}
        row[column] = _number(found.get(key))
        ci = (found.get("ci95") or {}).get(ci_key)
        row[f"{column}_ci"] = ci if isinstance(ci, list) and None not in ci and row[column] is not None else None
    return row


def read_table_2026(output: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of the 2026 demo table: the model, then every baseline computed (none left out)."""
    output = Path(output)
    rows = []
    metrics_file = output / "evaluation" / "metrics.json"
    if metrics_file.is_file():
        rows.append(table_row_2026(MODEL_ROW, "multi-task network + prognosis stage (T, N, risk) on its masks",
                                   json.loads(metrics_file.read_text()), output / "evaluation" / PER_PATIENT,
                                   "model"))
    done = output / "baselines" / DONE_FILE
    if done.is_file():
        stored = json.loads(done.read_text())["metrics"]
        for name, description in BASELINES_2026.items():
            if name in stored:
                segmentation = ("model" if name in WITH_MODEL_SEGMENTATION else
                                "none" if name == "ceiling" else "PET rule")
                rows.append(table_row_2026(name, description, stored[name],
                                           output / "baselines" / name / "evaluation" / PER_PATIENT, segmentation))
    return rows


def _cell(value: float | None, ci: list | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def markdown_table_2026(rows: list[dict[str, Any]]) -> str:
    """The 2026 table as Markdown (95 % bootstrap intervals in brackets; – = not predicted / no score)."""
    lines = ["| model or rule | segmentation | " + " | ".join(h for _, h, _, _, _ in COLUMNS_2026) + " |",
             "|" + "---|" * (len(COLUMNS_2026) + 2)]
    for row in rows:
        cells = [_cell(row[c], row.get(f"{c}_ci")) for c, _, _, _, _ in COLUMNS_2026]
        label = f"**{row['description']}**" if row["name"] == MODEL_ROW else row["description"]
        lines.append(f"| {label} | {row['segmentation']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_comparisons_2026(rows: list[dict[str, Any]], n_bootstrap: int = PAIRED_BOOTSTRAP,
                            seed: int = 0) -> list[dict[str, Any]]:
    """Paired comparisons (model minus baseline, same patients, same resamples) on each baseline's
    figures (:data:`COMPARED_FIGURES`), the 2026 weighted score included.

    Returns
    -------
    list of dict
        ``{"baseline", "metric", "model", "baseline_value", "difference", "interval", "verdict",
        "n_patients", "text"}``; verdict ``better`` / ``worse`` only when the 95 % interval excludes 0.
    """
    from nnunet_hecktor.editions import get_edition
    from nnunet_hecktor.evaluation.compare import compare_rows
    from nnunet_hecktor.evaluation.per_patient import read_rows

    model = next((r for r in rows if r["name"] == MODEL_ROW), None)
    if model is None or not model.get("per_patient") or not Path(model["per_patient"]).is_file():
        return []
    model_rows = read_rows(model["per_patient"])
    weights = get_edition(EDITION).score_weights
    out = []
    for row in rows:
        if row is model or not row.get("per_patient") or not Path(row["per_patient"]).is_file():
            continue
        wanted = COMPARED_FIGURES.get(row["name"], ())
        pairs, skipped = compare_rows(model_rows, read_rows(row["per_patient"]), MODEL_ROW, row["name"],
                                      n_bootstrap, seed, score_weights=weights)
        found = {c.metric: c for _, c in pairs}
        for metric in wanted:
            c = found.get(metric)
            if c is None or not math.isfinite(c.difference):
                why = "undefined on these patients" if c is not None else "; ".join(
                    x for x in skipped if x.lower().startswith(metric.split()[0].lower())) or "; ".join(skipped)
                out.append({"baseline": row["name"], "metric": metric, "model": None, "baseline_value": None,
                            "difference": None, "interval": None, "verdict": None, "n_patients": None,
                            "text": f"{metric}: model vs {row['name']}: not compared ({why or 'undefined'})"})
                continue
            out.append(paired_entry(c, metric, row["name"], baseline=row["name"]))
    return out


def comparison_lines_2026(output: str | os.PathLike) -> list[str]:
    """One line per paired comparison of a 2026 demo folder (losses listed like wins)."""
    return [c["text"] for c in paired_comparisons_2026(read_table_2026(output))]


# --------------------------------------------------------------------------------------------------
# Report

#: How the rows' weighted scores are formed (said in the report and in docs/tutorials/demo.md).
SCORE_NOTE = (
    "The 2026 weighted score is 0.25 x mean(GTVp mean Dice, GTVn DSCagg) + 0.35 x mean(T, N balanced accuracy) "
    "+ 0.40 x C-index. A row has a weighted score only when it predicts every part. The no-network row is a "
    "complete pipeline of its own (PET rule masks, the AJCC 7 rule on them, clinical-only risk). The AJCC 7 and "
    "clinical-only rows take the model's own segmentation, so their weighted score differs from the model's "
    "only through T, N and risk, and their segmentation is not compared. The 40 % SUVmax rule draws no node "
    "and the ceiling predicts only risk: they show their parts and no weighted score.")
STAGE_NOTE = (
    "The demo trains fold 0 only, so out-of-fold masks exist for fold 0's ~20 validation patients, too few to "
    "fit T stage (5 classes), N stage (4) and risk. A third synthetic cohort (the stage patients, never seen in "
    "training) stands in for the out-of-fold patients: the fold-0 network predicts their masks exactly as it "
    "predicts a new patient's (same weights, no mirroring, same post-processing), and `prognosis build --edition "
    "2026` fits T stage, N stage and risk on those masks and the 2026 test-time clinical inputs (HPV status "
    "included). The new patients below are a fourth, disjoint set.")
GLOSSARY_2026: tuple[tuple[str, str], ...] = (
    ("weighted score", "HECKTOR 2026's ranking score, 0.25 x Dice + 0.35 x stage balanced accuracy + 0.40 x "
     "C-index (Dice: mean of GTVp mean Dice and GTVn DSCagg; stage: mean of T and N balanced accuracy)."),
    ("GTVp mean Dice", "Overlap of predicted and true primary tumour, 2|A∩B| / (|A|+|B|), averaged over patients."),
    ("GTVn DSCagg", "Aggregated Dice of the lymph nodes: intersections and volumes summed over patients first."),
    ("T / N stage BA", "Balanced accuracy of the predicted stage: the mean over the true stages present of the "
     "share predicted right (chance = 1 / number of stages present)."),
    ("C-index", "Harrell's concordance of the predicted risk (higher = earlier relapse) with relapse-free "
     "survival (0.5 = chance)."),
    ("95 % interval", "Percentile bootstrap interval over patients resampled with replacement."),
    ("paired difference and verdict", "Model minus baseline on the same resamples of the same patients; "
     "'better' or 'worse' only when the 95 % interval of the difference excludes 0, else 'undecided'."),
)


def write_report_2026(output: str | os.PathLike, new_dataset: str | os.PathLike,
                      new_source: str | os.PathLike | None, step_seconds: dict[str, float],
                      model_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Write ``<output>/report/report.html`` and ``report.md`` (with PNGs) of a 2026 demo folder.

    Contents: the synthetic-data notice, how the patient-level models were fitted (stage cohort and
    its cross-validated figures), the table of the weighted score and its parts for the model and
    every baseline with 95 % intervals, every paired comparison with its verdict, overlays, Dice
    distributions, T/N confusion matrices, Kaplan-Meier curves, a glossary and the step times.

    Returns
    -------
    dict
        ``{"html": ..., "markdown": ..., "images": [...]}``.
    """
    import html
    import shutil

    from nnunet_hecktor.demo.report import (
        REPORT_FOLDER,
        SYNTHETIC_NOTICE,
        _read_rows,
        _step_cpu_seconds,
        pick_patients,
        postprocessing_text,
    )
    from nnunet_hecktor.fileio import write_text_atomic
    from nnunet_hecktor.plots import plot_dice_comparison, plot_overlay

    output, new_dataset = Path(output), Path(new_dataset)
    folder = output / REPORT_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rows = read_table_2026(output)
    compared = paired_comparisons_2026(rows)
    md: list[str] = []
    page: list[str] = []
    images: list[Path] = []

    def section(title: str, text: str = "", pictures: Sequence[Path] = (), table_md: str = "",
                items: Sequence[str] = ()):
        md.append(f"## {title}\n\n{text}\n\n" + (table_md + "\n\n" if table_md else "")
                  + "".join(f"- {x}\n" for x in items) + ("\n" if items else "")
                  + "".join(f"![{p.stem}]({p.name})\n\n" for p in pictures))
        body = "".join(f"<p>{html.escape(t)}</p>" for t in text.split("\n\n") if t)
        if table_md:
            lines = [line.strip("|").split(" | ") for line in table_md.splitlines() if not line.startswith("|---")]
            body += "<table>" + "".join(
                "<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{html.escape(c.strip().strip('*'))}"
                                 f"</{'th' if i == 0 else 'td'}>" for c in cells) + "</tr>"
                for i, cells in enumerate(lines)) + "</table>"
        if items:
            body += "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in items) + "</ul>"
        page.append(f"<h2>{html.escape(title)}</h2>{body}"
                    + "".join(f'<img src="{p.name}" alt="{p.stem}">' for p in pictures))
        images.extend(pictures)

    section("Synthetic data", SYNTHETIC_NOTICE)
    stage_info: dict[str, Any] = {}
    marker = output / "demo_steps" / "prognosis.json"
    if marker.is_file():
        stage_info = json.loads(marker.read_text()).get("info") or {}
    figures = [f"{target}: " + ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in values.items()
                                         if isinstance(v, float) and not k.endswith("_ci95"))
               for target, values in (stage_info.get("figures") or {}).items()]
    figures += [f"{target}: not fitted ({why})" for target, why in (stage_info.get("not_fitted") or {}).items()]
    section("How the patient-level models were fitted",
            STAGE_NOTE + (f"\n\nCross-validated figures on the {stage_info.get('patients')} stage patients "
                          "(the build's own cross-validation):" if figures else ""), items=figures)

    counts = json.loads((output / "evaluation" / "metrics.json").read_text()) if \
        (output / "evaluation" / "metrics.json").is_file() else {}
    n_text = ", ".join(f"{label} {counts[block]['n' if block != 'task1' else 'n_patients']}"
                       for block, label in (("task1", "segmentation"), ("t_stage", "T stage"), ("n_stage", "N stage"),
                                            ("task2", "risk")) if isinstance(counts.get(block), dict))
    section("The weighted score on the new patients",
            f"Every figure is on new patients never seen in training or stage fitting ({n_text} patients), with "
            f"95 % bootstrap intervals. No row is left out, whether the model wins or loses.\n\n{SCORE_NOTE}",
            table_md=markdown_table_2026(rows))
    section("Paired comparisons",
            "Model minus baseline on the same patients and the same bootstrap resamples; better or worse only "
            "when the paired 95 % interval excludes 0, else undecided.", items=[c["text"] for c in compared])

    overlays = []
    for label, pid, dice in pick_patients(output / "evaluation" / PER_PATIENT):
        prediction = output / "predictions" / f"{pid}{schema.FILE_ENDING}"
        if prediction.is_file():
            overlays.append(plot_overlay(new_dataset / "imagesTr" / f"{pid}_0000{schema.FILE_ENDING}",
                                         new_dataset / "imagesTr" / f"{pid}_0001{schema.FILE_ENDING}",
                                         new_dataset / "labelsTr" / f"{pid}{schema.FILE_ENDING}", prediction,
                                         folder / f"overlay_{label}.png", f"{label} GTVp Dice: {pid}, Dice {dice:.3f}"))
    section("Segmentations of three new patients", "Best, median and worst GTVp Dice: solid outlines are the "
            "ground truth, dashed ones the prediction.", overlays)

    def floats(values):
        out = []
        for v in values:
            try:
                out.append(float(v))
            except (TypeError, ValueError):
                out.append(float("nan"))
        return out

    series = {}
    for name, csv_path in (("model", output / "evaluation" / PER_PATIENT),
                           ("PET 40 % SUVmax", output / "baselines" / "pet_suvmax40" / "evaluation" / PER_PATIENT),
                           ("PET SUV > 2.5", output / "baselines" / "pet_pipeline" / "evaluation" / PER_PATIENT)):
        data = _read_rows(csv_path)
        if data:
            series[name] = (floats(r.get("gtvp_dice") for r in data), floats(r.get("gtvn_dice") for r in data))
    pp_text = postprocessing_text(model_dir)
    if pp_text:
        section("Post-processing", pp_text)
    section("Dice distributions", "Per-patient Dice of the model and of the PET rules.",
            [plot_dice_comparison(series, folder / "dice_distributions.png")] if series else [])

    copied = []
    for source, target in (("confusion_t_stage.png", "confusion_t_stage.png"),
                           ("confusion_n_stage.png", "confusion_n_stage.png"), ("kaplan_meier.png", "kaplan_meier.png")):
        if (output / "evaluation" / source).is_file():
            shutil.copyfile(output / "evaluation" / source, folder / target)
            copied.append(folder / target)
    section("T and N stage, relapse-free survival",
            "Confusion matrices of the model's T and N stages (evaluate's plots) and Kaplan-Meier curves of its "
            "risk groups split at the median predicted risk of these patients (a cut not independent of them).",
            copied)
    if model_dir is not None and (Path(model_dir) / "fold_0" / "progress.png").is_file():
        shutil.copyfile(Path(model_dir) / "fold_0" / "progress.png", folder / "training_progress.png")
        section("Training", "nnU-Net's training curves of fold 0.", [folder / "training_progress.png"])
    section("Glossary", items=[f"{term}: {text}" for term, text in GLOSSARY_2026])

    cpu = _step_cpu_seconds(output)

    def duration(seconds: float) -> str:
        return f"{seconds:.0f} s" if seconds < 90 else f"{int(seconds // 60)} min {int(seconds % 60):02d} s"

    times = "| step | wall | CPU |\n|---|---|---|\n" + "\n".join(
        f"| {n} | {duration(s)} | {duration(cpu[n]) if n in cpu else '–'} |" for n, s in step_seconds.items()) + \
        f"\n| **total** | **{duration(sum(step_seconds.values()))}** | " \
        f"**{duration(sum(cpu.get(n, 0.0) for n in step_seconds))}** |"
    section("Time of each step", "Wall and CPU time (this process and nnU-Net's) of each step; on a shared "
            "machine the CPU time is the better measure of the cost.", table_md=times)

    where = f"Model: {model_dir}. New patients: {new_source or new_dataset}."
    write_text_atomic(folder / "report.md", "# nnunet-hecktor demo report (HECKTOR 2026)\n\n" + where + "\n\n"
                      + "".join(md))
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}img{max-width:100%;margin:.5em 0}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}")
    write_text_atomic(folder / "report.html",
                      "<!DOCTYPE html><html><head><meta charset='utf-8'><title>nnunet-hecktor demo report (HECKTOR "
                      f"2026)</title><style>{style}</style></head><body><h1>nnunet-hecktor demo report (HECKTOR 2026)"
                      f"</h1><p>{html.escape(where)}</p>" + "".join(page) + "</body></html>\n")
    return {"html": folder / "report.html", "markdown": folder / "report.md", "images": images}
