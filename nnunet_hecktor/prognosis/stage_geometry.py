"""Geometry of the lesions that T and N staging read (AJCC/UICC 7th edition), from a label array.

AJCC 7 stages an oropharyngeal cancer from the size of the primary (T1 <= 20 mm, T2 <= 40 mm,
T3 > 40 mm greatest dimension; T4 = invasion of neighbouring structures, not a size) and from the
nodes (N1: one ipsilateral node <= 30 mm; N2a: one ipsilateral node of 30-60 mm; N2b: several
ipsilateral nodes <= 60 mm; N2c: bilateral or contralateral nodes <= 60 mm; N3: a node > 60 mm).
The features here are what those rules read, measured on a segmentation (0 background, 1 GTVp,
2 GTVn): largest diameters, extents, node count and sizes, and the side of each node relative to
the primary and the patient's midline. :mod:`nnunet_hecktor.prognosis.staging_rules` applies the
AJCC 7 cut-offs to them; :mod:`nnunet_hecktor.prognosis.stage_models` learns T and N from them.

Conventions
-----------
- Arrays ``(z, y, x)``; spacing in mm in the same order; origin and direction in ITK order.
- Lengths in mm, volumes in mL; every feature is 0 when its structure is absent (no NaN).
- Laterality is measured along the physical x axis (patient right-left in DICOM/ITK LPS
  coordinates, whatever the image orientation). The midline is the x-centroid of the body
  (CT above :data:`BODY_THRESHOLD_HU`) in the axial slices that hold lesions; without a CT,
  the centre of the image along x (HECKTOR images are roughly centred on the patient).
- Lesions are the 26-connected components of label 2
  (:func:`~nnunet_hecktor.prognosis.lesion_measures.connected_components`, the HECKTOR default).
- A node within :data:`MIDLINE_TOLERANCE_MM` of the midline counts as ipsilateral (AJCC: midline
  nodes are ipsilateral). The reference side is the primary's; when the primary is absent or
  itself on the midline, the side of the largest node.
"""

from __future__ import annotations

import numpy as np

from nnunet_hecktor import schema
from nnunet_hecktor.dataset_conversion.geometry import GridGeometry
from nnunet_hecktor.metrics.components import bounding_box
from nnunet_hecktor.prognosis import lesion_measures as lm

IDENTITY_DIRECTION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
#: CT value (HU) above which a voxel belongs to the body (air about -1000, fat about -100).
BODY_THRESHOLD_HU: float = -500.0
#: Distance (mm) from the midline within which a lesion counts as on the midline.
MIDLINE_TOLERANCE_MM: float = 5.0

#: Name -> (unit, description) of the staging geometry features, in table order.
STAGE_GEOMETRY_FEATURES: dict[str, tuple[str, str]] = {
    "gtvp_max_diameter_mm": ("mm", "largest 3D diameter (maximum Feret diameter) of the GTVp (all of label 1); "
                                   "the T-stage size (AJCC 7: T1 <= 20 mm, T2 <= 40 mm, T3 > 40 mm)"),
    "gtvp_extent_x_mm": ("mm", "bounding-box extent of the GTVp along the image x axis (right-left)"),
    "gtvp_extent_y_mm": ("mm", "bounding-box extent of the GTVp along the image y axis (anterior-posterior)"),
    "gtvp_extent_z_mm": ("mm", "bounding-box extent of the GTVp along the image z axis (cranio-caudal)"),
    "gtvp_midline_offset_mm": ("mm", "distance along x from the body midline to the GTVp centroid"),
    "gtvn_largest_node_diameter_mm": ("mm", "largest 3D diameter of the largest GTVn lesion (by diameter); "
                                            "the N-stage size (AJCC 7: 30 mm and 60 mm cut-offs)"),
    "gtvn_largest_node_volume_ml": ("mL", "volume of the largest GTVn lesion (by volume)"),
    "gtvn_ipsilateral_count": ("count", "GTVn lesions on the primary's side or on the midline"),
    "gtvn_contralateral_count": ("count", "GTVn lesions on the side opposite the primary"),
    "gtvn_contralateral": ("0/1", "1 when a GTVn lesion lies on the side opposite the primary"),
    "gtvn_bilateral": ("0/1", "1 when GTVn lesions lie on both sides of the midline"),
    "gtvn_nearest_to_primary_mm": ("mm", "distance from the GTVp centroid to the nearest GTVn lesion centroid; "
                                         "0 when either is absent"),
}
STAGE_GEOMETRY_NAMES: tuple[str, ...] = tuple(STAGE_GEOMETRY_FEATURES)


def empty_stage_geometry() -> dict[str, float]:
    """The staging geometry of a patient without lesions (every value 0)."""
    return dict.fromkeys(STAGE_GEOMETRY_NAMES, 0.0)


def _grid(seg: np.ndarray, spacing_zyx, origin_xyz, direction) -> GridGeometry:
    return GridGeometry(tuple(int(n) for n in seg.shape[::-1]), tuple(float(s) for s in spacing_zyx)[::-1],
                        tuple(float(o) for o in origin_xyz), tuple(float(d) for d in direction))


