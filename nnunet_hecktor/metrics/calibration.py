"""Calibration of predicted probabilities (HPV positive = 1): Brier score and the reliability curve.

The Brier score is scikit-learn's ``brier_score_loss``. The reliability curve bins the patients by
predicted probability (quantile bins, so each bin holds about as many patients, as scikit-learn's
``calibration_curve(strategy="quantile")``, here with the patient count of each bin, which that
function does not return) and compares each bin's mean probability with its observed share of
positives; a calibrated model lies on the diagonal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Calibration:
    """Brier score and reliability curve of one set of probabilities.

    Attributes
    ----------
    brier : float
        Mean squared difference between probability and outcome (0 best; NaN without patients).
    brier_prevalence : float
        Brier score of always predicting the cohort's prevalence (the uninformative reference).
    mean_predicted, observed : list of float
        Per bin: mean predicted probability and observed share of positives.
    counts : list of int
        Patients per bin.
    """

    brier: float
    brier_prevalence: float
    mean_predicted: list[float]
    observed: list[float]
    counts: list[int]

    def to_dict(self) -> dict:
        return {"brier": self.brier, "brier_prevalence": self.brier_prevalence,
                "reliability": {"mean_predicted": self.mean_predicted, "observed": self.observed,
                                "counts": self.counts}}


def calibration(y_true, probability, n_bins: int = 10) -> Calibration:
    """Brier score and quantile-binned reliability curve of ``probability`` against ``y_true`` (1 = positive)."""
    y = np.asarray(y_true).astype(int).ravel()
    p = np.asarray(probability, dtype=float).ravel()
    if y.size == 0:
        return Calibration(math.nan, math.nan, [], [], [])
    from sklearn.metrics import brier_score_loss

    brier = float(brier_score_loss(y, p, pos_label=1)) if np.unique(y).size > 1 else float(np.mean((p - y) ** 2))
    prevalence = float(y.mean())
    reference = float(np.mean((prevalence - y) ** 2))
    edges = np.unique(np.quantile(p, np.linspace(0, 1, min(n_bins, y.size) + 1)))
    # np.digitize with the inner edges: bin k holds edges[k] <= p < edges[k+1] (the last bin is closed).
    bins = np.clip(np.digitize(p, edges[1:-1], right=False), 0, max(len(edges) - 2, 0))
    mean_predicted, observed, counts = [], [], []
    for k in range(max(len(edges) - 1, 1)):
        inside = bins == k
        if inside.any():
            mean_predicted.append(float(p[inside].mean()))
            observed.append(float(y[inside].mean()))
            counts.append(int(inside.sum()))
    return Calibration(brier, reference, mean_predicted, observed, counts)
