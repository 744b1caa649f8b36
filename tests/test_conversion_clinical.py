"""Merging the task CSVs into clinical.csv: raw values, parsed comparison, conflicts, duplicates, bad rows."""

from __future__ import annotations

import csv
import json

import pytest
from test_conversion_helpers import write_csv, write_patient

from nnunet_hecktor.dataset_conversion import convert_dataset, merge_clinical_csvs
from nnunet_hecktor.dataset_conversion.layout import ClinicalSource
from nnunet_hecktor.errors import HecktorError

T1 = ["PatientID", "Age", "Gender", "M-stage", "CenterID"]
T2 = ["PatientID", "CenterID", "Relapse", "Age", "RFS"]  # other order on purpose
T3 = ["PatientID", "HPV Status", "Gender"]


def _sources(tmp_path, t1, t2=None, t3=None):
    sources = [ClinicalSource(write_csv(tmp_path / "HECKTOR_2025_Training_Task_1.csv", T1, t1), 1)]
    if t2 is not None:
        sources.append(ClinicalSource(write_csv(tmp_path / "HECKTOR_2025_Training_Task_2.csv", T2, t2), 2))
    if t3 is not None:
        sources.append(ClinicalSource(write_csv(tmp_path / "HECKTOR_2025_Training_Task_3.csv", T3, t3), 3))
    return sources


def test_merge_keeps_raw_values_and_unions_columns(tmp_path):
    table = merge_clinical_csvs(_sources(
        tmp_path,
        [{"PatientID": "CHUP-000", "Age": "61.0", "Gender": "1.0", "M-stage": "M0", "CenterID": "2"},
         {"PatientID": "MDA-001", "Age": "", "Gender": "0.0", "M-stage": "Mx", "CenterID": "5"}],
        [{"PatientID": "CHUP-000", "CenterID": "2.0", "Relapse": "1.0", "Age": "61", "RFS": "412.0"},
         {"PatientID": "HGJ-002", "CenterID": "6", "Relapse": "0.0", "Age": "55.0", "RFS": "1500"},
         {"PatientID": "MDA-001", "CenterID": "5", "Relapse": "", "Age": "70.0", "RFS": ""}],
        [{"PatientID": "CHUP-000", "HPV Status": "1.0", "Gender": "1"}]))
    assert table.row_errors == {}
    chup = table.raw["CHUP-000"]
    # First non-empty value in task order, as written ("61.0" from Task 1, not "61" from Task 2).
    assert chup["Age"] == "61.0" and chup["CenterID"] == "2" and chup["Gender"] == "1.0"
    assert chup["Relapse"] == "1.0" and chup["RFS"] == "412.0" and chup["HPV Status"] == "1.0"
    assert table.raw["MDA-001"]["Age"] == "70.0"  # empty in Task 1, filled from Task 2
    assert table.values["CHUP-000"]["Age"] == 61.0 and table.values["CHUP-000"]["Relapse"] == 1
    assert table.values["HGJ-002"]["HPV Status"] is None
    assert table.sources["CHUP-000"] == ["HECKTOR_2025_Training_Task_1.csv", "HECKTOR_2025_Training_Task_2.csv",
                                         "HECKTOR_2025_Training_Task_3.csv"]
    assert table.columns[0] == "PatientID" and {"HPV Status", "Relapse", "RFS"} <= set(table.columns)


def test_conflicts_are_an_error_naming_patient_and_column(tmp_path):
    sources = _sources(
        tmp_path,
        [{"PatientID": "CHUP-000", "Age": "61.0", "Gender": "1.0"},
         {"PatientID": "CHUS-004", "Age": "50", "Gender": "0.0"}],
        [{"PatientID": "CHUP-000", "Age": "62.0"}],
        [{"PatientID": "CHUS-004", "Gender": "1.0"}])
    with pytest.raises(HecktorError) as info:
        merge_clinical_csvs(sources)
    message = str(info.value)
    assert "CHUP-000: column 'Age': '61.0'" in message and "'62.0'" in message
    assert "CHUS-004: column 'Gender'" in message  # every conflict is listed, not only the first


