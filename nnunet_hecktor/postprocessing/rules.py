"""The post-processing rules on numpy label arrays (0 background, 1 GTVp, 2 GTVn).

Conventions: arrays are 3D in any fixed axis order, ``spacing`` gives the voxel size in mm in
the *same* axis order (``image.GetSpacing()[::-1]`` for arrays from SimpleITK). Functions never
modify their input; they return a new array. Each rule works on the bounding box of the voxels
it concerns, so full-size CT volumes cost little more than the lesions they contain.

:func:`postprocess_segmentation` applies a :class:`~nnunet_hecktor.postprocessing.config.PostprocessingConfig`
in its fixed order; :func:`rule_steps` exposes the individual steps (used by the tuning).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, Sequence

import numpy as np

from nnunet_hecktor.metrics.components import bounding_box, component_sizes, label_components
from nnunet_hecktor.postprocessing.config import PostprocessingConfig
from nnunet_hecktor.schema import GTVN, GTVP

Step = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class VolumeFace:
    """One face of the volume in a label array: the cranial or the caudal one.

    Attributes
    ----------
    axis : int
        The numpy axis that runs cranio-caudally.
    at_end : bool
        True when the face is the last index along ``axis``, False when it is index 0 (for the
        cranial face of an axial scan whose slice index grows towards the head: True).
    present : bool
        False for a crop that does not reach this face of the volume it was cut from.
    """

    axis: int = 0
    at_end: bool = True
    present: bool = True

    def within(self, box: tuple[slice, ...], shape: Sequence[int]) -> "VolumeFace":
        """The face in the crop ``array[box]`` of an array of ``shape`` (absent when the crop misses it)."""
        if not self.present:
            return self
        span = box[self.axis]
        reaches = span.stop >= shape[self.axis] if self.at_end else span.start <= 0
        return VolumeFace(self.axis, self.at_end, reaches)

    def opposite(self) -> "VolumeFace":
        """The other face along the same axis (of the whole array: call before :meth:`within`)."""
        return VolumeFace(self.axis, not self.at_end, True)


#: The cranial face of an array in nnU-Net's reader order ``(z, y, x)`` for an axial scan in
#: ITK's LPS convention with an identity direction (HECKTOR's NIfTI files): the last slice.
READER_ORDER_CRANIAL_FACE = VolumeFace(axis=0, at_end=True)


def _spacing(spacing: Sequence[float] | np.ndarray, ndim: int) -> np.ndarray:
    values = np.asarray(spacing, dtype=float)
    if values.shape != (ndim,) or not np.all(values > 0):
        raise ValueError(f"spacing must hold {ndim} positive values in mm (array axis order), got {tuple(values)}")
    return values


def _label_components_in_box(seg: np.ndarray, label: int, connectivity: int):
    """(box, component labels inside the box, n) for ``seg == label``; box is None when absent."""
    mask = seg == label
    box = bounding_box(mask)
    if box is None:
        return None, None, 0
    labels, n = label_components(mask[box], connectivity)
    return box, labels, n


def _remove_components(seg: np.ndarray, label: int, box, labels: np.ndarray, remove_ids, new_value: int = 0) -> np.ndarray:
    remove_ids = np.asarray(remove_ids, dtype=np.int64)
    if remove_ids.size == 0:
        return seg
    out = seg.copy()
    lookup = np.zeros(int(labels.max()) + 1, dtype=bool)
    lookup[remove_ids] = True
    region = out[box]
    region[lookup[labels]] = new_value
    return out


# --------------------------------------------------------------------------- rule 1
def apply_probability_threshold(seg: np.ndarray, probabilities: np.ndarray, thresholds: dict[int, float]) -> np.ndarray:
    """Relabel from softmax probabilities with per-label thresholds.

    Parameters
    ----------
    seg : ndarray
        nnU-Net's argmax segmentation (used for labels without a threshold).
    probabilities : ndarray, shape (C, *seg.shape), C >= 3
        Class probabilities (channel 1 GTVp, 2 GTVn), as in nnU-Net's ``.npz`` ``probabilities``.
    thresholds : dict
        Label -> threshold; a voxel is a candidate for the label when ``p >= threshold``.

    Returns
    -------
    ndarray
        The candidate label with the highest probability, background where there is none.
    """
    if probabilities.ndim != seg.ndim + 1 or probabilities.shape[1:] != seg.shape or probabilities.shape[0] < 3:
        raise ValueError(f"probabilities of shape {probabilities.shape} do not fit a segmentation of shape "
                         f"{seg.shape} (expected (classes >= 3, {', '.join(map(str, seg.shape))}))")
    if not thresholds:
        return seg
    best = np.zeros(seg.shape, dtype=np.float32)
    out = np.zeros(seg.shape, dtype=np.uint8)
    for label in (GTVP, GTVN):
        p = np.asarray(probabilities[label], dtype=np.float32)
        candidate = p >= thresholds[label] if label in thresholds else seg == label
        # Strictly greater: on an exact tie the lower label (GTVp) keeps the voxel.
        wins = candidate & ((out == 0) | (p > best))
        out[wins] = label
        best[wins] = p[wins]
    return out


# --------------------------------------------------------------------------- rule 2
def ellipsoid(radius_mm: float, spacing: Sequence[float] | np.ndarray) -> np.ndarray:
    """Boolean structuring element: voxel offsets within ``radius_mm`` of the centre (in mm)."""
    spacing_mm = np.asarray(spacing, dtype=float)
    half = np.floor(radius_mm / spacing_mm + 1e-9).astype(int)
    grids = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    distance2 = sum((g * s) ** 2 for g, s in zip(grids, spacing_mm))
    # An array: the sum has at least one term (one per axis).
    return np.asarray(distance2 <= radius_mm ** 2 + 1e-9)


def close_label(seg: np.ndarray, label: int, radius_mm: float, spacing: Sequence[float] | np.ndarray) -> np.ndarray:
    """Binary closing of ``label`` with an ellipsoid of ``radius_mm``; fills background voxels only.

    The outside of the array counts as background, as on an infinite grid: the closing is
    computed in a box padded by twice the radius, so array borders do not erode the label.
    """
    from scipy import ndimage

    spacing_mm = _spacing(spacing, seg.ndim)
    structure = ellipsoid(radius_mm, spacing_mm)
    if structure.sum() <= 1:
        return seg
    mask = seg == label
    box = bounding_box(mask)
    if box is None:
        return seg
    half = np.array(structure.shape) // 2
    pad = 2 * half + 1
    lo = [b.start - p for b, p in zip(box, pad)]
    hi = [b.stop + p for b, p in zip(box, pad)]
    work = np.zeros([h - low for low, h in zip(lo, hi)], dtype=bool)
    inner = tuple(slice(b.start - low, b.stop - low) for b, low in zip(box, lo))
    work[inner] = mask[box]
    closed = ndimage.binary_erosion(ndimage.binary_dilation(work, structure), structure)
    # Back to array coordinates, clipped to the array.
    src = tuple(slice(max(low, 0) - low, min(h, n) - low) for low, h, n in zip(lo, hi, seg.shape))
    dst = tuple(slice(max(low, 0), min(h, n)) for low, h, n in zip(lo, hi, seg.shape))
    add = closed[src] & (seg[dst] == 0)
    if not add.any():
        return seg
    out = seg.copy()
    out[dst][add] = label
    return out


# --------------------------------------------------------------------------- rule 3
def remove_small_components(seg: np.ndarray, label: int, min_size: float, voxel_volume_mm3: float = 1.0,
                            connectivity: int = 26) -> np.ndarray:
    """Set components of ``label`` with volume < ``min_size`` to background.

    ``min_size`` is in the unit of ``voxel_volume_mm3`` x voxels: pass the voxel volume in mm³
    for a threshold in mm³, or 1.0 for a threshold in voxels.
    """
    if min_size <= 0:
        return seg
    box, labels, n = _label_components_in_box(seg, label, connectivity)
    if n == 0:
        return seg
    volumes = component_sizes(labels, n)[1:] * float(voxel_volume_mm3)
    return _remove_components(seg, label, box, labels, np.flatnonzero(volumes < min_size) + 1)


# --------------------------------------------------------------------------- rule 4
def remove_border_components(seg: np.ndarray, labels: Sequence[int], face: VolumeFace,
                             connectivity: int = 26) -> np.ndarray:
    """Remove the components of ``labels`` that touch one face of the volume.

    Parameters
    ----------
    seg : ndarray
        Labels 0 background, 1 GTVp, 2 GTVn. Not modified.
    labels : sequence of int
        Lesion labels whose components are checked (1 GTVp, 2 GTVn).
    face : VolumeFace
        The face of ``seg`` (the cranial one from :func:`nnunet_hecktor.postprocessing.apply.cranial_face`,
        the caudal one its :meth:`~VolumeFace.opposite`); nothing is removed when it is not ``present``.
    connectivity : {6, 18, 26}
    """
    if not face.present:
        return seg
    axis, index = face.axis, (seg.shape[face.axis] - 1 if face.at_end else 0)
    for label in labels:
        box, components, n = _label_components_in_box(seg, label, connectivity)
        if n == 0 or not box[axis].start <= index < box[axis].stop:
            continue
        on_face = np.take(components, index - box[axis].start, axis=axis)
        seg = _remove_components(seg, label, box, components, np.unique(on_face[on_face > 0]))
    return seg


# --------------------------------------------------------------------------- rule 5
def keep_single_gtvp(seg: np.ndarray, mode: str = "remove", connectivity: int = 26) -> np.ndarray:
    """Keep the largest GTVp component; others are removed (``"remove"``) or become GTVn (``"to_gtvn"``)."""
    if mode not in ("remove", "to_gtvn"):
        raise ValueError(f"mode must be 'remove' or 'to_gtvn', got {mode!r}")
    box, labels, n = _label_components_in_box(seg, GTVP, connectivity)
    if n <= 1:
        return seg
    sizes = component_sizes(labels, n)[1:]
    keep = int(np.argmax(sizes)) + 1  # first (raster order) of the largest
    others = np.array([k for k in range(1, n + 1) if k != keep])
    return _remove_components(seg, GTVP, box, labels, others, GTVN if mode == "to_gtvn" else 0)


# --------------------------------------------------------------------------- rule 6
def gtvn_components_touching_gtvp(seg: np.ndarray, connectivity: int = 26):
    """The GTVn components that touch the GTVp.

    A component touches the GTVp when one of its voxels is a neighbour (under ``connectivity``:
    6 faces, 18 faces and edges, 26 faces, edges and corners) of a GTVp voxel.

    Returns
    -------
    ``(box, labels, touching)``: the GTVn bounding box, its component labels (1..n) and a boolean
    array, ``touching[k - 1]`` for component ``k``; ``None`` when there is no GTVn.
    """
    from scipy import ndimage

    box, labels, n = _label_components_in_box(seg, GTVN, connectivity)
    if n == 0:
        return None
    # A GTVp neighbour of the box lies at most one voxel outside it: look at the box grown by one.
    grown = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, size)) for s, size in zip(box, seg.shape))
    structure = ndimage.generate_binary_structure(seg.ndim, {6: 1, 18: 2, 26: 3}[connectivity])
    near_gtvp = ndimage.binary_dilation(seg[grown] == GTVP, structure=structure)
    inner = tuple(slice(b.start - g.start, b.stop - g.start) for b, g in zip(box, grown))
    near_gtvp = near_gtvp[inner]
    touching = np.zeros(n + 1, dtype=bool)
    touching[np.unique(labels[near_gtvp & (labels > 0)])] = True
    return box, labels, touching[1:]


def resolve_gtvn_touching_gtvp(seg: np.ndarray, mode: str = "remove", connectivity: int = 26) -> np.ndarray:
    """GTVn components touching the GTVp are removed (``"remove"``) or relabelled GTVp (``"to_gtvp"``)."""
    if mode not in ("remove", "to_gtvp"):
        raise ValueError(f"mode must be 'remove' or 'to_gtvp', got {mode!r}")
    found = gtvn_components_touching_gtvp(seg, connectivity)
    if found is None:
        return seg
    box, labels, touching = found
    return _remove_components(seg, GTVN, box, labels, np.flatnonzero(touching) + 1, GTVP if mode == "to_gtvp" else 0)


# --------------------------------------------------------------------------- rule 7
def keep_largest_components(seg: np.ndarray, label: int, max_components: int, connectivity: int = 26) -> np.ndarray:
    """Keep the ``max_components`` largest components of ``label`` (equal sizes: raster order first)."""
    if max_components < 1:
        raise ValueError(f"max_components must be >= 1, got {max_components}")
    box, labels, n = _label_components_in_box(seg, label, connectivity)
    if n <= max_components:
        return seg
    sizes = component_sizes(labels, n)[1:]
    order = np.argsort(-sizes, kind="stable")
    return _remove_components(seg, label, box, labels, order[max_components:] + 1)


# --------------------------------------------------------------------------- rule 8
def gtvn_distances_to_gtvp(seg: np.ndarray, spacing: Sequence[float] | np.ndarray, max_distance_mm: float,
                           connectivity: int = 26):
    """Distance in mm from each GTVn component to the nearest GTVp voxel (voxel centres).

    Returns ``(box, labels, distances)`` where ``distances[k - 1]`` belongs to component ``k``;
    distances larger than ``max_distance_mm`` are reported as ``inf`` (they are not computed:
    the distance transform runs only in the GTVp box grown by ``max_distance_mm``). ``None``
    when there is no GTVn; all ``inf`` when there is no GTVp.
    """
    from scipy import ndimage

    spacing_mm = _spacing(spacing, seg.ndim)
    box_n, labels, n = _label_components_in_box(seg, GTVN, connectivity)
    if n == 0:
        return None
    distances = np.full(n + 1, np.inf)
    gtvp = seg == GTVP
    grow = np.ceil(max_distance_mm / spacing_mm).astype(int) + 1
    box_p = bounding_box(gtvp, pad=grow)
    if box_p is not None:
        # Any voxel outside the grown box is farther than D along one axis alone, so the
        # minimum over a component is exact whenever it is <= D.
        edt = ndimage.distance_transform_edt(~gtvp[box_p], sampling=spacing_mm)
        inter = tuple(slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(box_n, box_p))
        if all(s.start < s.stop for s in inter):
            comp = labels[tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(inter, box_n))]
            dist = edt[tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(inter, box_p))]
            inside = comp > 0
            np.minimum.at(distances, comp[inside].astype(np.int64), dist[inside])
    distances[distances > max_distance_mm] = np.inf
    return box_n, labels, distances[1:]


def remove_distant_gtvn(seg: np.ndarray, spacing: Sequence[float] | np.ndarray, max_distance_mm: float,
                        if_no_gtvp: str = "keep", connectivity: int = 26) -> np.ndarray:
    """Remove GTVn components farther than ``max_distance_mm`` from the GTVp.

    Without any GTVp voxel: ``if_no_gtvp="keep"`` leaves GTVn alone, ``"remove"`` removes it all.
    """
    if if_no_gtvp not in ("keep", "remove"):
        raise ValueError(f"if_no_gtvp must be 'keep' or 'remove', got {if_no_gtvp!r}")
    if not (seg == GTVP).any():
        if if_no_gtvp == "keep":
            return seg
        out = seg.copy()
        out[out == GTVN] = 0
        return out
    found = gtvn_distances_to_gtvp(seg, spacing, max_distance_mm, connectivity)
    if found is None:
        return seg
    box, labels, distances = found
    return _remove_components(seg, GTVN, box, labels, np.flatnonzero(~np.isfinite(distances)) + 1)


# --------------------------------------------------------------------------- pipeline
def rule_steps(config: PostprocessingConfig, spacing: Sequence[float] | np.ndarray,
               probabilities: np.ndarray | None = None, cranial_face: VolumeFace | None = None,
               caudal_face: VolumeFace | None = None) -> list[tuple[str, Step]]:
    """The active rules of ``config`` as ``(name, step)`` pairs in the order they are applied.

    ``step(seg) -> seg``. The probability step is included only when ``probabilities`` is given.
    Names: ``probability_threshold``, ``closing:GTVp``, ``closing:GTVn``, ``min_size:GTVp``,
    ``min_size:GTVn``, ``cranial_border``, ``caudal_border``, ``gtvp_single_lesion``, ``gtvn_touching_gtvp``,
    ``max_components:GTVp``, ``max_components:GTVn``, ``gtvn_distance``. ``cranial_face`` (and
    ``caudal_face``) are required when the configuration removes components at the cranial (caudal)
    border; ``caudal_face`` defaults to the cranial face's opposite (right for a whole volume only).
    """
    spacing_mm = _spacing(spacing, len(spacing))
    voxel_volume = float(np.prod(spacing_mm)) if config.min_component_size_unit == "mm3" else 1.0
    c = config.connectivity
    steps: list[tuple[str, Step]] = []
    names = {GTVP: "GTVp", GTVN: "GTVn"}
    if config.probability_threshold and probabilities is not None:
        probs = probabilities
        steps.append(("probability_threshold",
                      lambda s: apply_probability_threshold(s, probs, config.probability_threshold)))
    for label in (GTVP, GTVN):
        radius = config.closing_radius_mm.get(label, 0.0)
        if radius > 0:
            steps.append((f"closing:{names[label]}",
                          partial(close_label, label=label, radius_mm=radius, spacing=spacing_mm)))
    for label in (GTVP, GTVN):
        size = config.min_component_size.get(label, 0.0)
        if size > 0:
            steps.append((f"min_size:{names[label]}",
                          partial(remove_small_components, label=label, min_size=size,
                                  voxel_volume_mm3=voxel_volume, connectivity=c)))
    if caudal_face is None and cranial_face is not None:
        caudal_face = cranial_face.opposite()
    for name, labels, face in (("cranial_border", config.cranial_border_components, cranial_face),
                               ("caudal_border", config.caudal_border_components, caudal_face)):
        if labels:
            if face is None:
                raise ValueError(f"the configuration removes components at the {name.split('_')[0]} border: "
                                 "give cranial_face")
            steps.append((name, partial(remove_border_components, labels=labels, face=face, connectivity=c)))
    if config.gtvp_single_lesion:
        mode = config.gtvp_single_lesion
        steps.append(("gtvp_single_lesion", lambda s: keep_single_gtvp(s, mode, c)))
    if config.gtvn_touching_gtvp:
        touching_mode = config.gtvn_touching_gtvp
        steps.append(("gtvn_touching_gtvp", lambda s: resolve_gtvn_touching_gtvp(s, touching_mode, c)))
    for label in (GTVP, GTVN):
        if label in config.max_components:
            steps.append((f"max_components:{names[label]}",
                          partial(keep_largest_components, label=label, max_components=config.max_components[label],
                                  connectivity=c)))
    if config.gtvn_max_distance_mm is not None:
        max_distance = config.gtvn_max_distance_mm
        steps.append(("gtvn_distance", lambda s: remove_distant_gtvn(s, spacing_mm, max_distance,
                                                                     config.gtvn_distance_if_no_gtvp, c)))
    return steps


def postprocess_segmentation(seg: np.ndarray, spacing: Sequence[float] | np.ndarray, config: PostprocessingConfig,
                             probabilities: np.ndarray | None = None,
                             cranial_face: VolumeFace | None = None,
                             caudal_face: VolumeFace | None = None) -> np.ndarray:
    """Apply every active rule of ``config`` to a label array.

    Parameters
    ----------
    seg : ndarray of int, 3D
        Labels 0 background, 1 GTVp, 2 GTVn. Not modified.
    spacing : sequence of 3 float
        Voxel size in mm, in the array's axis order (``image.GetSpacing()[::-1]`` for SimpleITK).
    config : PostprocessingConfig
    probabilities : ndarray, shape (C, *seg.shape), optional
        nnU-Net softmax probabilities; required when ``config.probability_threshold`` is set.
    cranial_face : VolumeFace, optional
        Which face of ``seg`` is cranial; required when ``config.cranial_border_components`` or
        ``config.caudal_border_components`` is set (:func:`nnunet_hecktor.postprocessing.apply.cranial_face`
        reads it from an image).
    caudal_face : VolumeFace, optional
        Default: the cranial face's opposite, which is right when ``seg`` is the whole volume (give
        it for a crop).

    Returns
    -------
    ndarray of uint8, same shape
    """
    if seg.ndim != 3:
        raise ValueError(f"a 3D label array is expected, got shape {seg.shape}")
    if config.needs_probabilities and probabilities is None:
        raise ValueError("the configuration has a probability threshold but no probabilities were given")
    if (config.cranial_border_components or config.caudal_border_components) and cranial_face is None:
        raise ValueError("the configuration removes components at a border of the volume but no cranial_face "
                         "was given")
    if caudal_face is None and cranial_face is not None:
        caudal_face = cranial_face.opposite()
    out = np.asarray(seg).astype(np.uint8, copy=True)
    if config.probability_threshold:
        assert probabilities is not None  # checked above (needs_probabilities)
        out = apply_probability_threshold(out, probabilities, config.probability_threshold)
    # Every later rule only touches the foreground and (closing) its surroundings: run them on
    # the padded foreground box instead of the whole CT volume; the result is identical.
    box = bounding_box(out, pad=pad_for(config, spacing))
    if box is None:
        return out
    crop = out[box].copy()
    cranial = None if cranial_face is None else cranial_face.within(box, out.shape)
    caudal = None if caudal_face is None else caudal_face.within(box, out.shape)
    for _, step in rule_steps(config, spacing, cranial_face=cranial, caudal_face=caudal):
        crop = step(crop)
    out[box] = crop
    return out


def changed_voxels(before: np.ndarray, after: np.ndarray) -> int:
    """Number of voxels whose label differs (cropped to the union of the foregrounds)."""
    from nnunet_hecktor.metrics.components import union_bounding_box

    box = union_bounding_box(before, after)
    return 0 if box is None else int(np.count_nonzero(before[box] != after[box]))


def pad_for(config: PostprocessingConfig, spacing: Sequence[float] | np.ndarray) -> np.ndarray:
    """Voxels by which a crop around the foreground must grow so every rule gives the same result.

    Only the closing can add voxels outside the foreground (at most its radius away).
    """
    spacing_mm = np.asarray(spacing, dtype=float)
    radius = max(config.closing_radius_mm.values(), default=0.0)
    return np.ceil(radius / spacing_mm).astype(int) + 1 if radius > 0 else np.zeros(len(spacing_mm), dtype=int)


__all__ = [
    "VolumeFace", "READER_ORDER_CRANIAL_FACE", "remove_border_components",
    "apply_probability_threshold", "close_label", "remove_small_components", "keep_single_gtvp",
    "keep_largest_components", "remove_distant_gtvn", "gtvn_components_touching_gtvp", "resolve_gtvn_touching_gtvp",
    "gtvn_distances_to_gtvp", "rule_steps",
    "postprocess_segmentation", "ellipsoid", "changed_voxels", "pad_for",
]
