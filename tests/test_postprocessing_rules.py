"""Post-processing rules on small hand-built volumes, the JSON configuration and the folder API."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_hecktor.errors import HecktorError, InputDataError
from nnunet_hecktor.postprocessing.apply import cranial_face, postprocess_folder, postprocess_image
from nnunet_hecktor.postprocessing.config import ConfigError, PostprocessingConfig, load_config, save_config
from nnunet_hecktor.postprocessing.rules import (
    VolumeFace,
    apply_probability_threshold,
    close_label,
    ellipsoid,
    gtvn_components_touching_gtvp,
    gtvn_distances_to_gtvp,
    keep_largest_components,
    keep_single_gtvp,
    postprocess_segmentation,
    remove_border_components,
    remove_distant_gtvn,
    remove_small_components,
    resolve_gtvn_touching_gtvp,
    rule_steps,
)
from nnunet_hecktor.schema import GTVN, GTVP


def row(length: int, *runs: tuple[int, int, int]) -> np.ndarray:
    """1 x 1 x length label array with (start, stop, label) runs."""
    seg = np.zeros((1, 1, length), dtype=np.uint8)
    for start, stop, label in runs:
        seg[0, 0, start:stop] = label
    return seg


def flat(seg: np.ndarray) -> list[int]:
    return seg.ravel().tolist()


# ------------------------------------------------------------------ min size
# (name, threshold, voxel volume, expected kept GTVn runs) with GTVn components of 3 and 10 voxels
MIN_SIZE_CASES = [
    ("off", 0, 1.0, [(0, 3), (5, 15)]),
    ("voxels: 3 < 4 removed", 4, 1.0, [(5, 15)]),
    ("voxels: 10 not < 10 kept", 10, 1.0, [(5, 15)]),
    ("voxels: both below 11", 11, 1.0, []),
    ("mm3 with 2 mm3 voxels: 6 < 10 removed, 20 kept", 10, 2.0, [(5, 15)]),
    ("mm3 with 2 mm3 voxels: 20 < 21 removed", 21, 2.0, []),
    ("mm3 with 0.5 mm3 voxels: 1.5 < 2 removed", 2, 0.5, [(5, 15)]),
]


@pytest.mark.parametrize("name, threshold, voxel_volume, kept", MIN_SIZE_CASES, ids=[c[0] for c in MIN_SIZE_CASES])
def test_remove_small_components(name, threshold, voxel_volume, kept):
    seg = row(20, (0, 3, 2), (5, 15, 2), (16, 18, 1))
    out = remove_small_components(seg, 2, threshold, voxel_volume)
    assert flat(out) == flat(row(20, *[(a, b, 2) for a, b in kept], (16, 18, 1)))
    assert flat(seg) == flat(row(20, (0, 3, 2), (5, 15, 2), (16, 18, 1)))  # input untouched


def test_min_size_unit_from_config_uses_spacing():
    seg = row(20, (0, 3, 2), (5, 15, 2))
    mm3 = PostprocessingConfig(min_component_size={2: 10.0})  # voxels of 2 mm3: sizes 6 and 20 mm3
    voxels = PostprocessingConfig(min_component_size={2: 10.0}, min_component_size_unit="voxels")
    assert flat(postprocess_segmentation(seg, (2.0, 1.0, 1.0), mm3)) == flat(row(20, (5, 15, 2)))
    assert flat(postprocess_segmentation(seg, (0.1, 1.0, 1.0), mm3)) == flat(row(20))  # 0.3 and 1 mm3
    assert flat(postprocess_segmentation(seg, (0.1, 1.0, 1.0), voxels)) == flat(row(20, (5, 15, 2)))


# ------------------------------------------------------------------ keep K / single GTVp
@pytest.mark.parametrize("k, kept", [(1, [(9, 17)]), (2, [(0, 5), (9, 17)]), (3, [(0, 5), (6, 8), (9, 17)]),
                                     (5, [(0, 5), (6, 8), (9, 17)])])
def test_keep_largest_components(k, kept):
    seg = row(20, (0, 5, 2), (6, 8, 2), (9, 17, 2))  # sizes 5, 2, 8
    assert flat(keep_largest_components(seg, 2, k)) == flat(row(20, *[(a, b, 2) for a, b in kept]))


def test_keep_largest_ties_go_to_raster_order():
    seg = row(20, (0, 3, 1), (4, 7, 1))
    assert flat(keep_largest_components(seg, 1, 1)) == flat(row(20, (0, 3, 1)))


@pytest.mark.parametrize("mode, expected", [
    ("remove", [(0, 4, 0), (5, 15, 1), (16, 18, 2)]),
    ("to_gtvn", [(0, 4, 2), (5, 15, 1), (16, 18, 2)]),
])
def test_single_gtvp(mode, expected):
    seg = row(20, (0, 4, 1), (5, 15, 1), (16, 18, 2))
    assert flat(keep_single_gtvp(seg, mode)) == flat(row(20, *expected))


def test_single_gtvp_with_one_or_no_component_is_identity():
    one = row(10, (2, 5, 1), (7, 9, 2))
    assert keep_single_gtvp(one) is one
    none = row(10, (7, 9, 2))
    assert keep_single_gtvp(none, "to_gtvn") is none


# ------------------------------------------------------------------ cranial border
def _column(*runs: tuple[int, int, int], length: int = 12) -> np.ndarray:
    """length x 1 x 1 label array (runs along axis 0, the cranio-caudal axis here)."""
    return row(length, *runs).reshape(length, 1, 1)


@pytest.mark.parametrize("labels, at_end, expected", [
    # GTVp 0..2 touches index 0, GTVn 5..7 touches nothing, GTVn 9..12 touches the last index.
    ((2,), True, [(0, 2, 1), (5, 7, 2)]),
    ((1, 2), True, [(0, 2, 1), (5, 7, 2)]),
    ((2,), False, [(0, 2, 1), (5, 7, 2), (9, 12, 2)]),
    ((1, 2), False, [(5, 7, 2), (9, 12, 2)]),
])
def test_remove_border_components(labels, at_end, expected):
    seg = _column((0, 2, 1), (5, 7, 2), (9, 12, 2))
    out = remove_border_components(seg, labels, VolumeFace(axis=0, at_end=at_end))
    assert flat(out) == flat(_column(*expected))
    assert flat(seg) == flat(_column((0, 2, 1), (5, 7, 2), (9, 12, 2)))  # input untouched


def test_cranial_border_on_another_axis_and_in_a_crop():
    seg = np.zeros((2, 3, 6), np.uint8)
    seg[0, 0, 4:6] = 2  # touches the last index of axis 2
    seg[1, 2, 0:2] = 2  # touches index 0 of axis 2
    out = remove_border_components(seg, (2,), VolumeFace(axis=2, at_end=True))
    assert out[0, 0, 4:6].tolist() == [0, 0] and out[1, 2, 0:2].tolist() == [2, 2]
    # A crop that stops short of the face has no cranial face: nothing is removed there.
    face = VolumeFace(axis=2, at_end=True).within((slice(0, 2), slice(0, 3), slice(0, 5)), seg.shape)
    assert not face.present
    assert np.array_equal(remove_border_components(seg[:, :, :5], (2,), face), seg[:, :, :5])


def _oriented_image(array: np.ndarray, direction: tuple[float, ...]) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetDirection(direction)
    return image


@pytest.mark.parametrize("direction, expected", [
    ((1, 0, 0, 0, 1, 0, 0, 0, 1), VolumeFace(axis=0, at_end=True)),    # slices from the feet up
    ((1, 0, 0, 0, 1, 0, 0, 0, -1), VolumeFace(axis=0, at_end=False)),  # slices from the head down
    ((-1, 0, 0, 0, -1, 0, 0, 0, 1), VolumeFace(axis=0, at_end=True)),  # RAS-style in-plane flips
    ((1, 0, 0, 0, 0, 1, 0, 1, 0), VolumeFace(axis=1, at_end=True)),    # index axis 1 runs along z
    ((0, 0, 1, 0, 1, 0, -1, 0, 0), VolumeFace(axis=2, at_end=False)),  # index axis 0 runs along -z
])
def test_cranial_face_from_the_image_direction(direction, expected):
    assert cranial_face(_oriented_image(np.zeros((4, 5, 6), np.uint8), direction)) == expected


def test_postprocess_image_finds_the_cranial_face_from_the_direction():
    array = _column((0, 2, 2), (5, 7, 2), (10, 12, 2))
    config = PostprocessingConfig(cranial_border_components=(2,))
    feet_up = sitk.GetArrayFromImage(postprocess_image(_oriented_image(array, (1, 0, 0, 0, 1, 0, 0, 0, 1)), config))
    head_down = sitk.GetArrayFromImage(postprocess_image(_oriented_image(array, (1, 0, 0, 0, 1, 0, 0, 0, -1)), config))
    assert flat(feet_up) == flat(_column((0, 2, 2), (5, 7, 2)))
    assert flat(head_down) == flat(_column((5, 7, 2), (10, 12, 2)))
    caudal = PostprocessingConfig(caudal_border_components=(2,))
    feet_up = sitk.GetArrayFromImage(postprocess_image(_oriented_image(array, (1, 0, 0, 0, 1, 0, 0, 0, 1)), caudal))
    assert flat(feet_up) == flat(_column((5, 7, 2), (10, 12, 2)))
    with pytest.raises(ValueError, match="cranial_face"):
        postprocess_segmentation(array, (1, 1, 1), config)


# ------------------------------------------------------------------ GTVn touching the GTVp
@pytest.mark.parametrize("mode, expected", [
    # GTVn 0..2 is separate, 10..12 touches the GTVp 12..20 (adjacent voxels), 22..24 is one voxel away.
    ("remove", [(0, 2, 2), (12, 20, 1), (22, 24, 2)]),
    ("to_gtvp", [(0, 2, 2), (10, 20, 1), (22, 24, 2)]),
])
def test_gtvn_touching_gtvp(mode, expected):
    seg = row(30, (0, 2, 2), (10, 12, 2), (12, 20, 1), (22, 24, 2))
    assert flat(resolve_gtvn_touching_gtvp(seg, mode)) == flat(row(30, *expected))
    assert flat(seg) == flat(row(30, (0, 2, 2), (10, 12, 2), (12, 20, 1), (22, 24, 2)))  # input untouched


@pytest.mark.parametrize("connectivity, touching", [(6, False), (18, False), (26, True)])
def test_gtvn_touching_gtvp_follows_the_connectivity(connectivity, touching):
    # The GTVn voxel meets the GTVp at a corner only: a neighbour under 26-connectivity alone.
    seg = np.zeros((3, 3, 3), dtype=np.uint8)
    seg[0, 0, 0] = GTVP
    seg[1, 1, 1] = GTVN
    found = gtvn_components_touching_gtvp(seg, connectivity)
    assert found is not None and found[2].tolist() == [touching]


def test_gtvn_touching_gtvp_matches_a_dilation_of_the_full_volume():
    from scipy import ndimage

    rng = np.random.default_rng(3)
    for _ in range(40):
        seg = (rng.random((8, 12, 12)) < 0.25) * rng.integers(1, 3, (8, 12, 12))
        seg = seg.astype(np.uint8)
        near = ndimage.binary_dilation(seg == GTVP, ndimage.generate_binary_structure(3, 3))
        nodes, n = ndimage.label(seg == GTVN, ndimage.generate_binary_structure(3, 3))
        expected = seg.copy()
        for k in range(1, n + 1):
            if (near & (nodes == k)).any():
                expected[nodes == k] = 0
        assert np.array_equal(resolve_gtvn_touching_gtvp(seg, "remove"), expected)


def test_gtvn_touching_gtvp_without_gtvn_or_gtvp_is_identity():
    only_gtvp = row(10, (2, 5, 1))
    assert resolve_gtvn_touching_gtvp(only_gtvp) is only_gtvp
    only_gtvn = row(10, (2, 5, 2))
    assert np.array_equal(resolve_gtvn_touching_gtvp(only_gtvn, "to_gtvp"), only_gtvn)


# ------------------------------------------------------------------ GTVn distance
# GTVp at x = 0..2, GTVn at x = 5..6 and x = 20..21; spacing along x = 2 mm -> distances 6 mm and 36 mm.
@pytest.mark.parametrize("distance, kept", [
    (100, [(5, 7), (20, 22)]), (36, [(5, 7), (20, 22)]), (35.9, [(5, 7)]), (6, [(5, 7)]), (5.9, []),
])
def test_remove_distant_gtvn(distance, kept):
    seg = row(30, (0, 3, 1), (5, 7, 2), (20, 22, 2))
    out = remove_distant_gtvn(seg, (3.0, 3.0, 2.0), distance)
    assert flat(out) == flat(row(30, (0, 3, 1), *[(a, b, 2) for a, b in kept]))


@pytest.mark.parametrize("mode, kept", [("keep", [(5, 7), (20, 22)]), ("remove", [])])
def test_distance_rule_without_gtvp(mode, kept):
    seg = row(30, (5, 7, 2), (20, 22, 2))
    out = remove_distant_gtvn(seg, (1, 1, 1), 5.0, if_no_gtvp=mode)
    assert flat(out) == flat(row(30, *[(a, b, 2) for a, b in kept]))


def test_gtvn_distances_match_brute_force_with_anisotropic_spacing():
    rng = np.random.default_rng(4)
    seg = np.zeros((12, 20, 20), dtype=np.uint8)
    seg[5:7, 8:11, 8:12] = 1
    for _ in range(6):
        z, y, x = rng.integers(0, 11), rng.integers(0, 19), rng.integers(0, 19)
        if not seg[z:z + 2, y:y + 2, x:x + 2].any():
            seg[z:z + 2, y:y + 2, x:x + 2] = 2
    spacing = np.array([3.0, 0.8, 1.1])
    box, labels, distances = gtvn_distances_to_gtvp(seg, spacing, max_distance_mm=1e6)
    p = np.argwhere(seg == 1) * spacing
    full_labels = np.zeros(seg.shape, dtype=int)
    full_labels[box] = labels
    for k in range(1, labels.max() + 1):
        n = np.argwhere(full_labels == k) * spacing
        brute = np.sqrt(((n[:, None, :] - p[None, :, :]) ** 2).sum(-1)).min()
        assert distances[k - 1] == pytest.approx(brute)


# ------------------------------------------------------------------ closing
def two_slabs(gap_label: int = 0) -> np.ndarray:
    """Two 3x3x4 GTVn blocks along x with a one-voxel gap at x = 4."""
    seg = np.zeros((5, 5, 12), dtype=np.uint8)
    seg[1:4, 1:4, 0:4] = 2
    seg[1:4, 1:4, 5:9] = 2
    seg[2, 2, 4] = gap_label
    return seg


def test_closing_fills_a_gap_but_never_another_label():
    seg = two_slabs()
    closed = close_label(seg, 2, 1.0, (1, 1, 1))
    # A ball of radius 1 voxel (6-neighbourhood) closes the centre of the gap only.
    expected = seg.copy()
    expected[2, 2, 4] = 2
    assert np.array_equal(closed, expected)
    guarded = two_slabs(gap_label=1)
    assert np.array_equal(close_label(guarded, 2, 1.0, (1, 1, 1)), guarded)
    assert np.array_equal(seg, two_slabs())  # input untouched


def test_closing_radius_is_in_mm():
    seg = two_slabs()
    assert close_label(seg, 2, 1.0, (2.0, 2.0, 2.0)) is seg  # 1 mm < 2 mm voxels: nothing to close with
    assert close_label(seg, 2, 2.0, (2.0, 2.0, 2.0))[2, 2, 4] == 2


def test_closing_equals_scipy_on_a_padded_grid_and_ignores_borders():
    from scipy import ndimage

    rng = np.random.default_rng(0)
    seg = (rng.random((10, 14, 14)) < 0.3).astype(np.uint8) * 2
    spacing = (2.0, 1.0, 1.0)
    structure = ellipsoid(2.0, spacing)
    padded = np.pad(seg == 2, 6)
    reference = ndimage.binary_closing(padded, structure)[6:-6, 6:-6, 6:-6]
    assert np.array_equal(close_label(seg, 2, 2.0, spacing) == 2, reference | (seg == 2))


def test_ellipsoid_shape():
    element = ellipsoid(2.0, (2.0, 1.0, 1.0))
    assert element.shape == (3, 5, 5)
    assert element[1, 2, 2] and element[0, 2, 2] and element[1, 0, 2] and not element[0, 0, 2]


# ------------------------------------------------------------------ probabilities
def test_probability_threshold():
    # voxels:        0     1     2     3     4
    p1 = np.array([0.10, 0.46, 0.30, 0.50, 0.20])
    p2 = np.array([0.10, 0.10, 0.45, 0.40, 0.35])
    p0 = 1 - p1 - p2
    probabilities = np.stack([p0, p1, p2]).reshape(3, 1, 1, 5)
    argmax = probabilities.argmax(0).astype(np.uint8)
    assert flat(argmax) == [0, 1, 2, 1, 0]
    assert flat(apply_probability_threshold(argmax, probabilities, {})) == [0, 1, 2, 1, 0]
    assert flat(apply_probability_threshold(argmax, probabilities, {1: 0.5})) == [0, 0, 2, 1, 0]
    assert flat(apply_probability_threshold(argmax, probabilities, {2: 0.3})) == [0, 1, 2, 1, 2]
    # both candidates at voxel 3 (0.5 >= 0.3 and 0.4 >= 0.3): the higher probability wins
    assert flat(apply_probability_threshold(argmax, probabilities, {1: 0.3, 2: 0.3})) == [0, 1, 2, 1, 2]
    with pytest.raises(ValueError, match="do not fit"):
        apply_probability_threshold(argmax, probabilities[:, :, :, :4], {1: 0.5})


def test_pipeline_requires_probabilities_when_configured():
    with pytest.raises(ValueError, match="probabilit"):
        postprocess_segmentation(row(5), (1, 1, 1), PostprocessingConfig(probability_threshold={1: 0.5}))


# ------------------------------------------------------------------ pipeline
def test_pipeline_order_single_gtvp_then_distance():
    # The relabelled small GTVp becomes GTVn and is then far from the primary: removed by the distance rule.
    seg = row(40, (0, 2, 1), (10, 20, 1), (22, 24, 2))
    config = PostprocessingConfig(gtvp_single_lesion="to_gtvn", gtvn_max_distance_mm=5.0)
    assert flat(postprocess_segmentation(seg, (1, 1, 1), config)) == flat(row(40, (10, 20, 1), (22, 24, 2)))
    assert [name for name, _ in rule_steps(config, (1, 1, 1))] == ["gtvp_single_lesion", "gtvn_distance"]


def test_identity_config_returns_equal_copy():
    seg = row(10, (1, 3, 1), (5, 6, 2))
    out = postprocess_segmentation(seg, (1, 1, 1), PostprocessingConfig())
    assert out is not seg and np.array_equal(out, seg) and out.dtype == np.uint8
    assert PostprocessingConfig().is_identity()


def test_cropped_pipeline_equals_full_volume_steps():
    rng = np.random.default_rng(7)
    seg = np.zeros((20, 40, 40), dtype=np.uint8)
    for _ in range(12):
        z, y, x = rng.integers(0, 18), rng.integers(0, 36), rng.integers(0, 36)
        seg[z:z + rng.integers(1, 3), y:y + rng.integers(1, 5), x:x + rng.integers(1, 5)] = rng.integers(1, 3)
    config = PostprocessingConfig(closing_radius_mm={1: 2.0, 2: 1.5}, min_component_size={1: 3.0, 2: 2.0},
                                  gtvp_single_lesion="to_gtvn", gtvn_touching_gtvp="to_gtvp", max_components={2: 3},
                                  gtvn_max_distance_mm=15.0, cranial_border_components=(1, 2),
                                  caudal_border_components=(1,))
    spacing = (2.0, 0.9, 1.1)
    seg[19, 30:33, 30:33] = 2  # a node at the cranial face
    for face in (VolumeFace(0, True), VolumeFace(0, False), VolumeFace(2, True)):
        full = seg.copy()
        for _, step in rule_steps(config, spacing, cranial_face=face):  # caudal: the opposite face
            full = step(full)
        assert np.array_equal(postprocess_segmentation(seg, spacing, config, cranial_face=face), full)


# ------------------------------------------------------------------ configuration
def test_config_json_round_trip(tmp_path):
    config = PostprocessingConfig(connectivity=18, probability_threshold={1: 0.4}, closing_radius_mm={2: 2.0},
                                  min_component_size={1: 100.0, 2: 20.0}, gtvp_single_lesion="to_gtvn",
                                  max_components={2: 4}, gtvn_max_distance_mm=60.0, gtvn_distance_if_no_gtvp="remove")
    save_config(config, tmp_path / "pp.json", {"tuning": {"note": "kept"}})
    data = json.loads((tmp_path / "pp.json").read_text())
    assert data["min_component_size"] == {"GTVp": 100.0, "GTVn": 20.0} and data["tuning"] == {"note": "kept"}
    assert load_config(tmp_path / "pp.json") == config
    assert PostprocessingConfig.from_dict({"min_component_size": {"2": 5}}).min_component_size == {2: 5.0}
    # A file without the rules of version 2 stays version 1 and without their keys (older plugins read it).
    assert data["version"] == 1 and "gtvn_touching_gtvp" not in data and "cranial_border_components" not in data


@pytest.mark.parametrize("config, key, value, described", [
    (PostprocessingConfig(gtvn_touching_gtvp="to_gtvp"), "gtvn_touching_gtvp", "to_gtvp",
     "GTVn components touching the GTVp relabelled GTVp"),
    (PostprocessingConfig(cranial_border_components=(2, 1)), "cranial_border_components", ["GTVp", "GTVn"],
     "GTVp and GTVn components touching the cranial face of the volume removed"),
    (PostprocessingConfig(caudal_border_components=(1,)), "caudal_border_components", ["GTVp"],
     "GTVp components touching the caudal face of the volume removed"),
])
def test_configs_with_version_2_rules(tmp_path, config, key, value, described):
    save_config(config, tmp_path / "pp.json")
    data = json.loads((tmp_path / "pp.json").read_text())
    assert data["version"] == 2 and data[key] == value
    assert load_config(tmp_path / "pp.json") == config
    assert described in config.describe()


@pytest.mark.parametrize("data, message", [
    ({"min_component_size": {"GTVx": 5}}, "unknown label"),
    ({"min_size": 5}, "unknown keys"),
    ({"min_component_size": {"GTVn": -1}}, ">= 0"),
    ({"max_components": {"GTVn": 0}}, ">= 1"),
    ({"max_components": {"GTVn": 1.5}}, "integer"),
    ({"probability_threshold": {"GTVp": 1.5}}, "outside"),
    ({"gtvp_single_lesion": "merge"}, "not one of"),
    ({"gtvn_touching_gtvp": "to_gtvn"}, "not one of"),
    ({"cranial_border_components": "GTVn"}, "list of labels"),
    ({"cranial_border_components": ["GTVx"]}, "unknown label"),
    ({"version": 3}, "newer than this plugin"),
    ({"min_component_size_unit": "ml"}, "not one of"),
    ({"connectivity": 8}, "connectivity"),
    ({"gtvn_max_distance_mm": "far"}, "number"),
    ({"format": "something-else"}, "format"),
])
def test_config_errors(data, message):
    with pytest.raises(ConfigError, match=message):
        PostprocessingConfig.from_dict(data)


def test_load_config_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json"):
        load_config(bad)


# ------------------------------------------------------------------ images and folders
def _image(array, spacing=(0.9, 1.1, 3.0), origin=(-10.5, 20.25, -300.0), direction=None):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    return image


def test_postprocess_image_keeps_geometry():
    array = np.zeros((6, 8, 8), np.uint8)
    array[1:3, 1:3, 1:3] = 1
    array[4, 6, 6] = 1
    image = _image(array, direction=(0, 1, 0, 1, 0, 0, 0, 0, -1))
    out = postprocess_image(image, PostprocessingConfig(gtvp_single_lesion="remove"))
    assert out.GetSpacing() == image.GetSpacing() and out.GetOrigin() == image.GetOrigin()
    assert out.GetDirection() == image.GetDirection() and out.GetPixelID() == sitk.sitkUInt8
    assert sitk.GetArrayFromImage(out)[4, 6, 6] == 0
    with pytest.raises(InputDataError, match="outside"):
        postprocess_image(_image(np.full((2, 2, 2), 5, np.uint8)), PostprocessingConfig())


def _write_case(folder, pid, array, **geometry):
    folder.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(_image(array, **geometry), str(folder / f"{pid}.nii.gz"))


def test_postprocess_folder(tmp_path):
    src, dst = tmp_path / "in", tmp_path / "out"
    a = np.zeros((4, 10, 10), np.uint8)
    a[1:3, 1:4, 1:4] = 2
    a[0, 9, 9] = 2  # one-voxel node, removed
    b = np.zeros((4, 10, 10), np.uint8)
    b[2, 2:5, 2:5] = 1
    _write_case(src, "P-000", a)
    _write_case(src, "P-001", b, spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0))
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    config = PostprocessingConfig(min_component_size={2: 2.0}, min_component_size_unit="voxels")
    report = postprocess_folder(src, dst, config)
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # inputs untouched
    assert sorted(p.name for p in dst.iterdir()) == [".nnunet-hecktor-output.json", "P-000.nii.gz", "P-001.nii.gz",
                                                       "postprocessing_summary.json"]
    assert [c.changed_voxels for c in report.cases] == [1, 0]
    out_b = sitk.ReadImage(str(dst / "P-001.nii.gz"))
    assert out_b.GetSpacing() == (1.0, 1.0, 2.0) and np.array_equal(sitk.GetArrayFromImage(out_b), b)
    assert not any(p.name.startswith(".tmp-") for p in dst.iterdir())
    with pytest.raises(HecktorError, match="must differ"):
        postprocess_folder(src, src, config)


def test_postprocess_folder_probabilities(tmp_path):
    src = tmp_path / "in"
    seg = np.zeros((1, 1, 5), np.uint8)
    seg[0, 0, 1] = 1
    _write_case(src, "P-000", seg)
    _write_case(src, "P-001", seg)
    probabilities = np.zeros((3, 1, 1, 5), np.float32)
    probabilities[0] = 0.6
    probabilities[1, 0, 0, 1] = 0.45
    probabilities[2, 0, 0, 3] = 0.45
    probabilities[0, 0, 0, 1] = probabilities[0, 0, 0, 3] = 0.55 - 0.1
    np.savez_compressed(src / "P-000.npz", probabilities=probabilities)
    config = PostprocessingConfig(probability_threshold={1: 0.5, 2: 0.4})
    with pytest.raises(InputDataError, match="P-001"):
        postprocess_folder(src, tmp_path / "out", config)
    skip = PostprocessingConfig(probability_threshold={1: 0.5, 2: 0.4}, missing_probabilities="skip")
    report = postprocess_folder(src, tmp_path / "out", skip)
    assert report.skipped_probabilities == ["P-001"]
    assert [c.used_probabilities for c in report.cases] == [True, False]
    out = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "P-000.nii.gz")))
    assert flat(out) == [0, 0, 0, 2, 0]
    np.savez_compressed(src / "P-001.npz", probabilities=probabilities[:, :, :, :4])
    with pytest.raises(InputDataError, match="shape"):
        postprocess_folder(src, tmp_path / "out2", config)


def test_postprocess_command(tmp_path, capsys):
    from nnunet_hecktor.cli import main

    seg = np.zeros((4, 10, 10), np.uint8)
    seg[1:3, 1:4, 1:4] = 1
    seg[3, 9, 9] = 1
    _write_case(tmp_path / "in", "CHUS-001", seg)
    (tmp_path / "pp.json").write_text(json.dumps({"gtvp_single_lesion": "remove", "comment": "one primary"}))
    assert main(["postprocess", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-c",
                 str(tmp_path / "pp.json")]) == 0
    captured = capsys.readouterr()  # the old spelling -c still works for one release, with a warning
    assert "1 cases written" in captured.out and "-c is deprecated" in captured.err
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "CHUS-001.nii.gz")))[3, 9, 9] == 0
    (tmp_path / "bad.json").write_text(json.dumps({"gtvp_single_lesions": "remove"}))
    assert main(["postprocess", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out2"), "--config",
                 str(tmp_path / "bad.json")]) == 1
    assert "bad.json: unknown keys gtvp_single_lesions" in capsys.readouterr().err
