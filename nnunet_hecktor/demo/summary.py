"""The demo's summary table: the model and every baseline on the same new patients.

Figures are read from the ``metrics.json`` files that :func:`nnunet_hecktor.evaluation.evaluate.evaluate`
wrote (the model's in ``evaluation/``, the baselines' in ``baselines/<name>/evaluation/``). Every
row is kept, including those where the model loses.

Comparisons with a baseline are **paired**: :func:`comparisons` reads both ``per_patient.csv`` files
and computes each figure of the model and of the baseline on the same bootstrap resamples of the
new patients (:func:`nnunet_hecktor.evaluation.compare.compare_rows`); the verdict is ``better`` or
``worse`` only when the 95 % interval of the difference excludes 0, else ``undecided``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from nnunet_hecktor.baselines.suite import BASELINE_DESCRIPTIONS, DONE_FILE

#: Table columns: (key, header, task block in metrics.json, metric key, higher is better).
COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("gtvp_dice", "GTVp mean Dice", "task1", "gtvp_dice_mean"),
    ("gtvn_dice_agg", "GTVn DSCagg", "task1", "gtvn_dice_agg"),
    ("gtvn_f1_agg", "GTVn F1agg", "task1", "gtvn_f1_agg"),
    ("c_index", "risk C-index", "task2", "c_index"),
    ("hpv_auc", "HPV AUC", "task3", "auc"),
    ("hpv_ba", "HPV balanced accuracy", "task3", "balanced_accuracy"),
)
MODEL_ROW = "model"
#: Table column -> the metric name of the paired comparison (nnunet_hecktor.metrics.paired).
PAIRED_METRICS: dict[str, str] = {"gtvp_dice": "GTVp mean Dice", "gtvn_dice_agg": "GTVn DSCagg",
                                  "gtvn_f1_agg": "GTVn F1agg", "c_index": "C-index", "hpv_auc": "AUC",
                                  "hpv_ba": "balanced accuracy"}
#: Replicates of the demo's paired comparisons.
PAIRED_BOOTSTRAP = 2000
PER_PATIENT = "per_patient.csv"
#: The figures each baseline is meant to give (the 40 % SUVmax rule draws no nodes, so its GTVn
#: figures would be zeros by construction, not a result).
BASELINE_FIGURES: dict[str, tuple[str, ...]] = {
    "pet_suvmax40": ("gtvp_dice",),
    "pet_suv2.5": ("gtvp_dice", "gtvn_dice_agg", "gtvn_f1_agg"),
    "clinical_only": ("c_index", "hpv_auc", "hpv_ba"),
    "pet_volume": ("c_index",),
    "ceiling": ("c_index", "hpv_auc", "hpv_ba"),
}


def _value(metrics: dict, block: str, key: str) -> float | None:
    value = (metrics.get(block) or {}).get(key)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _ci(metrics: dict, block: str, key: str) -> list | None:
    ci = (metrics.get(block) or {}).get("ci95") or {}
    # task2 stores its interval under "c_index"; task1/task3 under the metric's own name.
    interval = ci.get(key)
    return interval if isinstance(interval, list) and None not in interval else None


def table_row(name: str, description: str, metrics: dict, per_patient: str | Path | None = None) -> dict[str, Any]:
    """One table row: ``{"name", "description", <column key>: value or None, "<key>_ci": [lo, hi] or None,
    "per_patient": path of its per_patient.csv or None}``."""
    row: dict[str, Any] = {"name": name, "description": description,
                           "per_patient": None if per_patient is None else str(per_patient)}
    shown = BASELINE_FIGURES.get(name)
    for column, _, block, key in COLUMNS:
        applies = shown is None or column in shown
        row[column] = _value(metrics, block, key) if applies else None
        row[f"{column}_ci"] = _ci(metrics, block, key) if applies else None
    return row


def read_summary_table(output: str | Path, model_description: str | None = None) -> list[dict[str, Any]]:
    """Rows of the summary table of a demo folder: the model first, then every baseline computed."""
    output = Path(output)
    rows = []
    metrics_file = output / "evaluation" / "metrics.json"
    if metrics_file.is_file():
        if model_description is None:
            summary = output / "demo_steps" / "train.json"
            model = json.loads(summary.read_text()).get("info", {}).get("model", "") if summary.is_file() else ""
            model_description = f"multi-task model ({Path(model).name.split('__')[0] or 'nnU-Net'})"
        rows.append(table_row(MODEL_ROW, model_description, json.loads(metrics_file.read_text()),
                              output / "evaluation" / PER_PATIENT))
    done = output / "baselines" / DONE_FILE
    if done.is_file():
        stored = json.loads(done.read_text())["metrics"]
        for name, description in BASELINE_DESCRIPTIONS.items():
            if name in stored:
                rows.append(table_row(name, description, stored[name],
                                      output / "baselines" / name / "evaluation" / PER_PATIENT))
    return rows


def cohort_counts(output: str | Path) -> dict[str, Any]:
    """Patients behind the model's figures (from its ``metrics.json``)."""
    metrics_file = Path(output) / "evaluation" / "metrics.json"
    if not metrics_file.is_file():
        return {}
    metrics = json.loads(metrics_file.read_text())
    t1, t2, t3 = (metrics.get(k) or {} for k in ("task1", "task2", "task3"))
    return {"segmentation_patients": t1.get("n_patients"), "outcome_patients": t2.get("n"),
            "relapses": t2.get("n_events"), "hpv_patients": t3.get("n"), "hpv_negative": t3.get("n_negative"),
            "logrank_p": (t2.get("risk_groups") or {}).get("p_value")}


