"""Checks that a prediction lies on exactly the ground truth's voxel grid.

HECKTOR scores predictions on the original CT grid without resampling, so a prediction with a
different size, spacing, origin or direction is an error to report, never something to fix
silently. Differences below file-format round-off (NIfTI stores spacing and origin as float32)
are accepted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnunet_hecktor.errors import InputDataError


@dataclass(frozen=True)
class GeometryTolerance:
    """What counts as round-off.

    Attributes
    ----------
    coordinate : float
        Largest accepted difference of spacing and origin, as a fraction of the smallest voxel
        spacing (default 1e-4 of a voxel: float32 round-off of a 500 mm origin is ~3e-5 mm).
    direction : float
        Largest accepted difference of a direction-cosine matrix entry (default 1e-4).
    """

    coordinate: float = 1e-4
    direction: float = 1e-4


def _fmt(values) -> str:
    return "(" + ", ".join(f"{float(v):.6g}" for v in values) + ")"


def geometry_differences(reference, other, tolerance: GeometryTolerance = GeometryTolerance()) -> list[str]:
    """Describe how the grid of ``other`` differs from ``reference`` (SimpleITK images); empty if it does not."""
    problems: list[str] = []
    if reference.GetDimension() != other.GetDimension():
        return [f"dimension {other.GetDimension()} vs {reference.GetDimension()}"]
    if reference.GetNumberOfComponentsPerPixel() != other.GetNumberOfComponentsPerPixel():
        problems.append(f"{other.GetNumberOfComponentsPerPixel()} vs {reference.GetNumberOfComponentsPerPixel()} "
                        "components per voxel")
    if tuple(reference.GetSize()) != tuple(other.GetSize()):
        problems.append(f"size {tuple(other.GetSize())} vs {tuple(reference.GetSize())}")
    ref_spacing, spacing = np.array(reference.GetSpacing()), np.array(other.GetSpacing())
    atol = tolerance.coordinate * float(ref_spacing.min())
    if not np.allclose(spacing, ref_spacing, rtol=0.0, atol=atol):
        problems.append(f"spacing {_fmt(spacing)} vs {_fmt(ref_spacing)} mm")
    if not np.allclose(other.GetOrigin(), reference.GetOrigin(), rtol=0.0, atol=atol):
        problems.append(f"origin {_fmt(other.GetOrigin())} vs {_fmt(reference.GetOrigin())} mm")
    if not np.allclose(other.GetDirection(), reference.GetDirection(), rtol=0.0, atol=tolerance.direction):
        problems.append(f"direction {_fmt(other.GetDirection())} vs {_fmt(reference.GetDirection())}")
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
