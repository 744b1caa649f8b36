"""An edition's single ranking score from its components (HECKTOR 2026).

2026 ranks teams by ``0.25 x mean Dice (GTVp, GTVn) + 0.35 x mean balanced accuracy (T, N)
+ 0.40 x C-index``; the weights live in ``editions.get_edition("2026").score_weights`` (the one
source). The components are the means of their parts here, so a caller passes the parts.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np


def score_components(gtvp_dice: float, gtvn_dice: float, t_balanced_accuracy: float, n_balanced_accuracy: float,
                     c_index: float) -> dict[str, float]:
    """The 2026 components: ``dice`` = mean of the two Dice, ``stage_balanced_accuracy`` = mean of
    the T and N balanced accuracies, ``c_index`` as given (NaN propagates)."""
    return {"dice": float(np.mean([gtvp_dice, gtvn_dice])),
            "stage_balanced_accuracy": float(np.mean([t_balanced_accuracy, n_balanced_accuracy])),
            "c_index": float(c_index)}


def weighted_score(components: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """``sum(weights[k] * components[k])``; NaN when a weighted component is missing or NaN.

    Raises
    ------
    ValueError
        ``weights`` is empty (the edition has no single score).
    """
    if not weights:
        raise ValueError("this edition has no single weighted score")
    total = 0.0
    for key, weight in weights.items():
        value = components.get(key, math.nan)
        if value is None or not math.isfinite(value):
            return math.nan
        total += weight * value
    return float(total)


def bootstrap_weighted_score(replicates: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Weighted score of each bootstrap replicate from component replicates (NaN where one is NaN)."""
    arrays = [weight * np.asarray(replicates[key], dtype=float) for key, weight in weights.items()]
    return np.sum(arrays, axis=0)
