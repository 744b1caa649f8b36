"""IBSI shape features (mesh) and the MIRP radiomics block of the feature table (nnunet_hecktor.prognosis)."""

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_hecktor.cli import main as cli_main
from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.prognosis import lesion_measures as lm
from nnunet_hecktor.prognosis import radiomics as rad
from nnunet_hecktor.prognosis.features import extract_features, read_feature_table, write_feature_table

# The IBSI 1 digital phantom (Image Biomarker Standardisation Initiative reference manual; design by
# A. Zwanenburg, CC BY 4.0): 5 x 4 x 4 voxels of 2 mm, grey levels 1-6, an ROI of 74 voxels.
# Arrays (z, y, x); z = slice index.
PHANTOM_IMAGE = np.array([
    [[1, 4, 4, 1, 1], [1, 4, 6, 1, 1], [4, 1, 6, 4, 1], [4, 4, 6, 4, 1]],
    [[1, 4, 4, 1, 1], [1, 1, 6, 1, 1], [1, 1, 3, 1, 1], [4, 4, 6, 1, 1]],
    [[1, 4, 4, 1, 1], [1, 1, 1, 1, 1], [1, 1, 9, 1, 1], [1, 1, 6, 1, 1]],
    [[1, 4, 4, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 6, 1, 1]],
], dtype=float)
PHANTOM_MASK = np.ones((4, 4, 5), dtype=bool)
for _zyx in [(1, 2, 0), (2, 0, 3), (2, 0, 4), (2, 2, 2), (3, 0, 3), (3, 0, 4)]:
    PHANTOM_MASK[_zyx] = False
PHANTOM_SPACING = (2.0, 2.0, 2.0)

# IBSI reference values of the phantom (consensus values, 3 significant digits) and their
# tolerances; 0 tolerance means "equal after rounding to 3 significant digits".
REFERENCE_SHAPE = {  # IBSI name: (MIRP column, reference, tolerance)
    "volume (mesh)": ("morph_volume", 556.0, 4.0),
    "approximate volume": ("morph_vol_approx", 592.0, 4.0),
    "surface area (mesh)": ("morph_area_mesh", 388.0, 3.0),
    "surface to volume ratio": ("morph_av", 0.698, 0.004),
    "compactness 2": ("morph_comp_2", 0.599, 0.004),
    "sphericity": ("morph_sphericity", 0.843, 0.005),
    "asphericity": ("morph_asphericity", 0.186, 0.001),
    "maximum 3D diameter": ("morph_diam", 13.1, 0.1),
    "major axis length": ("morph_pca_maj_axis", 11.4, 0.1),
    "elongation": ("morph_pca_elongation", 0.816, 0.005),
    "flatness": ("morph_pca_flatness", 0.749, 0.005),
    "volume density (AABB)": ("morph_vol_dens_aabb", 0.869, 0.005),
    "volume density (convex hull)": ("morph_vol_dens_conv_hull", 0.961, 0.006),
    "Moran's I": ("morph_moran_i", 0.0397, 0.0003),
}
# First-order statistics on the grey levels g (the image enters as PET = a g + b: see below).
REFERENCE_STATS = {"stat_mean": 2.15, "stat_var": 3.05, "stat_skew": 1.08, "stat_kurt": -0.355,
                   "stat_median": 1.0, "stat_p90": 4.0, "stat_max": 6.0, "stat_energy": 567.0}
# Texture, 3D, one matrix merged over directions (the settings of radiomics.py).
REFERENCE_TEXTURE = {"cm_joint_max_d1_3d_v_mrg": 0.509, "cm_joint_entr_d1_3d_v_mrg": 2.57,
                     "cm_contrast_d1_3d_v_mrg": 5.12, "cm_corr_d1_3d_v_mrg": 0.183,
                     "rlm_sre_3d_v_mrg": 0.729, "rlm_lre_3d_v_mrg": 2.76,
                     "szm_sze_3d": 0.255, "szm_lze_3d": 550.0, "szm_z_perc_3d": 0.0676,
                     "ngt_coarseness_3d": 0.0296, "ngt_contrast_3d": 0.584, "ngt_busyness_3d": 6.54}


