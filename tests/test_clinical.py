"""Typed parsing of HECKTOR clinical values (nnunet_hecktor.clinical)."""

import json

import pytest

from nnunet_hecktor.clinical import (
    format_value,
    parse_clinical_row,
    parse_value,
    performance_status_to_ecog,
    read_clinical_csv,
    read_ehr_json,
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
    ("CenterID", "9", 9),  # an open set: centres absent from training are normal
    ("Performance Status", "70", 70),  # Karnofsky 10-100
    ("Performance Status", 10, 10),
    ("M-stage", "M1a", "M1"),
    ("M-stage", " m1C ", "M1"),
    ("Gender", "Male", 1),
    ("Gender", "f", 0),
    ("Treatment", None, None),
    ("Treatment", float("nan"), None),
    # issue 20: unambiguous words of the 0/1 targets and yes/no inputs, decimal commas
    ("HPV Status", "Positive", 1),
    ("HPV Status", " negative ", 0),
    ("HPV Status", "POS", 1),
    ("HPV Status", "neg", 0),
    ("Relapse", "Yes", 1),
    ("Relapse", "no", 0),
    ("Relapse", "True", 1),
    ("Relapse", "FALSE", 0),
    ("Alcohol Consumption", "y", 1),
    ("Age", "61,5", 61.5),
    ("RFS", "595,0", 595.0),
    ("Relapse", "1,0", 1),
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
    ("Performance Status", "75", "Karnofsky 10-100"),
    ("Performance Status", "5", "ECOG 0-4"),
    ("CenterID", "2.5", "integer centre code"),
    ("Age", "121", "outside 0-120 years"),
    ("Gender", "other", "expected a number"),
    ("RFS", "1,234", "ambiguous"),  # thousands separator or decimal comma: not guessed
    ("Treatment", "yes", "expected a number"),
    ("Gender", "yes", "expected a number"),
    ("HPV Status", "-", "expected a number"),
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


# -- inference policy (issue 10): every row is an input and what the model gets ---------------------------

@pytest.mark.parametrize("row, expected, substituted", [
    # unknown keys ignored, CenterID never an input (any value accepted, nothing reported)
    ({"CenterID": 9, "Favourite colour": "blue"}, {}, []),
    ({"CenterID": "Hospital X"}, {}, []),
    # Karnofsky kept raw (the encoder maps it onto ECOG like the release's 80/90/100)
    ({"Performance Status": 70}, {"Performance Status": 70}, []),
    ({"Performance Status": 75}, {"Performance Status": None}, [("Performance Status", 75, None)]),
    ({"Performance Status": 5}, {"Performance Status": None}, [("Performance Status", 5, None)]),
    ({"M-stage": "M1a"}, {"M-stage": "M1"}, [("M-stage", "M1a", "M1")]),
    ({"M-stage": "M1b"}, {"M-stage": "M1"}, [("M-stage", "M1b", "M1")]),
    ({"M-stage": "m0"}, {"M-stage": "M0"}, []),  # only the case differs: not a substitution
    ({"M-stage": "M2"}, {"M-stage": None}, [("M-stage", "M2", None)]),
    ({"Age": 121}, {"Age": None}, [("Age", 121, None)]),
    ({"Age": -1}, {"Age": None}, [("Age", -1, None)]),
    ({"Age": "sixty"}, {"Age": None}, [("Age", "sixty", None)]),
    ({"Age": float("inf")}, {"Age": None}, [("Age", float("inf"), None)]),
    ({"Age": 61}, {"Age": 61.0}, []),
    ({"Gender": "Male"}, {"Gender": 1}, [("Gender", "Male", 1)]),
    ({"Gender": "male"}, {"Gender": 1}, [("Gender", "male", 1)]),
    ({"Gender": "M"}, {"Gender": 1}, [("Gender", "M", 1)]),
    ({"Gender": "Female"}, {"Gender": 0}, [("Gender", "Female", 0)]),
    ({"Gender": "F"}, {"Gender": 0}, [("Gender", "F", 0)]),
    ({"Gender": "unknown gender"}, {"Gender": None}, [("Gender", "unknown gender", None)]),
    ({"Gender": 2}, {"Gender": None}, [("Gender", 2, None)]),
    ({"Tobacco Consumption": True}, {"Tobacco Consumption": None}, [("Tobacco Consumption", True, None)]),
    ({"Treatment": ""}, {"Treatment": None}, []),  # empty = missing, as in the release
    # a key spelled with another case is read, and reported
    ({"age": 50}, {"Age": 50.0}, [("Age", 50, 50.0)]),
    # issue 20: words of yes/no inputs, decimal commas (three digits after the comma: ambiguous), other names
    ({"Tobacco Consumption": "Yes", "Alcohol Consumption": "false"},
     {"Tobacco Consumption": 1, "Alcohol Consumption": 0},
     [("Tobacco Consumption", "Yes", 1), ("Alcohol Consumption", "false", 0)]),
    ({"Age": "61,5"}, {"Age": 61.5}, [("Age", "61,5", 61.5)]),
    ({"Age": "1,234"}, {"Age": None}, [("Age", "1,234", None)]),
    ({"Sex": "F", "ECOG": "1"}, {"Gender": 0, "Performance Status": 1},
     [("Gender", "F", 0), ("Performance Status", "1", 1)]),
    ({"Sex": "F", "Gender": "1"}, {"Gender": 1}, []),  # the column itself wins over its other name
    ({"Treatment": "Yes"}, {"Treatment": None}, [("Treatment", "Yes", None)]),  # 1 = chemoradiotherapy: no yes/no
    # targets are not model inputs: never read at inference
    ({"HPV Status": "positive", "RFS": -3}, {"HPV Status": None, "RFS": None}, []),
])
def test_inference_policy(row, expected, substituted):
    from nnunet_hecktor.clinical import parse_inference_record

    record, substitutions = parse_inference_record({"PatientID": "XYZ-001", **row})
    for column, value in expected.items():
        assert record[column] == value, column
    assert record["CenterID"] is None and record["PatientID"] == "XYZ-001"
    assert [(s.column, s.raw, s.used) for s in substitutions] == substituted
    for s in substitutions:
        assert s.patient == "XYZ-001"
        assert s.column in s.describe() and repr(s.raw) in s.describe()


def test_inference_substitutions_are_logged_once_each(caplog):
    import logging

    from nnunet_hecktor.clinical import log_substitutions, parse_inference_record

    _, substitutions = parse_inference_record({"Age": 121, "M-stage": "M1c", "Gender": "x"}, "P-1")
    with caplog.at_level(logging.INFO, logger="nnunet_hecktor.clinical"):
        log_substitutions(substitutions)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert any("Age = 121" in w and "missing" in w for w in warnings)
    assert any("Gender = 'x'" in w for w in warnings)


@pytest.mark.parametrize("content, reason", [
    ("{not json", "unreadable"),
    ("[1, 2]", "not a JSON object"),
    (b"\xff\xfe\x00", "unreadable"),
])
def test_inference_ehr_json_never_raises(tmp_path, content, reason):
    from nnunet_hecktor.clinical import read_inference_ehr_json

    path = tmp_path / "ehr.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    record, substitutions = read_inference_ehr_json(path, "P-1")
    assert all(record[c] is None for c in ("Age", "Gender", "M-stage"))
    assert len(substitutions) == 1 and reason in substitutions[0].reason


def test_inference_csv_bad_values_become_missing(tmp_path):
    from nnunet_hecktor.clinical import read_inference_csv, substitutions_csv_text

    path = tmp_path / "clinical.csv"
    path.write_text("PatientID,Age,Performance Status,CenterID,M-stage\nA-001,121,70,99,M1a\nA-002,60,,x,M0\n")
    records, substitutions = read_inference_csv(path)
    assert records["A-001"]["Age"] is None and records["A-001"]["Performance Status"] == 70
    assert records["A-001"]["M-stage"] == "M1" and records["A-002"]["Age"] == 60.0
    assert [(s.patient, s.column) for s in substitutions] == [("A-001", "Age"), ("A-001", "M-stage")]
    text = substitutions_csv_text(substitutions)
    assert text.splitlines()[0] == "PatientID,field,value,used,reason"
    assert text.splitlines()[1].startswith("A-001,Age,121,,age '121' outside 0-120 years")


def test_model_input_columns_are_exactly_what_the_encoder_reads():
    """The inference policy reads MODEL_INPUT_COLUMNS only: each changes the encoding, nothing else does."""
    from nnunet_hecktor.clinical import MODEL_INPUT_COLUMNS
    from nnunet_hecktor.heads.clinical_encoding import ClinicalEncoder

    encoder = ClinicalEncoder().fit([{"Age": 60.0}, {"Age": 70.0}])
    base = encoder.encode_as_lists([{}])[0]
    values = {"Age": 61.0, "Gender": 1, "Tobacco Consumption": 1, "Alcohol Consumption": 0,
              "Performance Status": 70, "Treatment": 1, "M-stage": "M1", "CenterID": 9, "HPV Status": 1,
              "Relapse": 1, "RFS": 100.0}
    changes = {c for c, v in values.items() if encoder.encode_as_lists([{c: v}])[0] != base}
    assert changes == set(MODEL_INPUT_COLUMNS)


def test_lenient_parsing_of_every_column_for_other_callers():
    """Conversion can use the same policy over every known column (targets and CenterID included)."""
    from nnunet_hecktor import schema
    from nnunet_hecktor.clinical import parse_inference_record

    row = {"PatientID": "X-001", "CenterID": "Hospital X", "RFS": "-3", "Relapse": "1.0", "HPV Status": "positive",
           "Performance Status": "70"}
    record, substitutions = parse_inference_record(row, columns=schema.CLINICAL_COLUMNS)
    assert record["Relapse"] == 1 and record["Performance Status"] == 70
    assert record["CenterID"] is None and record["RFS"] is None and record["HPV Status"] == 1  # issue 20
    assert [(s.column, s.used) for s in substitutions] == [("CenterID", None), ("RFS", None), ("HPV Status", 1)]
