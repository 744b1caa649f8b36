"""Label files of a folder: listing ``<PID>.nii.gz`` files and reading a label image with its checks.

Shared by evaluation (prediction vs ground truth) and postprocessing (apply, tune): both read
folders of segmentations, so this lives below both layers.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nnunet_hecktor.errors import HecktorError, InputDataError
from nnunet_hecktor.fileio import TMP_PREFIX, read_image
from nnunet_hecktor.metrics.components import check_label_values
from nnunet_hecktor.schema import FILE_ENDING, LABELS

ALLOWED_LABELS: tuple[int, ...] = tuple(sorted(LABELS.values()))


def list_cases(folder: str | os.PathLike, file_ending: str = FILE_ENDING, what: str = "label") -> dict[str, Path]:
    """Map PatientID -> file for every ``<PID><file_ending>`` in ``folder`` (hidden/temporary files skipped).

    Raises
    ------
    HecktorError
        The folder does not exist.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise HecktorError(f"{what} folder does not exist: {folder}")
    cases = {}
    for path in sorted(folder.iterdir()):
        name = path.name
        if name.startswith(".") or name.startswith(TMP_PREFIX) or not name.endswith(file_ending) or not path.is_file():
            continue
        cases[name[: -len(file_ending)]] = path
    return cases


def read_label_image(path: str | os.PathLike, patient: str | None = None, what: str = "label"):
    """Read a label image and return ``(image, array)``; the array is uint8 with values in {0, 1, 2}.

    Raises
    ------
    InputDataError
        Missing/unreadable file, vector image, or label values outside {0, 1, 2} (listed).
    """
    import SimpleITK as sitk

    image = read_image(path, patient, what)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputDataError(f"{what} has {image.GetNumberOfComponentsPerPixel()} components per voxel, expected 1",
                             patient, path)
    if image.GetDimension() != 3:
        raise InputDataError(f"{what} is {image.GetDimension()}D, expected a 3D volume", patient, path)
    array = sitk.GetArrayViewFromImage(image)
    bad = check_label_values(array, ALLOWED_LABELS)
    if bad:
        shown = ", ".join(f"{v:g}" for v in bad[:10]) + (" ..." if len(bad) > 10 else "")
        raise InputDataError(f"{what} has label values {{{shown}}} outside {{0, 1, 2}}", patient, path)
    if array.dtype != np.uint8:
        array = array.astype(np.uint8)
    return image, array
