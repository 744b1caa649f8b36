"""Feature definitions of the prognosis stage on analytic objects (nnunet_hecktor.prognosis)."""

import math

import numpy as np
import pytest

from nnunet_hecktor.prognosis import lesion_measures as lm
from nnunet_hecktor.prognosis.feature_catalogue import FEATURE_NAMES, FEATURES, empty_features
from nnunet_hecktor.prognosis.patient_features import compute_features

R_MM = 15.0  # sphere radius
SUV0, SUV_SLOPE = 12.0, 0.4  # PET = SUV0 - SUV_SLOPE * r  (SUV, r in mm)
CT0, CT_GRAD = 40.0, 0.5  # CT = CT0 + CT_GRAD * z  (HU, z in mm from the centre)


def sphere_phantom(spacing_zyx, radius=R_MM, extent=48.0, offset=(0.31, -0.17, 0.23)):
    """CT, PET, label of a sphere sampled at voxel centres; ``offset`` (mm) breaks grid symmetry."""
    axes = [(np.arange(int(np.ceil(extent / s))) - int(np.ceil(extent / s)) / 2) * s + o
            for s, o in zip(spacing_zyx, offset)]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    r = np.sqrt(x ** 2 + y ** 2 + z ** 2)
    seg = (r <= radius).astype(np.uint8)
    pet = np.clip(SUV0 - SUV_SLOPE * r, 0.0, None)
    ct = CT0 + CT_GRAD * z
    return ct, pet, seg


# Analytic values of the phantom. Mean of f(r) = a - b r over a ball of radius R is a - 3bR/4;
# CT = c + g z has variance g^2 R^2 / 5 over the ball.
TRUE_VOLUME_ML = 4.0 / 3.0 * math.pi * R_MM ** 3 / 1000.0
TRUE_AREA = 4.0 * math.pi * R_MM ** 2
TRUE_SUVMEAN = SUV0 - 0.75 * SUV_SLOPE * R_MM
TRUE_SUVPEAK = SUV0 - 0.75 * SUV_SLOPE * lm.SUV_PEAK_RADIUS_MM
TRUE_CT_STD = CT_GRAD * R_MM / math.sqrt(5.0)

# Tolerances. A sphere of radius R sampled on voxels of size h has a volume error that comes
# from the boundary shell and largely cancels: measured <= 2.3 % for R/h >= 5 (several grid
# offsets), so 3 %. The surface is the IBSI marching-cubes mesh of the binary mask, whose
# staircase makes a voxelised sphere's area too large: measured +8.8 % to +16.6 % on these
# spheres (the most with 3 mm slices), so [+0 %, +20 %]; mesh sphericity is then 0.85-0.92 and
# can never exceed 1 (isoperimetric inequality on one closed mesh). SUVmean/SUVpeak are means of a
# linear profile over a discretised ball: within 2 %. SUVmax is sampled at the voxel centre
# nearest the centre: below SUV0 by at most SUV_SLOPE * half the voxel diagonal.
SPACINGS = [(1.0, 1.0, 1.0), (2.5, 2.0, 2.0), (3.0, 0.9, 0.9)]


