"""The converted dataset passes stock nnU-Net planning/preprocessing with integrity verification."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from nnunet_hecktor.dataset_conversion import convert_dataset
from nnunet_hecktor.nnunet_env import nnunet_command
from nnunet_hecktor.synthetic import make_cohort


@pytest.mark.slow
def test_nnunet_plan_and_preprocess_accepts_the_converted_dataset(tmp_path):
    cohort = make_cohort(tmp_path / "src", n_patients=8, seed=11, layout="release", progress=False)
    folders = {name: tmp_path / name for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for folder in folders.values():
        folder.mkdir()
    summary = convert_dataset(cohort.out_dir, dataset_id=590, name="HECKTORTEST",
                              output=folders["nnUNet_raw"] / "Dataset590_HECKTORTEST", crop="overlap", progress=False)
    assert len(summary.training) >= 5 and summary.test, "the cohort needs a split and some unlabelled patients"

    env = dict(os.environ, **{k: str(v) for k, v in folders.items()})
    result = subprocess.run(nnunet_command("nnUNetv2_plan_and_preprocess")
                            + ["-d", "590", "-c", "3d_fullres", "--verify_dataset_integrity", "-np", "1", "-npfp", "1"],
                            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "verify_dataset_integrity Done" in result.stdout

    preprocessed = folders["nnUNet_preprocessed"] / "Dataset590_HECKTORTEST"
    plans = json.loads((preprocessed / "nnUNetPlans.json").read_text())
    assert "3d_fullres" in plans["configurations"]
    cases = sorted(p.name for p in (preprocessed / "nnUNetPlans_3d_fullres").glob("*.pkl"))
    assert cases == [f"{pid}.pkl" for pid in summary.training]
    assert sorted(p.name for p in (preprocessed / "gt_segmentations").iterdir()) == [
        f"{pid}.nii.gz" for pid in summary.training]
    # nnU-Net's planner copied our split file: the folds nnU-Net trains on are ours.
    ours = json.loads((summary.output_dir / "splits_final.json").read_text())
    assert json.loads((preprocessed / "splits_final.json").read_text()) == ours
    dataset = json.loads((preprocessed / "dataset.json").read_text())
    assert dataset["channel_names"] == {"0": "CT", "1": "PET"} and dataset["hecktor_conversion"]["crop"] == "overlap"
