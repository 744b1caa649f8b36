"""The package's figures (PNG), in one module: the evaluation, the prognosis stage and the demo report call it.

Per-patient Dice, Kaplan-Meier curves of risk groups (95 % bands, months, numbers at risk), HPV ROC
curves, reliability curve, confusion matrices, the demo's Dice comparison and CT/PET overlays.
matplotlib runs with the Agg backend (no display needed); every figure is written atomically.
"""

from __future__ import annotations

import math
import os
from typing import Literal, Mapping

import numpy as np

from nnunet_hecktor import schema
from nnunet_hecktor.fileio import atomic_path


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, destination, dpi: int = 120) -> None:
    with atomic_path(destination) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")


#: Days per month on the x axis of survival plots (365.25 / 12).
DAYS_PER_MONTH = 30.4375
#: CT window (HU) and PET range (SUV) of the overlays.
CT_WINDOW = (-250.0, 350.0)
PET_RANGE = (0.0, 10.0)


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


def plot_kaplan_meier(time, event, risk, destination: str | os.PathLike, cut: float | None = None,
                      cut_source: str | None = None, title: str | None = None) -> dict:
    """Kaplan-Meier curves of relapse-free survival for the low/high predicted-risk groups.

    Parameters
    ----------
    time, event, risk : array-like
        RFS in days, 1 = relapse, risk higher = earlier relapse.
    destination : path-like
    cut : float, optional
        Risk cut fixed beforehand (e.g. on training data); high = risk above it. Default: the
        median of these patients, which the title says is not independent of them.
    cut_source : str, optional
        Where the cut comes from (shown in the title).
    title : str, optional
        First title line (e.g. which model and cross-validation the risks come from).

    Returns
    -------
    dict
        The log-rank test of the split: ``chi2``, ``p_value`` (and the group sizes and events).

    Curves carry 95 % pointwise bands (scikit-survival's log-log intervals), censoring ticks, months
    on the x axis, the numbers at risk below, and the log-rank p in the title.
    """
    from sksurv.nonparametric import kaplan_meier_estimator

    from nnunet_hecktor.metrics.risk_groups import compare_risk_groups, median_risk_split

    plt = _figure()
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(bool)
    risk = np.asarray(risk, dtype=float)
    if cut is None:
        high, cut = median_risk_split(risk)
        where = "median of these patients, not independent of them"
    else:
        high = risk > cut
        where = cut_source or "fixed beforehand"
    comparison = compare_risk_groups(time, event, risk, cut)
    months = time / DAYS_PER_MONTH
    fig, (ax, table) = plt.subplots(2, 1, figsize=(6.6, 5.2), gridspec_kw={"height_ratios": [4, 1]}, sharex=True)
    groups = [(~high, "low risk", "#4C72B0"), (high, "high risk", "#C44E52")]
    for mask, name, colour in groups:
        if not mask.any():
            continue
        t, s, (low, up) = kaplan_meier_estimator(event[mask], months[mask], conf_type="log-log")
        t = np.concatenate(([0.0], t))
        s, low, up = (np.concatenate(([1.0], a)) for a in (s, low, up))
        ax.step(t, s, where="post", color=colour,
                label=f"{name} (n = {int(mask.sum())}, relapses = {int(event[mask].sum())})")
        ax.fill_between(t, low, up, step="post", color=colour, alpha=0.15, linewidth=0)
        censored = mask & ~event
        if censored.any():
            at = np.searchsorted(t, months[censored], side="right") - 1
            ax.plot(months[censored], s[np.maximum(at, 0)], "|", color=colour, ms=6)
    p_text = "n/a" if math.isnan(comparison.p_value) else f"{comparison.p_value:.3g}"
    heading = f"RFS by predicted risk, cut {cut:.3g} ({where}); log-rank p = {p_text}"
    ax.set_title(f"{title}\n{heading}" if title else heading, fontsize=8)
    ax.set_ylabel("relapse-free survival")
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    horizon = float(months.max()) if months.size else 1.0
    ticks = np.arange(0, horizon + 1e-9, 12 if horizon > 36 else 6)
    table.set_ylim(-0.5, 1.5)
    table.set_yticks([1, 0], ["low risk", "high risk"], fontsize=8)
    for y, (mask, _, colour) in zip((1, 0), groups):
        for tick in ticks:
            table.text(tick, y, str(int(np.sum(months[mask] >= tick))), ha="center", va="center", fontsize=8,
                       color=colour)
    table.set_xlabel("months since end of radiotherapy")
    table.set_title("number at risk", fontsize=8, loc="left")
    table.tick_params(axis="y", length=0)
    for side in ("top", "right", "left"):
        table.spines[side].set_visible(False)
    table.set_xticks(ticks)
    table.set_xlim(-0.03 * horizon, horizon * 1.03)
    fig.tight_layout()
    _save(fig, destination)
    plt.close(fig)
    return comparison.to_dict()