@pytest.mark.parametrize("spacing", SPACINGS)
def test_sphere_features_match_analytic_values(spacing):
    ct, pet, seg = sphere_phantom(spacing)
    f = compute_features(ct, pet, seg, spacing)
    assert f["gtvp_present"] == 1 and f["gtvn_present"] == 0 and f["gtvp_component_count"] == 1
    assert f["gtvp_volume_ml"] == pytest.approx(TRUE_VOLUME_ML, rel=0.03)
    assert TRUE_AREA <= f["gtvp_surface_mm2"] <= 1.2 * TRUE_AREA
    assert 0.83 <= f["gtvp_sphericity"] <= 1.0
    half_diagonal = 0.5 * math.sqrt(sum(s * s for s in spacing))
    assert SUV0 - SUV_SLOPE * half_diagonal - 1e-9 <= f["gtvp_suvmax"] <= SUV0
    assert f["gtvp_suvmean"] == pytest.approx(TRUE_SUVMEAN, rel=0.02)
    assert f["gtvp_suvpeak"] == pytest.approx(TRUE_SUVPEAK, rel=0.02)
    assert f["gtvp_tlg"] == pytest.approx(f["gtvp_suvmean"] * f["gtvp_volume_ml"], rel=1e-12)
    assert f["gtvp_tlg"] == pytest.approx(TRUE_SUVMEAN * TRUE_VOLUME_ML, rel=0.04)
    assert f["gtvp_ct_mean_hu"] == pytest.approx(CT0, abs=0.5)
    assert f["gtvp_ct_std_hu"] == pytest.approx(TRUE_CT_STD, rel=0.03)
    # label 1 only: "total" equals "gtvp", GTVn keeps its empty values
    assert f["total_volume_ml"] == f["gtvp_volume_ml"] and f["total_suvpeak"] == f["gtvp_suvpeak"]
    assert f["gtvn_volume_ml"] == 0.0 and f["gtvn_suvmax"] == 0.0 and f["gtvn_lesion_count"] == 0


def test_same_object_at_two_resolutions_gives_the_same_features():
    fine = compute_features(*sphere_phantom((1.0, 1.0, 1.0)), (1.0, 1.0, 1.0))
    coarse = compute_features(*sphere_phantom((3.0, 2.0, 2.0)), (3.0, 2.0, 2.0))
    # Each resolution is within the analytic tolerances above, so they agree within their sum.
    for name, rel in [("gtvp_volume_ml", 0.05), ("gtvp_surface_mm2", 0.06), ("gtvp_sphericity", 0.06),
                      ("gtvp_suvmean", 0.03), ("gtvp_suvpeak", 0.03), ("gtvp_tlg", 0.06), ("gtvp_ct_std_hu", 0.05)]:
        assert coarse[name] == pytest.approx(fine[name], rel=rel), name
    assert coarse["gtvp_ct_mean_hu"] == pytest.approx(fine["gtvp_ct_mean_hu"], abs=1.0)


def test_empty_segmentation_gives_the_documented_values_and_no_nan():
    ct, pet, seg = sphere_phantom((2.0, 2.0, 2.0))
    f = compute_features(ct, pet, np.zeros_like(seg), (2.0, 2.0, 2.0))
    assert f == empty_features()
    assert set(f) == set(FEATURE_NAMES)
    assert all(d.empty == 0.0 for d in FEATURES)


def test_gtvn_only_patient_has_defined_gtvp_values():
    ct, pet, seg = sphere_phantom((2.0, 2.0, 2.0))
    f = compute_features(ct, pet, seg * 2, (2.0, 2.0, 2.0))  # the sphere as a node
    assert f["gtvp_present"] == 0 and f["gtvn_present"] == 1 and f["gtvn_lesion_count"] == 1
    assert f["gtvp_volume_ml"] == 0 and f["gtvp_suvpeak"] == 0 and f["gtvp_to_farthest_node_mm"] == 0
    assert f["lesion_spread_mm"] == 0  # one lesion only
    assert f["gtvn_volume_ml"] == pytest.approx(TRUE_VOLUME_ML, rel=0.03)
    assert not any(math.isnan(v) for v in f.values())


