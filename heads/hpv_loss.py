"""Binary cross-entropy for HPV status with class imbalance handled and unknown labels masked.

HPV positive (label 1) is the positive class; about 90 % of the HECKTOR training patients
are positive, so an unweighted loss learns "always positive" (balanced accuracy 0.5).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

WEIGHTINGS = ("balanced", "pos_weight", "none")


def class_weights(prevalence: float | None, weighting: str = "balanced") -> tuple[float, float]:
    """Weights ``(w_positive, w_negative)`` of the HPV loss.

    Parameters
    ----------
    prevalence : float or None
        Fraction of HPV-positive patients among the training fold's known labels. None
        (unknown) gives unit weights.
    weighting : {"balanced", "pos_weight", "none"}
        ``"balanced"``: ``w_pos = 1 / (2 p)``, ``w_neg = 1 / (2 (1 - p))`` (both classes
        contribute equally, mean weight 1). ``"pos_weight"``: ``w_pos = (1 - p) / p``,
        ``w_neg = 1`` (``torch.nn.BCEWithLogitsLoss(pos_weight=...)``'s convention).
        ``"none"``: ``(1, 1)``.

    Returns
    -------
    tuple of float
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if weighting == "none" or prevalence is None:
        return 1.0, 1.0
    p = float(prevalence)
    if not (0.0 < p < 1.0) or math.isnan(p):
        # A fold with one class only: weighting is meaningless, fall back to unit weights.
        return 1.0, 1.0
    if weighting == "balanced":
        return 0.5 / p, 0.5 / (1.0 - p)
    return (1.0 - p) / p, 1.0


def hpv_prevalence(labels) -> float | None:
    """Fraction of positives among known labels (None, NaN ignored); None if no label is known."""
    known = [float(v) for v in labels if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(known) / len(known) if known else None


def hpv_bce_loss(logit: torch.Tensor, label, positive_weight: float = 1.0,
                 negative_weight: float = 1.0) -> torch.Tensor:
    """Class-weighted binary cross-entropy with logits, unknown labels masked out.

    Parameters
    ----------
    logit : torch.Tensor, shape [B]
        HPV logits (positive = HPV positive).
    label : array-like or torch.Tensor, shape [B]
        1 = HPV positive, 0 = negative, NaN = unknown (masked).
    positive_weight, negative_weight : float
        Per-class weights (see :func:`class_weights`).

    Returns
    -------
    torch.Tensor
        ``sum_i w_i BCE_i / n_known`` (fp32); exactly 0 with a graph (zero gradient for
        every logit) when no label is known, never NaN.
    """
    logit = logit.reshape(-1)
    x = logit.float()
    y = torch.as_tensor(label, device=logit.device).to(torch.float32).reshape(-1)
    if y.shape != x.shape:
        raise ValueError(f"{y.numel()} HPV labels for {x.numel()} logits")
    known = torch.isfinite(y)
    # 0 * (finite logits) keeps every logit in the graph even when all labels are masked.
    zero = x.masked_fill(~torch.isfinite(x.detach()), 0.0).sum() * 0.0
    if not bool(known.any()):
        return zero
    y_known = y[known]
    per_sample = F.binary_cross_entropy_with_logits(x[known], y_known, reduction="none")
    w = torch.where(y_known > 0.5, torch.full_like(y_known, positive_weight), torch.full_like(y_known, negative_weight))
    return (w * per_sample).sum() / known.sum() + zero


class HPVLoss(torch.nn.Module):
    """:func:`hpv_bce_loss` with weights derived from the training fold's prevalence.

    Parameters
    ----------
    prevalence : float or None
        Training-fold fraction of HPV-positive patients (see :func:`hpv_prevalence`).
    weighting : {"balanced", "pos_weight", "none"}
        See :func:`class_weights`. Use ``"none"`` when the sampler already balances the
        classes (weighting twice over-corrects).
    """

    def __init__(self, prevalence: float | None = None, weighting: str = "balanced") -> None:
        super().__init__()
        self.weighting = weighting
        self.prevalence = prevalence
        self.positive_weight, self.negative_weight = class_weights(prevalence, weighting)

    def forward(self, logit: torch.Tensor, label) -> torch.Tensor:
        return hpv_bce_loss(logit, label, self.positive_weight, self.negative_weight)

    @property
    def calibrated_prevalence(self) -> float | None:
        """The prevalence this loss calibrates the head's probabilities to: the sampled prevalence with
        each class's weight applied, ``w_pos p / (w_pos p + w_neg (1 - p))`` (0.5 for ``"balanced"`` and
        ``"pos_weight"``); ``None`` when the prevalence is unknown. The threshold policy predicts
        positive at probabilities of at least this value."""
        if self.prevalence is None:
            return None
        positive = self.positive_weight * self.prevalence
        return float(positive / (positive + self.negative_weight * (1.0 - self.prevalence)))

    def extra_repr(self) -> str:
        return (f"weighting={self.weighting!r}, prevalence={self.prevalence}, "
                f"w_pos={self.positive_weight:.3g}, w_neg={self.negative_weight:.3g}")
