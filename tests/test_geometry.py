"""The one same-grid check and its messages (conversion, evaluation and prognosis all use it)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_hecktor.dataset_conversion.geometry import (
    ROUNDOFF_TOLERANCE_VOXELS,
    GridGeometry,
    check_same_geometry,
    describe_grid_difference,
    same_grid,
)
from nnunet_hecktor.errors import InputDataError

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def _image(origin=(100.123456, -20.5, 7.0), spacing=(1.0, 1.0, 2.0), size=(8, 8, 4)):
    image = sitk.Image(list(size), sitk.sitkUInt8)
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    return image


def test_origins_1e4_mm_apart_print_differently():
    # with 6 significant digits both origins printed as (-250, -20.5, 7)
    a = GridGeometry((8, 8, 4), (1.0, 1.0, 2.0), (-250.0, -20.5, 7.0), IDENTITY)
    b = GridGeometry((8, 8, 4), (1.0, 1.0, 2.0), (-250.0001, -20.5, 7.0), IDENTITY)
    text = describe_grid_difference(a, b)
    assert text == "origin (-250.0001, -20.5, 7.0) vs (-250.0, -20.5, 7.0) mm"
    assert describe_grid_difference(a, a) == "identical"


@pytest.mark.parametrize("shift_voxels, same", [(0.0, True), (ROUNDOFF_TOLERANCE_VOXELS / 2, True),
                                                 (ROUNDOFF_TOLERANCE_VOXELS * 2, False), (0.5, False)])
def test_same_grid_uses_one_tolerance_in_voxels(shift_voxels, same):
    reference = _image()
    shifted = _image(origin=(100.123456 + shift_voxels * 1.0, -20.5, 7.0))
    assert same_grid(reference, shifted) is same
    if same:
        check_same_geometry(reference, shifted, "P-1")
    else:
        with pytest.raises(InputDataError, match=r"P-1: prediction is not on the ground truth grid \(origin"):
            check_same_geometry(reference, shifted, "P-1")


def test_same_grid_size_spacing_and_rotation():
    reference = _image()
    assert not same_grid(reference, _image(size=(8, 8, 5)))
    assert not same_grid(reference, _image(spacing=(1.0, 1.0, 2.5)))
    rotated = _image()
    angle = np.deg2rad(1.0)  # 1 degree moves the far corner by ~0.12 voxel
    rotated.SetDirection((np.cos(angle), -np.sin(angle), 0.0, np.sin(angle), np.cos(angle), 0.0, 0.0, 0.0, 1.0))
    assert not same_grid(reference, rotated)
    assert "direction" in describe_grid_difference(reference, rotated)
