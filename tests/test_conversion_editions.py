"""``convert`` takes every HECKTOR edition's release: 2026 (both CSV spellings), 2022, 2021, renamed CSVs.

Each fixture is a tiny hand-written release (8x8x8 CT, real NIfTI through SimpleITK) laid out and named as
the organisers ship it (docs/reference/editions.md). Every test checks that every image, label and target
of the release reaches the converted dataset, and that the command exits 0.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from test_conversion_helpers import snapshot

from nnunet_hecktor import schema
from nnunet_hecktor.cli import main as cli_main
from nnunet_hecktor.clinical import parse_value
from nnunet_hecktor.dataset_conversion import convert_dataset, discover_layout
from nnunet_hecktor.editions import detect_edition
from nnunet_hecktor.errors import HecktorError

SIZE = (8, 8, 8)
SPACING = (3.0, 3.0, 3.0)
ORIGIN = (-12.0, -12.0, -12.0)

HEADER_2026 = ("PatientID,CenterID,Age,Gender,Tobacco Consumption,Alcohol Consumption,Performance Status,"
               "Treatment,HPV Status,Relapse,RFS,T-stage,N-stage")
# PatientID -> (CenterID, HPV, Relapse, RFS, T-stage as written, N-stage as written); blanks are missing.
ROWS_2026 = {
    "CHUP-001": ("2", "1", "1", "412", "T4a", "N2b"),
    "MDA-002": ("5", "0", "", "", "T2", "N0"),
    "HGJ-003": ("6", "1", "0", "1500.5", "T0", ""),
}
CANONICAL_2026 = {"CHUP-001": ("T4", "N2"), "MDA-002": ("T2", "N0"), "HGJ-003": ("T0", "")}


def _image(array: np.ndarray, spacing=SPACING, origin=ORIGIN) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image


def _label(seed: int, gtvn: bool = True) -> np.ndarray:
    label = np.zeros(SIZE, dtype=np.uint8)
    label[2:5, 2 + seed % 2:5, 3:6] = 1
    if gtvn:
        label[5:7, 5:7, 1:3] = 2
    return label


def write_case(folder: Path, names: dict[str, str], seed: int, label: np.ndarray | None) -> dict[str, Path]:
    """CT, PET (other grid, SUV-like values) and label under the given file names (role -> name)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    images = {"ct": _image(rng.integers(-1000, 1000, SIZE).astype(np.int16)),
              "pet": _image((rng.random((6, 6, 6)) * 5).astype(np.float32), (5.0, 5.0, 5.0), (-14.0, -14.0, -14.0))}
    if label is not None:
        images["label"] = _image(label)
    paths = {}
    for role, image in images.items():
        paths[role] = folder / names[role]
        sitk.WriteImage(image, str(paths[role]), True)
    return paths


def modern_names(pid: str) -> dict[str, str]:
    return {"ct": f"{pid}__CT.nii.gz", "pet": f"{pid}__PT.nii.gz", "label": f"{pid}.nii.gz"}


