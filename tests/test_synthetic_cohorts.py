"""Synthetic cohorts side by side: new-patient ids never repeat training ids; enrichment keeps the
generator's associations."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from nnunet_hecktor import schema
from nnunet_hecktor.synthetic import draw_patients, first_free_id_number, make_cohort
from nnunet_hecktor.synthetic.patients import RISK_COEFFICIENTS, covariate_acceptance


def test_new_patient_ids_never_repeat_training_ids():
    train = draw_patients(200, seed=0)
    train_ids = {p.patient_id for p in train}
    # Without an offset two seeds reuse ids for other patients (the collision this guards against).
    assert train_ids & {p.patient_id for p in draw_patients(150, seed=1)}
    offset = first_free_id_number(train_ids)
    new = draw_patients(150, seed=1, id_offset=offset)
    assert not train_ids & {p.patient_id for p in new}
    assert all(schema.PATIENT_ID_PATTERN.match(p.patient_id) for p in new)
    # The offset renumbers, nothing else: same patients, numbers moved by the offset.
    for a, b in zip(draw_patients(150, seed=1), new):
        assert b.patient_id == f"{a.centre}-{int(a.patient_id[-3:]) + offset:03d}"
        assert a.true_risk == b.true_risk and a.clinical_recorded == b.clinical_recorded
    assert first_free_id_number([]) == 0 and first_free_id_number(["MDA-041", "CHUP-007"]) == 42


def test_make_cohort_takes_the_offset(tmp_path):
    summary = make_cohort(tmp_path / "new", n_patients=4, seed=3, id_offset=200, layout="flat", progress=False)
    assert all(int(pid[-3:]) >= 200 for pid in summary.all_patient_ids)


def test_covariate_enrichment_never_looks_at_the_outcome():
    patient = draw_patients(20, seed=5)[7]
    flipped = replace(patient, relapse=1 - patient.relapse, rfs_days=patient.rfs_days + 500.0)
    assert covariate_acceptance(flipped) == covariate_acceptance(patient)
    # HPV-negative and high-risk patients are kept more often (same risk covariates: the HPV term moves).
    hpv_term = RISK_COEFFICIENTS["hpv_positive"]
    negative = replace(patient, hpv=0, true_risk=patient.true_risk)
    positive = replace(patient, hpv=1, true_risk=patient.true_risk + hpv_term)
    assert covariate_acceptance(negative) == pytest.approx(covariate_acceptance(positive) / 0.35)
    assert covariate_acceptance(replace(patient, true_risk=patient.true_risk + 1)) > covariate_acceptance(patient)


def _cox_frame(patients):
    import pandas as pd

    return pd.DataFrame({
        "log_primary_volume_per_ln": [np.log(max(p.primary_volume_ml, 0.5) / 15.0) for p in patients],
        "suvmax_per_4": [(p.suvmax - 12.0) / 4.0 for p in patients],
        "node_count": [p.node_count for p in patients],
        "hpv_positive": [p.hpv for p in patients],
        "m1": [p.clinical_true[schema.COL_MSTAGE] == "M1" for p in patients],
        "mx": [p.clinical_true[schema.COL_MSTAGE] == "Mx" for p in patients],
        "age_per_10y": [(p.clinical_true[schema.COL_AGE] - 60.0) / 10.0 for p in patients],
        "T": [p.rfs_days for p in patients], "E": [p.relapse for p in patients]}).astype(float)


def test_enriched_cohort_keeps_the_risk_model():
    """A Cox refit on the true covariates of an enriched cohort recovers the generating coefficients
    (3 standard errors at n = 300; benchmarks/check_enrichment.py runs 3,000)."""
    from lifelines import CoxPHFitter

    patients = draw_patients(300, seed=9, enriched=True)
    assert 0.2 < 1 - np.mean([p.hpv for p in patients]) < 0.4
    assert 0.32 < np.mean([p.relapse for p in patients]) < 0.52
    assert len({p.patient_id for p in patients}) == 300 and all(p.tasks == (1, 2, 3) for p in patients)
    fit = CoxPHFitter().fit(_cox_frame(patients), "T", "E")
    for name in ("log_primary_volume_per_ln", "suvmax_per_4", "node_count", "hpv_positive", "age_per_10y"):
        assert abs(fit.params_[name] - RISK_COEFFICIENTS[name]) < 3 * fit.standard_errors_[name], name


def test_outcome_enrichment_is_still_available():
    patients = draw_patients(40, seed=2, enriched=True, enrichment="outcome")
    assert len(patients) == 40
    with pytest.raises(ValueError, match="enrichment"):
        draw_patients(4, seed=2, enriched=True, enrichment="stratified")
