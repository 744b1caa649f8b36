"""Layout discovery of HECKTOR source folders (release with spaces/underscores, one task folder, flat)."""

from __future__ import annotations

import shutil

import pytest
from test_conversion_helpers import write_csv, write_patient

from nnunet_hecktor.dataset_conversion import discover_layout
from nnunet_hecktor.dataset_conversion.layout import split_image_name
from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.synthetic import make_cohort


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    made = {}
    for layout in ("release", "release_underscore", "flat"):
        made[layout] = make_cohort(root / layout, n_patients=10, seed=5, layout=layout, progress=False)
    made["task"] = make_cohort(root / "task", n_patients=10, seed=5, layout="task", task=1, progress=False)
    return made


@pytest.mark.parametrize("name, expected", [
    ("CHUP-000__CT.nii.gz", ("CHUP-000", "ct")),
    ("CHUP-000__PT.nii.gz", ("CHUP-000", "pet")),
    ("CHUP-000.nii.gz", ("CHUP-000", "label")),
    ("MDA-012__CTPlanning.nii.gz", ("MDA-012", "ct_planning")),
    ("MDA-012__RTDOSE.mha", ("MDA-012", "rtdose")),
    ("HGJ-001__CT.nii", ("HGJ-001", "ct")),
    ("HGJ-001__XYZ.nii.gz", None),
    ("notes.txt", None),
    (".tmp-abc.nii.gz", None),
    ("HECKTOR_2025_Training_Task_1.csv", None),
])
def test_split_image_name(name, expected):
    assert split_image_name(name) == expected


@pytest.mark.parametrize("layout, kind", [
    ("release", "release"), ("release_underscore", "release"), ("task", "task"), ("flat", "flat"),
])
def test_layouts_are_recognised(cohorts, layout, kind):
    cohort = cohorts[layout]
    found = discover_layout(cohort.out_dir)
    assert found.kind == kind
    expected_ids = set(cohort.patient_ids[1]) if layout == "task" else set(cohort.all_patient_ids)
    assert set(found.patients) == expected_ids
    labelled = {pid for pid, p in found.patients.items() if p.has_label}
    assert labelled == set(cohort.patient_ids[1])
    assert all(p.ct is not None and p.pet is not None for p in found.patients.values())
    assert found.csv_files, "clinical CSVs must be found"
    assert "synthetic_ground_truth.json" not in {c.path.name for c in found.csv_files}
    text = found.describe()
    assert kind in text or "task folder" in text
    assert f"{len(expected_ids)} patients" in text


def test_release_patient_in_several_tasks_is_one_patient(cohorts):
    cohort = cohorts["release"]
    found = discover_layout(cohort.out_dir)
    shared = set(cohort.patient_ids[1]) & set(cohort.patient_ids[2])
    assert shared, "the synthetic cohort has patients in Task 1 and Task 2"
    pid = sorted(shared)[0]
    sources = found.patients[pid]
    assert 1 in sources.tasks and 2 in sources.tasks
    assert sources.copies[0].task == 1  # the labelled copy is preferred
    assert "Task 1" in str(sources.ct)
    assert [c.task for c in found.csv_files] == [1, 2, 3]
    assert any(p.name == "synthetic_ground_truth.json" for p in found.ignored)


def test_underscore_folders_give_the_same_patients(cohorts):
    spaced = discover_layout(cohorts["release"].out_dir)
    underscored = discover_layout(cohorts["release_underscore"].out_dir)
    assert set(spaced.patients) == set(underscored.patients)
    assert {t for t in underscored.task_folders} == {1, 2, 3}


def test_duplicate_patient_folders_in_one_task_are_an_error(tmp_path):
    task = tmp_path / "Task 1"
    write_patient(task / "CHUP-001", "CHUP-001")
    write_patient(task / "CHUP-001_copy", "CHUP-001")
    with pytest.raises(HecktorError, match=r"(?s)duplicate PatientIDs.*CHUP-001: two folders of Task 1.*CHUP-001_copy"):
        discover_layout(tmp_path)


def test_duplicate_files_in_flat_folder_are_an_error(tmp_path):
    paths = write_patient(tmp_path, "CHUP-001")
    shutil.copy(paths["ct"], tmp_path / "CHUP-001__CT.nii")
    with pytest.raises(HecktorError, match="CHUP-001: two ct files.*CHUP-001__CT.nii and CHUP-001__CT.nii.gz"):
        discover_layout(tmp_path)


def test_flat_folder_csv_found_by_patient_id_column_and_bad_ids_warn(tmp_path):
    write_patient(tmp_path, "CHUP-001")
    write_patient(tmp_path, "patient7")
    write_csv(tmp_path / "clinical_data.csv", ["PatientID", "Age"], [{"PatientID": "CHUP-001", "Age": "60"}])
    write_csv(tmp_path / "other.csv", ["id", "x"], [{"id": "1", "x": "2"}])
    (tmp_path / "README.txt").write_text("hello")
    found = discover_layout(tmp_path)
    assert found.kind == "flat"
    assert [c.path.name for c in found.csv_files] == ["clinical_data.csv"]
    assert {p.name for p in found.ignored} == {"README.txt"}
    # A CSV is never silently ignored: one without PatientID is named as not read (convert --strict fails).
    assert [p.name for p in found.unread_csvs] == ["other.csv"]
    assert "no PatientID column (columns: id, x)" in found.unread_csvs[tmp_path / "other.csv"]
    assert any("clinical_data.csv: read as a clinical table" in w for w in found.warnings)
    assert any("patient7" in w and "<CENTRE>-<NNN>" in w for w in found.warnings)


def test_single_task_folder_named_by_number(tmp_path):
    task = tmp_path / "Task_2"
    write_patient(task / "MDA-001", "MDA-001", label=False)
    write_csv(task / "HECKTOR_2025_Training_Task_2.csv", ["PatientID", "RFS"], [{"PatientID": "MDA-001", "RFS": "5"}])
    found = discover_layout(task)
    assert found.kind == "task"
    assert list(found.task_folders) == [2]
    assert found.patients["MDA-001"].tasks == [2]
    assert found.csv_files[0].task == 2


@pytest.mark.parametrize("make", ["empty", "missing", "unrelated"])
def test_no_images_is_a_clear_error(tmp_path, make):
    if make == "missing":
        src = tmp_path / "does-not-exist"
    else:
        src = tmp_path
        if make == "unrelated":
            (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(HecktorError, match="no HECKTOR images|does not exist"):
        discover_layout(src)
