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
    ax = axes[0, 0]
    for key, label, style in (("train_hpv_losses", "HPV loss (train)", "b-"), ("val_hpv_losses", "HPV loss (val)", "b--"),
                              ("train_cox_losses", "Cox loss (train)", "r-"), ("val_cox_losses", "Cox loss (val)", "r--")):
        ax.plot(x, _series(log, key, n), style, label=label)
    ax.set_title("head losses (unweighted)")
    ax.set_xlabel("epoch")
    ax.legend()
    ax = axes[0, 1]
    ax.plot(x, _series(log, "train_hpv_auc", n), "b-", label="AUC (train patches)")
    ax.plot(x, _series(log, "val_hpv_auc", n), "b--", label="AUC (val patches)")
    ax.plot(x, _series(log, "val_hpv_balanced_accuracy", n), "g--", label="balanced accuracy (val, p>=0.5)")
    ax.axhline(0.5, color="grey", lw=0.8)
    ax.set_ylim(0, 1)
    ax.set_title("HPV status, per patient over the epoch's patches")
    ax.set_xlabel("epoch")
    ax.legend()
    ax = axes[1, 0]
    ax.plot(x, _series(log, "train_c_index", n), "r-", label="C-index (train patches)")
    ax.plot(x, _series(log, "val_c_index", n), "r--", label="C-index (val patches)")
    ax.axhline(0.5, color="grey", lw=0.8)
    ax.set_ylim(0, 1)
    ax.set_title("RFS risk: Harrell's C-index, per patient over the epoch")
    ax.set_xlabel("epoch")
    ax.legend()
    ax = axes[1, 1]
    ax.plot(x, _series(log, "train_head_samples", n), "k-", label="train")
    ax.plot(x, _series(log, "val_head_samples", n), "k--", label="val")
    ax.set_title("GTVp-centred patches used by the heads")
    ax.set_xlabel("epoch")
    ax.legend()
    fig.tight_layout()
    return fig
