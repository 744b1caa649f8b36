"""Clinical-only baselines: risk from a Cox model and HPV status from a logistic regression,
fitted on the training cohort's clinical table and applied to new patients.

They reuse the prognosis stage's encoding of the clinical table (:mod:`nnunet_hecktor.prognosis.stage_data`),
its preprocessing fitted on training rows only, its penalised Cox model (``coxnet``, elastic net
with the penalty chosen by cross-validation) and its penalised logistic regression; the HPV
decision threshold is the training prevalence (:func:`~nnunet_hecktor.metrics.classification.choose_threshold`).
No image is used.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from nnunet_hecktor.errors import HecktorError


@dataclass
class ClinicalBaseline:
    """Predictions of the clinical-only models for new patients, and what they were fitted on."""

    rows: dict[str, dict[str, float | int]]
    risk_columns: list[str] = field(default_factory=list)
    hpv_columns: list[str] = field(default_factory=list)
    n_train_survival: int = 0
    n_train_events: int = 0
    n_train_hpv: int = 0
    n_train_hpv_negative: int = 0
    hpv_threshold: float = float("nan")


def clinical_only_predictions(train_clinical_csv: str | os.PathLike, new_clinical_csv: str | os.PathLike,
                              random_state: int = 0, edition: str | None = None) -> ClinicalBaseline:
    """Fit the clinical-only Cox and logistic models on the training table; predict the new patients.

    Parameters
    ----------
    train_clinical_csv, new_clinical_csv : path-like
        Clinical tables (release columns; the targets of the new patients are never read).
    random_state : int
        Seed of the models' cross-validation.
    edition : str, optional
        When given, the predictors are restricted to the edition's test-time inputs
        (``editions.get_edition(edition).test_inputs``: for 2026 the risk model takes HPV status
        but never the T/N stages, which are targets). Default: every clinical column but the targets.

    Returns
    -------
    ClinicalBaseline
        ``rows[PatientID]`` holds ``risk`` (higher = earlier relapse), ``hpv_probability`` and
        ``hpv_status`` (1 = positive, probability >= training prevalence) for every new patient.
    """
    from sksurv.util import Surv

    from nnunet_hecktor.clinical import read_clinical_csv
    from nnunet_hecktor.metrics.classification import choose_threshold
    from nnunet_hecktor.prognosis.hpv_models import hpv_pipeline
    from nnunet_hecktor.prognosis.preprocessing import ColumnRoles
    from nnunet_hecktor.prognosis.stage_data import (
        clinical_columns_in,
        clinical_frame,
        clinical_roles,
        default_clinical_columns,
        hpv_targets,
        survival_targets,
    )
    from nnunet_hecktor.prognosis.survival_models import survival_pipeline

    train = read_clinical_csv(train_clinical_csv)
    new = read_clinical_csv(new_clinical_csv)
    new_ids = sorted(new)
    available = clinical_columns_in(train)
    if edition is not None:
        from nnunet_hecktor.editions import get_edition

        permitted = set(get_edition(edition).test_inputs)
        available = [c for c in available if c in permitted]
    result = ClinicalBaseline(rows={pid: {} for pid in new_ids})

    kept, time, event, _ = survival_targets(train, sorted(train))
    if len(kept) < 10 or event.sum() < 3:
        raise HecktorError(f"{train_clinical_csv}: too few training patients with outcome for a Cox model "
                           f"({len(kept)} patients, {int(event.sum())} relapses)")
    columns = default_clinical_columns("survival", available)
    model = survival_pipeline(ColumnRoles(**clinical_roles(columns)), "coxnet", random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter of the penalty path
        model.fit(clinical_frame(train, kept, columns, train_clinical_csv), Surv.from_arrays(event, time))
    risk = model.predict(clinical_frame(new, new_ids, columns, new_clinical_csv))
    for pid, value in zip(new_ids, risk):
        result.rows[pid]["risk"] = float(value)
    result.risk_columns, result.n_train_survival, result.n_train_events = columns, len(kept), int(event.sum())

    kept, y, _ = hpv_targets(train, sorted(train))
    if len(kept) < 10 or min(y.sum(), len(y) - y.sum()) < 3:
        raise HecktorError(f"{train_clinical_csv}: too few training patients of each HPV status for a logistic "
                           f"regression ({len(kept)} patients, {int(len(y) - y.sum())} negative)")
    columns = default_clinical_columns("hpv", available)
    classifier = hpv_pipeline(ColumnRoles(**clinical_roles(columns)), random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        classifier.fit(clinical_frame(train, kept, columns, train_clinical_csv), y)
    probability = classifier.predict_proba(clinical_frame(new, new_ids, columns, new_clinical_csv))[:, 1]
    threshold = choose_threshold(y, "prevalence")
    for pid, p in zip(new_ids, probability):
        result.rows[pid]["hpv_probability"] = float(np.clip(p, 0.0, 1.0))
        result.rows[pid]["hpv_status"] = int(p >= threshold)
    result.hpv_columns, result.n_train_hpv = columns, len(kept)
    result.n_train_hpv_negative, result.hpv_threshold = int(len(y) - y.sum()), float(threshold)
    return result
