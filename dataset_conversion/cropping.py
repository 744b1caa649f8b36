"""Optional cropping of the CT grid, and putting predictions back onto the original CT grid.

Modes
-----
``None`` (no crop)
    The whole CT grid is kept. A :class:`CropRecord` spanning the full grid is still written, so the
    prediction side can treat every patient alike.
``"overlap"``
    The CT voxels whose centres lie inside the physical box covered by the PET voxels (CT ∩ PET).
``"headneck"``
    A box of ``box_mm`` (x, y, z; default 200 x 200 x 310 mm) placed from PET uptake, intersected with
    the CT grid. Rule (:func:`find_brain`):

    1. PET voxels above ``HIGH_UPTAKE_FACTOR`` x the median uptake of the body (the body being the voxels
       above 1 % of the 99.9th percentile) are "high uptake". Relative to the body, so it does not
       depend on the PET being in SUV.
    2. Their 26-connected components; among those at least ``BRAIN_MIN_FRACTION`` as large as the largest
       one, the superior-most (highest top in LPS z) is taken as the brain, if it holds at least
       ``BRAIN_MIN_VOLUME_ML``. The brain is the largest high-uptake organ of a head-and-neck scan and the
       top-most even in whole-body scans (heart and bladder lie below it); a bright tumour is smaller.
    3. The box's top edge is at the height of the brain's centroid and the box extends ``box_mm[2]``
       downwards; in x and y it is centred on the brain's centroid. Why the centroid and not the top of
       the brain: the upper half of the brain holds no HECKTOR target, while the skull base and
       nasopharynx lie below the brain's centre; on the synthetic cohort (real-size anatomy) primaries lie
       185-215 mm and nodes up to ~320 mm below the top of the brain, i.e. ~120 mm below the box top and
       ~50 mm above its bottom with the default 310 mm. The centroid is also steadier than the top edge
       (a partly imaged brain moves it by less).
    4. Fallback when no brain-like region exists (empty or flat PET, field of view below the brain): the
       box hangs from the top of the CT, centred on the CT in x/y. The record says which rule was used.

    Label voxels outside the box are reported as a warning with the volume cut off.

The record of each patient (:class:`CropRecord`) holds the index range in the ORIGINAL CT grid (ITK order
x, y, z; start inclusive, stop exclusive) and both geometries; :func:`uncrop_to_original` pads a
segmentation predicted on the cropped grid back onto the original CT grid with 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_hecktor.errors import HecktorError, InputDataError
from nnunet_hecktor.metrics.components import label_components

from .geometry import GridGeometry, covered_index_box, describe_grid_difference, physical_box_to_index_box, same_grid

CROP_MODES: tuple[str, ...] = ("overlap", "headneck")
DEFAULT_HEADNECK_BOX_MM: tuple[float, float, float] = (200.0, 200.0, 310.0)
HIGH_UPTAKE_FACTOR: float = 4.0
BRAIN_MIN_FRACTION: float = 0.25
BRAIN_MIN_VOLUME_ML: float = 100.0


@dataclass
class CropRecord:
    """Where a converted case sits in the patient's original CT grid.

    Attributes
    ----------
    patient : str
    mode : str
        ``"none"``, ``"overlap"`` or ``"headneck"``.
    index_start, index_stop : tuple of int
        Index range in the original CT grid, ITK order (x, y, z); start inclusive, stop exclusive.
    original_ct : GridGeometry
        The original CT grid (what predictions must be scored on).
    cropped_ct : GridGeometry
        The grid of the converted case (``original_ct`` restricted to the index range).
    details : dict
        How the box was chosen (box size, brain anchor, fallback, ...).
    """

    patient: str
    mode: str
    index_start: tuple[int, ...]
    index_stop: tuple[int, ...]
    original_ct: GridGeometry
    cropped_ct: GridGeometry
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def is_full(self) -> bool:
        """True when the crop keeps the whole CT grid."""
        return tuple(self.index_start) == (0, 0, 0) and tuple(self.index_stop) == tuple(self.original_ct.size)

    def to_json(self) -> dict[str, Any]:
        return {
            "patient": self.patient, "mode": self.mode,
            "index_order": "x, y, z (ITK); start inclusive, stop exclusive",
            "index_start": list(self.index_start), "index_stop": list(self.index_stop),
            "original_ct": self.original_ct.to_json(), "cropped_ct": self.cropped_ct.to_json(),
            "details": self.details,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "CropRecord":
        return cls(patient=data["patient"], mode=data["mode"],
                   index_start=tuple(int(v) for v in data["index_start"]),
                   index_stop=tuple(int(v) for v in data["index_stop"]),
                   original_ct=GridGeometry.from_json(data["original_ct"]),
                   cropped_ct=GridGeometry.from_json(data["cropped_ct"]), details=dict(data.get("details", {})))


def load_crop_record(record: "CropRecord | dict | str | Path") -> CropRecord:
    """Return a :class:`CropRecord` from a record, its JSON dict, or the path of its JSON file."""
    if isinstance(record, CropRecord):
        return record
    if isinstance(record, dict):
        return CropRecord.from_json(record)
    path = Path(record)
    try:
        return CropRecord.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputDataError(f"cannot read crop record ({exc})", None, path) from None


def full_record(patient: str, ct_geometry: GridGeometry) -> CropRecord:
    """A record that keeps the whole CT grid (no crop)."""
    return CropRecord(patient, "none", (0, 0, 0), tuple(ct_geometry.size), ct_geometry, ct_geometry)


def find_brain(pet) -> dict[str, Any] | None:
    """Locate the brain in a PET image (see the module docstring, steps 1-2).

    Returns
    -------
    dict or None
        ``top_mm`` (highest LPS z of the region), ``centroid_mm`` (x, y, z), ``volume_ml``,
        ``threshold`` (in the PET's units); ``None`` when no high-uptake region of at least
        ``BRAIN_MIN_VOLUME_ML`` is the superior-most large one.
    """
    import SimpleITK as sitk

    values = sitk.GetArrayViewFromImage(pet)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    p999 = float(np.percentile(finite, 99.9))
    if p999 <= 0:
        return None
    body = finite[finite > 0.01 * p999]
    if body.size == 0:
        return None
    threshold = HIGH_UPTAKE_FACTOR * float(np.median(body))
    import cc3d

    # Array axes are (z, y, x); GridGeometry takes continuous indices in (x, y, z).
    labels, count = label_components(np.asarray(values) >= threshold, 26)
    if count == 0:
        return None
    stats = cc3d.statistics(labels)
    geometry = GridGeometry.of(pet)
    voxel_mm3 = float(np.prod(pet.GetSpacing()))
    volumes = {lab: float(stats["voxel_counts"][lab]) * voxel_mm3 for lab in range(1, count + 1)}
    largest = max(volumes.values())
    candidates = []
    for lab, volume in volumes.items():
        if volume < BRAIN_MIN_FRACTION * largest:
            continue
        zs, ys, xs = stats["bounding_boxes"][lab]
        corners = np.array([[x, y, z] for x in (xs.start - 0.5, xs.stop - 0.5) for y in (ys.start - 0.5, ys.stop - 0.5)
                            for z in (zs.start - 0.5, zs.stop - 0.5)])
        top = float(geometry.index_to_physical(corners)[:, 2].max())
        candidates.append((top, lab))
    top, lab = max(candidates)
    if volumes[lab] / 1000.0 < BRAIN_MIN_VOLUME_ML:
        return None
    centroid = geometry.index_to_physical(np.asarray(stats["centroids"][lab], dtype=float)[::-1][None, :])[0]
    return {"top_mm": top, "centroid_mm": [float(v) for v in centroid],
            "volume_ml": volumes[lab] / 1000.0, "threshold": threshold, "regions_considered": len(candidates)}


def compute_crop(patient: str, ct, pet, mode: str | None,
                 box_mm: tuple[float, float, float] = DEFAULT_HEADNECK_BOX_MM) -> CropRecord:
    """Choose the crop box of one patient on its original CT grid.

    Parameters
    ----------
    patient : str
        PatientID (for messages and the record).
    ct, pet : SimpleITK.Image
        Original CT and PET (PET on its own grid).
    mode : {None, "overlap", "headneck"}
    box_mm : tuple of float
        Head-and-neck box size (x, y, z) in mm.

    Returns
    -------
    CropRecord

    Raises
    ------
    InputDataError
        The box does not intersect the CT (e.g. PET and CT do not overlap at all).
    """
    ct_geometry = GridGeometry.of(ct)
    if mode is None or mode == "none":
        return full_record(patient, ct_geometry)
    pet_geometry = GridGeometry.of(pet)
    if mode == "overlap":
        box = covered_index_box(ct_geometry, pet_geometry)
        if box is None:
            raise InputDataError("PET and CT do not overlap physically; nothing to crop to", patient)
        details: dict[str, Any] = {"rule": "CT voxels inside the physical extent of the PET"}
    elif mode == "headneck":
        box_x, box_y, box_z = (float(v) for v in box_mm)
        brain = find_brain(pet)
        if brain is not None:
            top = brain["centroid_mm"][2]
            centre_xy = brain["centroid_mm"][:2]
            details = {"rule": "box top at the height of the brain's centroid (superior-most large high-uptake "
                               "PET region), centred on it in x/y", "brain": brain}
        else:
            corners = ct_geometry.index_to_physical(ct_geometry.corner_indices(outer=True))
            top = float(corners[:, 2].max())
            centre_xy = list(corners[:, :2].mean(axis=0))
            details = {"rule": "fallback (no high-uptake PET region): box hangs from the top of the CT, "
                               "centred on the CT in x/y", "brain": None}
        low = np.array([centre_xy[0] - box_x / 2, centre_xy[1] - box_y / 2, top - box_z])
        high = np.array([centre_xy[0] + box_x / 2, centre_xy[1] + box_y / 2, top])
        details.update({"box_mm": [box_x, box_y, box_z], "box_low_mm": low.tolist(), "box_high_mm": high.tolist()})
        box = physical_box_to_index_box(ct_geometry, low, high)
        if box is None:
            raise InputDataError("the head-and-neck box does not intersect the CT", patient)
    else:
        raise HecktorError(f"unknown crop mode {mode!r} (choose from {', '.join(CROP_MODES)})")
    start, stop = box
    return CropRecord(patient, mode, start, stop, ct_geometry, ct_geometry.cropped(start, stop), details)


def apply_crop(image, record: "CropRecord | dict | str | Path", what: str = "image"):
    """Crop an image on the original CT grid to the record's index range.

    Raises
    ------
    InputDataError
        ``image`` is not on the record's original CT grid (beyond round-off).
    """
    import SimpleITK as sitk

    record = load_crop_record(record)
    geometry = GridGeometry.of(image)
    if not same_grid(record.original_ct, geometry):
        raise InputDataError(f"{what} is not on the original CT grid of the crop record "
                             f"({describe_grid_difference(record.original_ct, geometry)})", record.patient)
    if record.is_full:
        return image
    size = [int(b - a) for a, b in zip(record.index_start, record.index_stop)]
    return sitk.RegionOfInterest(image, size, [int(v) for v in record.index_start])


def uncrop_to_original(seg_image, crop_record: "CropRecord | dict | str | Path"):
    """Put a segmentation of the cropped grid back onto the original CT grid, padding with 0.

    Parameters
    ----------
    seg_image : SimpleITK.Image
        Segmentation (or any scalar map) on the cropped grid (``crop_record.cropped_ct``), e.g. an
        nnU-Net prediction of the converted case.
    crop_record : CropRecord, dict or path
        The patient's record (``crops/<PID>.json`` in the converted dataset).

    Returns
    -------
    SimpleITK.Image
        Same pixel type as ``seg_image``, exactly on the original CT grid (size, spacing, origin,
        direction copied from the record), 0 outside the crop box.

    Raises
    ------
    InputDataError
        ``seg_image`` is not on the cropped grid (other size, or spacing/origin/direction beyond round-off).
    """
    import SimpleITK as sitk

    record = load_crop_record(crop_record)
    geometry = GridGeometry.of(seg_image)
    if not same_grid(record.cropped_ct, geometry):
        raise InputDataError("segmentation is not on the cropped CT grid of the crop record "
                             f"({describe_grid_difference(record.cropped_ct, geometry)})", record.patient)
    cropped = sitk.GetArrayViewFromImage(seg_image)
    full = np.zeros(tuple(reversed(record.original_ct.size)), dtype=cropped.dtype)
    (x0, y0, z0), (x1, y1, z1) = record.index_start, record.index_stop
    full[z0:z1, y0:y1, x0:x1] = cropped
    out = sitk.GetImageFromArray(full)
    record.original_ct.apply_to(out)
    return out
