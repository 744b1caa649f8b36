"""HPV loss: class weighting from the training prevalence, masking of unknown labels."""

from __future__ import annotations

import math

import pytest
import torch

from nnunet_hecktor.heads import HPVLoss, class_weights, hpv_bce_loss, hpv_prevalence

NAN = float("nan")


def bce(logit: float, label: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -(label * math.log(p) + (1 - label) * math.log(1 - p))


@pytest.mark.parametrize(
    "prevalence, weighting, expected",
    [
        (0.9, "balanced", (0.5 / 0.9, 5.0)),
        (0.9, "pos_weight", (0.1 / 0.9, 1.0)),
        (0.9, "none", (1.0, 1.0)),
        (0.5, "balanced", (1.0, 1.0)),
        (None, "balanced", (1.0, 1.0)),
        (1.0, "balanced", (1.0, 1.0)),  # one class only: weighting meaningless
        (0.0, "pos_weight", (1.0, 1.0)),
    ],
)
def test_class_weights(prevalence, weighting, expected):
    assert class_weights(prevalence, weighting) == pytest.approx(expected)


def test_balanced_weights_make_both_classes_contribute_equally():
    w_pos, w_neg = class_weights(0.9, "balanced")
    assert 0.9 * w_pos == pytest.approx(0.1 * w_neg) == pytest.approx(0.5)


def test_prevalence_ignores_unknown_labels():
    assert hpv_prevalence([1, 1, 0, None, NAN, 1.0]) == pytest.approx(0.75)
    assert hpv_prevalence([None, NAN]) is None


def test_weighted_loss_hand_checked_with_unknown_labels_masked():
    logit = torch.tensor([0.5, -1.0, 2.0, 0.3], requires_grad=True)
    loss = hpv_bce_loss(logit, [1.0, 0.0, NAN, 0.0], positive_weight=0.5, negative_weight=3.0)
    expected = (0.5 * bce(0.5, 1) + 3.0 * bce(-1.0, 0) + 3.0 * bce(0.3, 0)) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert logit.grad[2] == 0 and logit.grad[0] != 0


def test_unweighted_equals_torch_bce():
    logit = torch.tensor([0.2, -0.7, 1.5])
    label = torch.tensor([1.0, 0.0, 1.0])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logit, label)
    assert hpv_bce_loss(logit, label).item() == pytest.approx(expected.item(), rel=1e-6)


def test_all_labels_unknown_is_zero_with_a_graph_never_nan():
    logit = torch.tensor([0.4, -0.2], requires_grad=True)
    loss = HPVLoss(prevalence=0.9)(logit, [NAN, NAN])
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.count_nonzero(logit.grad) == 0


def test_extreme_logits_and_half_precision_are_finite():
    logit = torch.tensor([80.0, -80.0], dtype=torch.float16, requires_grad=True)
    loss = hpv_bce_loss(logit, [0.0, 1.0])
    assert loss.dtype == torch.float32 and math.isfinite(loss.item())
    loss.backward()
    assert torch.isfinite(logit.grad).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="weighting"):
        class_weights(0.5, "focal")
    with pytest.raises(ValueError, match="labels for 2 logits"):
        hpv_bce_loss(torch.zeros(2), [1.0])


@pytest.mark.parametrize("weighting, expected", [("balanced", 0.5), ("pos_weight", 0.5), ("none", 0.9)])
def test_calibrated_prevalence_is_where_the_weighted_loss_puts_a_constant_model(weighting, expected):
    """A model with one free logit, trained with the loss, predicts exactly the calibrated prevalence:
    the threshold policy's prior for the network head."""
    labels = torch.tensor([1.0] * 9 + [0.0])
    loss_fn = HPVLoss(hpv_prevalence(labels.tolist()), weighting)
    assert loss_fn.calibrated_prevalence == pytest.approx(expected)
    logit = torch.zeros(1, requires_grad=True)
    optimiser = torch.optim.LBFGS([logit], lr=1.0, max_iter=100)

    def closure():
        optimiser.zero_grad()
        loss = loss_fn(logit.expand(10), labels)
        loss.backward()
        return loss

    optimiser.step(closure)
    assert float(torch.sigmoid(logit)) == pytest.approx(expected, abs=1e-4)
    assert HPVLoss(None, weighting).calibrated_prevalence is None
