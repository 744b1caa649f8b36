"""AJCC 7 geometry rule and the staging geometry features (diameters, extents, node sides)."""

from __future__ import annotations

import numpy as np
import pytest

from nnunet_hecktor.prognosis.lesion_measures import extents_mm, max_diameter_mm
from nnunet_hecktor.prognosis.patient_features import compute_features
from nnunet_hecktor.prognosis.stage_geometry import (
    STAGE_GEOMETRY_NAMES,
    empty_stage_geometry,
    stage_geometry_features,
)
from nnunet_hecktor.prognosis.staging_rules import (
    RULE_FEATURES,
    ajcc7_n_stage,
    ajcc7_rule_stage,
    ajcc7_rule_table,
    ajcc7_t_stage,
)


@pytest.mark.parametrize("diameter, stage", [
    (0.0, "T0"), (5.0, "T1"), (20.0, "T1"), (20.01, "T2"), (40.0, "T2"), (40.5, "T3"), (90.0, "T3"),
])
def test_t_stage_cut_offs(diameter, stage):
    assert ajcc7_t_stage(diameter) == stage


@pytest.mark.parametrize("count, largest, contra, bilateral, stage", [
    (0, 0.0, False, False, "N0"),
    (1, 12.0, False, False, "N1"),
    (1, 30.0, False, False, "N1"),    # <= 3 cm
    (1, 31.0, False, False, "N2"),    # N2a: single ipsilateral 3-6 cm
    (2, 15.0, False, False, "N2"),    # N2b: several ipsilateral
    (1, 15.0, True, False, "N2"),     # N2c: contralateral
    (2, 15.0, False, True, "N2"),     # N2c: bilateral
    (1, 60.0, False, False, "N2"),
    (1, 61.0, False, False, "N3"),    # > 6 cm
    (3, 65.0, True, True, "N3"),
])
def test_n_stage_rules(count, largest, contra, bilateral, stage):
    assert ajcc7_n_stage(count, largest, contra, bilateral) == stage


def test_rule_reads_the_named_features_and_names_what_is_missing():
    features = {"gtvp_max_diameter_mm": 35.0, "gtvn_ipsilateral_count": 2, "gtvn_contralateral_count": 0,
                "gtvn_largest_node_diameter_mm": 20.0, "gtvn_contralateral": 0, "gtvn_bilateral": 0}
    assert ajcc7_rule_stage(features) == ("T2", "N2")
    with pytest.raises(KeyError, match="gtvn_bilateral"):
        ajcc7_rule_stage({k: v for k, v in features.items() if k != "gtvn_bilateral"})
    assert set(RULE_FEATURES) <= set(features)


def test_rule_table_one_row_per_patient():
    import pandas as pd

    table = pd.DataFrame({"gtvp_max_diameter_mm": [0.0, 15.0, 50.0], "gtvn_ipsilateral_count": [0, 1, 1],
                          "gtvn_contralateral_count": [0, 0, 0],
                          "gtvn_largest_node_diameter_mm": [0.0, 10.0, 70.0], "gtvn_contralateral": [0, 0, 0],
                          "gtvn_bilateral": [0, 0, 0]}, index=["A-001", "A-002", "A-003"])
    out = ajcc7_rule_table(table)
    assert out.loc["A-001"].tolist() == ["T0", "N0"]
    assert out.loc["A-002"].tolist() == ["T1", "N1"]
    assert out.loc["A-003"].tolist() == ["T3", "N3"]


