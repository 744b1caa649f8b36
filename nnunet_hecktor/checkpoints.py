"""Checkpoint file names of a trained fold, and which one is deployed by default (one place for both).

What the plugin's trainers write into ``$nnUNet_results/.../fold_K`` (checkpoint layout 2):

``checkpoint_final.pth`` (:data:`FINAL_CHECKPOINT`)
    The weights the trainer validated, and the ones every default deploys: the SWA average when
    SWA is on (``HecktorSWATrainer``, ``HecktorMultiTaskTrainer``), else the last iterate. It is a
    stock nnU-Net checkpoint (network weights, optimizer state, ...), so ``nnUNetv2_predict``,
    ``--val``, ``find_best_configuration``, ``export_model_to_zip`` and the plugin's ``predict``,
    ``challenge`` and ``export-seg`` all use the validated weights without options.
``checkpoint_final_last_iterate.pth`` (:data:`LAST_ITERATE_CHECKPOINT`)
    The network at the end of the last epoch (what stock nnU-Net calls ``checkpoint_final.pth``)
    plus the SWA running average: what ``nnUNetv2_train --c`` needs to redo the end of training
    exactly. Written only when SWA is on.
``checkpoint_latest.pth`` (:data:`LATEST_CHECKPOINT`)
    nnU-Net's periodic checkpoint during training (plus the running average); deleted at the end.
``checkpoint_best.pth`` (:data:`BEST_CHECKPOINT`)
    nnU-Net's iterate with the best EMA pseudo-Dice (no running average: not needed to resume).
``checkpoint_swa.pth`` (:data:`LEGACY_SWA_CHECKPOINT`)
    Models trained before layout 2 only: the SWA average (validated), while their
    ``checkpoint_final.pth`` held the last iterate. :func:`deployed_checkpoint` picks it for them.

The running average is stored once, in the checkpoints resuming needs (latest, last iterate), and
aliased state-dict entries (nnU-Net's ``conv.weight`` / ``all_modules.0.weight``,
``decoder.encoder.*``) share one storage, so the final and best checkpoints are the size of
nnU-Net's own (:func:`unique_storage_bytes` measures it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

FINAL_CHECKPOINT = "checkpoint_final.pth"
LAST_ITERATE_CHECKPOINT = "checkpoint_final_last_iterate.pth"
LATEST_CHECKPOINT = "checkpoint_latest.pth"
BEST_CHECKPOINT = "checkpoint_best.pth"
LEGACY_SWA_CHECKPOINT = "checkpoint_swa.pth"

#: The checkpoint deployed when none is named: the validated weights.
DEPLOYED_CHECKPOINT = FINAL_CHECKPOINT

#: Key of the plugin's extra state in nnU-Net checkpoints (nnU-Net ignores unknown keys).
EXTRA_STATE_KEY = "hecktor"
#: Version of the file layout above, recorded in every checkpoint the plugin writes (``"layout"``).
CHECKPOINT_LAYOUT = 2

#: What the network weights of a checkpoint are (``checkpoint["hecktor"]["weights"]``).
WEIGHTS_ITERATE = "iterate"   # the trained network at the end of an epoch
WEIGHTS_SWA = "swa"           # the SWA average


def checkpoint_metadata(path: str | os.PathLike) -> dict[str, Any] | None:
    """The plugin's extra state of a checkpoint (``None`` for checkpoints of other trainers).

    The file is memory-mapped, so only the small metadata is read from disk. An unreadable file
    gives ``None`` too (loading it for prediction reports the problem).
    """
    import torch

    try:
        checkpoint = torch.load(os.fspath(path), map_location="cpu", weights_only=False, mmap=True)
    except Exception:  # torch raises many types for truncated or foreign files
        return None
    state = checkpoint.get(EXTRA_STATE_KEY) if isinstance(checkpoint, dict) else None
    return state if isinstance(state, dict) else None


def weights_kind(metadata: dict[str, Any] | None) -> str | None:
    """:data:`WEIGHTS_SWA`, :data:`WEIGHTS_ITERATE` or ``None`` (unknown), also for older checkpoints.

    Layout-1 checkpoints recorded ``"final"``/``"last"`` for iterates, ``"swa"`` for the average
    (except ``checkpoint_swa.pth`` itself, which wrongly said ``"final"``), or a file name after a
    resume.
    """
    if not metadata:
        return None
    value = metadata.get("weights")
    if value == WEIGHTS_SWA:
        return WEIGHTS_SWA
    if value in (WEIGHTS_ITERATE, "final", "last", "best") or (
            isinstance(value, str) and value in (LATEST_CHECKPOINT, BEST_CHECKPOINT, FINAL_CHECKPOINT)):
        return WEIGHTS_ITERATE
    return None


def is_legacy_swa_fold(fold_dir: str | os.PathLike) -> bool:
    """Whether a fold was trained before layout 2 with SWA: its validated weights are in ``checkpoint_swa.pth``.

    True when the fold has :data:`LEGACY_SWA_CHECKPOINT` and its :data:`FINAL_CHECKPOINT` was
    written by the plugin without a ``"layout"`` entry (i.e. holds the last iterate).
    """
    fold_dir = Path(fold_dir)
    final, swa = fold_dir / FINAL_CHECKPOINT, fold_dir / LEGACY_SWA_CHECKPOINT
    if not (final.is_file() and swa.is_file()):
        return False
    metadata = checkpoint_metadata(final)
    return metadata is not None and "layout" not in metadata


def deployed_checkpoint(fold_dirs: Iterable[str | os.PathLike]) -> str:
    """The checkpoint name deployed by default for these folds: the weights their training validated.

    :data:`DEPLOYED_CHECKPOINT` (``checkpoint_final.pth``), except for models trained before
    checkpoint layout 2 with SWA, whose validated weights are :data:`LEGACY_SWA_CHECKPOINT`.

    Raises
    ------
    ValueError
        Some folds are of the old layout and some of the new one (no single name fits; name the
        checkpoint explicitly).
    """
    folders = [Path(f) for f in fold_dirs]
    legacy = [is_legacy_swa_fold(f) for f in folders]
    if any(legacy) and not all(legacy):
        old = ", ".join(f.name for f, is_old in zip(folders, legacy) if is_old)
        raise ValueError(f"folds {old} were trained before checkpoint layout 2 (validated weights in "
                         f"{LEGACY_SWA_CHECKPOINT}), the others after it (in {FINAL_CHECKPOINT}); "
                         "choose the checkpoint explicitly")
    return LEGACY_SWA_CHECKPOINT if legacy and all(legacy) else DEPLOYED_CHECKPOINT


def unique_storage_bytes(obj: Any) -> int:
    """Bytes of the distinct tensor storages in a (nested) checkpoint object, as ``torch.save`` stores them.

    Tensors that share a storage (aliased state-dict entries) count once; this is the lower bound
    for the size of a checkpoint holding ``obj``.
    """
    import torch

    seen: dict[int, int] = {}

    def visit(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            storage = value.untyped_storage()
            if storage.nbytes():
                seen[storage.data_ptr()] = storage.nbytes()
        elif isinstance(value, dict):
            for v in value.values():
                visit(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                visit(v)

    visit(obj)
    return sum(seen.values())
