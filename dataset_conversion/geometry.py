"""Image grids: geometry records for the report, the one same-grid check, index <-> mm.

Every "are these two images on the same voxel grid?" question in the package (conversion: label
vs CT; prediction: converted PET vs CT; evaluation: prediction vs ground truth; prognosis:
segmentation vs CT) is answered by :func:`same_grid` with the one tolerance
:data:`ROUNDOFF_TOLERANCE_VOXELS`, and explained by :func:`describe_grid_difference`, which prints
coordinates at full precision (``repr``) so that two origins 1e-4 mm apart print differently.

Conventions: ITK order (x, y, z) for sizes, indices, spacings (mm) and origins (mm, LPS physical space);
``direction`` is the row-major 3x3 direction matrix; numpy arrays from SimpleITK are (z, y, x).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from nnunet_hecktor.errors import InputDataError

#: Two grids of equal size whose voxel centres are all closer than this fraction of a voxel differ only by
#: round-off (float32 headers, DICOM -> NIfTI tools): they are the same grid (a label is then snapped onto
#: the CT grid, a prediction is scored voxel by voxel). 1 % of a voxel cannot change which voxel a point
#: falls into in any practical sense, while a real mismatch (other spacing, shifted origin) is at least a
#: sizeable fraction of a voxel.
ROUNDOFF_TOLERANCE_VOXELS: float = 0.01
#: A label whose grid differs from its CT's by less than this (largest distance between corresponding voxel
#: centres, i.e. at the far corner, in voxels of the CT's smallest spacing) is put on the CT grid by copying
#: the CT geometry onto it (voxels unchanged), with a warning. It covers headers written with fewer
#: decimals (a spacing rounded to 4 decimals on a 512 grid is ~0.03 voxel off at the far corner) while a
#: label of another scan or another resampling is off by far more.
LABEL_GRID_TOLERANCE_VOXELS: float = 0.1


@dataclass(frozen=True)
class GridGeometry:
    """Size, spacing (mm), origin (mm) and direction of an image grid (ITK order).

    Three values each for the 3-D images of the package; typed as variable-length tuples since
    they are read as given from image headers and JSON (a 2-D image is reported, not refused here).
    """

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image) -> "GridGeometry":
        """Geometry of a SimpleITK image."""
        return cls(tuple(int(s) for s in image.GetSize()), tuple(float(s) for s in image.GetSpacing()),
                   tuple(float(o) for o in image.GetOrigin()), tuple(float(d) for d in image.GetDirection()))

    @classmethod
    def from_json(cls, data: dict) -> "GridGeometry":
        return cls(tuple(int(v) for v in data["size"]), tuple(float(v) for v in data["spacing"]),
                   tuple(float(v) for v in data["origin"]), tuple(float(v) for v in data["direction"]))

    def to_json(self) -> dict:
        return {"size": list(self.size), "spacing": list(self.spacing), "origin": list(self.origin),
                "direction": list(self.direction)}

    def apply_to(self, image) -> None:
        """Give ``image`` (same size) this grid's spacing, origin and direction."""
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)

    @property
    def matrix(self) -> np.ndarray:
        """Index -> physical linear map (direction @ diag(spacing))."""
        return np.asarray(self.direction, dtype=np.float64).reshape(3, 3) @ np.diag(self.spacing)

    def index_to_physical(self, index: np.ndarray) -> np.ndarray:
        """Continuous indices (n, 3) -> physical points (n, 3) in mm."""
        return np.asarray(self.origin) + np.asarray(index, dtype=np.float64) @ self.matrix.T

    def physical_to_index(self, points: np.ndarray) -> np.ndarray:
        """Physical points (n, 3) in mm -> continuous indices (n, 3)."""
        return (np.asarray(points, dtype=np.float64) - np.asarray(self.origin)) @ np.linalg.inv(self.matrix).T

    def corner_indices(self, outer: bool = False) -> np.ndarray:
        """The 8 corner voxel centres (``outer=False``) or the 8 corners of the covered box (``outer=True``)."""
        low = -0.5 if outer else 0.0
        ranges = [(low, n - 1 - low) for n in self.size]
        return np.array(list(itertools.product(*ranges)), dtype=np.float64)

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def cropped(self, start: tuple[int, ...], stop: tuple[int, ...]) -> "GridGeometry":
        """The sub-grid of indices ``start`` (inclusive) to ``stop`` (exclusive)."""
        origin = self.index_to_physical(np.asarray([start], dtype=np.float64))[0]
        return GridGeometry(tuple(int(b - a) for a, b in zip(start, stop)), self.spacing,
                            tuple(float(v) for v in origin), self.direction)