def _ball(shape, centre_mm, radius_mm, spacing_zyx):
    axes = [np.arange(n) * s for n, s in zip(shape, spacing_zyx)]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    return (z - centre_mm[0]) ** 2 + (y - centre_mm[1]) ** 2 + (x - centre_mm[2]) ** 2 <= radius_mm ** 2


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (3.0, 1.0, 1.0), (4.0, 3.5, 3.5), (6.0, 4.8, 4.8)])
@pytest.mark.parametrize("diameter", [12.0, 30.0, 50.0])
def test_max_diameter_of_a_ball_is_its_diameter_at_any_voxel_size(spacing, diameter):
    shape = tuple(int(70 / s) + 2 for s in spacing)
    centre = (35.3, 34.1, 35.7)
    mask = _ball(shape, centre, diameter / 2, spacing)
    assert max_diameter_mm(mask, spacing) == pytest.approx(diameter, abs=2.5)


def test_max_diameter_of_an_elongated_box_and_edge_cases():
    mask = np.zeros((10, 10, 40), dtype=bool)
    mask[4:6, 4:6, 5:35] = True  # 30 voxels along x, 2 x 2 across
    # centres: 29 mm along x, 1 mm along y and z -> sqrt(29^2 + 1 + 1); + half a voxel along it
    expected = np.sqrt(29 ** 2 + 2) + 0.5
    assert max_diameter_mm(mask, (1.0, 1.0, 1.0)) == pytest.approx(expected, abs=0.02)
    assert extents_mm(mask, (2.0, 1.5, 1.0)) == (4.0, 3.0, 30.0)
    assert max_diameter_mm(np.zeros((3, 3, 3), bool), (1, 1, 1)) == 0.0
    assert extents_mm(np.zeros((3, 3, 3), bool), (1, 1, 1)) == (0.0, 0.0, 0.0)
    single = np.zeros((3, 3, 3), bool)
    single[1, 1, 1] = True
    assert max_diameter_mm(single, (3.0, 2.0, 1.0)) == 0.5


SPACING = (2.0, 2.0, 2.0)
SHAPE = (40, 60, 80)  # z, y, x: x spans 160 mm


def _neck(body_centre_x_mm=80.0):
    """CT: a body cylinder (HU 40) around x = body_centre_x_mm in air (-1000)."""
    z, y, x = np.meshgrid(*[np.arange(n) * s for n, s in zip(SHAPE, SPACING)], indexing="ij")
    body = ((x - body_centre_x_mm) / 45.0) ** 2 + ((y - 60.0) / 50.0) ** 2 <= 1.0
    return np.where(body, 40.0, -1000.0).astype(np.float32)


