"""T and N stage evaluation (HECKTOR 2026): multi-class balanced accuracy of predicted stages.

Predicted stages come from the ``t_stage`` / ``n_stage`` columns of ``predictions.csv`` or the
container's ``t-stage.json`` / ``n-stage.json``; the truth from the clinical ``T-stage`` / ``N-stage``
columns. Both are canonical labels (``schema.T_STAGES`` = T0..T4, ``schema.N_STAGES`` = N0..N3;
sub-stages merged, ``Tx``/``Nx`` missing) compared through their ordinal codes
(``schema.stage_code``). Balanced accuracy is scikit-learn's ``balanced_accuracy_score``: mean recall
over the stages present in the truth (a stage nobody has does not count; a predicted stage nobody
has lowers the recall of the true stages only). With one true stage only it is undefined (NaN, with
a note).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence, cast

import numpy as np

from nnunet_hecktor import schema
from nnunet_hecktor.metrics.bootstrap import percentile_interval, resampling_weights
from nnunet_hecktor.metrics.classification import confusion_matrix, multiclass_balanced_accuracy
from nnunet_hecktor.metrics.paired import bootstrap_multiclass_balanced_accuracy

from .outcome import STAGE_PREDICTIONS, PredictionTable, _select

#: Block name in metrics.json -> prediction column.
STAGE_BLOCKS: dict[str, str] = {"t_stage": "t_stage", "n_stage": "n_stage"}


def stage_codes(column: str, labels: Sequence[str]) -> np.ndarray:
    """Ordinal codes (``schema.stage_code``) of canonical stage labels of ``column`` (``T-stage``/``N-stage``)."""
    return np.array([schema.stage_code(column, label) for label in labels], dtype=int)


def evaluate_stage(prediction_column: str, cohort: Sequence[str], clinical: Mapping[str, Mapping],
                   predictions: PredictionTable, n_bootstrap: int = 1000, seed: int = 0,
                   level: float = 0.95) -> dict:
    """Balanced accuracy, confusion matrix and counts of one predicted stage over ``cohort``.

    Parameters
    ----------
    prediction_column : {"t_stage", "n_stage"}
    cohort : sequence of str
        Patients to score (each needs a prediction row); those without the true stage are left out
        and counted.
    clinical : mapping
        PatientID -> typed record with ``T-stage`` / ``N-stage``.
    predictions : PredictionTable
    n_bootstrap, seed, level :
        Patient-level bootstrap of the balanced accuracy (replicates with one true stage are left out).

    Returns
    -------
    dict
        ``balanced_accuracy``, ``n``, ``stages`` (label order of the matrix), ``true_counts``,
        ``confusion_matrix`` (rows true, columns predicted), ``ci95``, exclusions and ``notes``.
    """
    target = STAGE_PREDICTIONS[prediction_column]
    stages = schema.STAGES_OF_COLUMN[target]
    selection = _select(cohort, clinical, predictions, (target,))
    pids = selection.patients
    y = stage_codes(target, [clinical[p][target] for p in pids])
    # Stage prediction columns hold stage labels (strings).
    p = stage_codes(target, [cast(str, predictions.rows[q][prediction_column]) for q in pids])
    value = multiclass_balanced_accuracy(y, p) if pids else math.nan
    notes = []
    if pids and np.unique(y).size < 2:
        notes.append(f"one true {target} only ({stages[int(y[0])]}) among the {len(pids)} scored patients: "
                     "balanced accuracy undefined")
    interval = None
    if n_bootstrap > 0 and pids:
        stream = 4 if target == schema.COL_TSTAGE else 5
        weights = resampling_weights(len(pids), n_bootstrap, np.random.SeedSequence([seed, stream]))
        ci = percentile_interval(bootstrap_multiclass_balanced_accuracy(y, p, weights), level)
        interval = {"balanced_accuracy": [None if math.isnan(ci.low) else ci.low,
                                          None if math.isnan(ci.high) else ci.high]}
    matrix = confusion_matrix(y, p, range(len(stages))) if pids else np.zeros((len(stages), len(stages)), int)
    return {
        "balanced_accuracy": value,
        "n": len(pids),
        "stages": list(stages),
        "true_counts": {s: int((y == k).sum()) for k, s in enumerate(stages)},
        "predicted_counts": {s: int((p == k).sum()) for k, s in enumerate(stages)},
        "confusion_matrix": matrix.tolist(),
        "ci95": interval,
        "excluded_not_in_clinical": len(selection.not_in_clinical),
        "excluded_unknown_target": len(selection.unknown_target),
        "excluded_patients": selection.not_in_clinical + selection.unknown_target,
        "notes": notes,
    }
