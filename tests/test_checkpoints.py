"""Checkpoint names, the deployed-weights default (incl. models of the old layout), storage accounting,
and the set-up problems the plugin reports before stock nnU-Net commands."""

from __future__ import annotations

import os

import pytest
import torch

from nnunet_hecktor.checkpoints import (
    DEPLOYED_CHECKPOINT,
    FINAL_CHECKPOINT,
    LEGACY_SWA_CHECKPOINT,
    WEIGHTS_ITERATE,
    WEIGHTS_SWA,
    checkpoint_metadata,
    deployed_checkpoint,
    is_legacy_swa_fold,
    unique_storage_bytes,
    weights_kind,
)
from nnunet_hecktor.nnunet_env import TRAINER_PATH_SETUP, plugin_trainer_folder, setup_problems


def _fold(path, final_meta, with_swa):
    path.mkdir(parents=True)
    final = {"network_weights": {"w": torch.zeros(2)}}
    if final_meta is not None:
        final["hecktor"] = final_meta
    torch.save(final, path / FINAL_CHECKPOINT)
    if with_swa:
        torch.save({"network_weights": {"w": torch.ones(2)}, "hecktor": {"weights": "final"}},
                   path / LEGACY_SWA_CHECKPOINT)
    return path


def test_deployed_checkpoint_is_final_except_for_swa_models_of_the_old_layout(tmp_path):
    new = _fold(tmp_path / "new", {"weights": "swa", "layout": 2}, with_swa=False)
    # validate_with_swa = False: last iterate deployed, the average as an extra checkpoint_swa.pth
    new_with_extra = _fold(tmp_path / "extra", {"weights": "iterate", "layout": 2}, with_swa=True)
    old = _fold(tmp_path / "old", {"weights": "final", "swa": None}, with_swa=True)
    old_no_swa = _fold(tmp_path / "old_noswa", {"weights": "last"}, with_swa=False)
    stock = _fold(tmp_path / "stock", None, with_swa=True)  # another trainer: no plugin metadata
    assert [is_legacy_swa_fold(f) for f in (new, new_with_extra, old, old_no_swa, stock)] == [
        False, False, True, False, False]
    assert DEPLOYED_CHECKPOINT == FINAL_CHECKPOINT
    assert deployed_checkpoint([new, new_with_extra, old_no_swa, stock]) == FINAL_CHECKPOINT
    assert deployed_checkpoint([old]) == LEGACY_SWA_CHECKPOINT
    assert deployed_checkpoint([]) == FINAL_CHECKPOINT
    with pytest.raises(ValueError, match="choose the checkpoint explicitly"):
        deployed_checkpoint([old, new])


def test_unreadable_checkpoints_have_no_metadata(tmp_path):
    (tmp_path / "x.pth").write_bytes(b"not a checkpoint")
    assert checkpoint_metadata(tmp_path / "x.pth") is None


@pytest.mark.parametrize("metadata, kind", [
    ({"weights": "swa", "layout": 2}, WEIGHTS_SWA),
    ({"weights": "iterate", "layout": 2}, WEIGHTS_ITERATE),
    ({"weights": "final"}, WEIGHTS_ITERATE),                  # layout 1: checkpoint_final.pth
    ({"weights": "last"}, WEIGHTS_ITERATE),
    ({"weights": "checkpoint_latest.pth"}, WEIGHTS_ITERATE),  # layout 1 after a resume
    ({"weights": "something else"}, None),
    ({}, None),
    (None, None),
])
def test_weights_kind_reads_both_layouts(metadata, kind):
    assert weights_kind(metadata) == kind


def test_unique_storage_bytes_counts_shared_storage_once():
    w = torch.zeros(10, 10)
    assert unique_storage_bytes({"a": w, "b": w.view(100), "c": [w[0]], "d": 3}) == 400
    assert unique_storage_bytes({"a": w, "b": w.clone()}) == 800


def test_setup_problems_name_the_fix():
    good = {"nnUNet_extTrainer": os.pathsep.join(["/elsewhere", plugin_trainer_folder()])}
    assert setup_problems(good) == []
    missing = setup_problems({})
    assert len(missing) == 1 and TRAINER_PATH_SETUP in missing[0] and "Could not find requested" in missing[0]
    problems = setup_problems(dict(good, nnUNet_n_proc_DA="0"))
    assert len(problems) == 1 and "plan_and_preprocess" in problems[0]
    assert setup_problems(dict(good, nnUNet_n_proc_DA="4")) == []