def plot_roc(y_true, probability, destination: str | os.PathLike, y_pred=None, title: str | None = None) -> None:
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
    counts = f"HPV status (n = {y.size}, positive = {int(y.sum())})"
    ax.set_title(f"{title}\n{counts}" if title else counts, fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    _save(fig, destination)
    plt.close(fig)


def plot_calibration(y_true, probability, destination: str | os.PathLike, n_bins: int = 10) -> None:
    """Reliability curve (quantile bins; :func:`nnunet_hecktor.metrics.calibration.calibration`) with the
    Brier score of the probabilities and of the prevalence alone, and the histogram of probabilities."""
    from nnunet_hecktor.metrics.calibration import calibration

    plt = _figure()
    y = np.asarray(y_true).astype(int)
    p = np.asarray(probability, dtype=float)
    result = calibration(y, p, n_bins)
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(4.8, 5.4), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect calibration")
    ax.plot(result.mean_predicted, result.observed, "o-", color="#4C72B0",
            label=f"model (Brier {result.brier:.3f}; prevalence only {result.brier_prevalence:.3f})")
    for x, obs, count in zip(result.mean_predicted, result.observed, result.counts):
        ax.annotate(str(count), (x, obs), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_ylabel("observed share HPV positive")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"HPV calibration (n = {y.size}; numbers = patients per bin)", fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    hist.hist([p[y == 1], p[y == 0]], bins=np.linspace(0, 1, 21), stacked=True, color=["#4C72B0", "#C44E52"],
              label=["HPV positive", "HPV negative"])
    hist.set_xlabel("predicted probability of HPV positive")
    hist.set_ylabel("patients")
    hist.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, destination)
    plt.close(fig)


def plot_confusion_matrix(matrix, labels, destination: str | os.PathLike, title: str) -> None:
    """Counts of true (rows) against predicted (columns) classes, with each row's recall."""
    plt = _figure()
    m = np.asarray(matrix, dtype=int)
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(labels), 1.0 + 0.6 * len(labels)))
    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.6 else "black")
    recalls = [f"{lab} ({m[i, i] / m[i].sum():.2f})" if m[i].sum() else f"{lab} (-)" for i, lab in enumerate(labels)]
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_yticks(range(len(labels)), recalls, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (recall)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _save(fig, destination)
    plt.close(fig)


def _array_on(image, reference):
    """``image`` as a numpy array on ``reference``'s grid (nearest neighbour when the grids differ)."""
    import SimpleITK as sitk

    same = (image.GetSize() == reference.GetSize()
            and np.allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-3)
            and np.allclose(image.GetSpacing(), reference.GetSpacing(), atol=1e-4))
    if not same:
        image = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return sitk.GetArrayFromImage(image)


def plot_overlay(ct_path, pet_path, label_path, prediction_path, destination, title: str):
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

    plt = _figure()
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

    entries: tuple[tuple[str, Literal["solid", "dashed"], str], ...] = (
        ("#2ca02c", "solid", "GTVp truth"), ("#17becf", "solid", "GTVn truth"),
        ("#d62728", "dashed", "GTVp predicted"), ("#e377c2", "dashed", "GTVn predicted"))
    handles = [Line2D([], [], color=c, linestyle=s, label=n) for c, s, n in entries]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(f"{title} (axial slice {z})", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    _save(fig, destination, dpi=110)
    plt.close(fig)
    return destination


def plot_dice_comparison(series: Mapping[str, tuple[list[float], list[float]]], destination):
    """Per-patient GTVp and GTVn Dice of the model and each PET rule (box plots with the points)."""
    plt = _figure()
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
    _save(fig, destination, dpi=110)
    plt.close(fig)
    return destination


def plot_hpv_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], destination):
    """ROC curves (scikit-learn's ``roc_curve``/``roc_auc_score``) of each HPV probability."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _figure()
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
    _save(fig, destination, dpi=110)
    plt.close(fig)
    return destination
