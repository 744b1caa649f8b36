"""Synthetic ceilings: the generator's own true risk and HPV probability as predictions.

On a synthetic cohort nothing can rank relapses better than the linear predictor that drew
them, nor HPV status better than the probability it was drawn from (up to noise), so these
rows bound what any model can reach on the same patients.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def _truth(path: str | os.PathLike) -> dict:
    from nnunet_hecktor.errors import InputDataError

    path = Path(path)
    if not path.is_file():
        raise InputDataError("synthetic ground truth (synthetic_ground_truth.json) is missing", None, path)
    return json.loads(path.read_text())["patients"]


def ceiling_predictions(new_ground_truth: str | os.PathLike,
                        train_ground_truth: str | os.PathLike) -> tuple[dict[str, dict[str, float | int]], float]:
    """``({PatientID: {"risk", "hpv_probability", "hpv_status"}}, threshold)`` for the new patients.

    ``risk`` is the true linear predictor (higher = earlier relapse), ``hpv_probability`` the true
    probability of HPV positivity. ``hpv_status`` thresholds it where balanced accuracy is best on
    the *training* patients' drawn statuses (chosen without the new patients' labels; in an
    enriched cohort the true probability is not calibrated, so the prevalence rule would not do).
    """
    import numpy as np

    from nnunet_hecktor.metrics.classification import best_balanced_accuracy_threshold

    train = _truth(train_ground_truth)
    y = np.array([p["hpv"] for p in train.values()], dtype=int)
    probability = np.array([p["hpv_probability"] for p in train.values()], dtype=float)
    threshold = best_balanced_accuracy_threshold(y, probability) if 0 < y.sum() < y.size else 0.5
    rows = {pid: {"risk": float(p["true_risk"]), "hpv_probability": float(p["hpv_probability"]),
                  "hpv_status": int(p["hpv_probability"] >= threshold)}
            for pid, p in _truth(new_ground_truth).items()}
    return rows, float(threshold)
