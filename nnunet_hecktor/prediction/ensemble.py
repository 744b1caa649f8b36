"""Combining the patient-level outputs (HPV, risk) of several folds.

Rules (what ``predictions.csv`` holds):

``hpv_probability``
    The mean over folds of each fold's HPV probability (each fold: sigmoid of its logit, the
    logit averaged over the mirrored patches). Averaging probabilities, like nnU-Net averaging
    the folds' softmax outputs, keeps a fold that is very sure from overruling the others.
``hpv_status``
    ``1`` (HPV positive) when ``hpv_probability >= threshold``, with ``threshold`` = the mean of
    the folds' thresholds stored in their checkpoints (each chosen on that fold's training
    patients, maximising balanced accuracy). The mean probability sits on the folds' average
    scale, so the average threshold is the matching cut; nothing is re-derived at prediction
    time, when no labels exist.
``risk``
    The mean over folds of each fold's raw risk output (higher = earlier relapse). The risk head
    is trained with a Cox partial likelihood, so its output is a log relative hazard with an
    arbitrary offset per fold; a per-fold offset shifts every patient alike and cannot change the
    ranking the C-index scores, and the mean of log hazards is the log of the geometric mean of
    the folds' hazard ratios. Per-fold standardisation is not done: it would need each fold's
    risk distribution on reference patients, which the checkpoints do not store, and
    standardising over the patients being predicted would make a patient's score depend on who
    else is in the batch (the challenge container sees one patient at a time).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

ENSEMBLE_RULES: dict[str, str] = {
    "hpv_probability": "mean over folds of the per-fold HPV probability (sigmoid of the mirroring-averaged logit)",
    "hpv_status": "1 (HPV positive) when hpv_probability >= mean of the folds' stored thresholds",
    "risk": "mean over folds of the raw per-fold risk (Cox log relative hazard; higher = earlier relapse)",
}


@dataclass(frozen=True)
class FoldHeadOutput:
    """One fold's patient-level outputs (see :class:`nnunet_hecktor.heads.inference.HeadPrediction`)."""

    fold: object
    hpv_probability: float
    hpv_logit: float
    threshold: float
    risk: float
    centre: tuple[int, ...]
    centre_source: str


@dataclass(frozen=True)
class EnsembleHeadOutput:
    """The folds' outputs combined (rules in the module docstring)."""

    hpv_probability: float
    hpv_threshold: float
    hpv_positive: bool
    risk: float
    n_folds: int

    def as_dict(self) -> dict:
        return asdict(self)


def ensemble_heads(outputs: Sequence[FoldHeadOutput]) -> EnsembleHeadOutput:
    """Combine per-fold head outputs.

    Parameters
    ----------
    outputs : sequence of FoldHeadOutput
        At least one.

    Returns
    -------
    EnsembleHeadOutput
        ``hpv_positive`` is True (HPV positive) when the mean probability reaches the mean threshold.
    """
    if not outputs:
        raise ValueError("no fold outputs to ensemble")
    probability = float(np.mean([o.hpv_probability for o in outputs]))
    threshold = float(np.mean([o.threshold for o in outputs]))
    risk = float(np.mean([o.risk for o in outputs]))
    for name, value in (("hpv_probability", probability), ("threshold", threshold), ("risk", risk)):
        if not np.isfinite(value):
            raise FloatingPointError(f"the heads produced a non-finite {name} ({value})")
    return EnsembleHeadOutput(probability, threshold, probability >= threshold, risk, len(outputs))
