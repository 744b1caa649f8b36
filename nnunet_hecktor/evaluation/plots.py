"""PNG figures of an evaluation: per-patient Dice, Kaplan-Meier curves of risk groups, HPV ROC curve.

matplotlib runs with the Agg backend (no display needed); every figure is written atomically.
"""

from __future__ import annotations

import math
import os

import numpy as np

from nnunet_hecktor.fileio import atomic_path


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, destination) -> None:
    with atomic_path(destination) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")


def plot_dice_distribution(gtvp_dice, gtvn_dice, destination: str | os.PathLike,
                           gtvp_mean: float = math.nan, gtvn_agg: float = math.nan) -> None:
    """Histograms of per-patient GTVp Dice and per-patient GTVn Dice (patients with GTVn in GT or prediction).

    NaN entries (patients left out) are dropped; the headline figures are drawn as lines.
    """
    plt = _figure()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=False)
    bins = np.linspace(0, 1, 21)
    for ax, values, title, line, line_label in (
        (axes[0], gtvp_dice, "GTVp (label 1), per patient", gtvp_mean, "mean"),
        (axes[1], gtvn_dice, "GTVn (label 2), per patient", gtvn_agg, "aggregated Dice"),
    ):
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values)]
        ax.hist(values, bins=bins, color="#4C72B0", edgecolor="white")
        if np.isfinite(line):
            ax.axvline(line, color="#C44E52", linestyle="--", label=f"{line_label} {line:.3f}")
            ax.legend(loc="upper left")
        ax.set_xlim(0, 1)
        ax.set_xlabel("Dice")
        ax.set_ylabel("patients")
        ax.set_title(f"{title} (n = {values.size})")
    fig.tight_layout()
    _save(fig, destination)
    plt.close(fig)


def plot_kaplan_meier(time, event, risk, destination: str | os.PathLike) -> None:
    """Kaplan-Meier curves of relapse-free survival for the low/high predicted-risk halves (median split).

    The title gives the log-rank p-value (NaN when a group is empty or there is no event).
    """
    from nnunet_hecktor.metrics.risk_groups import compare_risk_groups, kaplan_meier, median_risk_split

    plt = _figure()
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(bool)
    high, threshold = median_risk_split(risk)
    comparison = compare_risk_groups(time, event, risk)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for mask, name, colour in ((~high, "low risk", "#4C72B0"), (high, "high risk", "#C44E52")):
        if not mask.any():
            continue
        times, survival = kaplan_meier(time[mask], event[mask])
        ax.step(np.concatenate(([0.0], times)), np.concatenate(([1.0], survival)), where="post", color=colour,
                label=f"{name} (n = {int(mask.sum())}, events = {int(event[mask].sum())})")
        censored = mask & ~event
        if censored.any():
            at = np.searchsorted(times, time[censored], side="right") - 1
            ax.plot(time[censored], np.where(at >= 0, survival[np.maximum(at, 0)], 1.0), "|", color=colour, ms=6)
    p_text = "n/a" if math.isnan(comparison.p_value) else f"{comparison.p_value:.3g}"
    ax.set_title(f"RFS by predicted risk (median split at {threshold:.3g}); log-rank p = {p_text}", fontsize=9)
    ax.set_xlabel("days")
    ax.set_ylabel("relapse-free survival")
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    _save(fig, destination)
    plt.close(fig)


def plot_roc(y_true, probability, destination: str | os.PathLike, y_pred=None) -> None:
    """ROC curve of the HPV-positive probability; the hard-label operating point is marked when given."""
    from nnunet_hecktor.metrics.classification import binary_metrics, roc_points

    plt = _figure()
    y = np.asarray(y_true).astype(int)
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    if probability is not None and 0 < y.sum() < y.size:
        fpr, tpr = roc_points(y, probability)
        auc = binary_metrics(y, y, probability).auc
        ax.plot(fpr, tpr, color="#4C72B0", label=f"AUC = {auc:.3f}")
    if y_pred is not None and 0 < y.sum() < y.size:
        metrics = binary_metrics(y, y_pred)
        ax.plot(1 - metrics.specificity, metrics.sensitivity, "o", color="#C44E52",
                label=f"hpv_status (BA = {metrics.balanced_accuracy:.3f})")
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title(f"HPV status (n = {y.size}, positive = {int(y.sum())})", fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    _save(fig, destination)
    plt.close(fig)
