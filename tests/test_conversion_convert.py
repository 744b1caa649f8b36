"""End-to-end conversion: all layouts, outputs as nnU-Net expects them, report, resume, interruption, safety."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from test_conversion_helpers import (
    CT_ORIGIN,
    CT_SPACING,
    image_from,
    label_array,
    pet_image,
    read,
    snapshot,
    write_patient,
)

from nnunet_hecktor import schema
from nnunet_hecktor.cli import main as cli_main
from nnunet_hecktor.dataset_conversion import convert_dataset
from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.synthetic import make_cohort


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    made = {layout: make_cohort(root / layout, n_patients=8, seed=11, layout=layout, progress=False)
            for layout in ("release", "release_underscore", "flat")}
    made["task"] = make_cohort(root / "task", n_patients=8, seed=11, layout="task", task=1, progress=False)
    return made


def _ids(cohort, layout):
    labelled = sorted(cohort.patient_ids[1])
    everyone = labelled if layout == "task" else sorted(cohort.all_patient_ids)
    return labelled, [p for p in everyone if p not in labelled]


@pytest.mark.parametrize("layout", ["release", "release_underscore", "task", "flat"])
def test_convert_every_layout(cohorts, tmp_path, layout):
    cohort = cohorts[layout]
    before = snapshot(cohort.out_dir)
    out = tmp_path / "Dataset520_H"
    summary = convert_dataset(cohort.out_dir, dataset_id=520, name="H", output=out, progress=False)
    assert snapshot(cohort.out_dir) == before, "the source folder must never be written to"

    labelled, unlabelled = _ids(cohort, layout)
    assert summary.training == labelled and summary.test == unlabelled and summary.failed == {}
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["channel_names"] == {"0": "CT", "1": "PET"}
    assert dataset["labels"] == {"background": 0, "GTVp": 1, "GTVn": 2}
    assert dataset["numTraining"] == len(labelled) and dataset["file_ending"] == ".nii.gz"
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == [f"{p}.nii.gz" for p in labelled]
    assert sorted(p.name for p in (out / "imagesTs").iterdir()) == sorted(
        f"{p}_{c}.nii.gz" for p in unlabelled for c in ("0000", "0001"))
    assert not list(out.rglob(".tmp-*"))

    report = json.loads((out / "conversion_report.json").read_text())
    pid = labelled[0]
    entry = report["patients"][pid]
    source_ct = sitk.ReadImage(entry["sources"]["ct"])
    source_pet = sitk.ReadImage(entry["sources"]["pet"])
    ct = sitk.ReadImage(str(out / "imagesTr" / f"{pid}_0000.nii.gz"))
    pet = sitk.ReadImage(str(out / "imagesTr" / f"{pid}_0001.nii.gz"))
    label = sitk.ReadImage(str(out / "labelsTr" / f"{pid}.nii.gz"))
    # CT unchanged; PET float32 on the CT grid, equal to a plain linear resample with outside value 0.
    assert np.array_equal(sitk.GetArrayFromImage(ct), sitk.GetArrayFromImage(source_ct))
    for image in (pet, label):
        assert image.GetSize() == ct.GetSize() and image.GetSpacing() == ct.GetSpacing()
        assert image.GetOrigin() == ct.GetOrigin() and image.GetDirection() == ct.GetDirection()
    assert pet.GetPixelID() == sitk.sitkFloat32 and label.GetPixelID() == sitk.sitkUInt8
    expected_pet = sitk.Resample(source_pet, source_ct, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    np.testing.assert_allclose(sitk.GetArrayFromImage(pet), sitk.GetArrayFromImage(expected_pet), rtol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(label), read(Path(entry["sources"]["label"])))
    assert set(np.unique(sitk.GetArrayFromImage(label))) <= {0, 1, 2}
    assert entry["ct"]["size"] == list(source_ct.GetSize()) and entry["pet"]["spacing"] == list(source_pet.GetSpacing())
    assert set(entry["labels"]) == {"GTVp", "GTVn"} and "linear" in entry["resampling"]["pet"]
    assert summary.layout_kind == ("release" if layout.startswith("release") else layout)
    assert (out / "clinical.csv").read_text().count("\n") == 1 + len(labelled) + len(unlabelled)
    if len(labelled) >= 5:
        assert (out / "splits_final.json").is_file()


def test_report_label_volumes_and_components(tmp_path):
    src = tmp_path / "src"
    write_patient(src, "CHUP-001")
    summary = convert_dataset(src, dataset_id=521, name="R", output=tmp_path / "Dataset521_R", progress=False)
    entry = json.loads(summary.report_path.read_text())["patients"]["CHUP-001"]
    voxel_ml = np.prod(CT_SPACING) / 1000.0
    assert entry["labels"]["GTVp"] == {"voxels": 48, "volume_ml": round(48 * voxel_ml, 4), "components": 1}
    assert entry["labels"]["GTVn"] == {"voxels": 26, "volume_ml": round(26 * voxel_ml, 4), "components": 2}
    assert entry["crop"]["mode"] == "none" and entry["warnings"] == []
    assert (tmp_path / "Dataset521_R" / "crops" / "CHUP-001.json").is_file()


def test_mha_sources_become_nifti(tmp_path):
    src = tmp_path / "src"
    paths = write_patient(tmp_path / "nii", "CHUP-001")
    src.mkdir()
    for role, path in paths.items():
        name = path.name.replace(".nii.gz", ".mha")
        sitk.WriteImage(sitk.ReadImage(str(path)), str(src / name), True)
    summary = convert_dataset(src, dataset_id=528, name="M", output=tmp_path / "Dataset528_M", progress=False)
    assert summary.training == ["CHUP-001"]
    np.testing.assert_array_equal(read(summary.output_dir / "imagesTr" / "CHUP-001_0000.nii.gz"), read(paths["ct"]))
    np.testing.assert_array_equal(read(summary.output_dir / "labelsTr" / "CHUP-001.nii.gz"), read(paths["label"]))


def test_bspline_interpolation(tmp_path):
    src = tmp_path / "src"
    write_patient(src, "CHUP-001")
    linear = convert_dataset(src, dataset_id=522, name="L", output=tmp_path / "Dataset522_L", progress=False)
    bspline = convert_dataset(src, dataset_id=523, name="B", output=tmp_path / "Dataset523_B",
                              interpolation="bspline", progress=False)
    a = read(linear.output_dir / "imagesTr" / "CHUP-001_0001.nii.gz")
    b = read(bspline.output_dir / "imagesTr" / "CHUP-001_0001.nii.gz")
    assert a.shape == b.shape and not np.allclose(a, b)
    assert abs(float(a.mean()) - float(b.mean())) < 0.2  # same image, other kernel
    report = json.loads(bspline.report_path.read_text())
    assert "bspline" in report["patients"]["CHUP-001"]["resampling"]["pet"]


def test_parallel_conversion_gives_the_same_dataset(cohorts, tmp_path):
    src = cohorts["flat"].out_dir
    one = convert_dataset(src, dataset_id=524, name="P", output=tmp_path / "one" / "Dataset524_P", progress=False)
    two = convert_dataset(src, dataset_id=524, name="P", output=tmp_path / "two" / "Dataset524_P",
                          num_processes=2, progress=False)
    assert one.training == two.training and one.test == two.test
    for path in sorted((one.output_dir / "imagesTr").iterdir()):
        np.testing.assert_array_equal(read(path), read(two.output_dir / "imagesTr" / path.name))
    assert (one.output_dir / "splits_final.json").read_text() == (two.output_dir / "splits_final.json").read_text()


def test_resume_skips_unchanged_and_redoes_changed(cohorts, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(cohorts["task"].out_dir, src)
    out = tmp_path / "Dataset525_Z"
    first = convert_dataset(src, dataset_id=525, name="Z", output=out, progress=False)
    everyone = sorted(first.training + first.test)
    assert first.resumed == []
    again = convert_dataset(src, dataset_id=525, name="Z", output=out, progress=False)
    assert again.resumed == everyone and again.training == first.training

    changed = everyone[0]
    pet_path = next(src.rglob(f"{changed}__PT.nii.gz"))
    pet = sitk.ReadImage(str(pet_path))
    sitk.WriteImage(pet * 2.0, str(pet_path), True)
    third = convert_dataset(src, dataset_id=525, name="Z", output=out, progress=False)
    assert third.resumed == everyone[1:]
    folder = "imagesTr" if changed in first.training else "imagesTs"
    assert read(out / folder / f"{changed}_0001.nii.gz").max() > 0

    bspline = convert_dataset(src, dataset_id=525, name="Z", output=out, interpolation="bspline", progress=False)
    assert bspline.resumed == []  # other options: everything again
    redo = convert_dataset(src, dataset_id=525, name="Z", output=out, interpolation="bspline", overwrite=True,
                           progress=False)
    assert redo.resumed == [] and redo.training == first.training

    # A patient removed from the source disappears from the dataset.
    shutil.rmtree(pet_path.parent)
    last = convert_dataset(src, dataset_id=525, name="Z", output=out, interpolation="bspline", progress=False)
    assert changed not in last.training + last.test
    assert not list(out.rglob(f"{changed}*"))
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == len(last.training)


_KILLER = textwrap.dedent("""
    import os, signal, sys
    import nnunet_hecktor.fileio as fileio
    from nnunet_hecktor.dataset_conversion import convert_dataset

    real_replace = os.replace
    renamed = []

    def replace_then_die(src, dst):
        # Hard kill (no clean-up possible) while renaming the 3rd patient's PET into place.
        if str(dst).endswith("_0001.nii.gz"):
            renamed.append(dst)
            if len(renamed) == 3:
                os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst)

    fileio.os.replace = replace_then_die
    convert_dataset(sys.argv[1], dataset_id=526, name="K", output=sys.argv[2], progress=False)
