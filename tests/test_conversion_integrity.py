"""NIfTI integrity checks: ITK zero-fills truncated files and NaN/inf voxels, so the converter looks itself."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_hecktor.errors import InputDataError
from nnunet_hecktor.image_integrity import check_image_file


def _write(path, dtype, nan=False):
    array = (np.arange(12 * 11 * 10).reshape(10, 11, 12) % 7).astype(dtype)
    if nan:
        array[3, 4, 5] = np.nan
        array[1, 1, 1] = -np.inf
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path), path.name.endswith(".gz"))
    return path


@pytest.mark.parametrize("ending", [".nii.gz", ".nii"])
@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32, np.float64])
def test_intact_files_pass_and_truncated_files_fail(tmp_path, ending, dtype):
    path = _write(tmp_path / f"CHUP-001__CT{ending}", dtype)
    check_image_file(path, "CHUP-001", "CT")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.7)])
    # ITK usually reads such a file without complaint (zero-filled); the check does not let it through.
    with pytest.raises(InputDataError, match="CHUP-001: .*CHUP-001__CT.* CT file is unreadable or truncated"):
        check_image_file(path, "CHUP-001", "CT")


@pytest.mark.parametrize("ending", [".nii.gz", ".nii"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_voxels_are_found(tmp_path, ending, dtype):
    path = _write(tmp_path / f"x{ending}", dtype, nan=True)
    assert np.isfinite(sitk.GetArrayFromImage(sitk.ReadImage(str(path)))).all()  # ITK hides them
    with pytest.raises(InputDataError, match=r"PET has non-finite voxels \(1 NaN, 1 inf\)"):
        check_image_file(path, "CHUP-001", "PET")


def test_other_files_are_left_to_the_reader(tmp_path):
    mha = _write(tmp_path / "x.mha", np.float32, nan=True)
    check_image_file(mha)  # MetaImage keeps NaN; the converter checks the array after reading
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"not gzip at all")
    with pytest.raises(InputDataError, match="unreadable or truncated"):
        check_image_file(junk, "P", "label")
    check_image_file(tmp_path / "missing.nii.gz")  # missing files are reported by read_image
