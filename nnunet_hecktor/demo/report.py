"""The demo's report: pictures first (``report/report.html`` and ``report/report.md`` with PNGs).

Contents: the summary table (model and baselines on the same new patients) and every comparison
with a baseline, won or lost; overlays of CT, PET, ground truth and prediction on an axial slice
through the tumour for the new patients with the best, median and worst GTVp Dice; per-patient
Dice distributions of the model and the PET rules; Kaplan-Meier curves of the predicted risk
groups with the log-rank p (the evaluation's plot); HPV ROC curves of the model, the clinical-only
model and the ceiling (scikit-learn); the time of each step.
"""

from __future__ import annotations

import csv
import html
import math
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from nnunet_hecktor import schema
from nnunet_hecktor.demo.summary import (
    COLUMNS, MODEL_ROW, cohort_counts, comparisons, markdown_table, read_summary_table,
)
from nnunet_hecktor.fileio import atomic_path, write_text_atomic

REPORT_FOLDER = "report"
#: CT window (HU) and PET range (SUV) of the overlays.
CT_WINDOW = (-250.0, 350.0)
PET_RANGE = (0.0, 10.0)


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, destination: Path) -> Path:
    with atomic_path(destination) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    return destination


def _read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def pick_patients(per_patient_csv: Path) -> list[tuple[str, str, float]]:
    """``[(label, PatientID, GTVp Dice)]`` for the best, median and worst GTVp Dice (patients with a GTVp)."""
    rows = [(r["PatientID"], _float(r.get("gtvp_dice"))) for r in _read_rows(per_patient_csv)]
    rows = sorted([r for r in rows if not math.isnan(r[1])], key=lambda r: r[1])
    if not rows:
        return []
    picks = [("best", *rows[-1]), ("median", *rows[len(rows) // 2]), ("worst", *rows[0])]
    seen, unique = set(), []
    for label, pid, dice in picks:
        if pid not in seen:
            seen.add(pid)
            unique.append((label, pid, dice))
    return unique


def _array_on(image, reference):
    """``image`` as a numpy array on ``reference``'s grid (nearest neighbour when the grids differ)."""
    import SimpleITK as sitk

    same = (image.GetSize() == reference.GetSize()
            and np.allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-3)
            and np.allclose(image.GetSpacing(), reference.GetSpacing(), atol=1e-4))
    if not same:
        image = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return sitk.GetArrayFromImage(image)


def plot_overlay(ct_path: Path, pet_path: Path, label_path: Path, prediction_path: Path, destination: Path,
                 title: str) -> Path:
    """CT and PET side by side on the axial slice with the most ground-truth GTVp, with ground truth
    (solid: GTVp green, GTVn cyan) and prediction (dashed: GTVp red, GTVn magenta) outlines."""
    import SimpleITK as sitk

    from nnunet_hecktor.fileio import read_image

    ct_image = read_image(ct_path, what="CT")
    ct = sitk.GetArrayFromImage(ct_image).astype(np.float32)
    pet = _array_on(read_image(pet_path, what="PET"), ct_image).astype(np.float32)
    gt = _array_on(read_image(label_path, what="label"), ct_image)
    pred = _array_on(read_image(prediction_path, what="prediction"), ct_image)
    area = (gt == schema.GTVP).sum(axis=(1, 2))
    if area.max() == 0:
        area = (gt > 0).sum(axis=(1, 2)) + (pred > 0).sum(axis=(1, 2))
    z = int(np.argmax(area))
    spacing = ct_image.GetSpacing()
    extent = (0, ct.shape[2] * spacing[0], ct.shape[1] * spacing[1], 0)

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(8.2, 4.2))
    for ax, background, cmap, window, name in ((axes[0], ct[z], "gray", CT_WINDOW, "CT"),
                                               (axes[1], pet[z], "hot", PET_RANGE, "PET (SUV 0-10)")):
        ax.imshow(background, cmap=cmap, vmin=window[0], vmax=window[1], extent=extent, interpolation="nearest")
        for mask, colour, style in ((gt[z] == schema.GTVP, "#2ca02c", "solid"),
                                    (gt[z] == schema.GTVN, "#17becf", "solid"),
                                    (pred[z] == schema.GTVP, "#d62728", "dashed"),
                                    (pred[z] == schema.GTVN, "#e377c2", "dashed")):
            if mask.any():
                ax.contour(np.linspace(extent[0], extent[1], mask.shape[1]),
                           np.linspace(extent[3], extent[2], mask.shape[0]), mask.astype(float), levels=[0.5],
                           colors=[colour], linestyles=style, linewidths=1.6)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, linestyle=s, label=n) for c, s, n in (
        ("#2ca02c", "solid", "GTVp truth"), ("#17becf", "solid", "GTVn truth"),
        ("#d62728", "dashed", "GTVp predicted"), ("#e377c2", "dashed", "GTVn predicted"))]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(f"{title} (axial slice {z})", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    _save(fig, destination)
    plt.close(fig)
    return destination


def plot_dice_comparison(series: Mapping[str, tuple[list[float], list[float]]], destination: Path) -> Path:
    """Per-patient GTVp and GTVn Dice of the model and each PET rule (box plots with the points)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, index, title in ((axes[0], 0, "GTVp Dice per patient"),
                             (axes[1], 1, "GTVn Dice per patient (GTVn in truth or prediction)")):
        names = list(series)
        data = [[v for v in series[n][index] if not math.isnan(v)] for n in names]
        ax.boxplot(data, orientation="horizontal", widths=0.5, showfliers=False)
        rng = np.random.default_rng(0)
        for i, values in enumerate(data, start=1):
            ax.plot(values, i + rng.uniform(-0.15, 0.15, len(values)), ".", alpha=0.45, ms=4)
            if values:
                ax.text(1.02, i, f"mean {np.mean(values):.2f}\nn = {len(values)}", va="center", fontsize=7,
                        transform=ax.get_yaxis_transform())
        ax.set_yticks(range(1, len(names) + 1), names, fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_xlabel("Dice")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _save(fig, destination)
    plt.close(fig)
    return destination


def plot_hpv_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], destination: Path) -> Path:
    """ROC curves (scikit-learn's ``roc_curve``/``roc_auc_score``) of each HPV probability."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    n = n_pos = 0
    for name, (y, probability) in curves.items():
        if len(np.unique(y)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, probability)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, probability):.3f})")
        n, n_pos = len(y), int(np.sum(y))
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity (HPV positive)")
    ax.set_title(f"HPV status on the new patients (n = {n}, positive = {n_pos})", fontsize=9)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    _save(fig, destination)
    plt.close(fig)
    return destination


