"""Merging the task CSVs into clinical.csv: raw values, parsed comparison, conflicts, duplicates, bad rows."""

from __future__ import annotations

import csv
import json

import pytest

from nnunet_hecktor.dataset_conversion import convert_dataset, merge_clinical_csvs
from nnunet_hecktor.dataset_conversion.layout import ClinicalSource
from nnunet_hecktor.errors import HecktorError
from test_conversion_helpers import write_csv, write_patient

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


@pytest.mark.parametrize("column, value, problem", [
    ("Age", "sixty", "expected a number"),
    ("M-stage", "M2", "unknown M-stage"),
    ("RFS", "-5", "negative RFS"),
    ("Relapse", "2.0", "expected one of"),
])
def test_malformed_rows_are_per_patient_failures(tmp_path, column, value, problem):
    columns = ["PatientID", "Age", "M-stage", "Relapse", "RFS"]
    good = {"PatientID": "CHUP-000", "Age": "60", "M-stage": "M0", "Relapse": "0", "RFS": "100"}
    bad = dict(good, PatientID="CHUP-001", **{column: value})
    src = tmp_path / "src"
    write_csv(src / "clinical.csv", columns, [good, bad])
    write_patient(src, "CHUP-000", seed=1)
    write_patient(src, "CHUP-001", seed=2)
    out = tmp_path / "Dataset510_T"
    summary = convert_dataset(src, dataset_id=510, name="T", output=out, progress=False)
    assert summary.training == ["CHUP-000"]
    assert list(summary.failed) == ["CHUP-001"]
    assert problem in summary.failed["CHUP-001"] and column in summary.failed["CHUP-001"]
    report = json.loads((out / "conversion_report.json").read_text())
    assert report["patients"]["CHUP-001"]["status"] == "failed"
    assert not (out / "imagesTr" / "CHUP-001_0000.nii.gz").exists()
    with (out / "clinical.csv").open() as handle:
        assert [row["PatientID"] for row in csv.DictReader(handle)] == ["CHUP-000"]
    with pytest.raises(HecktorError, match="1 patients failed"):
        convert_dataset(src, dataset_id=510, name="T", output=out, progress=False, strict=True)


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
