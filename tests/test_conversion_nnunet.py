"""The converted dataset passes stock nnU-Net planning/preprocessing with integrity verification.

Uses the session's ``tiny_dataset`` (converted by the project's converter, then
``nnUNetv2_plan_and_preprocess -c 3d_fullres --verify_dataset_integrity``), so the suite runs
nnU-Net's planner once.
"""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_nnunet_plan_and_preprocess_accepts_the_converted_dataset(tiny_dataset):
    assert len(tiny_dataset.training_cases) >= 5 and tiny_dataset.test_cases, \
        "the cohort needs a split and some unlabelled patients"
    assert "verify_dataset_integrity Done" in tiny_dataset.planning_log

    preprocessed = tiny_dataset.preprocessed_dir
    plans = json.loads((preprocessed / "nnUNetPlans.json").read_text())
    assert "3d_fullres" in plans["configurations"]
    cases = sorted(p.name for p in (preprocessed / "nnUNetPlans_3d_fullres").glob("*.pkl"))
    assert cases == [f"{pid}.pkl" for pid in tiny_dataset.training_cases]
    assert sorted(p.name for p in (preprocessed / "gt_segmentations").iterdir()) == [
        f"{pid}.nii.gz" for pid in tiny_dataset.training_cases]
    # nnU-Net's planner copied our split file: the folds nnU-Net trains on are ours.
    ours = json.loads((tiny_dataset.raw_dir / "splits_final.json").read_text())
    assert json.loads((preprocessed / "splits_final.json").read_text()) == ours
    dataset = json.loads((preprocessed / "dataset.json").read_text())
    assert dataset["channel_names"] == {"0": "CT", "1": "PET"}
    assert dataset["labels"] == {"background": 0, "GTVp": 1, "GTVn": 2}
    assert dataset["hecktor_conversion"]["interpolation"] == "linear"
