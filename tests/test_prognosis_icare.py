"""ICARE-style survival models (nnunet_hecktor.prognosis.icare)."""

import numpy as np
import pytest
from sksurv.metrics import concordance_index_censored
from sksurv.util import Surv

from nnunet_hecktor.metrics.survival import harrell_c_index
from nnunet_hecktor.prognosis.icare import BaggedIcareSurvival, IcareSurvival, univariate_concordance


@pytest.mark.parametrize("time, event, x, expected", [
    # hand-checked: 3 comparable pairs (cases 1 and 2), all concordant
    ([1, 2, 3], [1, 1, 0], [3, 2, 1], 1.0),
    ([1, 2, 3], [1, 1, 0], [1, 2, 3], 0.0),
    # tied values count 0.5: pairs (1,2) tied, (1,3) concordant, (2,3) concordant -> 2.5/3
    ([1, 2, 3], [1, 1, 0], [5, 5, 1], 2.5 / 3),
    # equal times: only the event/censored pair is comparable (the event is earlier)
    ([2, 2, 2], [1, 0, 1], [1, 0, 0], 0.75),
    # no events: no comparable pair -> 0.5
    ([1, 2, 3], [0, 0, 0], [1, 2, 3], 0.5),
])
def test_univariate_concordance_hand_checked(time, event, x, expected):
    c = univariate_concordance(np.array(x, float)[:, None], np.array(time, float), np.array(event, bool))
    assert c[0] == pytest.approx(expected)


def test_univariate_concordance_matches_reference_per_column_with_nan():
    rng = np.random.default_rng(0)
    n = 120
    time = rng.integers(1, 60, n).astype(float)  # many tied times
    event = rng.random(n) < 0.4
    X = np.column_stack([rng.normal(size=n), rng.integers(0, 3, n), time * -1 + rng.normal(size=n)])
    X[rng.random(X.shape) < 0.1] = np.nan
    c = univariate_concordance(X, time, event, max_block=5000)  # several blocks
    for j in range(X.shape[1]):
        ok = ~np.isnan(X[:, j])
        assert c[j] == pytest.approx(harrell_c_index(time[ok], event[ok], X[ok, j]), abs=1e-12)
        assert c[j] == pytest.approx(concordance_index_censored(event[ok], time[ok], X[ok, j])[0], abs=1e-12)


def known_direction_data(n=300, seed=0):
    """Features 0, 1 raise the hazard, 2, 3 lower it, 4, 5 are noise; 6 duplicates 0 (r > 0.97)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    X = np.column_stack([X, X[:, 0] + 0.2 * rng.normal(size=n)])
    log_hazard = 0.9 * X[:, 0] + 0.6 * X[:, 1] - 0.9 * X[:, 2] - 0.6 * X[:, 3]
    event_time = rng.exponential(np.exp(-log_hazard)) * 365
    censor = rng.uniform(100, 900, n)
    event = event_time <= censor
    y = Surv.from_arrays(event, np.minimum(event_time, censor))
    return X * [1, 10, 0.1, 5, 1, 1, 1] + [0, 50, 0, -3, 0, 0, 0], y


def test_icare_recovers_directions_and_drops_noise_and_duplicates():
    X, y = known_direction_data()
    model = IcareSurvival().fit(X, y)
    assert list(model.weights_[:4]) == [1, 1, -1, -1]
    assert model.weights_[4] == model.weights_[5] == 0  # noise: univariate C within 0.05 of 0.5
    assert model.weights_[6] == 0  # correlated with feature 0, which is stronger
    assert model.selected_[0] in (0, 2)  # strongest first
    # the prediction is the mean of the signed standardised selected features
    Z = (X - X.mean(0)) / X.std(0)
    expected = (Z[:, 0] + Z[:, 1] - Z[:, 2] - Z[:, 3]) / 4
    np.testing.assert_allclose(model.predict(X), expected, atol=1e-12)
    assert model.score(X, y) > 0.7


def test_icare_keeps_the_strongest_feature_when_none_passes_the_margin():
    X, y = known_direction_data()
    model = IcareSurvival(min_c_index_margin=0.49).fit(X, y)
    assert np.count_nonzero(model.weights_) == 1


def test_icare_ignores_missing_values_in_the_average():
    X, y = known_direction_data()
    model = IcareSurvival().fit(X, y)
    row = X[:1].copy()
    row[0, 1] = np.nan
    Z = (row[0] - model.mean_) / model.scale_
    assert model.predict(row)[0] == pytest.approx((Z[0] - Z[2] - Z[3]) / 3)
    assert model.predict(np.full((1, X.shape[1]), np.nan))[0] == 0.0


def test_bagged_icare_recovers_directions_and_aggregates_by_median():
    X, y = known_direction_data()
    model = BaggedIcareSurvival(n_estimators=25, random_state=1).fit(X, y)
    assert np.all(np.sign(model.feature_weights_[:4]) == [1, 1, -1, -1])
    assert np.all(np.abs(model.feature_weights_[:4]) > 0.9)
    assert np.all(np.abs(model.feature_weights_[4:6]) < 0.5)
    risks = np.stack([m.predict(X[:, cols]) for cols, m in model.estimators_])
    np.testing.assert_array_equal(model.predict(X), np.median(risks, axis=0))
    again = BaggedIcareSurvival(n_estimators=25, random_state=1).fit(X, y)
    np.testing.assert_array_equal(model.predict(X), again.predict(X))
    X_test, y_test = known_direction_data(seed=5)
    assert model.score(X_test, y_test) > 0.7  # generalises to new patients
    assert set(model.selected_features(0.9)) == {"x0", "x1", "x2", "x3"}


def test_bagged_icare_with_feature_subsampling_and_dataframe_names():
    import pandas as pd

    X, y = known_direction_data()
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    model = BaggedIcareSurvival(n_estimators=30, max_features=0.5, random_state=0).fit(frame, y)
    assert all(len(cols) == 4 for cols, _ in model.estimators_)  # round(0.5 * 7)
    assert set(model.selected_features(0.5)) >= {"f2"}
    assert model.selected_features(0.5)["f2"] < 0


def test_bagged_icare_refuses_data_without_events():
    X, _ = known_direction_data(n=20)
    with pytest.raises(ValueError, match="no events"):
        BaggedIcareSurvival(n_estimators=2).fit(X, Surv.from_arrays(np.zeros(20, bool), np.arange(1, 21.0)))
