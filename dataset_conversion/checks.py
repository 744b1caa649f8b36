"""Per-image checks of the converter: dimensionality, finite voxels, label values and grid, PET units.

Each check raises :class:`~nnunet_hecktor.errors.InputDataError` naming patient, file and problem, or
returns warnings/statistics for the conversion report. Label values: 0 background, 1 GTVp, 2 GTVn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nnunet_hecktor import schema
from nnunet_hecktor.errors import InputDataError
from nnunet_hecktor.metrics.components import bounding_box

from .geometry import ROUNDOFF_TOLERANCE_VOXELS, GridGeometry, describe_grid_difference, grid_offset_voxels

#: A PET whose 99th percentile exceeds this is probably in Bq/mL rather than SUV: SUV in the head and neck,
#: brain included, stays well below 100, while activity concentrations are in the thousands.
PET_SUV_P99_LIMIT: float = 100.0
_LABEL_NAMES = {value: name for name, value in schema.LABELS.items()}


def check_scalar_3d(image, patient: str, path: Path, what: str) -> None:
    """Reject images that are not 3-D with one component per voxel."""
    if image.GetDimension() != 3:
        raise InputDataError(f"{what} must be a 3-D image, got {image.GetDimension()}-D", patient, path)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputDataError(f"{what} must have one value per voxel, got "
                             f"{image.GetNumberOfComponentsPerPixel()} components", patient, path)
    if min(image.GetSize()) < 1:
        raise InputDataError(f"{what} is empty (size {list(image.GetSize())})", patient, path)


def check_finite(array: np.ndarray, patient: str, path: Path, what: str) -> None:
    """Reject NaN/inf voxels (integer images cannot hold them and are not scanned)."""
    if not np.issubdtype(array.dtype, np.floating):
        return
    finite = np.isfinite(array)
    if not finite.all():
        n_nan = int(np.isnan(array).sum())
        n_inf = int(array.size - finite.sum()) - n_nan
        raise InputDataError(f"{what} has non-finite voxels ({n_nan} NaN, {n_inf} inf)", patient, path)


def pet_statistics(pet_array: np.ndarray) -> dict[str, float]:
    """Min, max and 99th percentile of the PET on its own grid (its units: SUV expected)."""
    return {"min": float(pet_array.min()), "max": float(pet_array.max()),
            "p99": float(np.percentile(pet_array, 99))}


def pet_unit_warning(stats: dict[str, float]) -> str | None:
    """A warning when the PET looks like Bq/mL instead of SUV (it is never rescaled)."""
    if stats["p99"] > PET_SUV_P99_LIMIT:
        return (f"PET 99th percentile is {stats['p99']:.4g} (> {PET_SUV_P99_LIMIT:g}): probably in Bq/mL, not SUV; "
                "it was NOT rescaled, convert it to SUV (body weight) before training")
    return None


def check_label_values(label_array: np.ndarray, patient: str, path: Path) -> np.ndarray:
    """Check that a label holds only 0, 1, 2 and return it as a new uint8 array.

    Float labels are accepted when every value is one of 0.0, 1.0, 2.0.
    """
    allowed = sorted(schema.LABELS.values())
    if np.issubdtype(label_array.dtype, np.floating):
        finite = np.isfinite(label_array)
        bad = ~finite | ((label_array != 0) & (label_array != 1) & (label_array != 2))
    elif np.issubdtype(label_array.dtype, np.integer):
        low, high = label_array.min(), label_array.max()
        if low >= 0 and high <= max(allowed):
            return np.array(label_array, dtype=np.uint8)  # a copy: the input may be a view of a SimpleITK image
        bad = (label_array < 0) | (label_array > max(allowed))
    else:
        raise InputDataError(f"label has unsupported pixel type {label_array.dtype}", patient, path)
    if bad.any():
        values = np.unique(label_array[bad])
        shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values[:8].tolist())
        more = f" and {values.size - 8} more" if values.size > 8 else ""
        raise InputDataError(f"label values {{{shown}{more}}} outside {{0, 1, 2}} ({int(bad.sum())} voxels)",
                             patient, path)
    return np.array(label_array, dtype=np.uint8)


def check_label_grid(label_geometry: GridGeometry, ct_geometry: GridGeometry, patient: str, path: Path) -> str | None:
    """Compare the label grid with the CT grid.

    Returns
    -------
    str or None
        ``None`` when identical; a warning text when they differ only by round-off (every voxel centre
        within ``ROUNDOFF_TOLERANCE_VOXELS`` of a voxel) and the label is to be snapped onto the CT grid.

    Raises
    ------
    InputDataError
        Other size, spacing, origin or direction (beyond round-off): the label does not belong to this CT.
    """
    if label_geometry == ct_geometry:
        return None
    offset = grid_offset_voxels(ct_geometry, label_geometry)
    difference = describe_grid_difference(ct_geometry, label_geometry)
    if offset > ROUNDOFF_TOLERANCE_VOXELS:
        raise InputDataError(f"label grid differs from the CT grid ({difference}); the label must be on the "
                             "CT grid (labels are never resampled)", patient, path)
    return (f"label grid differed from the CT grid only by round-off (max {offset:.2g} voxel; {difference}); "
            "snapped onto the CT grid")


def label_statistics(label_image, voxel_volume_ml: float) -> dict[str, dict[str, Any]]:
    """Volume (mL) and number of 26-connected components of each foreground label (GTVp, GTVn)."""
    import SimpleITK as sitk

    array = sitk.GetArrayViewFromImage(label_image)
    counts = label_voxel_counts(array)
    stats: dict[str, dict[str, Any]] = {}
    for value in (schema.GTVP, schema.GTVN):
        components = 0
        if counts[value]:
            # Components inside the label's bounding box only: much cheaper on 512x512x200 volumes.
            box = bounding_box(array == value)
            sub = sitk.GetImageFromArray((array[box] == value).astype(np.uint8))
            cc = sitk.ConnectedComponentImageFilter()
            cc.SetFullyConnected(True)
            cc.Execute(sub)
            components = int(cc.GetObjectCount())
        stats[_LABEL_NAMES[value]] = {"voxels": int(counts[value]),
                                      "volume_ml": round(float(counts[value]) * voxel_volume_ml, 4),
                                      "components": components}
    return stats


def label_voxel_counts(array: np.ndarray) -> dict[int, int]:
    """Voxels of GTVp (1) and GTVn (2). (``np.bincount`` would cast a 512x512x200 uint8 volume to int64.)"""
    return {value: int(np.count_nonzero(array == value)) for value in (schema.GTVP, schema.GTVN)}
