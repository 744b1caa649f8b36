"""write_small_plans: patch and batch size overrides (the demo's plans)."""

from __future__ import annotations

import json

import pytest

from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.trainers.small_plans import write_small_plans


def _plans(folder):
    plans = {"plans_name": "nnUNetPlans", "configurations": {
        "3d_fullres": {"data_identifier": "nnUNetPlans_3d_fullres", "patch_size": [64, 48, 48], "batch_size": 4,
                       "architecture": {"arch_kwargs": {"features_per_stage": [32, 64, 128, 256],
                                                        "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [1, 2, 2]]}}},
        "2d": {"data_identifier": "nnUNetPlans_2d", "patch_size": [48, 48], "batch_size": 100,
               "architecture": {"arch_kwargs": {"features_per_stage": [32, 64], "strides": [[1, 1], [2, 2]]}}},
    }}
    (folder / "nnUNetPlans.json").write_text(json.dumps(plans))


def test_patch_and_batch_override(tmp_path):
    _plans(tmp_path)
    path = write_small_plans(tmp_path, "nnUNetPlans", "nnUNetPlansDemo", configurations=("3d_fullres",),
                             patch_size=(32, 32, 32), batch_size=2)
    config = json.loads(path.read_text())["configurations"]
    assert config["3d_fullres"]["patch_size"] == [32, 32, 32] and config["3d_fullres"]["batch_size"] == 2
    assert config["3d_fullres"]["architecture"]["arch_kwargs"]["features_per_stage"] == [8, 16, 32, 32]
    assert config["3d_fullres"]["data_identifier"] == "nnUNetPlans_3d_fullres"
    assert config["2d"]["patch_size"] == [48, 48] and config["2d"]["batch_size"] == 100  # not selected


def test_patch_not_divisible_by_the_total_stride_is_refused(tmp_path):
    _plans(tmp_path)
    # Total stride (4, 8, 8): 36 is not a multiple of 8.
    with pytest.raises(HecktorError, match="not divisible"):
        write_small_plans(tmp_path, "nnUNetPlans", "nnUNetPlansDemo", configurations=("3d_fullres",),
                          patch_size=(32, 36, 32))
    assert not (tmp_path / "nnUNetPlansDemo.json").exists()
