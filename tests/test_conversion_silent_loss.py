"""No silent loss, round two (issue 20): each measured hole is a row, input -> what the user is told now.

A value, a column, a file or a patient is never lost or changed without a message at the level where it
happened (one line per column of a file, not one per cell), and ``--strict`` refuses every such event.
Sources are tiny hand-made NIfTI patients (``test_conversion_helpers``) and CSVs; most rows need no image.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from test_conversion_helpers import CT_ORIGIN, CT_SPACING, ct_array, image_from, label_array, pet_image, write_patient

from nnunet_hecktor import schema
from nnunet_hecktor.clinical import (
    absent_column_messages,
    decode_csv_bytes,
    log_substitutions,
    parse_value,
    read_inference_csv,
)
from nnunet_hecktor.dataset_conversion import convert_dataset, merge_clinical_csvs
from nnunet_hecktor.dataset_conversion.checks import (
    ALERT_TITLES,
    case_variant_patients,
    check_label_grid,
    ct_offset_warning,
    duplicate_scans,
    patient_alert_lines,
    source_alerts,
    strict_events,
)
from nnunet_hecktor.dataset_conversion.geometry import GridGeometry
from nnunet_hecktor.dataset_conversion.layout import ClinicalSource, PatientFiles, PatientSources
from nnunet_hecktor.errors import HecktorError, InputDataError


def _merge(tmp_path: Path, *texts: str, encoding: str = "utf-8"):
    sources = []
    for task, text in enumerate(texts, start=1):
        path = tmp_path / f"task{task}.csv"
        path.write_bytes(text.encode(encoding))
        sources.append(ClinicalSource(path, task))
    return merge_clinical_csvs(sources)


def _lines(table, word: str) -> list[str]:
    return [w for w in table.warnings if word in w]


# -- a whole column lost one cell at a time ------------------------------------------------------------------

@pytest.mark.parametrize("column, words, codes", [
    ("HPV Status", ["Positive", "Negative", "positive"], [1, 0, 1]),
    ("HPV Status", ["pos", "neg", "POS"], [1, 0, 1]),
    ("Relapse", ["Yes", "No", "no"], [1, 0, 0]),
    ("Relapse", ["True", "False", "TRUE"], [1, 0, 1]),
    ("Tobacco Consumption", ["yes", "no", "Yes"], [1, 0, 1]),
])
def test_unambiguous_words_of_a_0_1_column_are_read_and_said_once(tmp_path, column, words, codes):
    rows = "".join(f"P-00{i},{w}\n" for i, w in enumerate(words))
    table = _merge(tmp_path, f"PatientID,{column}\n{rows}")
    assert [table.values[f"P-00{i}"][column] for i in range(3)] == codes
    said = _lines(table, "words read as the release's codes")
    assert len(said) == 1 and repr(column) in said[0] and repr(words[0]) in said[0]
    assert table.alerts == [] and table.value_warnings == {}


def test_words_without_a_clear_reading_stay_refused():
    # Treatment 1 is chemoradiotherapy, not "yes"; Gender has sex spellings only; "+"/"-" may mean "missing".
    for column, word in (("Treatment", "Yes"), ("Gender", "No"), ("HPV Status", "-"), ("Relapse", "Positive")):
        with pytest.raises(ValueError):
            parse_value(column, word)


def test_a_column_lost_entirely_is_one_line_and_an_alert(tmp_path):
    rows = "".join(f"P-{i:03d},{v}\n" for i, v in enumerate(["HPV+ (p16)", "unclear", "p16 neg", "x", "z"]))
    table = _merge(tmp_path, f"PatientID,HPV Status\n{rows}")
    lost = _lines(table, "lost")
    assert len(lost) == 1 and "column 'HPV Status' lost all 5 values" in lost[0] and "task1.csv" in lost[0]
    assert "'HPV+ (p16)'" in lost[0] and "; ..." in lost[0]  # three examples, then "..."
    assert table.alerts == lost and table.warnings[0] == lost[0]  # first: the console shows the first lines
    assert strict_events({}, table.alerts) == lost
    assert len(table.value_warnings) == 5  # the per-patient record stays in the report


def test_not_assessable_stages_are_said_but_not_a_loss(tmp_path):
    table = _merge(tmp_path, "PatientID,T-stage,N-stage\nP-001,Tx,N1\nP-002,T2,Nx\nP-003,Tis,N0\n")
    assert table.values["P-001"]["T-stage"] is None and table.values["P-002"]["T-stage"] == "T2"
    said = _lines(table, "not assessable")
    assert len(said) == 2 and "'T-stage': values meaning 'not assessable' read as missing: 'Tis' (1), 'Tx' (1)" in said[0]
    assert table.alerts == []


def test_quoted_decimal_commas_of_a_comma_csv_are_read(tmp_path):
    table = _merge(tmp_path, 'PatientID,Age,RFS\nP-001,"61,5","595,0"\nP-002,"70,25","12,5"\nP-003,"1,234",10\n')
    assert table.values["P-001"]["Age"] == 61.5 and table.values["P-001"]["RFS"] == 595.0
    assert table.values["P-002"]["Age"] == 70.25 and table.raw["P-002"]["RFS"] == "12.5"  # clinical.csv: a point
    said = _lines(table, "quoted numbers with a decimal comma")
    assert len(said) == 2 and any("'RFS': 2 quoted numbers" in w for w in said)
    # "1,234": thousands separator or decimal comma? Refused, named at the column level.
    assert table.values["P-003"]["Age"] is None
    assert table.alerts == [w for w in table.warnings if "column 'Age' lost 1 of 3 values" in w]
    assert "ambiguous" in table.alerts[0]


@pytest.mark.parametrize("header, known", [("Sex", "Gender"), ("sex", "Gender"), ("HPV", "HPV Status"),
                                           ("ECOG", "Performance Status"), ("KPS", "Performance Status")])
def test_unambiguous_other_headers_are_read_with_a_message(tmp_path, header, known):
    value = {"Gender": "M", "HPV Status": "1", "Performance Status": "80"}[known]
    table = _merge(tmp_path, f"PatientID,{header}\nP-001,{value}\n")
    assert table.values["P-001"][known] is not None
    assert any(f"column {header!r} read as {known!r} (another name of it)" in w for w in table.warnings)
    assert not any(f"no clinical CSV has a column {known!r}" in w for w in table.warnings)


def test_an_other_header_next_to_the_column_itself_is_kept_aside(tmp_path):
    table = _merge(tmp_path, "PatientID,Gender,Sex\nP-001,1,F\n")
    assert table.values["P-001"]["Gender"] == 1 and table.raw["P-001"]["Sex"] == "F"
    assert any("'Sex' (another name of 'Gender') kept as an extra column" in w for w in table.warnings)


def test_model_inputs_and_targets_absent_from_every_csv_are_named_once(tmp_path):
    table = _merge(tmp_path, "PatientID,Age\nP-001,60\n", "PatientID,Relapse,RFS\nP-001,1,100\n")
    absent = _lines(table, "no clinical CSV has a column")
    named = {w.split("'")[1] for w in absent}
    assert named == {"Gender", "Tobacco Consumption", "Alcohol Consumption", "Performance Status", "Treatment",
                     "M-stage", "HPV Status"}
    assert any("'HPV Status' (a target)" in w for w in absent)


# -- predict --clinical: the inference reader --------------------------------------------------------------

def test_inference_csv_reads_sex_as_gender_and_names_absent_columns(tmp_path, caplog):
    path = tmp_path / "clinical.csv"
    rows = "".join(f"P-{i:03d},{60 + i},{'M' if i % 2 else 'F'},1\n" for i in range(6))
    path.write_text("PatientID,Age,Sex,Smoker\n" + rows)
    with caplog.at_level(logging.INFO, logger="nnunet_hecktor.clinical"):
        records, substitutions = read_inference_csv(path)
        log_substitutions(substitutions)
    assert [records[f"P-{i:03d}"]["Gender"] for i in range(6)] == [0, 1, 0, 1, 0, 1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    # One warning per model input absent from the whole table, naming the headers that were not read.
    assert sorted(w.split("'")[1] for w in warnings) == ["Alcohol Consumption", "M-stage", "Performance Status",
                                                         "Tobacco Consumption", "Treatment"]
    assert all("missing for every patient" in w and "'Smoker'" in w for w in warnings)
    # The six mapped Gender values: one line for the column, not six.
    assert len(infos) == 1 and "clinical column 'Gender' (written 'Sex'): 6 values mapped" in infos[0]


def test_absent_column_messages_of_a_complete_header_are_none():
    header = ["PatientID", "age", "Gender", "Tobacco Consumption", "Alcohol Consumption", "ECOG", "Treatment",
              "M-stage"]
    assert absent_column_messages(header) == []


def test_many_values_lost_in_one_column_are_one_warning(caplog):
    from nnunet_hecktor.clinical import parse_inference_record

    substitutions = []
    for i in range(40):
        substitutions += parse_inference_record({"Age": "n/k", "Performance Status": 75 if i == 0 else 0}, f"P-{i}")[1]
    with caplog.at_level(logging.INFO, logger="nnunet_hecktor.clinical"):
        log_substitutions(substitutions)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert any("clinical column 'Age': 40 values of 40 patients treated as missing" in w for w in warnings)
    assert any("Performance Status = 75" in w for w in warnings)  # a single loss keeps its own line


# -- Karnofsky vs ECOG, case-variant IDs, encodings ------------------------------------------------------------

def test_karnofsky_and_ecog_of_the_same_grade_agree(tmp_path):
    table = _merge(tmp_path, "PatientID,Performance Status\nP-001,80\nP-002,100\n",
                   "PatientID,Performance Status\nP-001,1\nP-002,0\n")
    assert table.values["P-001"]["Performance Status"] == 80  # the first file's value, as for any column
    assert any("2 patients given as Karnofsky in one CSV and ECOG in another" in w for w in table.warnings)
    assert "agree on the ECOG scale" in table.value_warnings["P-001"][0]


def test_karnofsky_and_ecog_of_different_grades_are_a_conflict(tmp_path):
    with pytest.raises(HecktorError, match="differ on the ECOG scale too"):
        _merge(tmp_path, "PatientID,Performance Status\nP-001,80\n", "PatientID,Performance Status\nP-001,3\n")


def test_patient_ids_differing_only_in_case_across_csvs_are_an_alert(tmp_path):
    table = _merge(tmp_path, "PatientID,Age\nCHUP-001,60\n", "PatientID,HPV Status\nchup-001,1\n")
    assert len(table.alerts) == 1 and "'CHUP-001' (task1.csv), 'chup-001' (task2.csv)" in table.alerts[0]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_csvs_with_a_byte_order_mark_are_decoded(tmp_path, encoding):
    text = "PatientID,Age,Gender\nMDA-001,61,Männlich\n"
    bom = {"utf-16-be": codecs.BOM_UTF16_BE}.get(encoding, b"")
    path = tmp_path / "task1.csv"
    path.write_bytes(bom + text.encode(encoding))
    table = merge_clinical_csvs([ClinicalSource(path, 1)])
    assert table.values["MDA-001"]["Age"] == 61.0
    assert any("byte-order mark" in w for w in table.warnings)
    records, _ = read_inference_csv(path)
    assert records["MDA-001"]["Age"] == 61.0


def test_utf16_without_byte_order_mark_is_a_clear_message(tmp_path):
    path = tmp_path / "task1.csv"
    path.write_bytes("PatientID,Age\nMDA-001,61\n".encode("utf-16-le"))
    with pytest.raises(InputDataError, match="UTF-16 text without a byte-order mark.*save it as UTF-8") as info:
        merge_clinical_csvs([ClinicalSource(path, 1)])
    assert "task1.csv" in str(info.value)
    assert decode_csv_bytes("PatientID\n".encode("utf-8-sig")) == ("PatientID\n", None)


# -- images: label grid tolerance, CT offset -------------------------------------------------------------------

def _grid(spacing=(0.9765625, 0.9765625, 3.0), size=(512, 512, 100), origin=(-250.0, -250.0, -300.0)):
    return GridGeometry(size, spacing, origin, (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))


def test_label_spacing_rounded_to_four_decimals_gets_the_ct_geometry():
    ct = _grid()
    label = _grid(spacing=(round(0.9765625, 4), round(0.9765625, 4), 3.0))  # 0.9766: 0.028 voxel off at the corner
    message = check_label_grid(label, ct, "P-1", Path("P-1.nii.gz"))
    assert "CT geometry was copied onto the label" in message and "0.0278 voxel at the far corner" in message
    with pytest.raises(InputDataError, match=r"up to 0.694 voxel apart, accepted below 0.1 voxel"):
        check_label_grid(_grid(spacing=(0.9775, 0.9775, 3.0)), ct, "P-1", Path("P-1.nii.gz"))
    assert "round-off" in check_label_grid(_grid(origin=(-250.0001, -250.0, -300.0)), ct, "P-1", Path("x"))


def test_ct_stored_as_hu_plus_1024_is_detected():
    hu = ct_array(seed=1).astype(np.int32)
    assert ct_offset_warning(hu) is None
    stored = np.clip(hu + 1024, 0, None).astype(np.uint16)
    assert "probably stored as HU + 1024" in ct_offset_warning(stored)
    assert ct_offset_warning(np.full((4, 4, 4), 20, dtype=np.uint16)) is None  # no tissue above 900: not this


# -- patients: IDs differing in case, one scan under two IDs -----------------------------------------------------

def _sources(pid: str, folder: Path, task: int, ct: Path | None, pet: Path | None) -> PatientSources:
    return PatientSources(pid, [PatientFiles(folder, task, ct=ct, pet=pet)])


def test_case_variant_patient_ids_across_task_folders_are_named(tmp_path):
    patients = {"CHUP-001": _sources("CHUP-001", tmp_path / "Task 1", 1, None, None),
                "chup-001": _sources("chup-001", tmp_path / "Task 2", 2, None, None),
                "CHUP-002": _sources("CHUP-002", tmp_path / "Task 1", 1, None, None)}
    lines = case_variant_patients(patients)
    assert lines == ["patient IDs that differ only in case: 'CHUP-001' (Task 1), 'chup-001' (Task 2); converted as "
                     "different patients: spell the ID alike in every task folder and CSV"]


def test_one_scan_under_two_ids_and_a_shared_pet_are_named(tmp_path):
    files = {}
    for name, content in (("a_ct", b"scan A" * 100), ("b_ct", b"scan A" * 100), ("c_ct", b"scan C" * 100),
                          ("a_pt", b"pet A" * 100), ("c_pt", b"pet C" * 100)):
        files[name] = tmp_path / f"{name}.nii.gz"
        files[name].write_bytes(content)
    os.link(files["a_pt"], tmp_path / "b_pt.nii.gz")  # one PET file shared by two patients
    patients = {"A-001": _sources("A-001", tmp_path, 1, files["a_ct"], files["a_pt"]),
                "B-001": _sources("B-001", tmp_path, 1, files["b_ct"], tmp_path / "b_pt.nii.gz"),
                "C-001": _sources("C-001", tmp_path, 1, files["c_ct"], files["c_pt"])}
    lines = duplicate_scans(patients)
    assert len(lines) == 2
    assert lines[0].startswith("one CT scan under 2 patient IDs (identical content): A-001") and "B-001" in lines[0]
    assert lines[1].startswith("one PET scan under 2 patient IDs (the same file): A-001") and "C-001" not in lines[1]
    assert source_alerts(patients) == lines


# -- end to end: the console and --strict --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def alerted(tmp_path_factory):
    """A flat source: one clean patient, a CT in HU + 1024, a PET in Bq/mL, a label 0.05 voxel off the CT grid."""
    src = tmp_path_factory.mktemp("alerts") / "src"
    write_patient(src, "CHUP-001", seed=1)
    hu = ct_array(seed=2).astype(np.int32)
    write_patient(src, "CHUP-002", seed=2,
                  ct=image_from(np.clip(hu + 1024, 0, None).astype(np.uint16), CT_SPACING, CT_ORIGIN))
    write_patient(src, "CHUP-003", seed=3, pet=pet_image(scale=5000.0))
    off = (CT_SPACING[0] * (1 + 0.05 / 15), CT_SPACING[1], CT_SPACING[2])  # 0.05 voxel at the far corner (x 15)
    write_patient(src, "CHUP-004", seed=4, label_image=image_from(label_array(), off, CT_ORIGIN))
    (src / "clinical.csv").write_text("PatientID,Age,HPV Status\nCHUP-001,60,Positive\nCHUP-002,61,unclear\n"
                                      "CHUP-003,62,Negative\nCHUP-004,63,\n")
    out = src.parent / "Dataset545_A"
    summary = convert_dataset(src, dataset_id=545, name="A", output=out, progress=False)
    return src, out, summary


def test_image_alerts_are_in_the_report(alerted):
    _, out, summary = alerted
    assert summary.training == ["CHUP-001", "CHUP-002", "CHUP-003", "CHUP-004"] and not summary.failed
    patients = json.loads(summary.report_path.read_text())["patients"]
    assert {pid: sorted(e["alerts"]) for pid, e in patients.items()} == {
        "CHUP-001": [], "CHUP-002": ["ct_offset"], "CHUP-003": ["pet_units"], "CHUP-004": []}
    assert patients["CHUP-004"]["label_handling"].startswith("CT geometry copied onto the label")
    label = sitk.ReadImage(str(out / "labelsTr" / "CHUP-004.nii.gz"))
    ct = sitk.ReadImage(str(out / "imagesTr" / "CHUP-004_0000.nii.gz"))
    assert label.GetSpacing() == ct.GetSpacing()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(label), label_array())
    lines = patient_alert_lines(patients)
    assert sorted(lines) == sorted([f"1 patients: {ALERT_TITLES['ct_offset']}: CHUP-002 (details per patient in the "
                                    "report)", f"1 patients: {ALERT_TITLES['pet_units']}: CHUP-003 (details per "
                                    "patient in the report)"])


def test_alerts_reach_the_console_summary(alerted):
    _, _, summary = alerted
    console = summary.describe()
    assert "probably in Bq/mL" in console and "CHUP-003" in console
    assert "HU + 1024" in console and "column 'HPV Status' lost 1 of 3 values" in console


def test_strict_refuses_every_alert_after_writing_the_outputs(alerted, tmp_path):
    src, _, _ = alerted
    out = tmp_path / "Dataset546_S"
    with pytest.raises(HecktorError, match=r"3 data problems \(--strict\).*HPV Status.*HU \+ 1024|Bq/mL"):
        convert_dataset(src, dataset_id=546, name="S", output=out, progress=False, strict=True)
    assert (out / "dataset.json").is_file() and (out / "conversion_report.json").is_file()


def test_strict_refuses_one_scan_under_two_ids(tmp_path):
    src = tmp_path / "src"
    write_patient(src, "CHUP-001", seed=1)
    write_patient(src, "CHUP-002", seed=1)  # the same CT and PET bytes under another ID
    with pytest.raises(HecktorError, match="one CT scan under 2 patient IDs"):
        convert_dataset(src, dataset_id=547, name="D", output=tmp_path / "Dataset547_D", progress=False, strict=True)


def test_a_clean_source_gives_no_strict_event(tmp_path):
    src = tmp_path / "src"
    write_patient(src, "CHUP-001", seed=1)
    write_patient(src, "CHUP-002", seed=2)
    (src / "clinical.csv").write_text("PatientID,Age,HPV Status,Relapse\nCHUP-001,60,1,0\nCHUP-002,61,0,1\n")
    summary = convert_dataset(src, dataset_id=548, name="C", output=tmp_path / "Dataset548_C", progress=False,
                              strict=True)
    patients = json.loads(summary.report_path.read_text())["patients"]
    table = merge_clinical_csvs([ClinicalSource(src / "clinical.csv", None)])
    assert strict_events(patients, table.alerts, source_alerts({})) == []
    assert schema.COL_HPV in table.columns
