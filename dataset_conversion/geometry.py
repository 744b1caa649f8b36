"""Image grids: geometry records for the report, grid comparison up to round-off, index <-> mm.

Conventions: ITK order (x, y, z) for sizes, indices, spacings (mm) and origins (mm, LPS physical space);
``direction`` is the row-major 3x3 direction matrix; numpy arrays from SimpleITK are (z, y, x).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

#: Two grids of equal size whose voxel centres are all closer than this fraction of a voxel differ only by
#: round-off (float32 headers, DICOM -> NIfTI tools); the label is then snapped onto the CT grid. 1 % of a
#: voxel cannot change which voxel a point falls into in any practical sense, while a real mismatch
#: (other spacing, shifted origin) is at least a sizeable fraction of a voxel.
ROUNDOFF_TOLERANCE_VOXELS: float = 0.01


@dataclass(frozen=True)
class GridGeometry:
    """Size, spacing (mm), origin (mm) and direction of an image grid (ITK order)."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
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

    def cropped(self, start: tuple[int, int, int], stop: tuple[int, int, int]) -> "GridGeometry":
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


def describe_grid_difference(reference: GridGeometry, other: GridGeometry) -> str:
    """Human-readable difference between two grids (what differs and by how much)."""
    parts = []
    if reference.size != other.size:
        parts.append(f"size {list(other.size)} vs {list(reference.size)}")
    if not np.allclose(reference.spacing, other.spacing, rtol=0, atol=1e-6):
        parts.append(f"spacing {_fmt(other.spacing)} vs {_fmt(reference.spacing)} mm")
    if not np.allclose(reference.origin, other.origin, rtol=0, atol=1e-6):
        parts.append(f"origin {_fmt(other.origin)} vs {_fmt(reference.origin)} mm")
    if not np.allclose(reference.direction, other.direction, rtol=0, atol=1e-6):
        parts.append(f"direction {_fmt(other.direction)} vs {_fmt(reference.direction)}")
    return ", ".join(parts) or "identical"


def _fmt(values) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in values) + "]"


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
