"""Where the container finds its model: the mounted ``model.tar.gz`` (2026) or the one baked into the image.

HECKTOR 2026 ships the weights separately from the image: grand-challenge extracts the team's
``model.tar.gz`` into ``/opt/ml/model`` (:data:`MODEL_MOUNT`). The archive written by
:func:`nnunet_hecktor.challenge.packaging.write_model_archive` holds the staged model folder's
content at its root::

    plans.json  dataset.json  dataset_fingerprint.json  challenge_model.json
    fold_K/<checkpoint>  [postprocessing.json]  [prognosis/*.joblib]

:func:`resolve_model_dir` accepts, in this order:

1. an explicit model folder (``--model`` / ``HECKTOR_MODEL``) when given;
2. ``/opt/ml/model`` itself being a model folder (the archive's layout above);
3. ``/opt/ml/model`` holding exactly one model folder up to three levels down (an archive of the
   folder itself rather than its content, or of an ``nnUNet_results`` tree with one model);
4. ``/opt/ml/model/model.tar.gz`` not extracted: extracted into a temporary folder (``/tmp``);
5. the model baked into the image (:data:`BAKED_MODEL`, ``/opt/app/model``), as in 2025.

A model folder is one with ``plans.json``, ``dataset.json`` and at least one ``fold_*`` folder.
"""

from __future__ import annotations

import logging
import os
import tarfile
import tempfile
from pathlib import Path

from nnunet_hecktor.errors import HecktorError

logger = logging.getLogger(__name__)

MODEL_MOUNT = Path("/opt/ml/model")
BAKED_MODEL = Path("/opt/app/model")
MODEL_ARCHIVE = "model.tar.gz"
#: How deep below the mount a model folder is looked for (``Dataset501_X/Trainer__Plans__3d_fullres``
#: of an ``nnUNet_results`` tree is two levels down).
MAX_DEPTH = 3


def is_model_folder(path: str | os.PathLike) -> bool:
    """True for a folder with ``plans.json``, ``dataset.json`` and a ``fold_*`` folder."""
    path = Path(path)
    try:
        return ((path / "plans.json").is_file() and (path / "dataset.json").is_file()
                and any(p.is_dir() and p.name.startswith("fold_") for p in path.iterdir()))
    except OSError:
        return False


def _extract(archive: Path) -> Path:
    target = Path(tempfile.mkdtemp(prefix="nnunet-hecktor-model-"))
    try:
        with tarfile.open(archive, "r:*") as tar:
            try:
                tar.extractall(target, filter="data")  # no absolute paths, links out or devices
            except TypeError:  # Python without extraction filters
                tar.extractall(target)  # noqa: S202 - our own archive, checked below
    except (OSError, tarfile.TarError) as exc:
        raise HecktorError(f"{archive}: cannot be extracted ({exc})") from None
    found = _model_in(target)
    if found is None:
        raise HecktorError(f"{archive} holds no model folder (plans.json, dataset.json, fold_*)")
    return found


def _model_in(folder: Path, depth: int = MAX_DEPTH) -> Path | None:
    """``folder`` if it is a model folder, else the only model folder up to ``depth`` levels below it."""
    if is_model_folder(folder):
        return folder
    level = [folder]
    for _ in range(depth):
        children = []
        for parent in level:
            try:
                children += sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))
            except OSError:
                continue
        models = [p for p in children if is_model_folder(p)]
        if models:
            return models[0] if len(models) == 1 else None
        level = children
    return None


def resolve_model_dir(explicit: str | os.PathLike | None = None, mount: str | os.PathLike = MODEL_MOUNT,
                      baked: str | os.PathLike = BAKED_MODEL) -> tuple[Path, str]:
    """The model folder to use and how it was found (see the module docstring).

    Raises
    ------
    HecktorError
        No usable model anywhere (the message lists where it looked).
    """
    if explicit:
        return Path(explicit).expanduser(), "given explicitly"
    mount, baked = Path(mount), Path(baked)
    looked = []
    if mount.is_dir():
        found = _model_in(mount)
        if found is not None:
            return found, f"mounted model ({mount})"
        archive = mount / MODEL_ARCHIVE
        if archive.is_file():
            return _extract(archive), f"extracted from {archive}"
        looked.append(f"{mount} (no model folder or {MODEL_ARCHIVE} in it)")
    else:
        looked.append(f"{mount} (absent)")
    if is_model_folder(baked):
        if mount.is_dir():
            logger.warning("%s holds no model: using the model baked into the image (%s)", mount, baked)
        return baked, f"baked into the image ({baked})"
    looked.append(f"{baked} (no model folder)")
    raise HecktorError("no model found: looked in " + "; ".join(looked))
