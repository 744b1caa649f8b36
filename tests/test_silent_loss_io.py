"""No silent loss (issue 20, round two): output folders, full disks, argument validation.

Each test is one measured hole and the behaviour it has now:

1. ``predict`` wrote into its own input tree, and the next ``convert`` of that tree took
   ``predictions/<PID>.nii.gz`` for labels (6 of 6 unlabelled patients became training cases). Now the
   output folder may not lie inside the input folder, and every folder ``predict`` and ``postprocess``
   write carries a marker (``.nnunet-hecktor-output.json``) that the converter skips.
2. A full disk left 0-byte files under their final names (ITK's NIfTI writer does not raise) and a
   traceback; an unwritable output folder was found only after computing a case. Now the atomic writers
   check what they rename and raise one clear error, and ``predict`` checks its folder first.
3. (folds: ``tests/test_conversion_splits.py``)
4. ``synth --seed -1`` printed a traceback; now argparse refuses it (exit 2).

Full disks are real: a 64 KiB tmpfs (needs root; skipped otherwise) and a file-size limit
(``RLIMIT_FSIZE``) on a subprocess running the real command line.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from test_conversion_helpers import write_patient

from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.fileio import (
    OUTPUT_MARKER,
    OutputWriteError,
    check_output_folder,
    is_plugin_output,
    mark_plugin_output,
    plugin_output_command,
    plugin_output_note,
    verify_image_file,
    verify_written_file,
    write_image_atomic,
    write_json_atomic,
    write_text_atomic,
)


def _noise(shape=(64, 64, 64)) -> sitk.Image:
    """An image that does not compress: 256 KiB of uint8 noise, more than the tiny disk holds."""
    return sitk.GetImageFromArray(np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8))


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 64 KiB filesystem (tmpfs), unmounted afterwards."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


# --- 1. predictions never become ground truth ------------------------------------------------------

def _unlabelled_source(root, n=3):
    for i in range(n):
        write_patient(root, f"CHUP-{i:03d}", label=False, seed=i)
    return root


@pytest.mark.parametrize("where", ["inside", "same", "deeper"])
def test_predict_refuses_an_output_folder_in_its_input_tree(tmp_path, where, capsys):
    from nnunet_hecktor.cli import main
    from nnunet_hecktor.prediction.api import predict

    src = _unlabelled_source(tmp_path / "src")
    output = {"inside": src / "predictions", "same": src, "deeper": src / "a" / "b"}[where]
    before = _files(src)
    # Refused before the model is even looked at (the model folder does not exist).
    with pytest.raises(HecktorError, match="must not be the input folder"):
        predict(src, output, tmp_path / "no_model", progress=False)
    assert main(["predict", "-i", str(src), "-o", str(output), "-m", str(tmp_path / "no_model"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "must not be the input folder" in err and "Traceback" not in err
    assert _files(src) == before  # nothing created in the input tree


def test_predict_accepts_a_sibling_folder_whose_name_extends_the_input(tmp_path):
    from nnunet_hecktor.prediction.outputs import check_output_location

    src = _unlabelled_source(tmp_path / "src")
    assert check_output_location(tmp_path / "src_predictions", src) == tmp_path / "src_predictions"
    assert not (tmp_path / "src_predictions").exists()  # the check creates nothing


def test_prepare_output_folder_marks_it_as_predict_output(tmp_path):
    from nnunet_hecktor.prediction.outputs import prepare_output_folder

    folder = prepare_output_folder(tmp_path / "out", num_cases=3)
    assert is_plugin_output(folder) and plugin_output_command(folder) == "predict"
    assert _files(folder) == [OUTPUT_MARKER]  # the writability probe is gone
    assert not is_plugin_output(tmp_path) and plugin_output_command(tmp_path) is None
    assert "nnunet-hecktor predict" in plugin_output_note(folder) and plugin_output_note(tmp_path) is None


def test_postprocess_marks_its_output_folder(tmp_path):
    from nnunet_hecktor.postprocessing.apply import postprocess_folder
    from nnunet_hecktor.postprocessing.config import PostprocessingConfig

    src = tmp_path / "pred"
    src.mkdir()
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.uint8)), str(src / "P-000.nii.gz"))
    postprocess_folder(src, tmp_path / "pp", PostprocessingConfig(), progress=False)
    assert plugin_output_command(tmp_path / "pp") == "postprocess"


@pytest.mark.parametrize("kind", ["flat", "task", "release"])
def test_convert_skips_folders_the_plugin_wrote(tmp_path, kind):
    from nnunet_hecktor.dataset_conversion import convert_dataset

    src = tmp_path / "src"
    base = src / "Task 1" if kind == "release" else src
    for i in range(3):
        pid = f"CHUP-{i:03d}"
        write_patient(base if kind == "flat" else base / pid, pid, label=False, seed=i)
        # A segmentation as predict writes it: <output>/<PID>.nii.gz, in a folder inside the source tree.
        paths = write_patient(tmp_path / "scratch", pid, seed=i)
        (base / "predictions").mkdir(exist_ok=True)
        shutil.copy(paths["label"], base / "predictions" / f"{pid}.nii.gz")
    mark_plugin_output(base / "predictions", "predict")
    summary = convert_dataset(src, dataset_id=515, name="S", output=tmp_path / "Dataset515_S", progress=False)
    assert summary.training == [] and summary.test == ["CHUP-000", "CHUP-001", "CHUP-002"]
    assert any("nnunet-hecktor predict" in w and "skipped" in w for w in summary.dataset_warnings)


# --- 2. full disks and short writes ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["seg.nii.gz", "seg.nii", "seg.mha"])
def test_full_disk_leaves_no_file_under_the_final_name(tiny_disk, name):
    with pytest.raises(OutputWriteError, match=f"could not write {tiny_disk / name}") as caught:
        write_image_atomic(_noise(), tiny_disk / name)
    assert isinstance(caught.value, HecktorError) and isinstance(caught.value, OSError)
    assert "MB free" in str(caught.value)
    assert _files(tiny_disk) == []  # neither a 0-byte/short file nor a temporary one


def test_full_disk_text_and_json(tiny_disk):
    with pytest.raises(OutputWriteError, match="No space left"):
        write_text_atomic(tiny_disk / "predictions.csv", "x" * 200_000)
    with pytest.raises(OutputWriteError):
        write_json_atomic(tiny_disk / "settings.json", {"x": "y" * 200_000})
    assert _files(tiny_disk) == []
    write_text_atomic(tiny_disk / "empty.csv", "")  # an empty text is a complete file
    assert (tiny_disk / "empty.csv").stat().st_size == 0


def test_prediction_writer_on_a_full_disk(tiny_disk):
    from nnunet_hecktor.prediction.outputs import write_segmentation
    from nnunet_hecktor.prediction.predictor import CasePrediction

    prediction = CasePrediction("CHUP-000", _noise(), None)
    with pytest.raises(OutputWriteError, match="CHUP-000.nii.gz"):
        write_segmentation(prediction, tiny_disk)
    assert _files(tiny_disk) == []


def test_challenge_segmentation_output_on_a_full_disk(tiny_disk):
    from nnunet_hecktor.challenge.io import SEGMENTATION_OUTPUT, write_segmentation_output

    with (tiny_disk / "filler").open("wb", buffering=0) as filler, pytest.raises(OSError):  # a full disk
        for _ in range(64):
            filler.write(b"\0" * 4096)
    with pytest.raises(OutputWriteError, match="output.mha"):
        write_segmentation_output(_noise(), tiny_disk)
    assert not (tiny_disk / SEGMENTATION_OUTPUT).exists()
    assert not list(tiny_disk.rglob(".tmp-*"))


def test_output_folder_checked_before_any_work(tiny_disk):
    from nnunet_hecktor.prediction.outputs import prepare_output_folder

    with pytest.raises(OutputWriteError, match=r"only 0\.\d MB free .* needed"):
        prepare_output_folder(tiny_disk / "out", num_cases=6)
    with (tiny_disk / "filler").open("wb", buffering=0) as filler, pytest.raises(OSError):  # fill it
        for _ in range(64):
            filler.write(b"\0" * 4096)
    with pytest.raises(OutputWriteError, match="not writable .*No space left"):
        prepare_output_folder(tiny_disk / "out", num_cases=1)
    assert not (tiny_disk / "out" / OUTPUT_MARKER).exists()


def test_read_only_output_folder(tmp_path):
    mount_point = tmp_path / "ro"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        with pytest.raises(OutputWriteError, match="not writable .*Read-only"):
            check_output_folder(mount_point)
        with pytest.raises(OutputWriteError, match="Read-only"):
            write_image_atomic(_noise((2, 2, 2)), mount_point / "seg.nii.gz")
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def _limit_file_size(limit: int):
    def apply() -> None:
        # Past the limit write() fails with EFBIG instead of the process being killed by SIGXFSZ.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_cli_on_a_file_size_limit_one_line_no_short_files(tmp_path):
    out = tmp_path / "synth"
    done = subprocess.run([sys.executable, "-m", "nnunet_hecktor.cli", "synth", str(out), "--patients", "1",
                           "--quiet"], preexec_fn=_limit_file_size(8000), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "nnunet-hecktor synth: error: could not write" in done.stderr
    written = [p for p in out.rglob("*") if p.is_file()]
    assert not [p for p in written if p.stat().st_size == 0 or p.name.startswith(".tmp-")]
    for path in written:
        if path.name.endswith(".nii.gz"):
            verify_image_file(path)  # whatever is under a final name is complete


@pytest.mark.parametrize("name", ["img.nii.gz", "img.nii", "img.mha", "raw.mha"])
def test_verify_catches_short_image_files(tmp_path, name):
    path = tmp_path / name
    sitk.WriteImage(_noise((8, 16, 16)), str(path), name != "raw.mha")
    verify_image_file(path)
    verify_written_file(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(OutputWriteError, match="truncated|end early"):
        verify_image_file(path)
    path.write_bytes(b"")
    with pytest.raises(OutputWriteError, match="empty"):
        verify_written_file(path)


def test_verify_leaves_other_files_to_their_writers(tmp_path):
    path = tmp_path / "copy.nii.gz"
    path.write_bytes(b"not an image at all")  # the name is not a claim this check judges
    verify_written_file(path)
    text = tmp_path / "t.csv"
    text.write_text("abc")
    verify_written_file(text, expected_bytes=3)
    with pytest.raises(OutputWriteError, match="3 bytes written of 4"):
        verify_written_file(text, expected_bytes=4)


# --- 4. argument validation ---------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--seed", "-1"], "argument --seed: must be at least 0, got -1"),
    (["--seed", "x"], "argument --seed: expected an integer, got 'x'"),
    (["--patients", "0"], "argument --patients: must be at least 1, got 0"),
    (["--num-processes", "0"], "argument -np/--num-processes: must be at least 1, got 0"),
])
def test_synth_refuses_bad_arguments_with_exit_2(tmp_path, capsys, args, message):
    from nnunet_hecktor.cli import main

    with pytest.raises(SystemExit) as caught:
        main(["synth", str(tmp_path / "out"), *args])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
