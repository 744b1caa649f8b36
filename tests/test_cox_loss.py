"""Cox partial likelihood (Breslow ties) and the pairwise ranking term."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nnunet_hecktor.heads import cox_partial_likelihood_loss, pairwise_ranking_loss

NAN = float("nan")


def lse(*values: float) -> float:
    return math.log(sum(math.exp(v) for v in values))


def reference_breslow(risk, time, event, weights=None) -> float:
    """Direct double loop of the definition (weighted Breslow, mean over informative events)."""
    n = len(risk)
    w = [1.0] * n if weights is None else list(weights)
    num = den = 0.0
    for i in range(n):
        if not event[i] or w[i] == 0:
            continue
        at_risk = [j for j in range(n) if time[j] >= time[i] and w[j] > 0]
        if len(at_risk) < 2:
            continue
        num += w[i] * (math.log(sum(w[j] * math.exp(risk[j]) for j in at_risk)) - risk[i])
        den += w[i]
    return num / den if den else 0.0


R4 = [0.1, -0.2, 0.3, 0.5]


@pytest.mark.parametrize(
    "risk, time, event, expected",
    [
        # Event at t=1 sees everyone; event at t=2 sees {1, 2, 3} (the censored tie at 2
        # included); the event at t=3 is alone in its risk set and does not count.
        (R4, [1, 2, 2, 3], [1, 1, 0, 1], ((lse(*R4) - 0.1) + (lse(-0.2, 0.3, 0.5) + 0.2)) / 2),
        # Breslow: two tied events share the full risk set {0, 1, 2}.
        ([0.0, 1.0, 2.0], [2, 2, 5], [1, 1, 0], ((lse(0, 1, 2) - 0) + (lse(0, 1, 2) - 1)) / 2),
        # Two patients = a logistic loss on the risk difference.
        ([0.7, 0.2], [10, 20], [1, 0], math.log1p(math.exp(0.2 - 0.7))),
        # The censored patient is earlier: not comparable, but the later event is alone -> 0.
        ([0.7, 0.2], [10, 20], [0, 1], 0.0),
    ],
    ids=["mixed", "tied-events", "pair", "censored-first"],
)
def test_hand_checked_values(risk, time, event, expected):
    loss = cox_partial_likelihood_loss(torch.tensor(risk, dtype=torch.float64), time, event)
    assert loss.item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "time, event",
    [
        ([10.0, 20.0, 30.0], [0, 0, 0]),        # no event
        ([10.0], [1]),                           # a single patient (a DDP rank with batch 1)
        ([10.0, 20.0], [0, 1]),                  # the only event is the last time
        ([NAN, NAN], [1, 0]),                    # all outcomes unknown
        ([10.0, 20.0], [NAN, 1]),                # one unknown leaves a lone event
        ([], []),                                # empty batch
    ],
)
def test_nothing_comparable_gives_an_exact_zero_with_a_graph(time, event):
    risk = torch.randn(len(time), dtype=torch.float32, requires_grad=True)
    loss = cox_partial_likelihood_loss(risk, time, event)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert risk.grad is not None and torch.count_nonzero(risk.grad) == 0


def test_matches_the_definition_on_random_tied_weighted_data():
    rng = np.random.default_rng(3)
    n = 60
    risk = rng.normal(size=n) * 3
    time = rng.integers(1, 8, size=n).astype(float)  # heavy ties
    event = rng.random(n) < 0.4
    weights = rng.integers(0, 3, size=n).astype(float)
    for w in (None, weights):
        got = cox_partial_likelihood_loss(torch.tensor(risk), time, event.astype(float), weights=w).item()
        assert got == pytest.approx(reference_breslow(risk, time, event, w), rel=1e-12)


def test_integer_weights_equal_duplicated_subjects():
    risk = torch.tensor([0.3, -1.0, 0.8, 0.1], dtype=torch.float64)
    time, event = [5.0, 3.0, 5.0, 9.0], [1.0, 1.0, 0.0, 1.0]
    weighted = cox_partial_likelihood_loss(risk, time, event, weights=[2.0, 1.0, 3.0, 1.0])
    idx = [0, 0, 1, 2, 2, 2, 3]
    duplicated = cox_partial_likelihood_loss(risk[idx], [time[i] for i in idx], [event[i] for i in idx])
    assert weighted.item() == pytest.approx(duplicated.item(), rel=1e-12)


def test_unknown_outcomes_are_masked_and_get_zero_gradient():
    risk = torch.tensor([0.5, -0.3, 1.2, 0.0, 2.0], requires_grad=True)
    loss = cox_partial_likelihood_loss(risk, [3.0, 5.0, NAN, 7.0, 4.0], [1.0, 0.0, 1.0, 1.0, NAN])
    known = cox_partial_likelihood_loss(risk.detach()[[0, 1, 3]], [3.0, 5.0, 7.0], [1.0, 0.0, 1.0])
    assert loss.item() == pytest.approx(known.item())
    loss.backward()
    assert risk.grad[2] == 0 and risk.grad[4] == 0 and risk.grad[0] != 0


def test_extreme_risks_and_half_precision_stay_finite():
    risk = torch.tensor([800.0, -800.0, 300.0, 0.0], requires_grad=True)
    loss = cox_partial_likelihood_loss(risk, [1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 0.0])
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(risk.grad).all()
    half = torch.tensor([10.0, -5.0, 3.0], dtype=torch.float16, requires_grad=True)
    loss16 = cox_partial_likelihood_loss(half, [1.0, 2.0, 3.0], [1.0, 1.0, 0.0])
    assert loss16.dtype == torch.float32 and math.isfinite(loss16.item())
    loss16.backward()
    assert half.grad.dtype == torch.float16 and torch.isfinite(half.grad).all()


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in length"):
        cox_partial_likelihood_loss(torch.zeros(3), [1.0, 2.0], [1.0, 0.0])


@pytest.mark.parametrize(
    "risk, time, event, expected",
    [
        ([2.0, 1.0], [1, 2], [1, 0], math.log1p(math.exp(-1.0))),
        # Tied times: comparable only when exactly one is an event (the event is earlier).
        ([0.0, 1.0], [5, 5], [1, 0], math.log1p(math.exp(1.0))),
        ([0.0, 1.0], [5, 5], [1, 1], 0.0),
        # Pairs (0,1), (0,2), (1,2) with margins 1, 2, 1.
        ([3.0, 2.0, 1.0], [1, 2, 3], [1, 1, 0], (2 * math.log1p(math.exp(-1.0)) + math.log1p(math.exp(-2.0))) / 3),
    ],
)
def test_ranking_loss_hand_checked(risk, time, event, expected):
    loss = pairwise_ranking_loss(torch.tensor(risk, dtype=torch.float64), time, event)
    assert loss.item() == pytest.approx(expected, abs=1e-12)


def test_ranking_weight_adds_the_ranking_term():
    risk = torch.tensor([0.4, 0.1, -0.2], dtype=torch.float64)
    time, event = [1.0, 2.0, 3.0], [1.0, 1.0, 0.0]
    combined = cox_partial_likelihood_loss(risk, time, event, ranking_weight=0.5, ranking_sigma=0.1)
    parts = cox_partial_likelihood_loss(risk, time, event) + 0.5 * pairwise_ranking_loss(risk, time, event, sigma=0.1)
    assert combined.item() == pytest.approx(parts.item(), rel=1e-12)


def _synthetic_tied_cohort(seed: int = 0, n: int = 300):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    beta = np.array([0.9, -0.6, 0.3, 0.0])
    t_event = rng.exponential(800.0 * np.exp(-x @ beta))
    t_censor = rng.uniform(0, 1500.0, size=n)
    event = t_event <= t_censor
    # Whole months: many tied event and censoring times.
    time = np.maximum(30.0, np.ceil(np.minimum(t_event, t_censor) / 30.0) * 30.0)
    return x, time, event


def _fit_linear_cox(x, time, event) -> np.ndarray:
    xt = torch.tensor(x, dtype=torch.float64)
    beta = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([beta], lr=1.0, max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")
    t, e = torch.tensor(time), torch.tensor(event, dtype=torch.float64)

    def closure():
        opt.zero_grad()
        loss = cox_partial_likelihood_loss(xt @ beta, t, e)
        loss.backward()
        return loss

    opt.step(closure)
    return beta.detach().numpy()


def test_minimised_linear_model_reproduces_sksurv_breslow_coefficients():
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    x, time, event = _synthetic_tied_cohort()
    assert len(np.unique(time)) < len(time) / 3 and event.sum() > 50  # ties present, events plenty
    y = np.empty(len(time), dtype=[("event", bool), ("time", float)])
    y["event"], y["time"] = event, time
    reference = CoxPHSurvivalAnalysis(ties="breslow", alpha=0.0, n_iter=200, tol=1e-12).fit(x, y).coef_
    ours = _fit_linear_cox(x, time, event)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-4)
    # Efron ties give different coefficients on these data, so the test can tell the two apart.
    efron = CoxPHSurvivalAnalysis(ties="efron", alpha=0.0, n_iter=200, tol=1e-12).fit(x, y).coef_
    assert np.max(np.abs(efron - reference)) > 1e-3


def test_matches_statsmodels_phreg_breslow():
    import statsmodels.duration.hazard_regression as sm  # a test dependency (setup.cfg [test])

    x, time, event = _synthetic_tied_cohort(seed=1)
    reference = sm.PHReg(time, x, status=event.astype(float), ties="breslow").fit().params
    np.testing.assert_allclose(_fit_linear_cox(x, time, event), reference, rtol=0, atol=1e-4)