def test_two_rows_for_one_patient_in_one_file_is_a_duplicate_error(tmp_path):
    sources = _sources(tmp_path, [{"PatientID": "CHUP-000", "Age": "61"}, {"PatientID": "CHUP-000", "Age": "61"}])
    with pytest.raises(HecktorError, match="CHUP-000.*duplicate PatientID.*lines 2 and 3"):
        merge_clinical_csvs(sources)


# Each row: a value a centre might write -> what conversion gives. "missing" = the value must be treated as
# missing with a warning; "either" = the parser may map it (a clear meaning: Karnofsky 70 -> ECOG 1, M1a -> M1,
# an unseen centre code) or treat it as missing with a warning; both keep the patient with its images.
CLINICAL_VALUE_ROWS = [
    ("Performance Status", "70", "either"),   # Karnofsky outside the release's 80/90/100
    ("Performance Status", "7", "missing"),   # neither ECOG nor Karnofsky
    ("CenterID", "9", "either"),              # a centre absent from training
    ("M-stage", "M1a", "either"),
    ("M-stage", "M2", "missing"),
    ("Gender", "Male", "either"),
    ("Gender", "2.0", "missing"),
    ("Age", "121", "missing"),
    ("Age", "sixty", "missing"),
    ("Age", "-3", "missing"),
    ("RFS", "-5", "missing"),                 # a target: missing for that patient only
    ("Relapse", "2.0", "missing"),
    ("HPV Status", "positive", "either"),
]
VALUE_COLUMNS = ["PatientID", "CenterID", "Age", "Gender", "Performance Status", "M-stage", "HPV Status", "Relapse",
                 "RFS"]
GOOD_ROW = {"PatientID": "CHUP-000", "CenterID": "2", "Age": "60", "Gender": "1.0", "Performance Status": "0",
            "M-stage": "M0", "HPV Status": "1.0", "Relapse": "0", "RFS": "100"}


@pytest.mark.parametrize("column, value, expected", CLINICAL_VALUE_ROWS)
def test_a_clinical_value_never_costs_a_patient_its_images(tmp_path, column, value, expected):
    from nnunet_hecktor.clinical import parse_value, read_clinical_csv

    src = tmp_path / "src"
    write_csv(src / "clinical.csv", VALUE_COLUMNS, [GOOD_ROW, dict(GOOD_ROW, PatientID="CHUP-001", **{column: value})])
    write_patient(src, "CHUP-000", seed=1)
    write_patient(src, "CHUP-001", seed=2)
    out = tmp_path / "Dataset510_T"
    summary = convert_dataset(src, dataset_id=510, name="T", output=out, progress=False)
    assert summary.training == ["CHUP-000", "CHUP-001"] and summary.failed == {}
    assert (out / "imagesTr" / "CHUP-001_0000.nii.gz").is_file() and (out / "labelsTr" / "CHUP-001.nii.gz").is_file()

    with (out / "clinical.csv").open() as handle:
        cell = {row["PatientID"]: row for row in csv.DictReader(handle)}["CHUP-001"][column]
    report = json.loads((out / "conversion_report.json").read_text())
    warnings = [w for w in report["patients"]["CHUP-001"]["warnings"] if repr(column) in w]
    if cell == "":  # treated as missing: one warning naming the file, column and value, also on the console
        assert len(warnings) == 1 and repr(value) in warnings[0] and "clinical.csv: line 3" in warnings[0]
        assert report["patient_warnings"]["CHUP-001"] == warnings
        assert "warning: CHUP-001: " in summary.describe() and repr(value) in summary.describe()
        # Issue 20: one line for the column of the file, and --strict refuses the loss (outputs written first).
        assert f"column {column!r} lost 1 of 2 values" in summary.describe()
        with pytest.raises(HecktorError, match=f"column {column!r} lost 1 of 2 values"):
            convert_dataset(src, dataset_id=510, name="T", output=out, progress=False, strict=True)
        assert (out / "dataset.json").is_file()
    else:  # mapped by the parser: kept as written, no warning
        assert expected == "either" and cell == value and warnings == []
        assert parse_value(column, value) is not None
    assert expected == "either" or cell == ""
    # Whatever the parser decided, everything downstream reads the dataset's clinical.csv without error.
    records = read_clinical_csv(out / "clinical.csv")
    assert records["CHUP-000"]["Age"] == 60.0 and set(records) == {"CHUP-000", "CHUP-001"}