def geometry_record(image) -> dict:
    """JSON record of an image's grid and pixel type (for conversion_report.json)."""
    record = GridGeometry.of(image).to_json()
    record["pixel_type"] = image.GetPixelIDTypeAsString()
    return record


def grid_offset_voxels(a: GridGeometry, b: GridGeometry) -> float:
    """Largest distance between corresponding voxel centres of two equal-size grids, in voxels of ``a``.

    The index -> mm maps are affine, so the largest distance over all voxels is reached at a corner.
    Returns ``inf`` when the sizes differ.
    """
    if a.size != b.size:
        return float("inf")
    corners = a.corner_indices()
    distance = np.linalg.norm(a.index_to_physical(corners) - b.index_to_physical(corners), axis=1).max()
    return float(distance / min(a.spacing))


def same_grid(a, b, tolerance_voxels: float = ROUNDOFF_TOLERANCE_VOXELS) -> bool:
    """Whether two grids are the same up to round-off: equal size and every voxel centre within
    ``tolerance_voxels`` (of ``a``'s smallest spacing) of its counterpart.

    Parameters
    ----------
    a, b : GridGeometry or SimpleITK.Image
        3-D grids (ITK order).
    tolerance_voxels : float
        The package's one tolerance, :data:`ROUNDOFF_TOLERANCE_VOXELS`, unless a caller has a reason.
    """
    a = a if isinstance(a, GridGeometry) else GridGeometry.of(a)
    b = b if isinstance(b, GridGeometry) else GridGeometry.of(b)
    return a == b or grid_offset_voxels(a, b) <= tolerance_voxels


def describe_grid_difference(reference, other) -> str:
    """Human-readable difference between two grids: each of size, spacing, origin and direction that
    differs at all, as ``other vs reference``, at full float precision; "identical" when none does."""
    reference = reference if isinstance(reference, GridGeometry) else GridGeometry.of(reference)
    other = other if isinstance(other, GridGeometry) else GridGeometry.of(other)
    parts = []
    if reference.size != other.size:
        parts.append(f"size {tuple(other.size)} vs {tuple(reference.size)}")
    for name, unit in (("spacing", " mm"), ("origin", " mm"), ("direction", "")):
        mine, theirs = getattr(other, name), getattr(reference, name)
        if mine != theirs:
            parts.append(f"{name} {format_coordinates(mine)} vs {format_coordinates(theirs)}{unit}")
    return ", ".join(parts) or "identical"


def format_coordinates(values) -> str:
    """``(x, y, z)`` with each value's shortest exact ``repr``: distinct floats always print differently."""
    return "(" + ", ".join(repr(float(v)) for v in values) + ")"


def covered_index_box(grid: GridGeometry, other: GridGeometry) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """Index box of ``grid`` whose voxel centres lie inside the box covered by ``other``'s voxels.

    Returns ``(start, stop)`` (stop exclusive, ITK order) or ``None`` when they do not overlap. For
    rotated grids the covered region is the axis-aligned (in ``grid``'s index space) bounding box of
    ``other``'s corners, which contains the true overlap.
    """
    corners_mm = other.index_to_physical(other.corner_indices(outer=True))
    return _index_box_of_corners(grid, grid.physical_to_index(corners_mm))


def physical_box_to_index_box(grid: GridGeometry, low_mm: np.ndarray, high_mm: np.ndarray
                              ) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """Index box of ``grid`` whose voxel centres lie in the physical box ``[low_mm, high_mm]`` (LPS, mm)."""
    corners_mm = np.array(list(itertools.product(*zip(low_mm, high_mm))), dtype=np.float64)
    return _index_box_of_corners(grid, grid.physical_to_index(corners_mm))


def _index_box_of_corners(grid: GridGeometry, corners: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """Voxel-centre index box of ``grid`` inside the bounding box of continuous-index ``corners``."""
    low, high = corners.min(axis=0), corners.max(axis=0)
    # A small tolerance keeps voxels sitting exactly on the boundary despite floating-point noise.
    start = np.maximum(np.ceil(low - 1e-6), 0).astype(int)
    stop = np.minimum(np.floor(high + 1e-6) + 1, grid.size).astype(int)
    if np.any(stop <= start):
        return None
    return tuple(int(v) for v in start), tuple(int(v) for v in stop)


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
