"""Post-processing tuned on one fold's validation patients and staged in the model folder."""

from __future__ import annotations

import json
import shutil

import numpy as np
import SimpleITK as sitk

from nnunet_hecktor.postprocessing.config import load_config


def test_tune_on_fold_validation_predicts_tunes_and_stages(tiny_model, nnunet_env, tmp_path):
    from nnunet_hecktor.model_folder.fold_postprocessing import fold_validation_patients, tune_on_fold_validation

    dataset = tiny_model.dataset
    # A copy: the shared tiny model must not gain a post-processing file other tests would apply.
    model_dir = tmp_path / tiny_model.model_dir.name
    shutil.copytree(tiny_model.model_dir, model_dir)
    splits = dataset.preprocessed_dir / "splits_final.json"
    patients = fold_validation_patients(splits, 0)
    assert patients and not set(patients) & set(json.loads(splits.read_text())[0]["train"])

    first = tune_on_fold_validation(model_dir, dataset.raw_dir, splits, device="cpu", progress=False)
    assert first.n_cases == len(patients)
    staged = model_dir / "postprocessing.json"
    assert load_config(staged) == first.config
    validation = model_dir / "fold_0" / "validation"
    assert sorted(p.name for p in validation.glob("*.nii.gz")) == sorted(f"{p}.nii.gz" for p in patients)
    # The softmax beside each mask: the search tried probability thresholds too.
    assert sorted(p.name for p in validation.glob("*.npz")) == sorted(f"{p}.npz" for p in patients)
    assert first.used_probabilities
    assert any(row["coordinate"].startswith("probability_threshold") for row in first.search)
    assert not (model_dir / "fold_0" / "validation_predicting").exists()
    for pid in patients:  # masks on the label grid, labels 0/1/2 only
        mask = sitk.ReadImage(str(validation / f"{pid}.nii.gz"))
        label = sitk.ReadImage(str(dataset.raw_dir / "labelsTr" / f"{pid}.nii.gz"))
        assert mask.GetSize() == label.GetSize() and np.allclose(mask.GetSpacing(), label.GetSpacing())
        assert set(np.unique(sitk.GetArrayViewFromImage(mask))) <= {0, 1, 2}

    def foreground() -> int:
        return sum(int(np.count_nonzero(sitk.GetArrayViewFromImage(sitk.ReadImage(str(p)))))
                   for p in validation.glob("*.nii.gz"))

    first_foreground = foreground()
    assert first_foreground > 0
    # Re-tuning starts from the raw network masks: a staged rule that would wipe every GTVp is
    # not applied to the masks the rules are chosen on.
    staged.write_text(json.dumps({"format": "nnunet-hecktor-postprocessing", "version": 1,
                                  "min_component_size": {"GTVp": 1e12, "GTVn": 1e12}}))
    again = tune_on_fold_validation(model_dir, dataset.raw_dir, splits, device="cpu", progress=False)
    # (Not an equality of figures: the 6-iteration network's logits are near ties, so the argmax of two
    # predictions may differ in a few voxels with the CPU threads in use.)
    assert foreground() >= first_foreground / 2, "the stale rule (remove every component) was applied"
    assert again.n_cases == len(patients)
    assert load_config(staged) == again.config
