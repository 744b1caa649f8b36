"""What users look at besides the challenge figures: HPV calibration and confusion matrix,
time-dependent AUC and integrated Brier score of the risk.

- HPV: confusion matrix of the hard labels (``hpv_status``: the decision at the threshold the
  predictor applied; rows true negative/positive, columns predicted), Brier score and reliability
  curve of ``hpv_probability`` (:mod:`nnunet_hecktor.metrics.calibration`).
- Risk: cumulative/dynamic AUC at 1, 2, 3 and 5 years inside the follow-up, and the integrated
  Brier score when ``predictions.csv`` carries survival functions (``survival_<days>`` columns);
  a risk score alone gives no Brier score (:mod:`nnunet_hecktor.metrics.time_dependent`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

from nnunet_hecktor.metrics.calibration import calibration
from nnunet_hecktor.metrics.classification import confusion_matrix
from nnunet_hecktor.metrics.time_dependent import time_dependent_metrics

from .outcome import PredictionTable, survival_functions
from .per_patient import hpv_arrays, survival_arrays


def hpv_diagnostics(rows: Sequence[Mapping]) -> dict | None:
    """``{"confusion_matrix": {...}, "calibration": {...} or None}`` of the HPV predictions; None without any."""
    hpv = hpv_arrays(rows)
    if hpv is None:
        return None
    _, y, pred, probability = hpv
    (tn, fp), (fn, tp) = confusion_matrix(y, pred, (0, 1)).tolist()
    out: dict = {"confusion_matrix": {"labels": ["HPV negative", "HPV positive"], "rows": "true",
                                      "columns": "predicted (hpv_status)", "matrix": [[tn, fp], [fn, tp]],
                                      "tn": tn, "fp": fp, "fn": fn, "tp": tp}}
    out["calibration"] = calibration(y, probability).to_dict() if probability is not None else None
    return out


def survival_diagnostics(rows: Sequence[Mapping], predictions: PredictionTable | None) -> dict | None:
    """Time-dependent AUC (and integrated Brier score with survival functions); None without risk rows."""
    survival = survival_arrays(rows)
    if survival is None:
        return None
    patients, time, event, risk = survival
    functions = survival_functions(predictions, patients) if predictions is not None else None
    grid, matrix = functions if functions is not None else (None, None)
    return time_dependent_metrics(time, event, risk, survival=matrix, survival_times=grid).to_dict()