def _hpv_series(per_patient_csv: Path) -> tuple[np.ndarray, np.ndarray] | None:
    rows = [r for r in _read_rows(per_patient_csv)
            if r.get(schema.COL_HPV) not in (None, "") and r.get("hpv_probability") not in (None, "")]
    if not rows:
        return None
    return (np.array([int(float(r[schema.COL_HPV])) for r in rows]),
            np.array([float(r["hpv_probability"]) for r in rows]))


def _html_table(rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _, _ in COLUMNS)
    body = []
    for row in rows:
        cells = []
        for column, _, _, _ in COLUMNS:
            value, ci = row[column], row.get(f"{column}_ci") if row["name"] == MODEL_ROW else None
            interval = f" <small>[{ci[0]:.2f}, {ci[1]:.2f}]</small>" if ci else ""
            text = "–" if value is None else f"{value:.3f}{interval}"
            cells.append(f"<td>{text}</td>")
        style = ' class="model"' if row["name"] == MODEL_ROW else ""
        body.append(f"<tr{style}><td>{html.escape(row['description'])}</td>{''.join(cells)}</tr>")
    return f"<table><tr><th>model or rule</th>{head}</tr>{''.join(body)}</table>"


def _step_cpu_seconds(output: Path) -> dict[str, float]:
    """CPU seconds of each completed step, from the steps' done-markers."""
    import json

    from nnunet_hecktor.demo.steps import STEPS_FOLDER

    found = {}
    for marker in (output / STEPS_FOLDER).glob("*.json"):
        value = json.loads(marker.read_text()).get("cpu_seconds")
        if value is not None:
            found[marker.stem] = float(value)
    return found


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def write_report(output: str | os.PathLike, new_dataset: str | os.PathLike, new_source: str | os.PathLike | None,
                 step_seconds: Mapping[str, float], model_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Write ``<output>/report/report.html`` and ``report.md`` (and their PNGs) for a demo folder.

    Parameters
    ----------
    output : path-like
        The demo folder (``evaluation/``, ``baselines/``, ``predictions/`` as :func:`run_demo` writes them).
    new_dataset : path-like
        nnU-Net raw dataset of the new patients (``imagesTr`` CT/PET on the CT grid, ``labelsTr``).
    new_source : path-like, optional
        The new patients' synthetic release (only named in the report).
    step_seconds : mapping
        Seconds of each step, in order.
    model_dir : path-like, optional
        The trained model folder (named in the report).

    Returns
    -------
    dict
        ``{"html": ..., "markdown": ..., "images": [...]}``.
    """
    output, new_dataset = Path(output), Path(new_dataset)
    folder = output / REPORT_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rows = read_summary_table(output)
    counts = cohort_counts(output)
    images: list[Path] = []
    sections_md: list[str] = []
    sections_html: list[str] = []

    def section(title: str, text: str = "", pictures: list[Path] = ()) -> None:
        sections_md.append(f"## {title}\n\n{text}\n\n" + "".join(f"![{p.stem}]({p.name})\n\n" for p in pictures))
        body = "".join(f"<p>{html.escape(line)}</p>" for line in text.split("\n\n")
                       if line and not line.startswith("|"))
        sections_html.append(f"<h2>{html.escape(title)}</h2>{body}" +
                             "".join(f'<img src="{p.name}" alt="{p.stem}">' for p in pictures))

    # Overlays of the best / median / worst GTVp Dice.
    overlays = []
    for label, pid, dice in pick_patients(output / "evaluation" / "per_patient.csv"):
        prediction = output / "predictions" / f"{pid}{schema.FILE_ENDING}"
        if not prediction.is_file():
            continue
        overlays.append(plot_overlay(new_dataset / "imagesTr" / f"{pid}_0000{schema.FILE_ENDING}",
                                     new_dataset / "imagesTr" / f"{pid}_0001{schema.FILE_ENDING}",
                                     new_dataset / "labelsTr" / f"{pid}{schema.FILE_ENDING}", prediction,
                                     folder / f"overlay_{label}.png", f"{label} GTVp Dice: {pid}, Dice {dice:.3f}"))
    images += overlays

    # Dice distributions: model and PET rules.
    series = {}
    baselines = output / "baselines"
    for name, csv_path in (("model", output / "evaluation" / "per_patient.csv"),
                           ("PET 40 % SUVmax", baselines / "pet_suvmax40" / "evaluation" / "per_patient.csv"),
                           ("PET SUV > 2.5", baselines / "pet_suv2.5" / "evaluation" / "per_patient.csv")):
        data = _read_rows(csv_path)
        if data:
            series[name] = ([_float(r.get("gtvp_dice")) for r in data], [_float(r.get("gtvn_dice")) for r in data])
    dice_plot = [plot_dice_comparison(series, folder / "dice_distributions.png")] if series else []
    images += dice_plot

    # Kaplan-Meier of the model's risk groups: the evaluation's own plot.
    from nnunet_hecktor.evaluation.evaluate import KM_PLOT

    km = []
    evaluation_km = output / "evaluation" / KM_PLOT
    if evaluation_km.is_file():
        shutil.copyfile(evaluation_km, folder / "kaplan_meier.png")
        km = [folder / "kaplan_meier.png"]
    images += km

    # HPV ROC: model, clinical only, ceiling.
    curves = {}
    for name, csv_path in (("model", output / "evaluation" / "per_patient.csv"),
                           ("clinical only", baselines / "clinical_only" / "evaluation" / "per_patient.csv"),
                           ("ceiling (true probability)", baselines / "ceiling" / "evaluation" / "per_patient.csv")):
        found = _hpv_series(csv_path)
        if found is not None:
            curves[name] = found
    roc = [plot_hpv_roc(curves, folder / "hpv_roc.png")] if curves else []
    images += roc

    progress = []
    if model_dir is not None and (Path(model_dir) / "fold_0" / "progress.png").is_file():
        shutil.copyfile(Path(model_dir) / "fold_0" / "progress.png", folder / "training_progress.png")
        progress = [folder / "training_progress.png"]
    images += progress

    table_md = markdown_table(rows)
    lines = comparisons(rows)
    counts_text = ", ".join(f"{k.replace('_', ' ')}: {v:.3g}" if isinstance(v, float) else f"{k.replace('_', ' ')}: {v}"
                            for k, v in counts.items() if v is not None)
    section("Summary on the new patients",
            f"Every figure is on new patients never seen in training ({counts_text}). The model's row gives "
            f"95 % bootstrap intervals. No row is left out, whether the model wins or loses.\n\n{table_md}")
    sections_html[-1] += _html_table(rows) + "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in lines) + "</ul>"
    sections_md[-1] += "\n".join(f"- {x}" for x in lines) + "\n\n"
    section("Segmentations of three new patients",
            "Best, median and worst GTVp Dice among the new patients: CT and PET on the axial slice with the most "
            "tumour; solid outlines are the ground truth, dashed ones the prediction.", overlays)
    section("Dice distributions", "Per-patient Dice of the model and of the PET-threshold rules.", dice_plot)
    section("Relapse-free survival by predicted risk",
            "Kaplan-Meier curves of the new patients split at the median predicted risk, with the log-rank p.", km)
    section("HPV status", "ROC curves of the predicted HPV probability (scikit-learn).", roc)
    section("Training", "nnU-Net's training curves of fold 0 (losses, pseudo Dice on the fold's validation "
                        "patches, learning rate, epoch time).", progress)
    cpu = _step_cpu_seconds(output)
    cpu_text = {name: (_duration(cpu[name]) if name in cpu else "–") for name in step_seconds}
    time_rows = "\n".join(f"| {name} | {_duration(s)} | {cpu_text[name]} |" for name, s in step_seconds.items())
    total = sum(step_seconds.values())
    total_cpu = _duration(sum(cpu.get(n, 0.0) for n in step_seconds)) if cpu else "–"
    section("Time of each step",
            "Wall time and CPU time (this process and nnU-Net's) of each step; on a shared machine the CPU "
            f"time is the better measure of the cost.\n\n| step | wall | CPU |\n|---|---|---|\n{time_rows}\n"
            f"| **total** | **{_duration(total)}** | **{total_cpu}** |")
    sections_html[-1] += "<table><tr><th>step</th><th>wall</th><th>CPU</th></tr>" + "".join(
        f"<tr><td>{html.escape(n)}</td><td>{_duration(s)}</td><td>{cpu_text[n]}</td></tr>"
        for n, s in step_seconds.items()) + \
        f"<tr><td><b>total</b></td><td><b>{_duration(total)}</b></td><td><b>{total_cpu}</b></td></tr></table>"

    where = f"Model: {model_dir}. New patients: {new_source or new_dataset}."
    markdown = "# nnunet-hecktor demo report\n\n" + where + "\n\n" + "".join(sections_md)
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}img{max-width:100%;margin:.5em 0}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
             "font-size:13px}tr.model{font-weight:bold;background:#eef}")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>nnunet-hecktor demo report</title>"
            f"<style>{style}</style></head><body><h1>nnunet-hecktor demo report</h1><p>{html.escape(where)}</p>"
            + "".join(sections_html) + "</body></html>\n")
    write_text_atomic(folder / "report.md", markdown)
    write_text_atomic(folder / "report.html", page)
    return {"html": folder / "report.html", "markdown": folder / "report.md", "images": images}