def _cell(value: float | None, ci: list | None = None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def markdown_table(rows: list[dict[str, Any]], with_ci: bool = True) -> str:
    """The table as Markdown (95 % bootstrap intervals in brackets, for the model and every baseline)."""
    header = "| model or rule | " + " | ".join(h for _, h, _, _ in COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 1)]
    for row in rows:
        cells = [_cell(row[c], row.get(f"{c}_ci") if with_ci else None)
                 for c, _, _, _ in COLUMNS]
        label = f"**{row['description']}**" if row["name"] == MODEL_ROW else row["description"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_comparisons(rows: list[dict[str, Any]], n_bootstrap: int = PAIRED_BOOTSTRAP,
                       seed: int = 0) -> list[dict[str, Any]]:
    """Paired comparisons of the model with every baseline on the figures the baseline is meant to give.

    Returns
    -------
    list of dict
        ``{"baseline", "description", "column", "metric", "model", "baseline_value", "difference",
        "interval": [lo, hi], "verdict", "n_patients", "text"}``; a figure that cannot be compared
        (no per-patient file, undefined on these patients) has ``verdict`` None and says why in ``text``.
    """
    from nnunet_hecktor.evaluation.compare import compare_rows
    from nnunet_hecktor.evaluation.per_patient import read_rows

    model = next((r for r in rows if r["name"] == MODEL_ROW), None)
    if model is None:
        return []
    model_rows = read_rows(model["per_patient"]) if model.get("per_patient") else []
    out = []
    for row in rows:
        if row is model:
            continue
        wanted = [c for c, _, _, _ in COLUMNS if model[c] is not None and row[c] is not None]
        if not wanted:
            continue
        other = read_rows(row["per_patient"]) if row.get("per_patient") else []
        found = {}
        if model_rows and other:
            pairs, _ = compare_rows(model_rows, other, MODEL_ROW, row["name"], n_bootstrap, seed)
            found = {c.metric: c for _, c in pairs}
        for column in wanted:
            header = next(h for c, h, _, _ in COLUMNS if c == column)
            c = found.get(PAIRED_METRICS[column])
            if c is None:
                out.append({"baseline": row["name"], "description": row["description"], "column": column,
                            "metric": header, "model": model[column], "baseline_value": row[column],
                            "difference": None, "interval": None, "verdict": None, "n_patients": None,
                            "text": f"{header}: model {model[column]:.3f} vs {row['description']} {row[column]:.3f} "
                                    "-> not compared (no per-patient figures, or undefined on these patients)"})
                continue
            out.append(paired_entry(c, header, row["description"], baseline=row["name"],
                                    description=row["description"], column=column))
    return out


def paired_entry(c, metric: str, label: str, **fields: Any) -> dict[str, Any]:
    """One paired comparison of the model with a baseline as a report record (``fields`` first), with its line:
    ``metric: model 0.819 vs LABEL 0.839: difference -0.019 [-0.058, +0.024] (paired 95 % CI, 110 patients)
    -> undecided`` (``c``: a :class:`~nnunet_hecktor.metrics.paired.PairedComparison`, model minus baseline)."""
    return {**fields, "metric": metric, "model": c.value_a, "baseline_value": c.value_b, "difference": c.difference,
            "interval": [c.interval.low, c.interval.high], "verdict": c.verdict, "n_patients": c.n_patients,
            "text": f"{metric}: model {c.value_a:.3f} vs {label} {c.value_b:.3f}: difference {c.difference:+.3f} "
                    f"[{c.interval.low:+.3f}, {c.interval.high:+.3f}] (paired 95 % CI, {c.n_patients} patients) "
                    f"-> {c.verdict}"}


def comparisons(rows: list[dict[str, Any]]) -> list[str]:
    """One line per (baseline, figure) both report: the model's value against the baseline's, the
    paired 95 % interval of the difference and the verdict (better / worse / undecided; all figures
    are higher-is-better). Losses are listed like wins."""
    return [c["text"] for c in paired_comparisons(rows)]
