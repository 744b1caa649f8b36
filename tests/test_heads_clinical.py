"""ClinicalEncoder: fixed layout, missing slots, ECOG/Karnofsky, statistics in the state dict."""

from __future__ import annotations

import io
import math

import pytest
import torch

from nnunet_hecktor import schema
from nnunet_hecktor.clinical import parse_clinical_row
from nnunet_hecktor.heads import CLINICAL_FEATURE_NAMES, N_CLINICAL_FEATURES, ClinicalEncoder

TRAINING = [{"Age": 50.0}, {"Age": 60.0}, {"Age": 70.0}, {"Age": None}]  # mean 60, sample std 10


def encoder() -> ClinicalEncoder:
    return ClinicalEncoder().fit(TRAINING)


def hot(vector: torch.Tensor) -> set[str]:
    """Names of the non-zero columns (Age_z shown only when non-zero)."""
    return {name for name, value in zip(CLINICAL_FEATURE_NAMES, vector.tolist()) if value != 0}


def test_layout_is_fixed():
    assert N_CLINICAL_FEATURES == 24 == len(CLINICAL_FEATURE_NAMES) == len(set(CLINICAL_FEATURE_NAMES))
    assert CLINICAL_FEATURE_NAMES[:5] == ("Age_z", "Age_missing", "Gender=0", "Gender=1", "Gender_missing")
    assert CLINICAL_FEATURE_NAMES[-6:] == ("ECOG=0", "ECOG=1", "ECOG=2", "ECOG=3", "ECOG=4", "ECOG_missing")
    assert ClinicalEncoder.feature_names == CLINICAL_FEATURE_NAMES


@pytest.mark.parametrize(
    "record, expected",
    [
        ({}, {"Age_missing", "Gender_missing", "Tobacco_missing", "Alcohol_missing", "Treatment_missing",
              "M-stage_missing", "ECOG_missing"}),
        ({"Age": 60.0, "Gender": 1, "Tobacco Consumption": 0, "Alcohol Consumption": 1, "Treatment": 0,
          "M-stage": "M0", "Performance Status": 0},
         {"Gender=1", "Tobacco=0", "Alcohol=1", "Treatment=0", "M-stage=M0", "ECOG=0"}),
        ({"Age": 75.0, "Gender": 0.0, "Tobacco Consumption": 1.0, "Alcohol Consumption": None, "Treatment": 1,
          "M-stage": "Mx", "Performance Status": 2},
         {"Age_z", "Gender=0", "Tobacco=1", "Alcohol_missing", "Treatment=1", "M-stage=Mx", "ECOG=2"}),
        # Karnofsky 100/90 -> ECOG 0, 80 -> ECOG 1 (nnunet_hecktor.clinical.performance_status_to_ecog).
        ({"Performance Status": 100, "M-stage": "M1"}, {"Age_missing", "Gender_missing", "Tobacco_missing",
          "Alcohol_missing", "Treatment_missing", "M-stage=M1", "ECOG=0"}),
        ({"Performance Status": 90, "M-stage": "mx"}, {"Age_missing", "Gender_missing", "Tobacco_missing",
          "Alcohol_missing", "Treatment_missing", "M-stage=Mx", "ECOG=0"}),
        ({"Performance Status": 80, "M-stage": float("nan")}, {"Age_missing", "Gender_missing", "Tobacco_missing",
          "Alcohol_missing", "Treatment_missing", "M-stage_missing", "ECOG=1"}),
    ],
    ids=["all-missing", "complete", "mixed", "kps100", "kps90-lowercase-mx", "kps80-nan"],
)
def test_one_hot_slots(record, expected):
    assert hot(encoder().encode([record])[0]) == expected


def test_every_group_has_exactly_one_hot_slot():
    vec = encoder().encode([{"Age": 61.0, "Gender": 1, "Performance Status": 3}, {}])
    groups = [slice(2, 5), slice(5, 8), slice(8, 11), slice(11, 14), slice(14, 18), slice(18, 24)]
    for row in vec:
        assert [int(row[g].sum()) for g in groups] == [1] * 6


def test_age_is_standardised_with_training_statistics_and_clipped():
    enc = encoder()
    assert float(enc.age_mean) == 60.0 and float(enc.age_std) == pytest.approx(10.0)
    out = enc.encode([{"Age": 75.0}, {"Age": 60.0}, {"Age": 650.0}, {"Age": None}])
    assert out[:, 0].tolist() == pytest.approx([1.5, 0.0, 5.0, 0.0])
    assert out[:, 1].tolist() == [0.0, 0.0, 0.0, 1.0]
    assert out.dtype == torch.float32 and out.shape == (4, N_CLINICAL_FEATURES)


def test_typed_records_from_the_clinical_parser_and_patient_dicts_are_accepted():
    row = {"PatientID": "CHUP-000", "Age": "64.0", "Gender": "1.0", "Tobacco Consumption": "",
           "Performance Status": "90", "M-stage": "M0", "HPV Status": "1.0"}
    record = parse_clinical_row(row)
    enc = encoder()
    by_patient = enc.encode({"CHUP-000": record})
    assert torch.equal(by_patient, enc.encode([record])) and torch.equal(by_patient, enc.encode(record))
    assert {"Gender=1", "Tobacco_missing", "ECOG=0", "M-stage=M0"} <= hot(by_patient[0])


def test_fit_uses_only_the_given_records_and_tolerates_degenerate_folds():
    assert float(ClinicalEncoder().fit([{"Age": 70.0}]).age_std) == 1.0
    empty = ClinicalEncoder().fit([{}, {"Age": None}])
    assert float(empty.age_mean) == 0.0 and float(empty.age_std) == 1.0
    assert math.isclose(float(ClinicalEncoder().fit({"A-000": {"Age": 40.0}, "A-001": {"Age": 80.0}}).age_mean), 60.0)


@pytest.mark.parametrize(
    "record, message",
    [
        ({schema.COL_PATIENT: "MDA-001", "Gender": 2}, "MDA-001.*Gender"),
        ({schema.COL_PATIENT: "MDA-002", "M-stage": "M2"}, "MDA-002.*M-stage"),
        ({schema.COL_PATIENT: "MDA-003", "Performance Status": 250}, "MDA-003.*Performance Status"),
        ({"Age": "old"}, "record #0.*Age"),
    ],
)
def test_values_outside_the_coding_name_the_patient(record, message):
    with pytest.raises(ValueError, match=message):
        encoder().encode([record])


def test_encode_before_fit_is_an_error_unless_clinical_inputs_are_disabled():
    with pytest.raises(RuntimeError, match="fit"):
        ClinicalEncoder().encode([{}])
    disabled = ClinicalEncoder(enabled=False)
    assert disabled.encode([{}, {}]).shape == (2, 0) and disabled.output_features == 0


def test_statistics_survive_a_state_dict_round_trip():
    enc = ClinicalEncoder().fit([{"Age": 48.5}, {"Age": 71.0}, {"Age": 66.0}])
    buffer = io.BytesIO()
    torch.save(enc.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert set(state) == {"age_mean", "age_std", "is_fitted"}
    fresh = ClinicalEncoder()
    fresh.load_state_dict(state, strict=True)
    records = [{"Age": 55.0, "Performance Status": 1}, {"Age": 90.0}]
    assert torch.equal(fresh.encode(records), enc.encode(records))
    # Image-only encoders keep the same keys, so checkpoints stay interchangeable in shape.
    assert set(ClinicalEncoder(enabled=False).state_dict()) == set(state)
