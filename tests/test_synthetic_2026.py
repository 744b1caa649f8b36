"""The synthetic HECKTOR 2026 release: layout, CSV header and encodings, stages, missing values."""

from __future__ import annotations

import csv
import json

import pytest
import SimpleITK as sitk

from nnunet_hecktor import schema
from nnunet_hecktor.cli import main as cli_main
from nnunet_hecktor.clinical import read_clinical_csv
from nnunet_hecktor.editions import get_edition
from nnunet_hecktor.synthetic import GROUND_TRUTH_NAME, draw_patients, make_cohort
from nnunet_hecktor.synthetic.writer import COLUMNS_2026, csv_text

HEADER_2026 = ("PatientID,CenterID,Age,Gender,Tobacco Consumption,Alcohol Consumption,Performance Status,"
               "Treatment,HPV Status,Relapse,RFS,T-stage,N-stage")


@pytest.fixture(scope="module")
def release_2026(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth2026") / "release"
    summary = make_cohort(out, n_patients=10, seed=4, edition="2026", progress=False)
    return out, summary


def test_layout_and_file_names(release_2026):
    out, summary = release_2026
    csv_name = get_edition("2026").csv_names[0]
    assert csv_name == "HECKTOR_2026_Training_Task.csv"
    assert sorted(p.name for p in out.iterdir()) == sorted([csv_name, "hecktor2026_training", GROUND_TRUTH_NAME])
    folders = sorted(p.name for p in (out / "hecktor2026_training").iterdir())
    assert folders == summary.patient_ids[0] and len(folders) == 10  # every patient, whatever its 2025 tasks
    for pid in folders:
        files = sorted(p.name for p in (out / "hecktor2026_training" / pid).iterdir())
        assert files == sorted([f"{pid}__CT.nii.gz", f"{pid}__PT.nii.gz", f"{pid}.nii.gz"])
    label = sitk.ReadImage(str(out / "hecktor2026_training" / folders[0] / f"{folders[0]}.nii.gz"))
    ct = sitk.ReadImage(str(out / "hecktor2026_training" / folders[0] / f"{folders[0]}__CT.nii.gz"))
    assert label.GetSize() == ct.GetSize()
    assert not summary.planning_patient_ids


def test_csv_header_values_and_ground_truth(release_2026):
    out, summary = release_2026
    path = out / "HECKTOR_2026_Training_Task.csv"
    assert path.read_text().splitlines()[0] == HEADER_2026
    assert ",".join(COLUMNS_2026) == HEADER_2026
    with open(path, newline="") as handle:
        rows = {r["PatientID"]: r for r in csv.DictReader(handle)}
    truth = json.loads((out / GROUND_TRUTH_NAME).read_text())
    assert truth["edition"] == "2026"
    records = read_clinical_csv(path)  # the package's reader parses it (stages included)
    for pid, row in rows.items():
        staging = truth["patients"][pid]["staging"]
        for column in (schema.COL_TSTAGE, schema.COL_NSTAGE):
            assert row[column] == (staging["recorded"][column] or "")
            assert records[pid][column] == staging["recorded"][column]
        if row["RFS"]:
            assert float(row["RFS"]) == truth["patients"][pid]["rfs_days"]
    assert "T-stage_balanced_accuracy_geometry" in truth["best_achievable"]


def test_missing_rfs_stage_and_hpv_in_a_bigger_cohort():
    patients = draw_patients(300, seed=3)
    lines = csv_text(patients, COLUMNS_2026, "2026").splitlines()
    rows = [dict(zip(COLUMNS_2026, line.split(","))) for line in lines[1:]]
    assert len(rows) == 300
    for column in ("RFS", "T-stage", "N-stage", "HPV Status"):
        blanks = sum(r[column] == "" for r in rows)
        assert 0 < blanks < 0.15 * len(rows), column
    assert sum(r["RFS"] == "" for r in rows) > 0.04 * len(rows)  # ~7 % without RFS, as released
    assert all(r["Relapse"] == "" for r in rows if r["RFS"] == "")
    assert {r["T-stage"] for r in rows} - {""} <= set(schema.T_STAGES)
    assert {r["N-stage"] for r in rows} - {""} <= set(schema.N_STAGES)


def test_cli_edition(tmp_path, capsys):
    out = tmp_path / "cli2026"
    assert cli_main(["synth", str(out), "--patients", "3", "--edition", "2026", "--quiet"]) == 0
    assert (out / "HECKTOR_2026_Training_Task.csv").is_file()
    assert cli_main(["synth", str(tmp_path / "flat"), "--patients", "3", "--edition", "2026", "--layout", "flat",
                     "--quiet"]) == 2  # a usage error
    assert "one layout" in capsys.readouterr().err
