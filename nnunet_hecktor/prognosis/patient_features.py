"""Feature values of one patient from CT, PET and a segmentation on one grid (arrays in, dict out).

See :mod:`nnunet_hecktor.prognosis.feature_catalogue` for the definitions and empty values.
"""

from __future__ import annotations

import numpy as np

from nnunet_hecktor import schema
from nnunet_hecktor.dataset_conversion.geometry import GridGeometry
from nnunet_hecktor.metrics.components import bounding_box
from nnunet_hecktor.prognosis import lesion_measures as lm
from nnunet_hecktor.prognosis.feature_catalogue import STRUCTURES, empty_features
from nnunet_hecktor.prognosis.stage_geometry import stage_geometry_features

IDENTITY_DIRECTION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def compute_features(ct: np.ndarray, pet: np.ndarray, seg: np.ndarray, spacing_zyx,
                     origin_xyz=(0.0, 0.0, 0.0), direction=IDENTITY_DIRECTION) -> dict[str, float]:
    """All image features of one patient.

    Parameters
    ----------
    ct, pet, seg : numpy arrays ``(z, y, x)`` on the same grid
        CT in HU, PET in SUV, segmentation with 0 background, 1 GTVp, 2 GTVn.
    spacing_zyx : sequence of 3 floats
        Voxel size in mm, numpy order.
    origin_xyz, direction : ITK geometry
        Only used to place centroids in physical space (distances do not depend on the origin;
        the direction matters for anisotropic voxels).

    Returns
    -------
    dict
        Feature name -> float, in physical units (mL, mm, mm^2, SUV, HU); no NaN.
    """
    if not (ct.shape == pet.shape == seg.shape):
        raise ValueError(f"CT {ct.shape}, PET {pet.shape} and segmentation {seg.shape} differ in shape")
    spacing_zyx = tuple(float(s) for s in spacing_zyx)
    grid = GridGeometry(tuple(int(n) for n in seg.shape[::-1]), spacing_zyx[::-1],
                        tuple(float(o) for o in origin_xyz), tuple(float(d) for d in direction))
    features = empty_features()
    lesion = seg > 0
    margin = [k // 2 + 1 for k in lm.ball_kernel(spacing_zyx).shape]
    box = bounding_box(lesion, pad=margin)
    if box is None:
        return features
    # Before cropping: the body midline is measured on the CT around the lesions.
    features.update(stage_geometry_features(seg, spacing_zyx, origin_xyz, direction, ct=ct))
    # Everything below happens in the bounding box: whole CT grids are ~50 M voxels.
    offset = np.array([s.start for s in box], dtype=float)
    ct, pet, seg = ct[box], pet[box], seg[box]

    for name, labels in STRUCTURES.items():
        mask = np.isin(seg, labels)
        if not mask.any():
            continue
        volume_ml = lm.volume_ml(mask, spacing_zyx)
        mesh_volume_mm3, area = lm.mesh_volume_area(mask, spacing_zyx)
        suvmax, suvmean, _ = lm.intensity_stats(pet[mask])
        _, ct_mean, ct_std = lm.intensity_stats(ct[mask])
        features.update({
            f"{name}_volume_ml": volume_ml,
            f"{name}_surface_mm2": area,
            f"{name}_sphericity": lm.sphericity(mesh_volume_mm3, area),
            f"{name}_suvmax": suvmax,
            f"{name}_suvmean": suvmean,
            f"{name}_suvpeak": lm.suv_peak(pet, mask, spacing_zyx),
            f"{name}_tlg": suvmean * volume_ml,
            f"{name}_ct_mean_hu": ct_mean,
            f"{name}_ct_std_hu": ct_std,
        })

    gtvp = seg == schema.GTVP
    gtvn = seg == schema.GTVN
    features["gtvp_present"] = float(gtvp.any())
    features["gtvn_present"] = float(gtvn.any())
    features["gtvp_component_count"] = float(lm.connected_components(gtvp)[1])
    node_labels, node_count = lm.connected_components(gtvn)
    features["gtvn_lesion_count"] = float(node_count)

    def to_mm(index_zyx: np.ndarray) -> np.ndarray:
        return grid.index_to_physical((np.reshape(index_zyx, (-1, 3)) + offset)[:, ::-1])

    node_points = to_mm(lm.component_centroids_zyx(node_labels, node_count))
    lesion_points = node_points
    if gtvp.any():
        primary_point = to_mm(np.argwhere(gtvp).mean(axis=0))
        lesion_points = np.vstack([primary_point, node_points])
        if node_count:
            features["gtvp_to_farthest_node_mm"] = float(np.sqrt(((node_points - primary_point) ** 2).sum(1)).max())
    features["lesion_spread_mm"] = lm.max_pairwise_distance(lesion_points)
    return features
