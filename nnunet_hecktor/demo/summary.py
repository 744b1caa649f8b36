"""The demo's summary table: the model and every baseline on the same new patients.

Figures are read from the ``metrics.json`` files that :func:`nnunet_hecktor.evaluation.evaluate.evaluate`
wrote (the model's in ``evaluation/``, the baselines' in ``baselines/<name>/evaluation/``); nothing
is recomputed here. Every row is kept, including those where the model loses.
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


def table_row(name: str, description: str, metrics: dict) -> dict[str, Any]:
    """One table row: ``{"name", "description", <column key>: value or None, "<key>_ci": [lo, hi] or None}``."""
    row: dict[str, Any] = {"name": name, "description": description}
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
        rows.append(table_row(MODEL_ROW, model_description, json.loads(metrics_file.read_text())))
    done = output / "baselines" / DONE_FILE
    if done.is_file():
        stored = json.loads(done.read_text())["metrics"]
        for name, description in BASELINE_DESCRIPTIONS.items():
            if name in stored:
                rows.append(table_row(name, description, stored[name]))
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
    """The table as Markdown (95 % bootstrap intervals in brackets for the model's row)."""
    header = "| model or rule | " + " | ".join(h for _, h, _, _ in COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 1)]
    for row in rows:
        cells = [_cell(row[c], row.get(f"{c}_ci") if (with_ci and row["name"] == MODEL_ROW) else None)
                 for c, _, _, _ in COLUMNS]
        label = f"**{row['description']}**" if row["name"] == MODEL_ROW else row["description"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparisons(rows: list[dict[str, Any]]) -> list[str]:
    """One line per (baseline, figure) both report: the model's value against the baseline's, and
    which is higher (all figures are higher-is-better). Losses are listed like wins."""
    model = next((r for r in rows if r["name"] == MODEL_ROW), None)
    if model is None:
        return []
    lines = []
    for row in rows:
        if row is model:
            continue
        for column, header, _, _ in COLUMNS:
            a, b = model[column], row[column]
            if a is None or b is None:
                continue
            verdict = "model higher" if a > b else ("equal" if a == b else "MODEL LOWER")
            lines.append(f"{header}: model {a:.3f} vs {row['description']} {b:.3f} -> {verdict}")
    return lines