def midline_x_mm(grid: GridGeometry, ct: np.ndarray | None = None, lesion: np.ndarray | None = None) -> float:
    """Physical x (mm) of the patient's midline.

    The x-centroid of the body (``ct > BODY_THRESHOLD_HU``) in the axial slices holding
    ``lesion`` (all slices when ``lesion`` is None or empty); the image centre along x without
    a CT or when no body voxel is found.
    """
    shape_zyx = tuple(grid.size[::-1])
    centre_index = (np.asarray(shape_zyx, dtype=float) - 1.0) / 2.0
    point = centre_index
    if ct is not None:
        slab = slice(None)
        if lesion is not None:
            box = bounding_box(lesion)
            if box is not None:
                slab = box[0]
        body = np.asarray(ct[slab]) > BODY_THRESHOLD_HU
        if body.any():
            cols = np.nonzero(body.any(axis=(0, 1)))[0]
            weights = body.sum(axis=(0, 1))[cols].astype(float)
            point = centre_index.copy()
            point[2] = float((cols * weights).sum() / weights.sum())
    return float(grid.index_to_physical(point[::-1].reshape(1, 3))[0, 0])


def _side(offset_mm: float, tolerance_mm: float) -> int:
    return 0 if abs(offset_mm) <= tolerance_mm else (1 if offset_mm > 0 else -1)


def stage_geometry_features(seg: np.ndarray, spacing_zyx, origin_xyz=(0.0, 0.0, 0.0),
                            direction=IDENTITY_DIRECTION, ct: np.ndarray | None = None,
                            midline_mm: float | None = None,
                            midline_tolerance_mm: float = MIDLINE_TOLERANCE_MM) -> dict[str, float]:
    """The staging geometry features (:data:`STAGE_GEOMETRY_FEATURES`) of one patient.

    Parameters
    ----------
    seg : array ``(z, y, x)``
        Labels: 0 background, 1 GTVp, 2 GTVn.
    spacing_zyx : 3 floats
        Voxel size in mm, numpy order.
    origin_xyz, direction : ITK geometry of ``seg``
        Place the lesions in physical space for the laterality (right-left = physical x).
    ct : array ``(z, y, x)``, optional
        CT (HU) on the same grid; locates the body midline.
    midline_mm : float, optional
        Physical x of the midline when known (overrides ``ct``).
    midline_tolerance_mm : float
        Lesions closer than this to the midline count as on it (ipsilateral).

    Returns
    -------
    dict
        Feature name -> float (mm, mL, counts, 0/1); 0 for absent structures.
    """
    seg = np.asarray(seg)
    if ct is not None and np.shape(ct) != seg.shape:
        raise ValueError(f"CT {np.shape(ct)} and segmentation {seg.shape} differ in shape")
    spacing_zyx = tuple(float(s) for s in spacing_zyx)
    features = empty_stage_geometry()
    lesion = seg > 0
    box = bounding_box(lesion)
    if box is None:
        return features
    grid = _grid(seg, spacing_zyx, origin_xyz, direction)
    if midline_mm is None:
        midline_mm = midline_x_mm(grid, ct, lesion)
    offset = np.array([s.start for s in box], dtype=float)
    gtvp = seg[box] == schema.GTVP
    gtvn = seg[box] == schema.GTVN

    def to_mm(index_zyx) -> np.ndarray:
        return grid.index_to_physical((np.reshape(index_zyx, (-1, 3)) + offset)[:, ::-1])

    primary_point = None
    primary_side = 0
    if gtvp.any():
        extent_z, extent_y, extent_x = lm.extents_mm(gtvp, spacing_zyx)
        primary_point = to_mm(np.argwhere(gtvp).mean(axis=0))[0]
        primary_offset = float(primary_point[0] - midline_mm)
        primary_side = _side(primary_offset, midline_tolerance_mm)
        features.update({"gtvp_max_diameter_mm": lm.max_diameter_mm(gtvp, spacing_zyx),
                         "gtvp_extent_x_mm": extent_x, "gtvp_extent_y_mm": extent_y, "gtvp_extent_z_mm": extent_z,
                         "gtvp_midline_offset_mm": abs(primary_offset)})

    labels, count = lm.connected_components(gtvn)
    if count == 0:
        return features
    from scipy import ndimage

    diameters, volumes = [], []
    for k, where in enumerate(ndimage.find_objects(labels), start=1):
        node = labels[where] == k
        diameters.append(lm.max_diameter_mm(node, spacing_zyx))
        volumes.append(lm.volume_ml(node, spacing_zyx))
    points = to_mm(lm.component_centroids_zyx(labels, count))
    sides = np.array([_side(float(x - midline_mm), midline_tolerance_mm) for x in points[:, 0]])
    reference = primary_side
    if reference == 0:
        largest_side = int(sides[int(np.argmax(volumes))])
        # A midline primary with nodes on both sides is bilateral; the largest node sets the side.
        reference = largest_side if largest_side != 0 else 1
    contralateral = int(np.count_nonzero(sides == -reference))
    features.update({
        "gtvn_largest_node_diameter_mm": float(max(diameters)),
        "gtvn_largest_node_volume_ml": float(max(volumes)),
        "gtvn_ipsilateral_count": float(count - contralateral),
        "gtvn_contralateral_count": float(contralateral),
        "gtvn_contralateral": float(contralateral > 0),
        "gtvn_bilateral": float(bool((sides > 0).any() and (sides < 0).any())),
    })
    if primary_point is not None:
        features["gtvn_nearest_to_primary_mm"] = float(np.sqrt(((points - primary_point) ** 2).sum(1)).min())
    return features


__all__ = ["BODY_THRESHOLD_HU", "MIDLINE_TOLERANCE_MM", "STAGE_GEOMETRY_FEATURES", "STAGE_GEOMETRY_NAMES",
           "empty_stage_geometry", "midline_x_mm", "stage_geometry_features"]
