"""Atomic writes and defensive image reading (nnunet_hecktor.fileio)."""

import gzip
import os
import stat

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_hecktor.errors import InputDataError
from nnunet_hecktor.fileio import atomic_path, read_image, write_image_atomic, write_json_atomic


def test_atomic_path_leaves_destination_untouched_on_failure(tmp_path):
    dest = tmp_path / "out.json"
    dest.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert dest.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_json_and_image_round_trip(tmp_path):
    write_json_atomic(tmp_path / "a.json", {"x": 1})
    assert (tmp_path / "a.json").read_text().strip().startswith("{")
    image = sitk.GetImageFromArray(np.arange(24, dtype=np.int16).reshape(2, 3, 4))
    image.SetSpacing((0.5, 1.0, 3.0))
    write_image_atomic(image, tmp_path / "img.nii.gz")
    back = read_image(tmp_path / "img.nii.gz", "P-001", "CT")
    assert back.GetSpacing() == (0.5, 1.0, 3.0)
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))


@pytest.mark.parametrize("suffix", [".nii.gz", ".mha"])
def test_read_image_rejects_non_finite_voxels(tmp_path, suffix):
    data = np.ones((4, 4, 4), dtype=np.float32)
    data[1, 2, 3] = np.nan
    path = tmp_path / f"pet{suffix}"
    sitk.WriteImage(sitk.GetImageFromArray(data), str(path))
    with pytest.raises(InputDataError, match="P-002.*PET.*(non-finite|NaN)"):
        read_image(path, "P-002", "PET")


def test_read_image_rejects_truncated_nifti(tmp_path):
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((20, 20, 20), dtype=np.int16)), str(path))
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    with pytest.raises(InputDataError, match="truncated"):
        read_image(path, "P-003", "CT")


def test_read_image_missing_file_names_patient(tmp_path):
    with pytest.raises(InputDataError, match="P-004: .*missing.nii.gz: CT file is missing"):
        read_image(tmp_path / "missing.nii.gz", "P-004", "CT")


def _write_with(kind: str, destination):
    import shutil

    if kind == "text":
        from nnunet_hecktor.fileio import write_text_atomic
        write_text_atomic(destination, "a,b\n")
    elif kind == "json":
        write_json_atomic(destination, {"x": 1})
    elif kind == "image":
        write_image_atomic(sitk.GetImageFromArray(np.zeros((2, 3, 4), np.uint8)), destination)
    elif kind == "copy":  # a writer that writes into the temporary file (the converter's CT copy)
        source = destination.parent.parent / "source.bin"
        source.write_bytes(b"x" * 10)
        with atomic_path(destination) as tmp:
            shutil.copyfile(source, tmp)
    elif kind == "replace":  # a writer that replaces the temporary file instead of writing into it
        with atomic_path(destination) as tmp:
            tmp.unlink()
            tmp.write_bytes(b"y")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o027, 0o640), (0o077, 0o600)])
@pytest.mark.parametrize("kind, name", [("text", "a.csv"), ("json", "a.json"), ("image", "a.nii.gz"),
                                        ("copy", "b.nii.gz"), ("replace", "c.pkl")])
def test_atomic_writes_respect_the_umask(tmp_path, umask, mode, kind, name):
    from nnunet_hecktor.fileio import current_umask, new_file_mode

    previous = os.umask(umask)
    try:
        assert current_umask() == umask and new_file_mode() == mode
        _write_with(kind, tmp_path / "sub" / name)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "sub" / name).stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "sub").stat().st_mode) == 0o777 & ~umask  # folders as mkdir makes them
