"""C-index (Task 2), HPV metrics (Task 3), bootstrap intervals and risk groups.

References: lifelines and scikit-survival for the C-index and the log-rank test, scikit-learn
for balanced accuracy and AUC; hand-checked tables for the tie rules.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnunet_hecktor.metrics.bootstrap import (
    bootstrap_binary,
    bootstrap_c_index,
    bootstrap_task1,
    percentile_interval,
    resampling_weights,
)
from nnunet_hecktor.metrics.classification import (
    balanced_accuracy,
    best_balanced_accuracy_threshold,
    binary_metrics,
    roc_auc,
)
from nnunet_hecktor.metrics.risk_groups import compare_risk_groups, kaplan_meier, logrank_test, median_risk_split
from nnunet_hecktor.metrics.segmentation import Task1Arrays, aggregate_task1, patient_segmentation_stats
from nnunet_hecktor.metrics.survival import concordance_index, harrell_c_index

# (name, time, event, risk, expected C, comparable pairs)
C_INDEX_CASES = [
    ("perfect", [1, 2, 3], [1, 1, 1], [3, 2, 1], 1.0, 3),
    ("reversed", [1, 2, 3], [1, 1, 1], [1, 2, 3], 0.0, 3),
    # Only the event at t=1 can be a case; the censored at 2 and 3 are controls only.
    ("censored later", [1, 2, 3], [1, 0, 0], [3, 1, 2], 1.0, 2),
    # A censored time before an event gives no pair with it.
    ("censored earlier", [1, 2], [0, 1], [1, 2], math.nan, 0),
    # Tied times, both events: not comparable.
    ("tied times, both events", [2, 2], [1, 1], [1, 2], math.nan, 0),
    # Tied times, one event: comparable, the event counts as earlier.
    ("tied times, one event, concordant", [2, 2], [1, 0], [2, 1], 1.0, 1),
    ("tied times, one event, discordant", [2, 2], [1, 0], [1, 2], 0.0, 1),
    # Tied times, both censored: not comparable.
    ("tied times, both censored", [2, 2, 1], [0, 0, 1], [0, 0, 1], 1.0, 2),
    # Tied risks count 0.5.
    ("tied risks", [1, 2, 3], [1, 1, 1], [1, 1, 1], 0.5, 3),
    ("one tied risk pair", [1, 2, 3], [1, 1, 0], [2, 2, 1], (2 + 0.5) / 3, 3),
    # Only exactly equal risks tie (lifelines' rule): 5e-9 apart is concordant, not a tie.
    ("risks 5e-9 apart", [1, 2], [1, 1], [1.0 + 5e-9, 1.0], 1.0, 1),
]


@pytest.mark.parametrize("name, time, event, risk, expected, comparable", C_INDEX_CASES, ids=[c[0] for c in C_INDEX_CASES])
def test_c_index_table(name, time, event, risk, expected, comparable):
    result = concordance_index(time, event, risk)
    assert result.comparable == comparable
    if math.isnan(expected):
        assert math.isnan(result.c_index)
    else:
        assert result.c_index == pytest.approx(expected)
        assert result.concordant + result.discordant + result.tied_risk == comparable


@pytest.mark.parametrize("seed", range(5))
def test_c_index_matches_lifelines_and_sksurv(seed):
    from lifelines.utils import concordance_index as lifelines_ci
    from sksurv.metrics import concordance_index_censored

    rng = np.random.default_rng(seed)
    n = 80
    time = rng.integers(1, 30, n).astype(float)  # many tied times
    event = rng.random(n) < 0.4
    risk = np.round(rng.normal(size=n), 1)  # many tied risks
    ours = harrell_c_index(time, event, risk)
    assert ours == pytest.approx(lifelines_ci(time, -risk, event), abs=1e-12)
    assert ours == pytest.approx(concordance_index_censored(event, time, risk)[0], abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_c_index_tiny_risks_and_exact_ties_match_lifelines(seed):
    """Risks of order 1e-9 are ordered, not tied (sksurv's default tolerance 1e-8 would tie them all)."""
    from lifelines.utils import concordance_index as lifelines_ci

    from nnunet_hecktor.prognosis.icare import univariate_concordance

    rng = np.random.default_rng(seed)
    n = 60
    time = rng.integers(1, 20, n).astype(float)
    event = rng.random(n) < 0.5
    risk = np.abs(20.0 - time + rng.normal(scale=4.0, size=n)) * 1e-10  # informative, all below 1e-8
    risk[:10] = risk[10]  # some exact ties as well
    expected = lifelines_ci(time, -risk, event)
    assert expected > 0.6  # the tiny risks carry an ordering (a 1e-8 tolerance would give 0.5)
    assert harrell_c_index(time, event, risk) == pytest.approx(expected, abs=1e-12)
    assert bootstrap_c_index(time, event, risk, np.ones((1, n)))[0] == pytest.approx(expected, abs=1e-12)
    assert univariate_concordance(risk[:, None], time, event)[0] == pytest.approx(expected, abs=1e-12)


def test_c_index_input_errors():
    with pytest.raises(ValueError, match="differ in length"):
        concordance_index([1, 2], [1], [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        concordance_index([1, np.nan], [1, 0], [1, 2])
    with pytest.raises(ValueError, match="0/1"):
        concordance_index([1, 2], [2, 0], [1, 2])


@pytest.mark.parametrize("y, pred, expected_ba, sens, spec", [
    ([1, 1, 0, 0], [1, 1, 0, 0], 1.0, 1.0, 1.0),
    ([1, 1, 0, 0], [0, 0, 1, 1], 0.0, 0.0, 0.0),
    ([1, 1, 1, 0], [1, 1, 1, 1], 0.5, 1.0, 0.0),   # always positive on a 75 % positive cohort
    ([1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 1], 0.5, 0.5, 0.5),
    ([1, 1, 1], [1, 0, 1], 2 / 3, 2 / 3, math.nan),  # one class: recall of that class (as scikit-learn)
])
def test_binary_metrics_table(y, pred, expected_ba, sens, spec):
    m = binary_metrics(y, pred)
    assert m.balanced_accuracy == pytest.approx(expected_ba)
    assert m.sensitivity == pytest.approx(sens)
    if math.isnan(spec):
        assert math.isnan(m.specificity)
    else:
        assert m.specificity == pytest.approx(spec)


@pytest.mark.parametrize("seed", range(4))
def test_classification_matches_sklearn(seed):
    from sklearn.metrics import balanced_accuracy_score, recall_score, roc_auc_score

    rng = np.random.default_rng(seed)
    y = (rng.random(120) < 0.8).astype(int)
    prob = np.round(np.clip(0.3 * y + rng.random(120) * 0.7, 0, 1), 2)  # ties in the scores
    pred = (prob >= 0.5).astype(int)
    m = binary_metrics(y, pred, prob)
    assert m.balanced_accuracy == pytest.approx(balanced_accuracy_score(y, pred))
    assert balanced_accuracy(y, pred) == pytest.approx(balanced_accuracy_score(y, pred))
    assert m.sensitivity == pytest.approx(recall_score(y, pred))
    assert m.specificity == pytest.approx(recall_score(1 - y, 1 - pred))
    assert m.auc == pytest.approx(roc_auc_score(y, prob))
    assert roc_auc(y, prob) == pytest.approx(roc_auc_score(y, prob))


def test_best_threshold_beats_half_on_rare_class():
    y = np.array([1] * 18 + [0] * 2)
    prob = np.array([0.9] * 10 + [0.6] * 8 + [0.55, 0.3])
    t = best_balanced_accuracy_threshold(y, prob)
    assert balanced_accuracy(y, (prob >= t).astype(int)) == 1.0
    assert balanced_accuracy(y, (prob >= 0.5).astype(int)) == 0.75


# ------------------------------------------------------------------ bootstrap
def _resample_indices(weights_row):
    return np.repeat(np.arange(weights_row.size), weights_row)


def test_resampling_weights_are_draws_with_replacement():
    w = resampling_weights(7, 50, seed=1)
    assert w.shape == (50, 7) and (w.sum(axis=1) == 7).all()
    assert np.array_equal(w, resampling_weights(7, 50, seed=1))
    assert not np.array_equal(w, resampling_weights(7, 50, seed=2))


def test_bootstrap_c_index_equals_recomputation_on_resampled_data():
    rng = np.random.default_rng(0)
    n = 40
    time = rng.integers(1, 15, n).astype(float)
    event = rng.random(n) < 0.5
    risk = np.round(rng.normal(size=n), 1)
    weights = resampling_weights(n, 25, seed=3)
    fast = bootstrap_c_index(time, event, risk, weights)
    for b in range(25):
        idx = _resample_indices(weights[b])
        slow = harrell_c_index(time[idx], event[idx], risk[idx])
        assert fast[b] == pytest.approx(slow, abs=1e-12) or (math.isnan(slow) and math.isnan(fast[b]))
    full = bootstrap_c_index(time, event, risk, np.ones((1, n)))
    assert full[0] == pytest.approx(harrell_c_index(time, event, risk))


def test_bootstrap_binary_equals_recomputation():
    rng = np.random.default_rng(1)
    n = 30
    y = (rng.random(n) < 0.7).astype(int)
    prob = np.round(rng.random(n), 1)
    pred = (prob >= 0.4).astype(int)
    weights = resampling_weights(n, 20, seed=5)
    fast = bootstrap_binary(y, pred, weights, prob)
    for b in range(20):
        idx = _resample_indices(weights[b])
        m = binary_metrics(y[idx], pred[idx], prob[idx])
        for name in ("balanced_accuracy", "sensitivity", "specificity", "auc"):
            a, e = fast[name][b], getattr(m, name)
            assert (math.isnan(a) and math.isnan(e)) or a == pytest.approx(e, abs=1e-12), name


def test_bootstrap_task1_equals_recomputation():
    rng = np.random.default_rng(2)
    stats = []
    for i in range(12):
        gt = (rng.random((5, 5, 5)) < 0.15).astype(np.uint8) * rng.integers(1, 3, (5, 5, 5)).astype(np.uint8)
        pred = (rng.random((5, 5, 5)) < 0.15).astype(np.uint8) * rng.integers(1, 3, (5, 5, 5)).astype(np.uint8)
        if i % 4 == 0:
            gt[gt == 1] = 0  # some patients without GTVp
        stats.append(patient_segmentation_stats(gt, pred, (1.0, 1.0, 1.0 + i % 3), f"P{i}"))
    arrays = Task1Arrays.from_stats(stats)
    weights = resampling_weights(len(stats), 15, seed=0)
    fast = bootstrap_task1(arrays, weights)
    for b in range(15):
        resampled = [stats[i] for i in _resample_indices(weights[b])]
        slow = aggregate_task1(resampled)
        assert fast["gtvp_dice_mean"][b] == pytest.approx(slow.gtvp_dice_mean)
        assert fast["gtvn_dice_agg"][b] == pytest.approx(slow.gtvn_dice_agg)
        assert fast["gtvn_f1_agg"][b] == pytest.approx(slow.gtvn_f1_agg)


def test_percentile_interval():
    values = np.arange(101, dtype=float)
    ci = percentile_interval(values)
    assert (ci.low, ci.high, ci.n_valid) == (pytest.approx(2.5), pytest.approx(97.5), 101)
    ci = percentile_interval(np.array([np.nan, 1.0, np.nan, 3.0]), 0.5)
    assert ci.n_valid == 2 and ci.low == pytest.approx(1.5) and ci.high == pytest.approx(2.5)
    assert math.isnan(percentile_interval(np.array([np.nan])).low)


# ------------------------------------------------------------------ risk groups
def test_median_split_puts_ties_low():
    from nnunet_hecktor.metrics.risk_groups import risk_groups

    high, threshold = median_risk_split([1, 2, 2, 3])
    assert threshold == 2 and high.tolist() == [False, False, False, True]
    # the prognosis figures use the same rule (one tie rule for every report)
    assert risk_groups([1, 2, 2, 3], 2)[0].tolist() == [0, 0, 0, 1]
    assert risk_groups([1, 2, 3, 4, 5, 6], 3)[0].tolist() == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize("seed", range(3))
def test_logrank_matches_lifelines(seed):
    from lifelines.statistics import logrank_test as lifelines_logrank

    rng = np.random.default_rng(seed)
    n = 60
    time = rng.integers(1, 40, n).astype(float)
    event = rng.random(n) < 0.6
    group = rng.random(n) < 0.5
    chi2, p = logrank_test(time, event, group.astype(int))
    ref = lifelines_logrank(time[group], time[~group], event[group], event[~group])
    assert chi2 == pytest.approx(ref.test_statistic, rel=1e-6)
    assert p == pytest.approx(ref.p_value, rel=1e-6)


def test_logrank_three_groups_matches_lifelines_and_sksurv():
    from lifelines.statistics import multivariate_logrank_test
    from sksurv.compare import compare_survival
    from sksurv.util import Surv

    rng = np.random.default_rng(11)
    n = 90
    time = rng.integers(1, 30, n).astype(float)
    event = rng.random(n) < 0.5
    group = rng.integers(0, 3, n)
    chi2, p = logrank_test(time, event, group)
    ref = multivariate_logrank_test(time, group, event)
    assert chi2 == pytest.approx(ref.test_statistic, rel=1e-6) and p == pytest.approx(ref.p_value, rel=1e-6)
    sk_chi2, sk_p = compare_survival(Surv.from_arrays(event, time), group)
    assert chi2 == pytest.approx(sk_chi2, rel=1e-6) and p == pytest.approx(sk_p, rel=1e-6)


def test_roc_points_table_and_area():
    from nnunet_hecktor.metrics.classification import roc_points

    # score >= threshold is positive; thresholds 0.9, 0.5, 0.2
    fpr, tpr = roc_points([1, 0, 1, 0], [0.9, 0.5, 0.5, 0.2])
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0] and tpr.tolist() == [0.0, 0.5, 1.0, 1.0]
    rng = np.random.default_rng(0)
    y = (rng.random(50) < 0.6).astype(int)
    score = np.round(rng.random(50), 1)
    fpr, tpr = roc_points(y, score)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(y, score))


def test_logrank_undefined_cases_and_groups():
    assert all(math.isnan(v) for v in logrank_test([1, 2], [1, 1], [0, 0]))
    assert all(math.isnan(v) for v in logrank_test([1, 2], [0, 0], [0, 1]))
    comparison = compare_risk_groups([1, 2, 3, 4], [1, 1, 0, 0], [4, 3, 2, 1])
    assert (comparison.n_low, comparison.n_high, comparison.events_high) == (2, 2, 2)


def test_kaplan_meier_matches_lifelines():
    from lifelines import KaplanMeierFitter

    time = np.array([5, 6, 6, 2, 4, 4, 9, 10], dtype=float)
    event = np.array([1, 0, 1, 1, 1, 0, 1, 0], dtype=bool)
    times, survival = kaplan_meier(time, event)
    fitter = KaplanMeierFitter().fit(time, event)
    expected = fitter.survival_function_at_times(times).to_numpy()
    assert np.allclose(survival, expected)
