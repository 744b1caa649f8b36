"""HECKTOR Task 1 metrics: hand-checked tables (definitions: docs/explanations/hecktor-metrics.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnunet_hecktor.metrics.components import bounding_box, check_label_values, label_components, union_bounding_box
from nnunet_hecktor.metrics.segmentation import (
    SegmentationMetricOptions,
    Task1Arrays,
    aggregate_task1,
    gtvn_aggregated_f1,
    match_lesions,
    patient_segmentation_stats,
    task1_objective,
)


def line(length: int, *intervals: tuple[int, int]) -> np.ndarray:
    """A 1 x 1 x length mask with the given [start, stop) intervals set (components along x)."""
    mask = np.zeros((1, 1, length), dtype=bool)
    for start, stop in intervals:
        mask[0, 0, start:stop] = True
    return mask


def block(shape, *boxes, value=1, dtype=np.uint8) -> np.ndarray:
    """Array of ``shape`` with ``value`` in each box given as a tuple of (start, stop) per axis."""
    array = np.zeros(shape, dtype=dtype)
    for box in boxes:
        array[tuple(slice(a, b) for a, b in box)] = value
    return array


# (name, gt intervals, pred intervals, expected n_gt, n_pred, tp)
LESION_CASES = [
    ("both empty", [], [], 0, 0, 0),
    ("empty prediction", [(2, 6)], [], 1, 0, 0),
    ("empty ground truth", [], [(2, 6)], 0, 1, 0),
    ("identical", [(2, 6)], [(2, 6)], 1, 1, 1),
    ("disjoint", [(0, 4)], [(6, 10)], 1, 1, 0),
    # IoU = 3/10 exactly: not a match (strict >), even though 0.3 as a double is below 3/10.
    ("IoU exactly 0.3", [(0, 10)], [(0, 3)], 1, 1, 0),
    ("IoU 0.4", [(0, 10)], [(0, 4)], 1, 1, 1),
    ("IoU 3/10 via union", [(0, 6)], [(3, 10)], 1, 1, 0),  # inter 3, union 10
    # GT split by the prediction into two halves: one match, one false positive.
    ("prediction splits a lesion", [(0, 10)], [(0, 5), (6, 10)], 1, 2, 1),
    # Two GT lesions merged by one prediction (IoU 10/21 with each): one match, one false negative.
    ("prediction merges two lesions", [(0, 10), (11, 21)], [(0, 21)], 2, 1, 1),
    # Merged and too large: IoU 10/30 = 0.33 with each -> still one match.
    ("merge, IoU just above 0.3", [(0, 10), (20, 30)], [(0, 30)], 2, 1, 1),
    # Merged into a much larger blob: IoU 10/40 = 0.25 -> no match at all.
    ("merge, IoU below 0.3", [(0, 10), (20, 30)], [(0, 40)], 2, 1, 0),
    # Greedy by descending IoU: A-P1 (5/13) is taken first, which leaves B (only P1, IoU 1/3) and
    # P2 (only A, IoU 1/3) unmatched. A maximum matching would find 2; HECKTOR's greedy finds 1.
    ("greedy is not maximum matching", [(0, 9), (10, 13)], [(0, 3), (4, 13)], 2, 2, 1),
    ("two and two, all matched", [(0, 4), (10, 14)], [(0, 4), (11, 14)], 2, 2, 2),
]


@pytest.mark.parametrize("name, gt, pred, n_gt, n_pred, tp", LESION_CASES, ids=[c[0] for c in LESION_CASES])
def test_match_lesions_table(name, gt, pred, n_gt, n_pred, tp):
    result = match_lesions(line(40, *gt), line(40, *pred))
    assert (result.n_gt, result.n_pred, result.tp) == (n_gt, n_pred, tp)
    assert result.fp == n_pred - tp and result.fn == n_gt - tp


def test_iou_just_above_threshold_matches_and_exactly_does_not():
    gt = block((10, 10, 10), ((0, 10), (0, 10), (0, 10))).astype(bool)  # 1000 voxels
    exactly = np.zeros_like(gt)
    exactly.reshape(-1)[:300] = True  # 300 voxels inside the GT: IoU = 0.300 exactly
    above = np.zeros_like(gt)
    above.reshape(-1)[:301] = True
    assert match_lesions(gt, exactly).tp == 0
    assert match_lesions(gt, above).tp == 1


def test_iou_threshold_is_configurable():
    gt, pred = line(20, (0, 10)), line(20, (0, 3))
    assert match_lesions(gt, pred, iou_threshold=0.29).tp == 1
    assert match_lesions(gt, pred, iou_threshold=0.3).tp == 0


@pytest.mark.parametrize("connectivity, n_components", [(6, 2), (18, 2), (26, 1)])
def test_connectivity_corner_touching_voxels(connectivity, n_components):
    mask = np.zeros((3, 3, 3), dtype=bool)
    mask[0, 0, 0] = mask[1, 1, 1] = True  # touch at a corner only
    assert label_components(mask, connectivity)[1] == n_components


@pytest.mark.parametrize("connectivity, n_components", [(6, 2), (18, 1), (26, 1)])
def test_connectivity_edge_touching_voxels(connectivity, n_components):
    mask = np.zeros((3, 3, 3), dtype=bool)
    mask[0, 0, 0] = mask[0, 1, 1] = True  # touch along an edge
    assert label_components(mask, connectivity)[1] == n_components


def test_f1_counts_follow_connectivity():
    gt = np.zeros((3, 3, 3), dtype=bool)
    gt[0, 0, 0] = gt[1, 1, 1] = True
    assert match_lesions(gt, gt, connectivity=26).tp == 1
    with_6 = match_lesions(gt, gt, connectivity=6)
    assert (with_6.n_gt, with_6.tp) == (2, 2)


# (name, gt GTVp voxels, pred GTVp voxels, overlap, expected per-patient GTVp Dice, case)
def gtvp_volume(n_gt, n_pred, overlap):
    gt = np.zeros((1, 1, 40), dtype=np.uint8)
    pred = np.zeros_like(gt)
    gt[0, 0, :n_gt] = 1
    start = n_gt - overlap
    pred[0, 0, start:start + n_pred] = 1
    return gt, pred


GTVP_CASES = [
    ("both empty", 0, 0, 0, 1.0, "both_empty"),
    ("GT empty, prediction not", 0, 5, 0, 0.0, "gt_empty"),
    ("prediction empty", 5, 0, 0, 0.0, "pred_empty"),
    ("identical", 8, 8, 8, 1.0, "both_present"),
    ("half overlap", 10, 10, 5, 0.5, "both_present"),
    ("prediction inside GT", 10, 5, 5, 2 * 5 / 15, "both_present"),
]


@pytest.mark.parametrize("name, n_gt, n_pred, overlap, expected, case", GTVP_CASES, ids=[c[0] for c in GTVP_CASES])
def test_gtvp_dice_table(name, n_gt, n_pred, overlap, expected, case):
    gt, pred = gtvp_volume(n_gt, n_pred, overlap)
    stats = patient_segmentation_stats(gt, pred, (1.0, 1.0, 1.0), "P")
    assert stats.gtvp_case() == case
    assert stats.gtvp_dice() == pytest.approx(expected)


def test_gtvp_empty_rules_are_configurable_and_counted():
    cases = [gtvp_volume(0, 0, 0), gtvp_volume(0, 4, 0), gtvp_volume(10, 10, 5), gtvp_volume(6, 0, 0)]
    stats = [patient_segmentation_stats(g, p, (1, 1, 1), f"P{i}") for i, (g, p) in enumerate(cases)]
    default = aggregate_task1(stats)
    assert default.gtvp_dice_mean == pytest.approx((1.0 + 0.0 + 0.5 + 0.0) / 4)
    assert (default.gtvp_both_empty, default.gtvp_gt_empty_pred_nonempty, default.gtvp_pred_empty) == (1, 1, 1)
    assert default.gtvp_n_in_mean == 4 and default.gtvp_excluded == 0
    exclude = SegmentationMetricOptions(gtvp_both_empty=None, gtvp_gt_empty_pred_nonempty=None)
    excluded = aggregate_task1(stats, exclude)
    assert excluded.gtvp_dice_mean == pytest.approx((0.5 + 0.0) / 2)
    assert excluded.gtvp_excluded == 2
    all_excluded = aggregate_task1(stats[:1], exclude)
    assert math.isnan(all_excluded.gtvp_dice_mean)


def test_gtvn_aggregated_dice_is_weighted_by_mm3():
    # Patient A, 1x1x1 mm: GT 10 voxels, perfect prediction -> I = 10 mm3, sum = 20 mm3.
    # Patient B, 2x2x2 mm (8 mm3 voxels): GT 10 voxels, nothing predicted -> I = 0, sum = 80 mm3.
    gt = np.zeros((1, 1, 20), dtype=np.uint8)
    gt[0, 0, :10] = 2
    a = patient_segmentation_stats(gt, gt, (1, 1, 1), "A")
    b = patient_segmentation_stats(gt, np.zeros_like(gt), (2, 2, 2), "B")
    result = aggregate_task1([a, b])
    assert result.gtvn_dice_agg == pytest.approx(2 * 10 / (20 + 80))  # 0.2; by voxel counts it would be 0.667
    assert result.gtvn_intersection_mm3 == pytest.approx(10) and result.gtvn_volume_sum_mm3 == pytest.approx(100)


def test_gtvn_aggregated_dice_anisotropic_spacing():
    gt = np.zeros((1, 1, 20), dtype=np.uint8)
    pred = np.zeros_like(gt)
    gt[0, 0, :10] = 2
    pred[0, 0, 5:15] = 2
    a = patient_segmentation_stats(gt, pred, (3.0, 0.5, 0.5), "A")   # voxel 0.75 mm3: I 3.75, sum 15
    b = patient_segmentation_stats(gt, gt, (1.0, 1.0, 1.0), "B")     # I 10, sum 20
    assert a.voxel_volume_mm3 == pytest.approx(0.75)
    result = aggregate_task1([a, b])
    assert result.gtvn_dice_agg == pytest.approx(2 * (3.75 + 10) / (15 + 20))


def test_gtvn_absent_everywhere_scores_one():
    empty = np.zeros((2, 2, 2), dtype=np.uint8)
    result = aggregate_task1([patient_segmentation_stats(empty, empty, (1, 1, 1), "A")])
    assert result.gtvn_dice_agg == 1.0 and result.gtvn_f1_agg == 1.0
    assert result.gtvn_both_empty == 1 and result.gtvp_dice_mean == 1.0


def test_gtvn_patient_without_label_adds_nothing():
    gt = np.zeros((1, 1, 20), dtype=np.uint8)
    gt[0, 0, :10] = 2
    pred = gt.copy()
    pred[0, 0, :5] = 0
    with_lesion = patient_segmentation_stats(gt, pred, (1, 1, 1), "A")
    without = patient_segmentation_stats(np.zeros_like(gt), np.zeros_like(gt), (1, 1, 1), "B")
    assert aggregate_task1([with_lesion]).gtvn_dice_agg == aggregate_task1([with_lesion, without]).gtvn_dice_agg


@pytest.mark.parametrize("tp, fp, fn, expected", [
    (0, 0, 0, 1.0), (1, 0, 0, 1.0), (0, 1, 0, 0.0), (0, 0, 1, 0.0), (2, 1, 1, 4 / 6), (3, 0, 3, 6 / 9),
])
def test_gtvn_f1_formula(tp, fp, fn, expected):
    assert gtvn_aggregated_f1(tp, fp, fn) == pytest.approx(expected)


def test_f1_is_aggregated_over_patients_not_averaged():
    # Patient A: 1 GT lesion, found. Patient B: 3 GT lesions, none found, 1 false positive.
    gt_a = np.zeros((1, 1, 40), np.uint8)
    gt_a[0, 0, 0:4] = 2
    gt_b = np.zeros_like(gt_a)
    for s in (0, 10, 20):
        gt_b[0, 0, s:s + 4] = 2
    pred_b = np.zeros_like(gt_a)
    pred_b[0, 0, 30:34] = 2
    stats = [patient_segmentation_stats(gt_a, gt_a, (1, 1, 1), "A"),
             patient_segmentation_stats(gt_b, pred_b, (1, 1, 1), "B")]
    result = aggregate_task1(stats)
    assert (result.gtvn_tp, result.gtvn_fp, result.gtvn_fn) == (1, 1, 3)
    assert result.gtvn_f1_agg == pytest.approx(2 / (2 + 1 + 3))  # mean of per-patient F1 would be 0.5


def test_labels_are_kept_apart():
    gt = np.zeros((1, 1, 20), np.uint8)
    gt[0, 0, 0:10] = 1
    pred = np.zeros_like(gt)
    pred[0, 0, 0:10] = 2  # right place, wrong label
    stats = patient_segmentation_stats(gt, pred, (1, 1, 1), "A")
    assert stats.gtvp_dice() == 0.0 and stats.gtvn_tp == 0 and stats.gtvn_fp == 1


def test_task1_arrays_match_aggregate():
    rng = np.random.default_rng(3)
    stats = []
    for i in range(6):
        gt = (rng.random((6, 6, 6)) < 0.2).astype(np.uint8) * rng.integers(1, 3, (6, 6, 6)).astype(np.uint8)
        pred = (rng.random((6, 6, 6)) < 0.2).astype(np.uint8) * rng.integers(1, 3, (6, 6, 6)).astype(np.uint8)
        stats.append(patient_segmentation_stats(gt, pred, (1.0, 0.8, 2.5), f"P{i}"))
    arrays = Task1Arrays.from_stats(stats)
    result = aggregate_task1(stats)
    assert np.nanmean(arrays.gtvp_dice) == pytest.approx(result.gtvp_dice_mean)
    assert 2 * arrays.gtvn_intersection_mm3.sum() / arrays.gtvn_volume_sum_mm3.sum() == pytest.approx(result.gtvn_dice_agg)
    assert result.objective("mean") == pytest.approx(np.mean([result.gtvp_dice_mean, result.gtvn_dice_agg,
                                                              result.gtvn_f1_agg]))
    with pytest.raises(ValueError, match="unknown objective"):
        task1_objective(1, 1, 1, "borda")


def test_crop_does_not_change_results():
    gt = np.zeros((30, 40, 40), np.uint8)
    pred = np.zeros_like(gt)
    gt[10:15, 10:20, 5:12] = 1
    gt[20:24, 30:35, 30:36] = 2
    pred[11:15, 12:20, 5:12] = 1
    pred[20:23, 31:35, 30:36] = 2
    pred[0, 0, 0] = 2  # far false positive stretches the box to the corner
    full = patient_segmentation_stats(gt, pred, (1, 1, 1), "A")
    padded_gt = np.pad(gt, 7)
    padded_pred = np.pad(pred, 7)
    assert patient_segmentation_stats(padded_gt, padded_pred, (1, 1, 1), "A") == full


def test_bounding_boxes():
    a = np.zeros((5, 6, 7), np.uint8)
    assert bounding_box(a) is None
    a[1, 2, 3] = 2
    a[3, 4, 3] = 1
    assert bounding_box(a) == (slice(1, 4), slice(2, 5), slice(3, 4))
    assert bounding_box(a, pad=1) == (slice(0, 5), slice(1, 6), slice(2, 5))
    b = np.zeros_like(a)
    b[4, 0, 6] = 1
    assert union_bounding_box(a, b) == (slice(1, 5), slice(0, 5), slice(3, 7))
    assert bounding_box(a.astype(bool)) == bounding_box(a.astype(np.int16))


@pytest.mark.parametrize("array, bad", [
    (np.array([0, 1, 2], np.uint8), []),
    (np.array([0, 3, 1], np.uint8), [3]),
    (np.array([-1, 0, 2], np.int16), [-1]),
    (np.array([0.0, 1.0, 2.0]), []),
    (np.array([0.0, 1.5]), [1.5]),
])
def test_check_label_values(array, bad):
    assert check_label_values(array) == bad


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        patient_segmentation_stats(np.zeros((2, 2, 2), np.uint8), np.zeros((2, 2, 3), np.uint8), (1, 1, 1), "P")
