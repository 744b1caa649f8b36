"""Typed parsing of HECKTOR clinical values (nnunet_hecktor.clinical)."""

import json

import pytest

from nnunet_hecktor.clinical import (
    format_value, parse_clinical_row, parse_value, performance_status_to_ecog, read_clinical_csv, read_ehr_json,
)
from nnunet_hecktor.errors import InputDataError


@pytest.mark.parametrize("column, raw, expected", [
    ("Age", "61.0", 61.0),
    ("Age", "", None),
    ("Gender", "1.0", 1),
    ("Gender", "0.0", 0),
    ("Tobacco Consumption", 1, 1),
    ("Performance Status", "90.0", 90),
    ("Performance Status", "2", 2),
    ("M-stage", "M0", "M0"),
    ("M-stage", "mx", "Mx"),
    ("HPV Status", "1.0", 1),
    ("Relapse", "0.0", 0),
    ("RFS", "1234.5", 1234.5),
    ("RFS", "0", 0.0),
    ("CenterID", "2.0", 2),
    ("Treatment", None, None),
    ("Treatment", float("nan"), None),
])
def test_parse_value_accepts_release_encodings(column, raw, expected):
    assert parse_value(column, raw) == expected


@pytest.mark.parametrize("column, raw, message", [
    ("Age", "sixty", "expected a number"),
    ("Age", "inf", "finite"),
    ("M-stage", "M2", "unknown M-stage"),
    ("RFS", "-3", "negative RFS"),
    ("Relapse", "2.0", "expected one of {0, 1}"),
    ("Relapse", "0.5", "expected one of {0, 1}"),
    ("Performance Status", "70", "expected one of"),
    ("CenterID", "9", "expected one of"),
])
def test_parse_value_rejects_malformed(column, raw, message):
    with pytest.raises(ValueError, match=message):
        parse_value(column, raw)


@pytest.mark.parametrize("value, ecog", [
    (None, None), (0, 0), (4, 4), (100, 0), (90, 0), (80, 1), (70, 1), (50, 2), (30, 3), (10, 4),
])
def test_performance_status_to_ecog(value, ecog):
    assert performance_status_to_ecog(value) == ecog


def test_row_error_names_patient_file_and_column():
    with pytest.raises(InputDataError) as info:
        parse_clinical_row({"PatientID": "CHUP-007", "Age": "abc"}, source="task1.csv")
    assert str(info.value).startswith("CHUP-007: task1.csv: column 'Age'")


def test_read_clinical_csv_columns_by_name_any_order(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("RFS,PatientID,Relapse,Age\n100.0,MDA-001,1.0,\n,CHUP-000,,55\n")
    records = read_clinical_csv(path)
    assert list(records) == ["MDA-001", "CHUP-000"]
    assert records["MDA-001"]["RFS"] == 100.0 and records["MDA-001"]["Relapse"] == 1
    assert records["MDA-001"]["Age"] is None and records["CHUP-000"]["Age"] == 55.0
    assert records["CHUP-000"]["HPV Status"] is None


@pytest.mark.parametrize("text, message", [
    ("PatientID,Age\nMDA-001,50\nMDA-001,51\n", "duplicate PatientID"),
    ("Age\n50\n", "no 'PatientID' column"),
    ("PatientID,Age\n,50\n", "empty PatientID"),
    ("PatientID,Age\nMDA-001,50,7\n", "more cells than header"),
])
def test_read_clinical_csv_errors(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputDataError, match=message):
        read_clinical_csv(path)


def test_read_ehr_json_absent_keys_are_missing(tmp_path):
    path = tmp_path / "ehr.json"
    path.write_text(json.dumps({"Age": 70, "Gender": 1.0, "M-stage": "M1"}))
    record = read_ehr_json(path)
    assert record["Age"] == 70.0 and record["Gender"] == 1 and record["M-stage"] == "M1"
    assert record["Tobacco Consumption"] is None


@pytest.mark.parametrize("value, text", [(None, ""), (1, "1.0"), (0.0, "0.0"), ("M0", "M0"), (61.5, "61.5")])
def test_format_value_round_trips_release_encoding(value, text):
    assert format_value(value) == text