@pytest.mark.parametrize("row, cells, expected", [
    ("too many cells", "CHUP-001,9,60,1.0,0,M0,1.0,0,100,extra", "more cells than header columns"),
    ("too few cells", "CHUP-001,2,60", None),  # trailing cells absent: read as empty, nothing lost
])
def test_rows_of_the_wrong_length_keep_the_patient(tmp_path, row, cells, expected):
    src = tmp_path / "src"
    path = write_csv(src / "clinical.csv", VALUE_COLUMNS, [GOOD_ROW])
    path.write_text(path.read_text() + cells + "\n")
    write_patient(src, "CHUP-000", seed=1)
    write_patient(src, "CHUP-001", seed=2)
    summary = convert_dataset(src, dataset_id=512, name="W", output=tmp_path / "Dataset512_W", progress=False)
    assert summary.training == ["CHUP-000", "CHUP-001"]
    warnings = summary.patient_warnings.get("CHUP-001", [])
    if expected is None:
        assert warnings == []
        rows = {r["PatientID"]: r for r in csv.DictReader((summary.output_dir / "clinical.csv").open())}
        assert rows["CHUP-001"]["Age"] == "60" and rows["CHUP-001"]["RFS"] == ""
    else:
        assert len(warnings) == 1 and expected in warnings[0] and "line 3" in warnings[0]


def test_clinical_csv_of_the_dataset_has_raw_values_and_targets(tmp_path):
    src = tmp_path / "src"
    write_patient(src / "Task 1" / "CHUP-000", "CHUP-000", seed=1)
    write_patient(src / "Task 2" / "CHUP-000", "CHUP-000", label=False, seed=1)
    write_patient(src / "Task 3" / "MDA-001", "MDA-001", label=False, seed=3)
    write_csv(src / "Task 1" / "HECKTOR_2025_Training_Task_1.csv", T1,
              [{"PatientID": "CHUP-000", "Age": "61.0", "Gender": "1.0", "M-stage": "M0", "CenterID": "2"}])
    write_csv(src / "Task 2" / "HECKTOR_2025_Training_Task_2.csv", T2,
              [{"PatientID": "CHUP-000", "CenterID": "2", "Relapse": "1.0", "Age": "61", "RFS": "412.0"},
               {"PatientID": "USZ-001", "CenterID": "8", "Relapse": "0.0", "Age": "50", "RFS": "100"}])
    write_csv(src / "Task 3" / "HECKTOR_2025_Training_Task_3.csv", T3,
              [{"PatientID": "MDA-001", "HPV Status": "0.0", "Gender": "0.0"}])
    out = tmp_path / "Dataset511_T"
    summary = convert_dataset(src, dataset_id=511, name="T", output=out, progress=False)
    assert summary.training == ["CHUP-000"] and summary.test == ["MDA-001"]
    with (out / "clinical.csv").open() as handle:
        rows = {row["PatientID"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"CHUP-000", "MDA-001"}
    assert rows["CHUP-000"]["Age"] == "61.0" and rows["CHUP-000"]["RFS"] == "412.0"
    assert rows["CHUP-000"]["Relapse"] == "1.0" and rows["CHUP-000"]["HPV Status"] == ""
    assert rows["MDA-001"]["HPV Status"] == "0.0"
    report = json.loads((out / "conversion_report.json").read_text())
    assert any("USZ-001" in w and "no images" in w for w in report["warnings"])
