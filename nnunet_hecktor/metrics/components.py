"""Volume helpers shared by the segmentation metrics and the post-processing rules.

Everything here works on numpy arrays in the axis order they come in (``(z, y, x)`` for
arrays from SimpleITK); nothing here knows about spacing. Two things keep full-size CT
volumes (512 x 512 x 200) fast: work is cropped to the bounding box of the foreground
first, and connected components are labelled with ``cc3d`` (connected-components-3d, a
dependency of nnU-Net's ``acvl_utils``), which is several times faster than
``scipy.ndimage.label``.
"""

from __future__ import annotations

from typing import Literal, Sequence, cast

import numpy as np

#: Neighbourhoods accepted for 3D connected components: faces, + edges, + corners.
CONNECTIVITIES: tuple[int, ...] = (6, 18, 26)

BoundingBox = tuple[slice, ...]


def _nonzero_projection(array: np.ndarray, axis) -> np.ndarray:
    # ``max`` of an unsigned array is a vectorised reduction without a temporary bool copy.
    if array.dtype == bool:
        return np.any(array, axis=axis)
    if array.dtype.kind == "u":
        return array.max(axis=axis) > 0
    return np.any(array != 0, axis=axis)


def _extent(flags: np.ndarray) -> tuple[int, int]:
    hits = np.flatnonzero(flags)
    return int(hits[0]), int(hits[-1]) + 1


def bounding_box(array: np.ndarray, pad: int | Sequence[int] | np.ndarray = 0) -> BoundingBox | None:
    """Bounding box of the non-zero voxels as a tuple of slices, or ``None`` when all are zero.

    Parameters
    ----------
    array : ndarray
        Mask or label array (any dimension >= 1).
    pad : int or sequence of int
        Voxels added on each side (per axis), clipped to the array.
    """
    if array.size == 0:
        return None
    pads = np.broadcast_to(np.asarray(pad, dtype=int), (array.ndim,))
    if array.ndim == 1:
        flags = array != 0
        if not flags.any():
            return None
        extents = [_extent(flags)]
    else:
        # Two reductions instead of one per axis: first over axis 0, then over the rest.
        first = _nonzero_projection(array, axis=tuple(range(1, array.ndim)))
        if not first.any():
            return None
        rest = _nonzero_projection(array, axis=0)
        extents = [_extent(first)]
        for axis in range(rest.ndim):
            other = tuple(a for a in range(rest.ndim) if a != axis)
            extents.append(_extent(np.any(rest, axis=other) if other else rest))
    return tuple(
        slice(max(lo - int(p), 0), min(hi + int(p), size))
        for (lo, hi), p, size in zip(extents, pads, array.shape)
    )


def union_bounding_box(*arrays: np.ndarray, pad: int | Sequence[int] | np.ndarray = 0) -> BoundingBox | None:
    """Smallest box holding the non-zero voxels of all ``arrays`` (same shape), or ``None``."""
    boxes = [b for b in (bounding_box(a) for a in arrays) if b is not None]
    if not boxes:
        return None
    shape = arrays[0].shape
    pads = np.broadcast_to(np.asarray(pad, dtype=int), (len(shape),))
    return tuple(
        slice(max(min(b[d].start for b in boxes) - int(pads[d]), 0),
              min(max(b[d].stop for b in boxes) + int(pads[d]), shape[d]))
        for d in range(len(shape))
    )


def check_connectivity(connectivity: int) -> Literal[6, 18, 26]:
    """Return ``connectivity`` if it is a valid 3D neighbourhood (6, 18 or 26), else raise ``ValueError``."""
    if int(connectivity) not in CONNECTIVITIES:
        raise ValueError(f"connectivity must be one of {CONNECTIVITIES} (3D neighbourhoods), got {connectivity!r}")
    return cast(Literal[6, 18, 26], int(connectivity))


def label_components(mask: np.ndarray, connectivity: int = 26) -> tuple[np.ndarray, int]:
    """Label the connected components of a mask: the plugin's one connected-component function (cc3d).

    Parameters
    ----------
    mask : ndarray of bool (or anything where non-zero = foreground), 3D (or 2D)
    connectivity : {6, 18, 26}
        Neighbourhood: 6 faces, 18 faces + edges, 26 faces + edges + corners (2D: 6 -> 4, 18/26 -> 8).

    Returns
    -------
    labels : ndarray of unsigned int, same shape
        0 background, components numbered 1..n in raster order.
    n : int
        Number of components.
    """
    import cc3d

    neighbourhood: Literal[4, 6, 8, 18, 26] = check_connectivity(connectivity)
    if mask.ndim not in (2, 3):
        raise ValueError(f"connected components need a 2D or 3D array, got shape {mask.shape}")
    if mask.ndim == 2:  # slices of a 2-D configuration: 6 -> 4 (edges), 18/26 -> 8 (edges and corners)
        neighbourhood = 4 if neighbourhood == 6 else 8
    mask = np.ascontiguousarray(mask, dtype=bool)
    try:
        labels, n = cc3d.connected_components(mask, connectivity=neighbourhood, return_N=True)
    except RuntimeError:
        # cc3d 4.1 under-sizes its union-find table on some thin arrays (a 1 x 1 x 3 mask [1, 0, 1]
        # at 26-connectivity raises "maximum length exception"; post-processing labels such crops).
        # A background border changes no component and gives it a table large enough.
        labels, n = cc3d.connected_components(np.pad(mask, 1), connectivity=neighbourhood, return_N=True)
        labels = np.ascontiguousarray(labels[tuple(slice(1, -1) for _ in range(mask.ndim))])
    return labels, int(n)


def component_sizes(labels: np.ndarray, n: int) -> np.ndarray:
    """Voxel count of each component: ``sizes[k]`` for label ``k`` (``sizes[0]`` is the background)."""
    return np.bincount(labels.ravel(), minlength=n + 1)


def check_label_values(array: np.ndarray, allowed: Sequence[int] = (0, 1, 2)) -> list:
    """Return the values of ``array`` that are not in ``allowed`` (empty list when all are fine).

    Integer arrays are checked with a min/max pass first, so the common valid case costs two
    vectorised reductions instead of a sort.
    """
    allowed = sorted(int(a) for a in allowed)
    if array.size == 0:
        return []
    contiguous = allowed == list(range(allowed[0], allowed[-1] + 1))
    if array.dtype.kind in "ub" and contiguous and allowed[0] <= 0:
        if int(array.max()) <= allowed[-1]:  # unsigned: the minimum is >= 0 anyway
            return []
    elif array.dtype.kind in "uib" and contiguous:
        if allowed[0] <= int(array.min()) and int(array.max()) <= allowed[-1]:
            return []
    values = np.unique(array)
    bad = [v.item() for v in values if not (float(v).is_integer() and int(v) in allowed)]
    return bad
