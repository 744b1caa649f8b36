"""File input/output helpers: atomic writes and image reading with clear errors.

Every output of the plugin is written under a temporary name in the destination folder
and renamed into place, so an interrupted run never leaves a file that looks complete.
Files get the mode an ordinary ``open(..., "w")`` would give them (``0o666`` less the umask, so
0644 under the usual 022), as nnU-Net's own outputs do: colleagues on a shared server can read
a converted dataset or a trained model. (``tempfile.mkstemp`` alone would leave them 0600.)
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from nnunet_hecktor.errors import InputDataError

TMP_PREFIX = ".tmp-"


def current_umask() -> int:
    """The process umask, read without changing it where the system allows.

    Linux reports it in ``/proc/self/status``; elsewhere it is read with ``os.umask`` and set back
    at once (not thread-safe for that instant, hence the first way).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """Mode of a new regular file under the current umask: ``0o666 & ~umask`` (0644 under 022)."""
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``destination``; rename it onto ``destination`` on success.

    The temporary name keeps the destination's suffixes (``.nii.gz`` etc.) so that writers
    that choose a format from the extension (SimpleITK, numpy) still work. On any exception
    the temporary file is removed and ``destination`` is left untouched. The file is given
    :func:`new_file_mode` before the rename (``mkstemp`` creates it 0600, and writers that
    truncate the file in place keep that mode).
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(destination.suffixes)
    fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=suffix, dir=destination.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # After the writer: some writers replace the file instead of writing into it.
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_text_atomic(destination: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``destination`` atomically (UTF-8)."""
    with atomic_path(destination) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(destination: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``destination`` atomically."""
    write_text_atomic(destination, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def write_image_atomic(image, destination: str | os.PathLike, compress: bool = True) -> None:
    """Write a SimpleITK image atomically (format from the extension, e.g. ``.nii.gz``, ``.mha``)."""
    import SimpleITK as sitk

    with atomic_path(destination) as tmp:
        sitk.WriteImage(image, str(tmp), compress)


def read_image(path: str | os.PathLike, patient: str | None = None, what: str = "image"):
    """Read an image with SimpleITK, turning every failure into an :class:`InputDataError`.

    Parameters
    ----------
    path : path-like
        NIfTI (``.nii``/``.nii.gz``) or MetaImage (``.mha``) file.
    patient : str, optional
        PatientID, used in the error message.
    what : str
        What the file is ("CT", "PET", "label"), used in the error message.

    Returns
    -------
    SimpleITK.Image

    Raises
    ------
    InputDataError
        The file is missing, unreadable or truncated, or holds NaN/inf voxels.
    """
    import numpy as np
    import SimpleITK as sitk

    from nnunet_hecktor.image_integrity import check_image_file

    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"{what} file is missing", patient, path)
    # ITK's NIfTI reader zero-fills truncated files and zeroes NaN/inf voxels without raising,
    # so NIfTI files are checked on disk before reading.
    check_image_file(path, patient, what)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reason"
        raise InputDataError(f"{what} file is unreadable or truncated ({first_line})", patient, path) from None
    if image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        # Other formats (.mha) keep non-finite values: reject them here.
        n_bad = int(np.count_nonzero(~np.isfinite(sitk.GetArrayViewFromImage(image))))
        if n_bad:
            raise InputDataError(f"{what} has {n_bad} non-finite (NaN/inf) voxels", patient, path)
    return image