""")


def test_interrupted_run_leaves_no_complete_looking_output_and_resumes(cohorts, tmp_path):
    src = cohorts["task"].out_dir
    out = tmp_path / "Dataset526_K"
    result = subprocess.run([sys.executable, "-c", _KILLER, str(src), str(out)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == -9, result.stderr
    assert not (out / "dataset.json").exists(), "an interrupted run must not look finished"
    markers = sorted(p.stem for p in (out / ".conversion_state").glob("*.json"))
    assert len(markers) == 2
    labels = [p for p in (out / "labelsTr").glob("*.nii.gz") if not p.name.startswith(".tmp-")]
    assert len(labels) == 2
    for label in labels:  # every label in place has complete, readable images
        pid = label.name[: -len(".nii.gz")]
        for channel in ("0000", "0001"):
            read(out / "imagesTr" / f"{pid}_{channel}.nii.gz")
        read(label)

    summary = convert_dataset(src, dataset_id=526, name="K", output=out, progress=False)
    assert sorted(summary.resumed) == markers
    assert summary.failed == {} and (out / "dataset.json").is_file()
    assert not list(out.rglob(".tmp-*")), "temporary files of the killed run are cleaned up"
    images = sorted(p.name for p in (out / "imagesTr").iterdir())
    assert images == sorted(f"{p}_{c}.nii.gz" for p in summary.training for c in ("0000", "0001"))


def test_injected_failure_while_writing_leaves_no_partial_case(tmp_path, monkeypatch):
    src = tmp_path / "src"
    write_patient(src, "CHUP-001", seed=1)
    write_patient(src, "CHUP-002", seed=2)
    real_write = sitk.WriteImage
    calls = []

    def disk_full_on_third_write(image, path, *args):
        # Patient 1 writes PET and label (its CT is copied); the 3rd write is patient 2's PET, after its CT.
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_write(image, path, *args)

    monkeypatch.setattr(sitk, "WriteImage", disk_full_on_third_write)
    out = tmp_path / "Dataset527_F"
    summary = convert_dataset(src, dataset_id=527, name="F", output=out, progress=False)
    monkeypatch.undo()
    assert summary.training == ["CHUP-001"]
    assert "No space left on device" in summary.failed["CHUP-002"]
    assert not list(out.rglob("CHUP-002*")) and not list(out.rglob(".tmp-*"))
    fixed = convert_dataset(src, dataset_id=527, name="F", output=out, progress=False)
    assert fixed.resumed == ["CHUP-001"] and fixed.training == ["CHUP-001", "CHUP-002"]


def test_output_folder_safety(tmp_path):
    src = tmp_path / "src"
    write_patient(src, "CHUP-001")
    with pytest.raises(HecktorError, match="inside the source folder"):
        convert_dataset(src, output=src / "Dataset530_X", progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(HecktorError, match="was not written by"):
        convert_dataset(src, output=foreign, progress=False)
    with pytest.raises(HecktorError, match="refusing to delete"):
        convert_dataset(src, output=foreign, overwrite=True, progress=False)
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_default_output_is_under_nnunet_raw(tmp_path, monkeypatch):
    src = tmp_path / "src"
    write_patient(src, "CHUP-001")
    monkeypatch.delenv("nnUNet_raw", raising=False)
    with pytest.raises(HecktorError, match="nnUNet_raw is not set"):
        convert_dataset(src, dataset_id=531, progress=False)
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    summary = convert_dataset(src, dataset_id=531, progress=False)
    assert summary.output_dir == tmp_path / "raw" / "Dataset531_HECKTOR"


@pytest.mark.parametrize("kwargs, problem", [
    ({"dataset_id": 1000}, "1-999"),
    ({"name": "bad name"}, "letters, digits"),
    ({"interpolation": "cubic"}, "unknown interpolation"),
    ({"crop": "brain"}, "unknown crop mode"),
    ({"headneck_box_mm": (200, 200)}, "three positive sizes"),
    ({"num_processes": 0}, "at least 1"),
])
def test_bad_options(tmp_path, kwargs, problem):
    with pytest.raises(HecktorError, match=problem):
        convert_dataset(tmp_path, output=tmp_path / "o", progress=False, **kwargs)


def test_cli_convert_and_errors_without_traceback(tmp_path, capsys):
    src = tmp_path / "src"
    write_patient(src, "CHUP-001")
    write_patient(src, "CHUP-002", label_image=image_from(label_array() * 2, CT_SPACING, CT_ORIGIN))  # value 4
    out = tmp_path / "Dataset532_C"
    assert cli_main(["convert", str(src), "--dataset-id", "532", "--output", str(out), "--quiet"]) == 0
    assert cli_main(["convert", str(src), "--dataset-id", "532", "--output", str(out), "--quiet", "--strict"]) == 1
    err = capsys.readouterr().err
    assert "1 patients failed (--strict)" in err and "CHUP-002" in err and "Traceback" not in err
    (src / "CHUP-001.nii").write_bytes(b"")
    assert cli_main(["convert", str(src), "--dataset-id", "532", "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert "duplicate PatientIDs" in err and "Traceback" not in err


def test_cli_help_lists_the_options():
    result = subprocess.run([sys.executable, "-m", "nnunet_hecktor.cli", "convert", "--help"], capture_output=True,
                            text=True, timeout=60, env=dict(os.environ))
    assert result.returncode == 0
    for option in ("--dataset-id", "--crop", "--headneck-box-mm", "--splits", "--num-processes", "--overwrite",
                   "--strict", "--interpolation"):
        assert option in result.stdout


# -- bad input: a clear per-patient failure, never a traceback, never a silent skip ------------------------------

def _shifted_label(dx_voxels: float = 1.0, spacing=CT_SPACING, size_change=0):
    array = label_array()
    if size_change:
        array = np.pad(array, ((0, size_change), (0, 0), (0, 0)))
    origin = (CT_ORIGIN[0] + dx_voxels * CT_SPACING[0], CT_ORIGIN[1], CT_ORIGIN[2])
    return image_from(array, spacing, origin)


def _corrupt(kind: str, folder: Path, pid: str) -> None:
    ct, pet, label = folder / f"{pid}__CT.nii.gz", folder / f"{pid}__PT.nii.gz", folder / f"{pid}.nii.gz"
    if kind == "missing CT":
        ct.unlink()
    elif kind == "missing PET":
        pet.unlink()
    elif kind == "truncated CT":
        data = ct.read_bytes()
        ct.write_bytes(data[: len(data) // 2])
    elif kind == "garbage PET":
        pet.write_bytes(b"this is not an image" * 10)
    elif kind == "label value 3":
        array = label_array()
        array[0, 0, 0] = 3
        sitk.WriteImage(image_from(array, CT_SPACING, CT_ORIGIN), str(label), True)
    elif kind == "label other spacing":
        sitk.WriteImage(_shifted_label(0.0, spacing=(3.0, 3.0, 5.0)), str(label), True)
    elif kind == "label other size":
        sitk.WriteImage(_shifted_label(0.0, size_change=2), str(label), True)
    elif kind == "label other extent":
        sitk.WriteImage(_shifted_label(1.0), str(label), True)
    elif kind == "NaN in PET":
        image = pet_image()
        array = sitk.GetArrayFromImage(image)
        array[2, 2, 2] = np.nan
        sitk.WriteImage(image_from(array, image.GetSpacing(), image.GetOrigin()), str(pet), True)
    elif kind == "inf in CT":
        array = sitk.GetArrayFromImage(sitk.ReadImage(str(ct))).astype(np.float32)
        array[1, 1, 1] = np.inf
        sitk.WriteImage(image_from(array, CT_SPACING, CT_ORIGIN), str(ct), True)
    elif kind == "PET elsewhere":
        image = pet_image()
        image.SetOrigin((500.0, 500.0, 500.0))
        sitk.WriteImage(image, str(pet), True)
    elif kind == "4-D CT":
        sitk.WriteImage(sitk.JoinSeries([sitk.ReadImage(str(ct))] * 2), str(ct), True)


@pytest.mark.parametrize("kind, problem", [
    ("missing CT", "CT file is missing"),
    ("missing PET", "PET file is missing"),
    ("truncated CT", "CT file is unreadable or truncated"),
    ("garbage PET", "PET file is unreadable or truncated"),
    ("label value 3", "label values {3} outside {0, 1, 2}"),
    ("label other spacing", "label grid differs from the CT grid (spacing"),
    ("label other size", "label grid differs from the CT grid (size"),
    ("label other extent", "label grid differs from the CT grid (origin"),
    ("NaN in PET", "PET has non-finite voxels (1 NaN, 0 inf)"),
    ("inf in CT", "CT has non-finite voxels (0 NaN, 1 inf)"),
    ("PET elsewhere", "PET and CT do not overlap"),
    ("4-D CT", "CT must be a 3-D image"),
])
def test_bad_input_is_a_per_patient_failure(tmp_path, kind, problem):
    src = tmp_path / "Task 1"
    write_patient(src / "CHUP-001", "CHUP-001", seed=1)
    write_patient(src / "CHUP-002", "CHUP-002", seed=2)
    _corrupt(kind, src / "CHUP-002", "CHUP-002")
    before = snapshot(tmp_path)
    out = tmp_path.parent / f"{tmp_path.name}-out" / "Dataset533_E"
    summary = convert_dataset(src, dataset_id=533, name="E", output=out, progress=False)
    assert snapshot(tmp_path) == before
    assert summary.training == ["CHUP-001"]
    message = summary.failed["CHUP-002"]
    assert message.startswith("CHUP-002") and problem in message
    if kind not in ("missing CT", "missing PET", "PET elsewhere"):
        assert "CHUP-002/CHUP-002" in message  # names the file
    report = json.loads(summary.report_path.read_text())
    assert report["patients"]["CHUP-002"]["status"] == "failed" and "traceback" not in report["patients"]["CHUP-002"]
    assert not list(out.rglob("CHUP-002*"))
    with pytest.raises(HecktorError, match="1 patients failed"):
        convert_dataset(src, dataset_id=533, name="E", output=out, progress=False, strict=True)


def test_label_roundoff_is_snapped_with_a_warning(tmp_path):
    src = tmp_path / "src"
    label = image_from(label_array(), CT_SPACING, (CT_ORIGIN[0] + 1e-4, CT_ORIGIN[1] - 2e-4, CT_ORIGIN[2]))
    write_patient(src, "CHUP-001", label_image=label)
    summary = convert_dataset(src, dataset_id=534, name="S", output=tmp_path / "Dataset534_S", progress=False)
    assert summary.training == ["CHUP-001"]
    entry = json.loads(summary.report_path.read_text())["patients"]["CHUP-001"]
    assert any("round-off" in w and "snapped" in w for w in entry["warnings"])
    ct = sitk.ReadImage(str(summary.output_dir / "imagesTr" / "CHUP-001_0000.nii.gz"))
    out_label = sitk.ReadImage(str(summary.output_dir / "labelsTr" / "CHUP-001.nii.gz"))
    assert out_label.GetOrigin() == ct.GetOrigin()


def test_pet_in_bq_per_ml_is_warned_not_rescaled(tmp_path):
    src = tmp_path / "src"
    write_patient(src, "CHUP-001", pet=pet_image(scale=5000.0))
    summary = convert_dataset(src, dataset_id=535, name="B", output=tmp_path / "Dataset535_B", progress=False)
    entry = json.loads(summary.report_path.read_text())["patients"]["CHUP-001"]
    assert any("Bq/mL" in w for w in entry["warnings"])
    assert read(summary.output_dir / "imagesTr" / "CHUP-001_0001.nii.gz").max() > 1000


def test_ct_differing_between_task_folders_uses_task_1_and_warns(tmp_path):
    write_patient(tmp_path / "Task 1" / "CHUP-001", "CHUP-001", seed=1)
    write_patient(tmp_path / "Task 2" / "CHUP-001", "CHUP-001", label=False, seed=5)  # other CT and PET
    write_patient(tmp_path / "Task 3" / "CHUP-001", "CHUP-001", label=False, seed=1)  # same scans
    summary = convert_dataset(tmp_path, dataset_id=536, name="D", output=tmp_path.parent / "o" / "Dataset536_D",
                              progress=False)
    entry = json.loads(summary.report_path.read_text())["patients"]["CHUP-001"]
    warnings = [w for w in entry["warnings"] if "differs" in w]
    assert len(warnings) == 2  # CT and PET of Task 2; Task 3's copies are identical
    assert all("Task 2 folder" in w and "using the Task 1 folder copy" in w for w in warnings)
    np.testing.assert_array_equal(read(summary.output_dir / "imagesTr" / "CHUP-001_0000.nii.gz"),
                                  read(tmp_path / "Task 1" / "CHUP-001" / "CHUP-001__CT.nii.gz"))
    assert entry["tasks"] == [1, 2, 3] and schema.FILE_ENDING == ".nii.gz"
