"""Checks that a prediction lies on the ground truth's voxel grid.

HECKTOR scores predictions on the original CT grid without resampling, so a prediction with a
different size, spacing, origin or direction is an error to report, never something to fix
silently. Differences below file-format round-off are accepted: the test is the package's one
same-grid check, :func:`nnunet_hecktor.dataset_conversion.geometry.same_grid`.
"""

from __future__ import annotations

from dataclasses import dataclass

from nnunet_hecktor.dataset_conversion.geometry import ROUNDOFF_TOLERANCE_VOXELS, describe_grid_difference, same_grid
from nnunet_hecktor.errors import InputDataError


@dataclass(frozen=True)
class GeometryTolerance:
    """What counts as round-off.

    Attributes
    ----------
    voxels : float
        Largest accepted distance between corresponding voxel centres, in voxels of the ground
        truth's smallest spacing (default: the package's one tolerance,
        :data:`~nnunet_hecktor.dataset_conversion.geometry.ROUNDOFF_TOLERANCE_VOXELS`).
    """

    voxels: float = ROUNDOFF_TOLERANCE_VOXELS


def geometry_differences(reference, other, tolerance: GeometryTolerance = GeometryTolerance()) -> list[str]:
    """Describe how the grid of ``other`` differs from ``reference`` (SimpleITK images); empty if it does not."""
    if reference.GetDimension() != other.GetDimension():
        return [f"dimension {other.GetDimension()} vs {reference.GetDimension()}"]
    problems: list[str] = []
    if reference.GetNumberOfComponentsPerPixel() != other.GetNumberOfComponentsPerPixel():
        problems.append(f"{other.GetNumberOfComponentsPerPixel()} vs {reference.GetNumberOfComponentsPerPixel()} "
                        "components per voxel")
    if not same_grid(reference, other, tolerance.voxels):
        problems.append(describe_grid_difference(reference, other))
    return problems


def check_same_geometry(reference, other, patient: str | None = None, path=None,
                        what: str = "prediction", reference_what: str = "ground truth",
                        tolerance: GeometryTolerance = GeometryTolerance()) -> None:
    """Raise :class:`InputDataError` naming patient and file when ``other`` is not on ``reference``'s grid.

    Parameters
    ----------
    reference, other : SimpleITK.Image
    patient : str, optional
    path : path-like, optional
        File of ``other`` (named in the message).
    what, reference_what : str
        Words for the message, e.g. "prediction" / "ground truth".
    """
    problems = geometry_differences(reference, other, tolerance)
    if problems:
        raise InputDataError(f"{what} is not on the {reference_what} grid ({'; '.join(problems)}); "
                             "nothing is resampled, export it on the original CT grid", patient, path)
