"""The challenge container interface without a model: input reading and its errors, the three
output writers, the output check, the container's environment, model staging."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_hecktor.challenge.io import (
    HPV_OUTPUT,
    RFS_OUTPUT,
    SEGMENTATION_OUTPUT,
    check_outputs,
    read_challenge_input,
    write_hpv_output,
    write_rfs_output,
    write_segmentation_output,
)
from nnunet_hecktor.checkpoints import BEST_CHECKPOINT, FINAL_CHECKPOINT, LEGACY_SWA_CHECKPOINT
from nnunet_hecktor.errors import HecktorError, InputDataError
from nnunet_hecktor.synthetic.challenge_input import ehr_from_record, write_challenge_input


def _image(size=(8, 7, 6), spacing=(2.0, 2.5, 3.0), value=1.0, pixel=sitk.sitkFloat32):
    image = sitk.Image(list(size), pixel) + value
    image.SetSpacing(spacing)
    image.SetOrigin((-5.0, 3.0, 100.0))
    return image


@pytest.fixture
def fake_input(tmp_path):
    ehr = {"CenterID": 2, "Age": 61, "Gender": 1, "M-stage": "M0"}  # Tobacco etc. absent = missing
    return write_challenge_input(tmp_path / "input", _image(pixel=sitk.sitkInt16), _image((5, 5, 5), (4, 4, 4)), ehr,
                                 extra_folders=["images/ct-planning"])


def test_read_challenge_input(fake_input):
    case = read_challenge_input(fake_input.root)
    assert case.ct.GetSize() == (8, 7, 6) and case.pet.GetSize() == (5, 5, 5)
    assert case.case_id == fake_input.ct.name[: -len(".mha")]
    assert case.clinical["Age"] == 61.0 and case.clinical["M-stage"] == "M0"
    assert case.clinical["Tobacco Consumption"] is None and case.clinical["Performance Status"] is None
    assert any("ct-planning" in n for n in case.notes)


def test_ehr_json_absent_means_all_missing(fake_input):
    fake_input.ehr.unlink()
    case = read_challenge_input(fake_input.root)
    assert case.clinical == {} and case.ehr_path is None
    assert any("no ehr.json" in n for n in case.notes)


@pytest.mark.parametrize("problem, message", [
    ("no_ct_folder", r"no CT image: folder images/ct is missing"),
    ("empty_ct_folder", r"no CT image \(expected one \.mha file; the folder holds notes\.txt\)"),
    ("two_cts", r"2 CT images \(.*\.mha, .*\.mha\); expected exactly one"),
    ("two_pets", r"2 PET images"),
    ("unreadable_ct", r"CT file is unreadable"),
])
def test_input_errors(fake_input, problem, message):
    root = fake_input.root
    if problem == "no_ct_folder":
        fake_input.ct.unlink()
        fake_input.ct.parent.rmdir()
    elif problem == "empty_ct_folder":
        fake_input.ct.unlink()
        (fake_input.ct.parent / "notes.txt").write_text("x")
    elif problem == "two_cts":
        sitk.WriteImage(_image(), str(fake_input.ct.parent / "second.mha"))
    elif problem == "two_pets":
        sitk.WriteImage(_image(), str(fake_input.pet.parent / "second.mha"))
    elif problem == "unreadable_ct":
        data = fake_input.ct.read_bytes()
        fake_input.ct.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputDataError, match=message):
        read_challenge_input(root)


@pytest.mark.parametrize("ehr, expected, substituted", [
    ("{not json", {"Age": None}, ["ehr.json"]),
    (json.dumps({"Age": "old", "CenterID": 99, "Tumour side": "left"}), {"Age": None}, ["Age"]),
    (json.dumps({"Age": 121, "Performance Status": 70, "M-stage": "M1a", "Gender": "Male"}),
     {"Age": None, "Performance Status": 70, "M-stage": "M1", "Gender": 1}, ["Age", "M-stage", "Gender"]),
])
def test_ehr_values_are_advisory(fake_input, ehr, expected, substituted):
    """A bad ehr.json never stops the case: bad values are missing, and each is reported."""
    fake_input.ehr.write_text(ehr)
    case = read_challenge_input(fake_input.root)
    for column, value in expected.items():
        assert case.clinical[column] == value
    assert [s.column for s in case.substitutions] == substituted


def test_task1_never_reads_ehr_json(fake_input):
    fake_input.ehr.write_text("{not json")
    case = read_challenge_input(fake_input.root, read_ehr=False)
    assert case.clinical == {} and case.ehr_path is None and case.substitutions == []


@pytest.mark.parametrize("ct, expected_size, grid", [
    ("3d", (8, 7, 6), "the CT's grid"),
    ("2d_dummy", (1, 1), "the CT's grid (2-D"),
    ("nan", (8, 7, 6), "the CT's grid"),
    ("zero_bytes", (1, 1, 1), "smallest valid grid"),
    ("text_file", (1, 1, 1), "smallest valid grid"),
    ("absent", (1, 1, 1), "smallest valid grid"),
])
def test_fallback_segmentation_grid(tmp_path, ct, expected_size, grid):
    from nnunet_hecktor.challenge.fallback import empty_segmentation_for

    path = tmp_path / "ct.mha"
    reference = None
    if ct in ("3d", "nan"):
        reference = _image(value=float("nan") if ct == "nan" else 1.0)
        sitk.WriteImage(reference, str(path))
    elif ct == "2d_dummy":
        sitk.WriteImage(sitk.Image([1, 1], sitk.sitkFloat32), str(path))
    elif ct == "zero_bytes":
        path.write_bytes(b"")
    elif ct == "text_file":
        path.write_text("not an image")
    mask, description = empty_segmentation_for(path if ct != "absent" else None)
    assert mask.GetSize() == expected_size and mask.GetPixelID() == sitk.sitkUInt8
    assert not sitk.GetArrayFromImage(mask).any()
    assert grid in description
    if reference is not None:
        assert mask.GetSpacing() == reference.GetSpacing() and mask.GetOrigin() == reference.GetOrigin()


@pytest.mark.parametrize("folds, risks, hpv, expected_risk, expected_hpv", [
    ({0: [1.0, 2.0, 10.0], 1: [-1.0, 0.0, 1.0]}, None, {0: [1, 1, 0], 1: [0, 1, 1]}, (2.0 + 0.0) / 2, True),
    ({0: [0.5, 0.7]}, None, {0: [0, 0]}, 0.6, False),
    ({0: [0.5, 0.7]}, None, {0: [0, 1]}, 0.6, True),  # a tie is positive (the release's majority)
    ({}, None, {}, 0.0, True),  # no validation_heads.csv: documented defaults
])
def test_fallback_values_from_validation_heads(tmp_path, folds, risks, hpv, expected_risk, expected_hpv):
    from nnunet_hecktor.challenge.fallback import fallback_values

    for fold, values in folds.items():
        (tmp_path / f"fold_{fold}").mkdir()
        lines = ["PatientID,hpv_true,hpv_probability,risk"]
        lines += [f"P{fold}-{i},{h},0.5,{r}" for i, (r, h) in enumerate(zip(values, hpv[fold]))]
        (tmp_path / f"fold_{fold}" / "validation_heads.csv").write_text("\n".join(lines) + "\n")
    values = fallback_values(tmp_path, list(folds) or [0])
    assert values.risk == pytest.approx(expected_risk) and values.hpv_positive is expected_hpv
    assert ("no validation_heads.csv" in values.risk_source) == (not folds)
    assert ("no validation_heads.csv" in values.hpv_source) == (not folds)


def test_missing_input_folder(tmp_path):
    with pytest.raises(HecktorError, match="does not exist"):
        read_challenge_input(tmp_path / "nothing")


def test_output_writers_and_check(tmp_path):
    ct = _image(pixel=sitk.sitkInt16)
    seg = sitk.GetImageFromArray(np.random.default_rng(0).integers(0, 3, size=(6, 7, 8)).astype(np.int16))
    seg.CopyInformation(ct)
    out = tmp_path / "out"
    assert write_segmentation_output(seg, out) == out / SEGMENTATION_OUTPUT
    written = sitk.ReadImage(str(out / SEGMENTATION_OUTPUT))
    assert written.GetPixelID() == sitk.sitkUInt8
    assert np.array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(seg))
    assert check_outputs(out, [1], ct) == []
    write_rfs_output(np.float32(-0.25), out)
    write_hpv_output(np.True_, out)
    assert json.loads((out / RFS_OUTPUT).read_text()) == -0.25
    assert json.loads((out / HPV_OUTPUT).read_text()) is True
    assert check_outputs(out, [1, 2, 3], ct) == []
    assert check_outputs(out, [1], ct) == ["unexpected file hpv-status.json", "unexpected file rfs.json"]
    (out / HPV_OUTPUT).write_text("1\n")
    assert check_outputs(out, [3]) == ["unexpected file images/tumor-lymph-node-segmentation/output.mha",
                                       "unexpected file rfs.json",
                                       "hpv-status.json: expected one JSON boolean, got 1"]
    shifted = sitk.Image(ct)
    shifted.SetOrigin((0.0, 0.0, 0.0))
    assert any("origin" in p for p in check_outputs(out, [1, 2, 3], shifted))
    with pytest.raises(HecktorError, match="not finite"):
        write_rfs_output(float("nan"), tmp_path / "other")
    assert not (tmp_path / "other" / RFS_OUTPUT).exists()


def test_ehr_from_record_drops_missing_targets_and_omitted():
    record = {"PatientID": "CHUP-000", "Age": 50.0, "Gender": 1, "Tobacco Consumption": None, "HPV Status": 1,
              "RFS": 100.0, "M-stage": "M1", "CenterID": 2}
    assert ehr_from_record(record, omit=["Gender"]) == {"CenterID": 2, "Age": 50.0, "M-stage": "M1"}


def test_container_argv_from_environment():
    from nnunet_hecktor.challenge.__main__ import container_argv

    argv = container_argv({"HECKTOR_TASK": "2", "HECKTOR_MIRRORING": "0"}, ["--folds", "0"])
    assert argv == ["challenge", "--task", "2", "--model", "/opt/app/model", "--input", "/input", "--output",
                    "/output", "--device", "auto", "--no-mirroring", "--folds", "0"]
    assert container_argv({"HECKTOR_TASK": "1,3", "HECKTOR_MODEL": "/m"})[1:5] == ["--task", "1", "3", "--model"]


def test_stage_model_ships_only_the_chosen_checkpoints(tmp_path):
    from nnunet_hecktor.challenge.packaging import stage_model

    model = tmp_path / "HecktorMultiTaskTrainer__nnUNetPlans__3d_fullres"
    for fold in (0, 1, 2):
        (model / f"fold_{fold}").mkdir(parents=True)
        for name in (FINAL_CHECKPOINT, LEGACY_SWA_CHECKPOINT, BEST_CHECKPOINT):
            (model / f"fold_{fold}" / name).write_bytes(b"weights")
    for name in ("plans.json", "dataset.json", "dataset_fingerprint.json"):
        (model / name).write_text("{}")
    pp = tmp_path / "pp.json"
    pp.write_text(json.dumps({"min_component_size": {"GTVn": 100}}))
    staged = stage_model(model, tmp_path / "staged", [0, 2], BEST_CHECKPOINT, pp)
    files = sorted(str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file())
    assert files == ["challenge_model.json", "dataset.json", "dataset_fingerprint.json", f"fold_0/{BEST_CHECKPOINT}",
                     f"fold_2/{BEST_CHECKPOINT}", "plans.json", "postprocessing.json"]
    info = json.loads((staged / "challenge_model.json").read_text())
    assert (info["folds"], info["checkpoint"], info["postprocessing"]) == ([0, 2], BEST_CHECKPOINT,
                                                                          "postprocessing.json")
    assert info["fallback"]["risk"] == 0.0 and info["fallback"]["hpv_positive"] is True  # no validation_heads
    # Default: the deployed (validated) weights.
    default = stage_model(model, tmp_path / "default", [1])
    assert json.loads((default / "challenge_model.json").read_text())["checkpoint"] == FINAL_CHECKPOINT
    assert (default / "fold_1" / FINAL_CHECKPOINT).is_file()
    with pytest.raises(HecktorError, match="not empty"):
        stage_model(model, staged)
    with pytest.raises(HecktorError, match="fold 4 not found"):
        stage_model(model, tmp_path / "other", [4])


def test_docker_scripts_are_valid_bash():
    docker = Path(__file__).resolve().parents[1] / "docker"
    for script in ("build.sh", "test_local.sh"):
        result = subprocess.run(["bash", "-n", str(docker / script)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    dockerfile = (docker / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["python", "-m", "nnunet_hecktor.challenge"]' in dockerfile
    assert "COPY --chown=user:user model /opt/app/model" in dockerfile