def within(value, reference, tolerance=0.0):
    """IBSI agreement: |value - reference| <= tolerance after rounding value to 3 significant digits."""
    rounded = float(f"{value:.3g}")
    return abs(rounded - reference) <= tolerance + 1e-12


def test_mesh_shape_matches_the_ibsi_phantom_reference():
    volume, area = lm.mesh_volume_area(PHANTOM_MASK, PHANTOM_SPACING)
    assert within(volume, 556.0, 4.0) and within(area, 388.0, 3.0)
    assert within(lm.mesh_sphericity(PHANTOM_MASK, PHANTOM_SPACING), 0.843, 0.005)
    assert within(lm.surface_area_mm2(PHANTOM_MASK, PHANTOM_SPACING), 388.0, 3.0)
    assert lm.mesh_volume_area(np.zeros((3, 3, 3), bool), (1, 1, 1)) == (0.0, 0.0)
    assert lm.mesh_sphericity(np.zeros((3, 3, 3), bool), (1, 1, 1)) == 0.0


def _random_shapes(rng):
    """Masks of many kinds: smoothed-noise blobs, oriented ellipsoids, thin plates and lines,
    single voxels, scattered voxels (many components), shells with a cavity."""
    from scipy import ndimage

    n = 20
    z, y, x = np.meshgrid(*(np.arange(n) - n / 2 + 0.5,) * 3, indexing="ij")
    points = np.stack([z, y, x], -1)
    for _ in range(40):
        noise = ndimage.gaussian_filter(rng.normal(size=(n, n, n)), rng.uniform(0.8, 3.0))
        yield noise > np.quantile(noise, rng.uniform(0.5, 0.97))
    for _ in range(40):
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        axes = rng.uniform(0.4, 9.0, 3)
        local = points @ q
        yield ((local / axes) ** 2).sum(-1) <= 1.0
    for _ in range(20):  # plates and lines one voxel thick
        mask = np.zeros((n, n, n), bool)
        a, b = sorted(rng.integers(1, n - 1, 2))
        if rng.uniform() < 0.5:
            mask[n // 2, a:b + 1, 2:n - 2] = True
        else:
            mask[a:b + 1, n // 2, n // 2] = True
        yield mask
    single = np.zeros((3, 3, 3), bool)
    single[1, 1, 1] = True
    yield single
    for _ in range(10):
        yield rng.uniform(size=(n, n, n)) < rng.uniform(0.01, 0.3)
    shell = (np.sqrt(x ** 2 + y ** 2 + z ** 2) <= 8) & (np.sqrt(x ** 2 + y ** 2 + z ** 2) > 4)
    yield shell


def test_sphericity_never_exceeds_one_on_random_shapes():
    rng = np.random.default_rng(2026)
    values = []
    for mask in _random_shapes(rng):
        if not mask.any():
            continue
        spacing = tuple(rng.choice([0.5, 0.98, 1.0, 2.0, 3.0, 5.0], 3))
        value = lm.mesh_sphericity(mask, spacing)
        volume, area = lm.mesh_volume_area(mask, spacing)
        assert volume > 0 and area > 0
        values.append(value)
    values = np.array(values)
    assert len(values) >= 110
    # Largest observed: 0.877 over 112 shapes (seed 2026); voxelised balls reach 0.85-0.92.
    assert 0.0 < values.min() and values.max() <= 1.0


def test_voxelised_ball_sphericity_approaches_but_stays_below_one():
    for radius, spacing in [(10.0, (1.0, 1.0, 1.0)), (20.0, (3.0, 0.98, 0.98)), (15.0, (2.0, 2.0, 2.0))]:
        axes = [(np.arange(int(2.6 * radius / s)) - 1.3 * radius / s) * s + 0.13 for s in spacing]
        z, y, x = np.meshgrid(*axes, indexing="ij")
        ball = x ** 2 + y ** 2 + z ** 2 <= radius ** 2
        assert 0.84 <= lm.mesh_sphericity(ball, spacing) <= 1.0


# ---------------------------------------------------------------- MIRP


def _phantom_patient():
    """The phantom as one patient (GTVp), its grey levels g as PET = 0.5 g - 0.25 SUV and CT =
    25 g - 1012.5 HU: with the fixed bin widths (0.5 SUV from 0, 25 HU from -1000 HU) both
    discretise back to g, so texture can be compared with the IBSI values of the grey levels."""
    seg = PHANTOM_MASK.astype(np.uint8)  # label 1: GTVp; no GTVn
    pet = rad.PET_BIN_WIDTH_SUV * PHANTOM_IMAGE - rad.PET_BIN_WIDTH_SUV / 2
    ct = rad.CT_BIN_WIDTH_HU * PHANTOM_IMAGE + rad.CT_RANGE_HU[0] - rad.CT_BIN_WIDTH_HU / 2
    return ct, pet, seg


@pytest.fixture(scope="module")
def phantom_radiomics():
    pytest.importorskip("mirp")
    ct, pet, seg = _phantom_patient()
    return rad.radiomics_features(ct, pet, seg, PHANTOM_SPACING, "all")


def test_mirp_features_match_the_ibsi_phantom_reference(phantom_radiomics):
    f = phantom_radiomics
    for ibsi_name, (column, reference, tolerance) in REFERENCE_SHAPE.items():
        assert within(f[f"rad_gtvp_{column}"], reference, tolerance), (ibsi_name, f[f"rad_gtvp_{column}"])
    # Affine intensity map: location/scale statistics transform, shape statistics do not.
    a, b = rad.PET_BIN_WIDTH_SUV, -rad.PET_BIN_WIDTH_SUV / 2
    pet_stats = {"stat_mean": (a * 2.15 + b, a * 0.005), "stat_var": (a * a * 3.05, a * a * 0.005),
                 "stat_skew": (1.08, 0.005), "stat_kurt": (-0.355, 0.0005),
                 "stat_median": (a + b, 1e-9), "stat_max": (6 * a + b, 1e-9)}
    for name, (reference, tolerance) in pet_stats.items():
        assert f[f"rad_gtvp_pet_{name}"] == pytest.approx(reference, abs=tolerance), name
    for name, reference in REFERENCE_TEXTURE.items():
        for modality, suffix in (("pet", "_fbs_w0.5"), ("ct", "_fbs_w25.0")):
            value = f[f"rad_gtvp_{modality}_{name}{suffix}"]
            assert within(value, reference), (modality, name, value)
    # The phantom has no label 2: every GTVn column holds its empty value.
    assert all(v == 0.0 for k, v in f.items() if k.startswith("rad_gtvn_"))
    assert all(math.isfinite(v) for v in f.values())


def test_mirp_shape_equals_the_table_mesh_on_an_anisotropic_blob():
    pytest.importorskip("mirp")
    from scipy import ndimage

    rng = np.random.default_rng(7)
    noise = ndimage.gaussian_filter(rng.normal(size=(14, 18, 18)), 2.0)
    seg = (noise > np.quantile(noise, 0.8)).astype(np.uint8) * 2  # as a GTVn
    spacing = (3.0, 0.98, 1.2)
    f = rad.radiomics_features(np.zeros(seg.shape), rng.uniform(0, 5, seg.shape), seg, spacing, "shape")
    volume, area = lm.mesh_volume_area(seg > 0, spacing)
    assert f["rad_gtvn_morph_volume"] == pytest.approx(volume, rel=1e-5)
    assert f["rad_gtvn_morph_area_mesh"] == pytest.approx(area, rel=1e-5)
    assert f["rad_gtvn_morph_sphericity"] == pytest.approx(lm.mesh_sphericity(seg > 0, spacing), rel=1e-5)
    assert f["rad_gtvp_morph_volume"] == 0.0  # no GTVp
    assert not any(k.startswith(("rad_gtvn_pet_", "rad_gtvn_ct_")) for k in f)  # shape level only


def test_tiny_structures_give_finite_values():
    pytest.importorskip("mirp")
    seg = np.zeros((6, 6, 6), np.uint8)
    seg[2, 2, 2] = 1  # one voxel: texture is undefined for MIRP, and becomes 0
    seg[4, 4, 3:5] = 2
    rng = np.random.default_rng(0)
    f = rad.radiomics_features(rng.normal(0, 50, seg.shape), rng.uniform(0, 5, seg.shape), seg, (3.0, 1.0, 1.0), "all")
    assert set(f) == set(rad.radiomics_feature_names("all"))
    assert all(math.isfinite(v) for v in f.values())
    assert f["rad_gtvp_morph_sphericity"] == pytest.approx(lm.mesh_sphericity(seg == 1, (3.0, 1.0, 1.0)))
    assert 0.0 < f["rad_gtvn_morph_sphericity"] <= 1.0


def test_levels_and_a_missing_library_are_reported_plainly(monkeypatch):
    assert rad.radiomics_feature_names("none") == ()
    assert rad.radiomics_features(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), np.ones((2, 2, 2)), (1, 1, 1)) == {}
    with pytest.raises(HecktorError, match="radiomics must be one of none, shape, all"):
        rad.check_level("texture")
    monkeypatch.setattr(rad, "mirp_available", lambda: False)
    with pytest.raises(HecktorError, match="pip install 'mirp"):
        rad.check_level("shape")


def _write_patient(images, labels, pid):
    spacing = (3.0, 1.5, 1.5)  # z, y, x mm
    z, y, x = np.meshgrid(np.arange(12), np.arange(24), np.arange(24), indexing="ij")
    label = np.zeros(z.shape, np.uint8)
    label[((x - 8) * 1.5) ** 2 + ((y - 12) * 1.5) ** 2 + ((z - 6) * 3.0) ** 2 <= 8.0 ** 2] = 1
    label[((x - 19) * 1.5) ** 2 + ((y - 12) * 1.5) ** 2 + ((z - 6) * 3.0) ** 2 <= 4.0 ** 2] = 2
    pet = (2.0 + 6.0 * (label > 0) + 0.05 * x).astype(np.float32)
    ct = (30.0 + 2.0 * y).astype(np.float32)
    for array, path in ((ct, images / f"{pid}_0000.nii.gz"), (pet, images / f"{pid}_0001.nii.gz"),
                        (label, labels / f"{pid}.nii.gz")):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(spacing[::-1])
        path.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image, str(path))


