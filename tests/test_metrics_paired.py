"""Paired bootstrap comparisons (nnunet_hecktor.metrics.paired) against direct resampling."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from nnunet_hecktor.metrics.bootstrap import ConfidenceInterval, resampling_weights
from nnunet_hecktor.metrics.paired import (
    bootstrap_multiclass_balanced_accuracy,
    paired_binary,
    paired_c_index,
    paired_multiclass_balanced_accuracy,
    verdict_of,
)
from nnunet_hecktor.metrics.survival import harrell_c_index


@pytest.mark.parametrize("low, high, verdict", [(0.01, 0.05, "better"), (-0.05, -0.01, "worse"),
                                                 (-0.01, 0.02, "undecided"), (float("nan"), 0.1, "undecided")])
def test_verdict_of_interval(low, high, verdict):
    assert verdict_of(ConfidenceInterval(low, high, 0.95, 10, 10)) == verdict


def _cohort(n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    time = rng.exponential(np.exp(-x)) * 1000
    event = (rng.random(n) < 0.6).astype(int)
    return x, time, event, rng


def test_paired_c_index_separates_signal_from_noise_and_matches_point_values():
    x, time, event, rng = _cohort()
    good, noise = x, rng.normal(size=x.size)
    comparison = paired_c_index(time, event, good, noise, "signal", "noise", n_bootstrap=300)
    assert comparison.value_a == pytest.approx(harrell_c_index(time, event, good))
    assert comparison.value_b == pytest.approx(harrell_c_index(time, event, noise))
    assert comparison.verdict == "better"
    assert comparison.interval.low <= comparison.difference <= comparison.interval.high
    # A model against itself: difference exactly 0 on every replicate, never decided.
    same = paired_c_index(time, event, good, good, n_bootstrap=100)
    assert same.difference == 0 and same.verdict == "undecided"


def test_paired_replicates_equal_direct_resampling():
    x, time, event, rng = _cohort(n=60, seed=3)
    other = x + rng.normal(scale=2.0, size=x.size)
    weights = resampling_weights(60, 5, seed=0)
    comparison = paired_c_index(time, event, x, other, n_bootstrap=5, seed=0)
    diffs = []
    for row in weights:
        idx = np.repeat(np.arange(60), row)
        diffs.append(harrell_c_index(time[idx], event[idx], x[idx]) - harrell_c_index(time[idx], event[idx], other[idx]))
    assert comparison.interval.low == pytest.approx(np.percentile(diffs, 2.5))
    assert comparison.interval.high == pytest.approx(np.percentile(diffs, 97.5))


def test_paired_auc_and_balanced_accuracy_match_sklearn():
    rng = np.random.default_rng(1)
    y = (rng.random(200) < 0.4).astype(int)
    score_a = y + rng.normal(scale=0.8, size=200)
    score_b = rng.normal(size=200)
    auc = paired_binary(y, "auc", score_a=score_a, score_b=score_b, n_bootstrap=200)
    assert auc.value_a == pytest.approx(roc_auc_score(y, score_a))
    assert auc.value_b == pytest.approx(roc_auc_score(y, score_b))
    assert auc.verdict == "better"
    ba = paired_binary(y, "balanced_accuracy", pred_a=(score_a > 0.5).astype(int), pred_b=(score_b > 0).astype(int),
                       n_bootstrap=200)
    assert ba.value_a == pytest.approx(balanced_accuracy_score(y, score_a > 0.5))


def test_multiclass_balanced_accuracy_equals_sklearn_and_is_undefined_for_one_class():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 150)
    pred = np.where(rng.random(150) < 0.6, y, rng.integers(0, 4, 150))
    whole = bootstrap_multiclass_balanced_accuracy(y, pred, np.ones((1, 150)))[0]
    assert whole == pytest.approx(balanced_accuracy_score(y, pred))
    weights = resampling_weights(150, 3, seed=4)
    for row, value in zip(weights, bootstrap_multiclass_balanced_accuracy(y, pred, weights)):
        idx = np.repeat(np.arange(150), row)
        assert value == pytest.approx(balanced_accuracy_score(y[idx], pred[idx]))
    one_class = bootstrap_multiclass_balanced_accuracy(np.zeros(10, int), np.zeros(10, int), np.ones((1, 10)))
    assert np.isnan(one_class[0])
    comparison = paired_multiclass_balanced_accuracy(y, pred, rng.integers(0, 4, 150), n_bootstrap=200)
    assert comparison.verdict == "better"


def test_paired_task1_equals_direct_resampling_of_patients():
    """Each replicate difference of the three Task 1 figures equals aggregate_task1 on the resampled
    patients of A minus that of B (same resample for both)."""
    from nnunet_hecktor.metrics.paired import paired_task1
    from nnunet_hecktor.metrics.segmentation import PatientSegmentationStats, Task1Arrays, aggregate_task1

    rng = np.random.default_rng(5)

    def stats(pid, scale):
        gt_p, gt_n = int(rng.integers(0, 50)), int(rng.integers(0, 30))
        pred_p, pred_n = int(rng.integers(0, 50) * scale), int(rng.integers(0, 30) * scale)
        lesions = int(rng.integers(0, 3))
        return PatientSegmentationStats(pid, 2.0, gt_p, pred_p, min(gt_p, pred_p) // 2, gt_n, pred_n,
                                        min(gt_n, pred_n) // 2, lesions, int(rng.integers(0, 3)),
                                        min(lesions, int(rng.integers(0, 3))))

    pids = [f"P-{i:03d}" for i in range(40)]
    a = [stats(p, 1.0) for p in pids]
    b = [stats(p, 0.5) for p in pids]
    comparison = paired_task1(Task1Arrays.from_stats(a), Task1Arrays.from_stats(b), "a", "b", n_bootstrap=7, seed=1)
    whole_a, whole_b = aggregate_task1(a), aggregate_task1(b)
    assert comparison["gtvn_f1_agg"].value_a == pytest.approx(whole_a.gtvn_f1_agg)
    assert comparison["gtvp_dice_mean"].difference == pytest.approx(whole_a.gtvp_dice_mean - whole_b.gtvp_dice_mean)
    weights = resampling_weights(40, 7, seed=1)
    for key in ("gtvp_dice_mean", "gtvn_dice_agg", "gtvn_f1_agg"):
        diffs = []
        for row in weights:
            idx = np.repeat(np.arange(40), row)
            diffs.append(getattr(aggregate_task1([a[i] for i in idx]), key)
                         - getattr(aggregate_task1([b[i] for i in idx]), key))
        assert comparison[key].interval.low == pytest.approx(np.percentile(diffs, 2.5)), key
        assert comparison[key].interval.high == pytest.approx(np.percentile(diffs, 97.5)), key
    with pytest.raises(ValueError, match="same patients"):
        paired_task1(Task1Arrays.from_stats(a), Task1Arrays.from_stats(b[:-1]))
