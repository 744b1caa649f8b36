"""T and N stage (HECKTOR 2026) as a registered patient-level target of the prognosis stage.

Registers the ``stage`` target (:mod:`nnunet_hecktor.prognosis.targets`), so that the one command
that builds a stage (``nnunet-hecktor prognosis build``) fits the T/N models for every edition that
scores T and N, stages them as ``<model>/prognosis/stage.joblib``, and ``predict`` / the container
route ``t_stage`` / ``n_stage`` to them. The models themselves are
:func:`~nnunet_hecktor.prognosis.staging_fit.fit_staging`'s.

Conventions: stages are the canonical labels of ``schema.T_STAGES`` / ``N_STAGES``; balanced accuracy
is the mean recall over the stages present (``sklearn.metrics.balanced_accuracy_score``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from nnunet_hecktor import schema
from nnunet_hecktor.prognosis.targets import PatientTarget, register_target

#: Predicted-label column of each stage column (``predictions.csv``, ``t-stage.json`` / ``n-stage.json``).
STAGE_OUTPUT_COLUMNS: dict[str, str] = {schema.COL_TSTAGE: "t_stage", schema.COL_NSTAGE: "n_stage"}


def _fit_stage(clinical_csv, output_dir, features_csv=None, clinical_columns=None, n_splits: int = 5,
               cv: str = "kfold", random_state: int = 0, progress: bool = True, make_plots: bool = True, **_: Any):
    """``fit_staging`` with the build command's arguments."""
    from nnunet_hecktor.prognosis.staging_fit import fit_staging

    return fit_staging(clinical_csv, output_dir, features_csv=features_csv, cv=cv, n_splits=n_splits,
                       random_state=random_state, clinical_columns=clinical_columns, progress=progress)


def most_frequent_stages(labels: dict[str, list]) -> dict[str, str]:
    """The most frequent training stage of T and of N: the fallback answer (it maximises accuracy, and a
    constant answer has balanced accuracy 1 / number of stages whichever stage it is).

    ``labels``: stage column (``T-stage``/``N-stage``) -> training labels (None = unknown).
    """
    out = {}
    for column, short in STAGE_OUTPUT_COLUMNS.items():
        known = [s for s in labels.get(column, []) if isinstance(s, str) and s]
        out[short] = Counter(known).most_common(1)[0][0] if known else schema.STAGES_OF_COLUMN[column][0]
    return out


def _predict_stage(model, feature_table, records):
    from nnunet_hecktor.prognosis.staging_fit import stage_prediction

    return stage_prediction(model, feature_table, records)


def _stage_figures(oof, n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Out-of-fold balanced accuracy of T and of N with bootstrap intervals (flat keys: ``T_balanced_accuracy``,
    ``T_balanced_accuracy_ci95``, ``n_patients_T``, and the same for N)."""
    import numpy as np

    from nnunet_hecktor.metrics.bootstrap import percentile_interval, resampling_weights
    from nnunet_hecktor.metrics.paired import bootstrap_multiclass_balanced_accuracy

    figures: dict[str, Any] = {}
    for column, short in STAGE_OUTPUT_COLUMNS.items():
        letter = short[0].upper()
        known = oof[column].notna() & oof[short].notna()
        y = np.array([schema.stage_code(column, s) for s in oof.loc[known, column]], dtype=int)
        p = np.array([schema.stage_code(column, s) for s in oof.loc[known, short]], dtype=int)
        figures[f"n_patients_{letter}"] = int(y.size)
        if y.size == 0:
            continue
        figures[f"{letter}_balanced_accuracy"] = float(
            bootstrap_multiclass_balanced_accuracy(y, p, np.ones((1, y.size)))[0])
        interval = percentile_interval(
            bootstrap_multiclass_balanced_accuracy(y, p, resampling_weights(y.size, n_bootstrap, seed)))
        figures[f"{letter}_balanced_accuracy_ci95"] = [interval.low, interval.high]
    return figures


def _stage_fallback(model) -> dict:
    fallback = dict(model.fallback or {})
    return {short: fallback.get(short, schema.STAGES_OF_COLUMN[column][0])
            for column, short in STAGE_OUTPUT_COLUMNS.items()}


register_target(PatientTarget("stage", tuple(STAGE_OUTPUT_COLUMNS.values()), tuple(STAGE_OUTPUT_COLUMNS),
                              _fit_stage, _predict_stage, _stage_figures, _stage_fallback))