def _ball(shape, centre_mm, radius_mm, spacing_zyx):
    axes = [np.arange(n) * s for n, s in zip(shape, spacing_zyx)]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    cz, cy, cx = centre_mm
    return (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= radius_mm ** 2


@pytest.mark.parametrize("spacing", [(2.0, 1.0, 1.0), (3.0, 1.5, 0.75)])
def test_node_count_and_distances_in_mm(spacing):
    shape = tuple(int(120 / s) for s in spacing)
    seg = np.zeros(shape, np.uint8)
    primary, node_a, node_b = (60.0, 60.0, 40.0), (60.0, 60.0, 90.0), (20.0, 30.0, 40.0)  # (z, y, x) mm
    seg[_ball(shape, node_a, 6.0, spacing)] = 2
    seg[_ball(shape, node_b, 6.0, spacing)] = 2
    seg[_ball(shape, primary, 10.0, spacing)] = 1
    ct = np.zeros(shape, np.float32)
    # Direction with the x axis flipped: distances must not change.
    f = compute_features(ct, ct, seg, spacing, origin_xyz=(-5.0, 3.0, 7.0), direction=(-1, 0, 0, 0, 1, 0, 0, 0, 1))
    d_a = 50.0  # primary -> node_a along x
    d_b = math.dist(primary, node_b)  # 50 mm
    d_ab = math.dist(node_a, node_b)
    assert f["gtvn_lesion_count"] == 2 and f["gtvp_component_count"] == 1
    # Centroids of voxelised balls sit within a fraction of a voxel of the true centres.
    tol = max(spacing)
    assert f["gtvp_to_farthest_node_mm"] == pytest.approx(max(d_a, d_b), abs=tol)
    assert f["lesion_spread_mm"] == pytest.approx(max(d_a, d_b, d_ab), abs=tol)


def test_nodes_touching_diagonally_are_one_lesion():
    seg = np.zeros((5, 5, 5), np.uint8)
    seg[1, 1, 1] = 2
    seg[2, 2, 2] = 2  # corner contact: 26-connected
    seg[4, 4, 0] = 2
    f = compute_features(np.zeros(seg.shape), np.zeros(seg.shape), seg, (1.0, 1.0, 1.0))
    assert f["gtvn_lesion_count"] == 2


def test_ball_kernel_holds_about_one_millilitre():
    for spacing in [(1.0, 1.0, 1.0), (0.8, 0.8, 2.0)]:
        kernel = lm.ball_kernel(spacing)
        assert kernel.sum() * lm.voxel_volume_mm3(spacing) == pytest.approx(1000.0, rel=0.08)
    assert lm.ball_kernel((7.0, 7.0, 7.0)).sum() == 1  # voxels larger than the ball: centre only


def test_suv_peak_equals_brute_force_definition_including_image_border():
    rng = np.random.default_rng(3)
    spacing = (2.0, 1.5, 1.5)
    pet = rng.gamma(2.0, 2.0, size=(12, 14, 13))
    mask = np.zeros(pet.shape, bool)
    mask[0:3, 5:9, 10:13] = True  # touches the image border (z = 0, x = last)
    mask[7, 2, 2] = True
    kernel_offsets = np.argwhere(lm.ball_kernel(spacing)) - np.array(lm.ball_kernel(spacing).shape) // 2
    best = -np.inf
    for v in np.argwhere(mask):
        points = v + kernel_offsets
        inside = np.all((points >= 0) & (points < pet.shape), axis=1)
        best = max(best, pet[tuple(points[inside].T)].mean())  # mean over in-image voxels only
    assert lm.suv_peak(pet, mask, spacing) == pytest.approx(best, rel=1e-9)
    assert lm.suv_peak(pet, np.zeros_like(mask), spacing) == 0.0


def test_surface_of_a_single_voxel_and_sphericity_edge_cases():
    one = np.zeros((3, 3, 3), bool)
    one[1, 1, 1] = True
    # Marching cubes turns one voxel into an octahedron with its vertices at the face centres:
    # 8 triangles with legs (half-spacings) 1, 0.5, 0.5 mm here; volume 4/3 * 1 * 0.5 * 0.5 mm^3.
    a, b, c = 1.0, 0.5, 0.5
    octahedron_area = 4.0 * math.sqrt((a * b) ** 2 + (b * c) ** 2 + (a * c) ** 2)
    assert lm.surface_area_mm2(one, (2.0, 1.0, 1.0)) == pytest.approx(octahedron_area)
    assert lm.mesh_volume_area(one, (2.0, 1.0, 1.0))[0] == pytest.approx(4.0 / 3.0 * a * b * c)
    assert lm.mesh_sphericity(one, (1.0, 1.0, 1.0)) == pytest.approx(0.8456, abs=1e-4)
    assert lm.sphericity(0.0, 0.0) == 0.0
    assert lm.max_pairwise_distance(np.zeros((1, 3))) == 0.0
