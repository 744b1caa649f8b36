"""Figures of the prognosis stage (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnunet_hecktor.fileio import atomic_path


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_kaplan_meier(time, event, risk, path: str | Path, title: str, n_groups: int = 2) -> dict:
    """Kaplan-Meier curves of relapse-free survival per out-of-fold risk group; returns the log-rank test.

    Groups split at the risk quantiles (median for two groups) with the tie rule of
    :func:`nnunet_hecktor.metrics.risk_groups.risk_groups`; times in days.
    """
    from nnunet_hecktor.metrics.risk_groups import kaplan_meier, logrank_test, risk_groups

    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    groups, _ = risk_groups(risk, n_groups)
    labels = {0: "low risk", n_groups - 1: "high risk"}
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for g in range(n_groups):
        sel = groups == g
        if not sel.any():
            continue
        t, s = kaplan_meier(time[sel], event[sel])
        ax.step(np.concatenate([[0.0], t]), np.concatenate([[1.0], s]), where="post",
                label=f"{labels.get(g, f'group {g + 1}')} (n={sel.sum()}, events={event[sel].sum()})")
    chi2, p_value = logrank_test(time, event, groups)
    test = {"chi2": chi2, "p_value": p_value}
    ax.set_xlabel("days since end of radiotherapy")
    ax.set_ylabel("relapse-free survival")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{title}\nlog-rank p = {test['p_value']:.3g}")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return test


def plot_roc(y_true, probability, threshold: float, path: str | Path, title: str) -> None:
    """ROC curve of out-of-fold HPV probabilities, with the chosen threshold's operating point."""
    from nnunet_hecktor.metrics.classification import binary_metrics, roc_points

    y = np.asarray(y_true, dtype=int)
    p = np.asarray(probability, dtype=float)
    plt = _figure()
    fig, ax = plt.subplots(figsize=(4.8, 4.8))
    if len(set(y)) > 1:
        fpr, tpr = roc_points(y, p)
        metrics = binary_metrics(y, (p >= threshold).astype(int), p)
        ax.plot(fpr, tpr, label=f"AUC = {metrics.auc:.3f}")
        ax.plot([1 - metrics.specificity], [metrics.sensitivity], "o",
                label=f"threshold {threshold:.3f}: BA = {metrics.balanced_accuracy:.3f}")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("1 - specificity (HPV negative called positive)")
    ax.set_ylabel("sensitivity (HPV positive found)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