def _patient(primary_x, nodes, body_centre_x_mm=80.0):
    """Label map: a 24 mm primary at x = primary_x (mm) and nodes (x mm, diameter mm) at other heights."""
    seg = np.zeros(SHAPE, dtype=np.uint8)
    if primary_x is not None:
        seg[_ball(SHAPE, (40.0, 60.0, primary_x), 12.0, SPACING)] = 1
    for k, (x, diameter) in enumerate(nodes):
        seg[_ball(SHAPE, (12.0 + 22.0 * (k % 3), 30.0 + 30.0 * (k // 3), x), diameter / 2, SPACING)] = 2
    return seg, _neck(body_centre_x_mm)


def test_geometry_of_a_lateral_primary_with_ipsilateral_and_contralateral_nodes():
    # midline at x = 80 mm; primary 20 mm to the +x side; nodes at +x (ipsilateral) and -x (contralateral)
    seg, ct = _patient(100.0, [(118.0, 16.0), (124.0, 10.0), (50.0, 20.0)])
    f = stage_geometry_features(seg, SPACING, ct=ct)
    assert set(f) == set(STAGE_GEOMETRY_NAMES)
    assert f["gtvp_max_diameter_mm"] == pytest.approx(24.0, abs=2.5)
    assert f["gtvp_extent_x_mm"] == pytest.approx(24.0, abs=2.5)
    assert f["gtvp_midline_offset_mm"] == pytest.approx(20.0, abs=1.0)
    assert f["gtvn_ipsilateral_count"] == 2 and f["gtvn_contralateral_count"] == 1
    assert f["gtvn_contralateral"] == 1 and f["gtvn_bilateral"] == 1
    assert f["gtvn_largest_node_diameter_mm"] == pytest.approx(20.0, abs=2.5)
    assert f["gtvn_largest_node_volume_ml"] == pytest.approx(4 / 3 * np.pi * 10 ** 3 / 1000, rel=0.15)
    assert f["gtvn_nearest_to_primary_mm"] > 0


def test_node_sides_follow_the_body_midline_not_the_image_centre():
    # Body shifted to x = 100 mm: a node at x = 88 mm and a primary at 120 mm are on opposite sides of
    # the body midline although both lie right of the image centre (79 mm).
    seg, ct = _patient(120.0, [(88.0, 12.0)], body_centre_x_mm=100.0)
    with_ct = stage_geometry_features(seg, SPACING, ct=ct)
    assert with_ct["gtvn_contralateral"] == 1 and with_ct["gtvn_bilateral"] == 0  # only one node
    without_ct = stage_geometry_features(seg, SPACING)  # image centre as midline: same side
    assert without_ct["gtvn_contralateral"] == 0
    assert with_ct["gtvp_midline_offset_mm"] == pytest.approx(20.0, abs=0.5)
    assert stage_geometry_features(seg, SPACING, midline_mm=100.0)["gtvn_contralateral"] == 1


def test_midline_nodes_are_ipsilateral_and_no_primary_uses_the_largest_node():
    seg, ct = _patient(100.0, [(82.0, 12.0)])  # node 2 mm from the midline
    f = stage_geometry_features(seg, SPACING, ct=ct)
    assert f["gtvn_contralateral"] == 0 and f["gtvn_ipsilateral_count"] == 1
    seg, ct = _patient(None, [(50.0, 20.0), (115.0, 10.0)])
    f = stage_geometry_features(seg, SPACING, ct=ct)
    assert f["gtvp_max_diameter_mm"] == 0 and f["gtvn_nearest_to_primary_mm"] == 0
    assert f["gtvn_ipsilateral_count"] == 1 and f["gtvn_contralateral_count"] == 1 and f["gtvn_bilateral"] == 1
    assert ajcc7_rule_stage(f) == ("T0", "N2")


def test_empty_mask_and_the_feature_table_carries_the_geometry():
    seg, ct = _patient(100.0, [(118.0, 16.0)])
    assert stage_geometry_features(np.zeros_like(seg), SPACING, ct=ct) == empty_stage_geometry()
    pet = np.where(seg > 0, 8.0, 1.0).astype(np.float32)
    f = compute_features(ct, pet, seg, SPACING)
    assert {k: f[k] for k in STAGE_GEOMETRY_NAMES} == stage_geometry_features(seg, SPACING, ct=ct)
    assert ajcc7_rule_stage(f) == ("T2", "N1")


def test_rule_baseline_on_a_folder_of_label_files(tmp_path):
    import SimpleITK as sitk

    from nnunet_hecktor.baselines import ajcc7_rule_stages

    for pid, (primary, nodes) in {"CHUM-001": (100.0, [(118.0, 16.0), (50.0, 20.0)]),
                                  "CHUM-002": (None, [])}.items():
        seg, ct = _patient(primary, nodes)
        for array, name in ((seg, f"{pid}.nii.gz"), (ct, f"{pid}__CT.nii.gz")):
            image = sitk.GetImageFromArray(array)
            image.SetSpacing(SPACING[::-1])
            sitk.WriteImage(image, str(tmp_path / name))
    (tmp_path / "seg").mkdir()
    for pid in ("CHUM-001", "CHUM-002"):
        (tmp_path / f"{pid}.nii.gz").rename(tmp_path / "seg" / f"{pid}.nii.gz")
    rows = ajcc7_rule_stages(tmp_path / "seg", images_dir=tmp_path)
    assert rows == {"CHUM-001": {"t_stage": "T2", "n_stage": "N2"}, "CHUM-002": {"t_stage": "T0", "n_stage": "N0"}}
