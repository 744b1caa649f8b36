"""Issue 10 section 1: the challenge container always produces its outputs.

Each row is an input the container may meet (unseen clinical values, degenerate or unreadable
images) and what ``nnunet-hecktor challenge`` must write. Every row runs the real command, in-process
(the Python entry or ``cli.main``), with the session's tiny trained multi-task model, all three tasks
in one run, and checks all three output files with :func:`nnunet_hecktor.challenge.io.check_outputs`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

SEG = Path("images/tumor-lymph-node-segmentation/output.mha")


@pytest.fixture(scope="module")
def source(tiny_dataset):
    """CT, PET and clinical record of one labelled synthetic patient."""
    from nnunet_hecktor.clinical import read_clinical_csv
    from nnunet_hecktor.dataset_conversion import discover_layout

    layout = discover_layout(tiny_dataset.root / "source")
    pid = sorted(p for p, s in layout.patients.items() if s.label is not None)[0]
    sources = layout.patients[pid]
    return {"pid": pid, "ct": sitk.ReadImage(str(sources.ct)), "pet": sitk.ReadImage(str(sources.pet)),
            "record": read_clinical_csv(tiny_dataset.raw_dir / "clinical.csv")[pid]}


def _dummy_2d():
    # What the organisers' do_test_run.sh feeds every container: 1x1 2-D images.
    return sitk.Image([1, 1], sitk.sitkFloat32)


def _write_case(root: Path, source: dict, variant: str) -> Path:
    """A container input tree for ``variant``; returns the CT path written (for the expected grid)."""
    from nnunet_hecktor.synthetic.challenge_input import write_challenge_input

    ct, pet = source["ct"], source["pet"]
    ehr = {"Age": 61, "Gender": 1, "M-stage": "M0"}
    if variant == "unseen_clinical":
        ehr = {"CenterID": 9, "Performance Status": 70, "M-stage": "M1a", "Age": 121, "Gender": "Male",
               "Tumour side": "left"}
    elif variant == "2d_dummy":
        ct, pet = _dummy_2d(), _dummy_2d()
    elif variant == "vector_ct":
        ct = sitk.Compose(ct, ct, ct)
    elif variant == "4d_ct":
        array = sitk.GetArrayFromImage(ct)
        ct = sitk.GetImageFromArray(np.stack([array, array]), isVector=False)
    elif variant == "tiny_3d":
        ct, pet = sitk.Image([1, 1, 1], sitk.sitkInt16), sitk.Image([1, 1, 1], sitk.sitkFloat32)
    elif variant == "pet_elsewhere":
        pet = sitk.Image(pet)
        pet.SetOrigin([o + 5000.0 for o in pet.GetOrigin()])
    elif variant == "nan_ct":
        array = sitk.GetArrayFromImage(ct).astype(np.float32)
        array[0, 0, 0] = np.nan
        nan_ct = sitk.GetImageFromArray(array)
        nan_ct.CopyInformation(ct)
        ct = nan_ct
    fake = write_challenge_input(root, ct, pet, ehr)
    if variant == "zero_byte_ct":
        fake.ct.write_bytes(b"")
    elif variant == "text_ct":
        fake.ct.write_text("this is not an image\n")
    elif variant == "two_cts":
        sitk.WriteImage(source["ct"], str(fake.ct.parent / "second.mha"))
    return fake.ct


# variant -> (tasks that must be predicted, tasks with fallback output, expected grid: "ct" | size tuple | None (4-D),
#             text expected in the error log)
ROWS = {
    "unseen_clinical": ((1, 2, 3), (), "ct", None),
    "2d_dummy": ((), (1, 2, 3), (1, 1), "CT must be a 3-D image, got 2-D"),
    "nan_ct": ((), (1, 2, 3), "ct", "non-finite (NaN/inf) voxels"),
    "zero_byte_ct": ((), (1, 2, 3), (1, 1, 1), "CT"),
    "text_ct": ((), (1, 2, 3), (1, 1, 1), "CT"),
    "two_cts": ((), (1, 2, 3), (1, 1, 1), "2 CT images"),
    "vector_ct": ((), (1, 2, 3), "ct", "CT must have one value per voxel, got 3 components"),
    "4d_ct": ((), (1, 2, 3), None, "CT must be a 3-D image, got 4-D"),
    # failures inside the prediction, after the input was read
    "tiny_3d": ((), (1, 2, 3), (1, 1, 1), "segmentation failed"),
    "pet_elsewhere": ((), (1, 2, 3), "ct", "PET and CT do not overlap physically"),
}


@pytest.mark.parametrize("variant", list(ROWS))
def test_every_case_gets_its_three_outputs(variant, tiny_model, source, tmp_path, caplog):
    import logging

    from nnunet_hecktor.challenge import run_challenge
    from nnunet_hecktor.challenge.fallback import fallback_values
    from nnunet_hecktor.challenge.io import check_outputs

    predicted, fallback, grid, error = ROWS[variant]
    ct_path = _write_case(tmp_path / "input", source, variant)
    out = tmp_path / "output"
    with caplog.at_level(logging.INFO, logger="nnunet_hecktor"):
        result = run_challenge([1, 2, 3], tmp_path / "input", out, tiny_model.model_dir, device="cpu",
                               use_mirroring=False, verbose=False)
    reference = source["ct"] if grid == "ct" else None
    assert check_outputs(out, [1, 2, 3], reference) == []
    seg = sitk.ReadImage(str(out / SEG))
    if grid is None:  # 4-D CT: the mask keeps the CT's own (4-D) grid
        assert seg.GetSize() == (*source["ct"].GetSize(), 2)
    assert sorted(result.fallback) == list(fallback)
    assert sorted(set(result.outputs) - set(result.fallback)) == list(predicted)
    if grid not in ("ct", None):
        assert seg.GetSize() == grid
    if fallback:
        assert not sitk.GetArrayFromImage(seg).any()
        values = fallback_values(tiny_model.model_dir, [0])
        assert values.risk_source == "mean over folds 0 of the median out-of-fold risk in validation_heads.csv"
        assert f"training cohort median: {values.risk_source}" in result.fallback[2]
        assert json.loads((out / "rfs.json").read_text()) == pytest.approx(values.risk)
        assert json.loads((out / "hpv-status.json").read_text()) is values.hpv_positive
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and error in errors[0], errors
        step = "segmentation" if variant in ("tiny_3d", "pet_elsewhere") else "reading the input"
        assert f"{step} failed" in errors[0] and result.errors[0].startswith(step)
    else:
        assert result.errors == []
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        # one warning per value treated as missing, naming key and value; CenterID and unknown keys silent
        assert [w for w in warnings if "ehr.json" in w] == [
            w for w in warnings if "Age = 121" in w and "missing" in w]
        assert len([w for w in warnings if "ehr.json" in w]) == 1
        used = {s.column: s.used for s in result.substitutions}
        assert used == {"Age": None, "M-stage": "M1", "Gender": 1}
    assert ct_path.exists()


def test_task1_ignores_a_broken_ehr_json(tiny_model, source, tmp_path, caplog):
    import logging

    from nnunet_hecktor.challenge import run_challenge
    from nnunet_hecktor.challenge.io import check_outputs

    _write_case(tmp_path / "input", source, "plain")
    (tmp_path / "input" / "ehr.json").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="nnunet_hecktor"):
        result = run_challenge(1, tmp_path / "input", tmp_path / "out", tiny_model.model_dir, device="cpu",
                               use_mirroring=False, verbose=False)
    assert result.errors == [] and result.fallback == {} and result.substitutions == []
    assert check_outputs(tmp_path / "out", [1], source["ct"]) == []
    assert not [r for r in caplog.records if "ehr.json" in r.getMessage()]


@pytest.mark.parametrize("strict, code, stderr_text", [
    (False, 0, "error: case"),
    (True, 1, "CT must be a 3-D image, got 2-D"),
])
def test_cli_do_test_run_dummies(strict, code, stderr_text, tiny_model, source, tmp_path, capsys):
    """The organisers' smoke test: exit 0 with the three outputs; --strict fails fast with the reason."""
    from nnunet_hecktor.challenge.io import check_outputs
    from nnunet_hecktor.cli import main

    _write_case(tmp_path / "input", source, "2d_dummy")
    out = tmp_path / "out"
    argv = ["challenge", "--task", "1", "2", "3", "--input", str(tmp_path / "input"), "--output", str(out),
            "--model", str(tiny_model.model_dir), "--device", "cpu", "--no-mirroring"]
    assert main(argv + (["--strict"] if strict else [])) == code
    captured = capsys.readouterr()
    assert stderr_text in captured.err
    if strict:
        assert not out.exists() or not any(out.rglob("*.json"))
    else:
        assert "CT must be a 3-D image, got 2-D" in captured.err
        assert "FALLBACK" in captured.err
        assert check_outputs(out, [1, 2, 3]) == []