def test_feature_table_with_shape_radiomics(tmp_path, capsys):
    pytest.importorskip("mirp")
    images, labels = tmp_path / "imagesTr", tmp_path / "labelsTr"
    _write_patient(images, labels, "CHUP-001")
    features = extract_features(images, labels, seg_source="ground_truth", progress=False, radiomics="shape")
    table = features.table
    names = rad.radiomics_feature_names("shape")
    assert list(table.columns[-len(names):]) == list(names)
    row = table.loc["CHUP-001"]
    assert 0.0 < row["rad_gtvp_morph_sphericity"] <= 1.0 and 0.0 < row["rad_gtvn_morph_sphericity"] <= 1.0
    assert row["rad_gtvp_morph_sphericity"] == pytest.approx(row["gtvp_sphericity"], rel=1e-5)
    assert row["rad_gtvp_morph_area_mesh"] == pytest.approx(row["gtvp_surface_mm2"], rel=1e-5)
    table_path, sidecar = write_feature_table(features, tmp_path / "out" / "features.csv")
    meta = json.loads(sidecar.read_text())
    assert meta["radiomics"] == "shape" and meta["radiomics_settings"]["pet_bin_width_suv"] == 0.5
    assert meta["radiomics_features"] == list(names)
    again = read_feature_table(table_path)
    assert set(names) <= set(again.columns)
    # The CLI option reaches the table; without it the table has no rad_ column.
    assert cli_main(["features", "--images", str(images), "--seg", str(labels), "--seg-source",
                     "ground_truth", "--output", str(tmp_path / "plain.csv"), "--quiet"]) == 0
    assert not any(c.startswith("rad_") for c in read_feature_table(tmp_path / "plain.csv").columns)
