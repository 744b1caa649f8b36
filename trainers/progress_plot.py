"""``progress_heads.png``: per-epoch head losses and running metrics, next to nnU-Net's progress.png."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

PROGRESS_HEADS_PNG = "progress_heads.png"

#: Logger keys written by the multi-task trainer, one value per epoch.
HEAD_LOG_KEYS: tuple[str, ...] = (
    "train_total_losses", "train_hpv_losses", "train_cox_losses", "train_hpv_auc", "train_c_index",
    "train_head_samples", "val_hpv_losses", "val_cox_losses", "val_hpv_auc", "val_hpv_balanced_accuracy",
    "val_c_index", "val_head_samples",
)


def _series(log: Mapping[str, Sequence[float]], key: str, n: int) -> np.ndarray:
    values = list(log.get(key, []))[:n]
    values += [np.nan] * (n - len(values))
    return np.asarray(values, dtype=float)


def plot_head_progress(log: Mapping[str, Sequence[float]], output_folder: str | Path) -> Path:
    """Draw losses, HPV AUC/balanced accuracy, C-index and head-sample counts per epoch.

    Parameters
    ----------
    log : mapping
        nnU-Net's local logger dictionary (``logger.get_checkpoint()``) with :data:`HEAD_LOG_KEYS`.
    output_folder : path
        The fold folder; receives ``progress_heads.png`` (written atomically).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnunet_hecktor.fileio import atomic_path

    n = min(len(log.get(k, [])) for k in HEAD_LOG_KEYS)
    # nnU-Net's progress.png sets a global seaborn style with huge fonts; draw in matplotlib's defaults.
    with plt.style.context("default"):
        fig = _draw(plt, log, n)
    destination = Path(output_folder) / PROGRESS_HEADS_PNG
    with atomic_path(destination) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    return destination


def _draw(plt, log: Mapping[str, Sequence[float]], n: int):
    x = np.arange(n)
    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    panels = (
        (axes[0, 0], "head losses (unweighted)", False,
         (("train_hpv_losses", "HPV loss (train)", "b-"), ("val_hpv_losses", "HPV loss (val)", "b--"),
          ("train_cox_losses", "Cox loss (train)", "r-"), ("val_cox_losses", "Cox loss (val)", "r--"))),
        (axes[0, 1], "HPV status, per patient over the epoch's patches", True,
         (("train_hpv_auc", "AUC (train patches)", "b-"), ("val_hpv_auc", "AUC (val patches)", "b--"),
          ("val_hpv_balanced_accuracy", "balanced accuracy (val, p>=0.5)", "g--"))),
        (axes[1, 0], "RFS risk: Harrell's C-index, per patient over the epoch", True,
         (("train_c_index", "C-index (train patches)", "r-"), ("val_c_index", "C-index (val patches)", "r--"))),
        (axes[1, 1], "GTVp-centred patches used by the heads", False,
         (("train_head_samples", "train", "k-"), ("val_head_samples", "val", "k--"))),
    )
    for ax, title, unit_interval, curves in panels:
        for key, label, style in curves:
            ax.plot(x, _series(log, key, n), style, label=label)
        if unit_interval:  # AUC, balanced accuracy and C-index: 0.5 is chance
            ax.axhline(0.5, color="grey", lw=0.8)
            ax.set_ylim(0, 1)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    return fig