def write_rows(path: Path, header: str | list[str], rows: list[list[str]]) -> Path:
    """A CSV as the release writes it (``csv`` quoting: a header with a comma is quoted)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header.split(",") if isinstance(header, str) else header)
        writer.writerows(rows)
    return path


def clinical(out: Path) -> dict[str, dict[str, str]]:
    with (out / "clinical.csv").open(newline="") as handle:
        return {row["PatientID"]: row for row in csv.DictReader(handle)}


def run_cli(src: Path, out: Path, *extra: str) -> int:
    return cli_main(["convert", str(src), "--dataset-id", "526", "--output", str(out), "--quiet", *extra])


def assert_every_case_converted(out: Path, ids: list[str], labels: dict[str, int]) -> None:
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["labels"] == labels and dataset["numTraining"] == len(ids)
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == sorted(f"{p}.nii.gz" for p in ids)
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == sorted(
        f"{p}_{c}.nii.gz" for p in ids for c in ("0000", "0001"))


# -- 2026 ------------------------------------------------------------------------------------------------------

def make_2026(root: Path, csv_name: str = "HECKTOR_2026_Training_Task.csv", stage_headers=("T-stage", "N-stage"),
              csv_inside: bool = False) -> Path:
    patients = root / "hecktor2026_training"
    for seed, pid in enumerate(ROWS_2026):
        write_case(patients / pid, modern_names(pid), seed, _label(seed, gtvn=seed != 1))
    header = HEADER_2026.replace("T-stage", stage_headers[0]).replace("N-stage", stage_headers[1])
    rows = [[pid, centre, "61", "1", "0", "1", "0", "1", hpv, relapse, rfs, t, n]
            for pid, (centre, hpv, relapse, rfs, t, n) in ROWS_2026.items()]
    write_rows((patients if csv_inside else root) / csv_name, header, rows)
    return root


@pytest.mark.parametrize("csv_name, stage_headers", [
    ("HECKTOR_2026_Training_Task.csv", ("T-stage", "N-stage")),  # the challenge page's spelling
    ("HECKTOR_2026_Training.csv", ("T_stage", "N_stage")),  # the organisers' README spelling
])
def test_2026_release_keeps_every_image_label_and_target(tmp_path, csv_name, stage_headers, capsys):
    src = make_2026(tmp_path / "hecktor2026", csv_name, stage_headers)
    before = snapshot(src)
    out = tmp_path / "Dataset526_H"
    assert run_cli(src, out, "--strict") == 0
    assert snapshot(src) == before
    ids = sorted(ROWS_2026)
    assert_every_case_converted(out, ids, {"background": 0, "GTVp": 1, "GTVn": 2})
    table = clinical(out)
    assert sorted(table) == ids
    for pid, (centre, hpv, relapse, rfs, _, _) in ROWS_2026.items():
        row = table[pid]
        assert (row["CenterID"], row["HPV Status"], row["Relapse"], row["RFS"]) == (centre, hpv, relapse, rfs)
        # T/N as the schema's canonical labels (sub-stages merged), blanks stay missing.
        assert (row["T-stage"], row["N-stage"]) == CANONICAL_2026[pid]
    assert schema.stage_code(schema.COL_TSTAGE, table["CHUP-001"]["T-stage"]) == 4
    report = json.loads((out / "conversion_report.json").read_text())
    assert report["edition"]["name"] == "2026" and csv_name in report["edition"]["why"]
    assert [Path(p).name for p in report["layout"]["csv_files"]] == [csv_name]
    assert report["layout"]["unread_csvs"] == {} and report["layout"]["ignored"] == []


def test_2026_csv_inside_the_patient_folder_and_the_summary_names_the_edition(tmp_path):
    src = make_2026(tmp_path / "h26", csv_inside=True) / "hecktor2026_training"
    summary = convert_dataset(src, dataset_id=526, output=tmp_path / "Dataset526_H", progress=False)
    assert summary.edition == "2026" and "HECKTOR 2026" in summary.describe()
    assert clinical(summary.output_dir)["HGJ-003"]["RFS"] == "1500.5"


def test_2026_stage_names_without_the_edition_are_an_error_that_names_it(tmp_path):
    src = make_2026(tmp_path / "src", "clinical.csv", ("T_stage", "N_stage"))
    (src / "hecktor2026_training").rename(src / "patients")  # nothing names the edition any more
    with pytest.raises(HecktorError, match=r"'T_stage'.*pass --edition 2026"):
        convert_dataset(src, dataset_id=526, output=tmp_path / "out", progress=False)
    summary = convert_dataset(src, dataset_id=526, output=tmp_path / "out", progress=False, edition="2026")
    assert clinical(summary.output_dir)["CHUP-001"]["N-stage"] == "N2"
    assert "given with --edition" in summary.edition_evidence


# -- 2022 ------------------------------------------------------------------------------------------------------

INFO_2022 = ["PatientID", "Task 1", "Task 2", "CenterID", "Gender", "Age", "Weight", "Tobacco", "Alcohol",
             "Performance status", "HPV status (0=-, 1=+)", "Surgery", "Chemotherapy"]


def make_2022(root: Path) -> Path:
    (root / "labelsTr").mkdir(parents=True)
    for seed, pid in enumerate(("CHUM-001", "CHUP-002", "MDA-003")):
        write_case(root / "imagesTr", modern_names(pid), seed, None)
        sitk.WriteImage(_image(_label(seed)), str(root / "labelsTr" / f"{pid}.nii.gz"), True)
    write_rows(root / "hecktor2022_clinical_info_training.csv", INFO_2022, [
        ["CHUM-001", "1", "1", "1", "M", "55", "80", "1", "", "0", "1", "0", "1"],
        ["CHUP-002", "1", "1", "2", "F", "70", "", "0", "1", "1", "0", "1", "0"],
        ["MDA-003", "1", "0", "5", "M", "63", "91", "", "", "", "", "", "1"],
    ])
    write_rows(root / "hecktor2022_endpoint_training.csv", "PatientID,Relapse,RFS",
               [["CHUM-001", "0", "1200"], ["CHUP-002", "1", "300"]])
    return root


def test_2022_release_merges_both_csvs_and_keeps_every_value(tmp_path):
    src = make_2022(tmp_path / "hecktor2022")
    out = tmp_path / "Dataset522_H"
    assert run_cli(src, out, "--strict") == 0
    ids = ["CHUM-001", "CHUP-002", "MDA-003"]
    assert_every_case_converted(out, ids, {"background": 0, "GTVp": 1, "GTVn": 2})
    table = clinical(out)
    assert {p: (r["Relapse"], r["RFS"]) for p, r in table.items()} == {
        "CHUM-001": ("0", "1200"), "CHUP-002": ("1", "300"), "MDA-003": ("", "")}
    assert {p: r["HPV Status"] for p, r in table.items()} == {"CHUM-001": "1", "CHUP-002": "0", "MDA-003": ""}
    assert {p: parse_value(schema.COL_GENDER, r["Gender"]) for p, r in table.items()} == {
        "CHUM-001": 1, "CHUP-002": 0, "MDA-003": 1}  # M/F read with the release's coding
    assert table["CHUP-002"]["Alcohol Consumption"] == "1" and table["CHUP-002"]["Performance Status"] == "1"
    # Columns the schema does not know are kept as written.
    assert (table["CHUM-001"]["Weight"], table["CHUM-001"]["Surgery"], table["CHUM-001"]["Chemotherapy"]) == (
        "80", "0", "1")
    assert table["MDA-003"]["Task 2"] == "0"
    report = json.loads((out / "conversion_report.json").read_text())
    assert report["edition"]["name"] == "2022" and report["layout"]["kind"] == "images-labels"


# -- 2021 ------------------------------------------------------------------------------------------------------

INFO_2021 = ["PatientID", "Gender (1=M,0=F)", "Age", "Weight", "Tobacco", "Alcohol", "Performance status",
             "HPV status (0=-, 1=+)", "Surgery", "Chemotherapy", "T-stage", "N-stage", "M-stage", "TNM group",
             "TNM edition", "CenterID"]
IDS_2021 = ["CHGJ007", "CHMR004", "CHUS010"]


def make_2021(root: Path, per_patient_folders: bool = True) -> Path:
    images = root / "hecktor_nii"
    for seed, pid in enumerate(IDS_2021):
        names = {"ct": f"{pid}_ct.nii.gz", "pet": f"{pid}_pt.nii.gz", "label": f"{pid}_ct_gtvt.nii.gz"}
        write_case(images / pid if per_patient_folders else images, names, seed, _label(seed, gtvn=False))
    write_rows(root / "hecktor2021_patient_info_training.csv", INFO_2021, [
        ["CHGJ007", "1", "66", "", "1", "", "0", "1", "0", "1", "T3", "N2c", "M0", "IVA", "7", "1"],
        ["CHMR004", "0", "59", "", "", "", "", "", "", "1", "T1", "N1", "M0", "III", "7", "2"],
        ["CHUS010", "1", "71", "", "0", "0", "1", "0", "0", "1", "T4b", "N0", "M0", "IVB", "7", "3"],
    ])
    write_rows(root / "hecktor2021_patient_endpoint_training.csv", "PatientID,Progression,Progression free survival",
               [["CHGJ007", "1", "533"], ["CHMR004", "0", "1400"], ["CHUS010", "0", "998"]])
    write_rows(root / "hecktor2021_bbox_training.csv", "PatientID,x1,x2,y1,y2,z1,z2",
               [[pid, "0", "144", "0", "144", "0", "144"] for pid in IDS_2021])
    return root


@pytest.mark.parametrize("per_patient_folders", [True, False])
def test_2021_release_is_a_gtvp_only_dataset_with_its_endpoints(tmp_path, per_patient_folders):
    src = make_2021(tmp_path / "hecktor2021_train", per_patient_folders)
    out = tmp_path / "Dataset521_H"
    assert run_cli(src, out, "--strict") == 0
    assert_every_case_converted(out, IDS_2021, {"background": 0, "GTVp": 1})
    for seed, pid in enumerate(IDS_2021):
        converted = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labelsTr" / f"{pid}.nii.gz")))
        np.testing.assert_array_equal(converted, _label(seed, gtvn=False))
    table = clinical(out)
    assert {p: (r["Relapse"], r["RFS"]) for p, r in table.items()} == {
        "CHGJ007": ("1", "533"), "CHMR004": ("0", "1400"), "CHUS010": ("0", "998")}
    assert {p: (r["T-stage"], r["N-stage"], r["HPV Status"]) for p, r in table.items()} == {
        "CHGJ007": ("T3", "N2", "1"), "CHMR004": ("T1", "N1", ""), "CHUS010": ("T4", "N0", "0")}
    assert table["CHGJ007"]["Gender"] == "1" and table["CHGJ007"]["TNM group"] == "IVA"
    report = json.loads((out / "conversion_report.json").read_text())
    assert report["edition"]["name"] == "2021"
    assert [Path(p).name for p in report["layout"]["not_clinical_tables"]] == ["hecktor2021_bbox_training.csv"]
    # 2021 IDs have no dash by contract: no warning about their form; centres read from the letters.
    assert not any("does not match" in w for w in report["warnings"])
    assert not any("does not match" in w for e in report["patients"].values() for w in e["warnings"])
    assert schema.centre_of("CHGJ007") == "CHGJ"


def test_2021_label_with_a_gtvn_value_fails_that_patient_only(tmp_path):
    src = make_2021(tmp_path / "hecktor2021_train")
    bad = src / "hecktor_nii" / "CHMR004" / "CHMR004_ct_gtvt.nii.gz"
    sitk.WriteImage(_image(_label(1, gtvn=True)), str(bad), True)
    summary = convert_dataset(src, dataset_id=521, output=tmp_path / "out", progress=False)
    assert list(summary.failed) == ["CHMR004"] and "label value 2" in summary.failed["CHMR004"]
    assert summary.training == ["CHGJ007", "CHUS010"]


# -- a CSV whose name is not the release's: read, or named; never silently ignored -------------------------------

def make_2025_with_renamed_csvs(root: Path) -> Path:
    for seed, pid in enumerate(("CHUP-001", "MDA-002")):
        write_case(root / "Task 1" / pid, modern_names(pid), seed, _label(seed))
        write_case(root / "Task 3" / pid, modern_names(pid), seed, None)
    write_rows(root / "Task 1" / "HECKTOR_2025_Training_Task_1.csv", "PatientID,CenterID,Age",
               [["CHUP-001", "2", "50"], ["MDA-002", "5", "60"]])
    write_rows(root / "Task 3" / "clinical_data_task3.csv", "PatientID,HPV Status", [["CHUP-001", "1"], ["MDA-002", "0"]])
    write_rows(root / "hecktor_clinical_info.csv", "PatientID,Relapse,RFS", [["CHUP-001", "1", "100"]])
    return root


def test_renamed_csvs_in_task_and_release_folders_are_read_with_a_warning(tmp_path):
    src = make_2025_with_renamed_csvs(tmp_path / "release")
    out = tmp_path / "Dataset525_H"
    assert run_cli(src, out, "--strict") == 0
    table = clinical(out)
    assert {p: (r["HPV Status"], r["Relapse"], r["RFS"], r["Age"]) for p, r in table.items()} == {
        "CHUP-001": ("1", "1", "100", "50"), "MDA-002": ("0", "", "", "60")}
    report = json.loads((out / "conversion_report.json").read_text())
    warnings = "\n".join(report["warnings"])
    assert "clinical_data_task3.csv: read as a clinical table" in warnings
    # Named like a clinical table of some edition (2022's *clinical_info*.csv): read without a warning.
    assert "hecktor_clinical_info.csv" in {Path(p).name for p in report["layout"]["csv_files"]}
    assert report["layout"]["unread_csvs"] == {}


def test_csv_without_patient_column_is_a_summary_warning_and_a_strict_error(tmp_path, capsys):
    src = make_2025_with_renamed_csvs(tmp_path / "release")
    write_rows(src / "Task 3" / "hpv_lab_results.csv", "case,hpv", [["CHUP-001", "1"]])
    summary = convert_dataset(src, dataset_id=525, output=tmp_path / "out", progress=False)
    assert list(summary.unread_csvs) == [str(src / "Task 3" / "hpv_lab_results.csv")]
    assert summary.warnings >= 1 and any("hpv_lab_results.csv not read" in w for w in summary.dataset_warnings)
    assert "hpv_lab_results.csv not read" in summary.describe()
    assert run_cli(src, tmp_path / "out", "--strict") == 1
    err = capsys.readouterr().err
    assert "1 CSVs not read (--strict)" in err and "hpv_lab_results.csv" in err and "Traceback" not in err


# -- detection ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("names, edition", [
    (["Task 1", "Task 2", "HECKTOR_2025_Training_Task_2.csv"], "2025"),
    (["hecktor2026_training", "HECKTOR_2026_Training_Task.csv"], "2026"),
    (["imagesTr", "labelsTr", "hecktor2022_endpoint_training.csv"], "2022"),
    (["hecktor_nii", "CHGJ007_ct.nii.gz", "CHGJ007_ct_gtvt.nii.gz"], "2021"),
    (["CHUP-000__CT.nii.gz", "CHUP-000__PT.nii.gz", "CHUP-000.nii.gz"], "2025"),  # nothing specific: default
])
def test_detect_edition(names, edition):
    assert detect_edition(names).edition.name == edition


def test_layout_reports_the_edition_for_each_release(tmp_path):
    assert discover_layout(make_2021(tmp_path / "a")).edition == "2021"
    assert discover_layout(make_2022(tmp_path / "b")).edition == "2022"
    layout = discover_layout(make_2026(tmp_path / "c"))
    assert layout.edition == "2026" and layout.csv_root == tmp_path / "c" and layout.root.name == "hecktor2026_training"
    assert "edition: HECKTOR 2026" in layout.describe()
