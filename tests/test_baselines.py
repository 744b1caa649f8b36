"""Baselines: PET-threshold rules, clinical-only models, the one-number rule and synthetic ceilings."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_hecktor import schema
from nnunet_hecktor.baselines import (
    brain_mask,
    gtvp_fraction_of_suvmax,
    log_gtvp_volume_risk,
    suv_threshold_components,
)
from nnunet_hecktor.baselines.pet_rules import cranial_slice_index, segment_folder
from nnunet_hecktor.errors import InputDataError


def _ball(shape, centre, radius):
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius ** 2


@pytest.fixture
def phantom():
    """PET (z, y, x) with the brain at the top slices (SUV 10), a primary (peak 14), a node (5), noise < 1."""
    shape = (30, 32, 32)
    rng = np.random.default_rng(0)
    pet = rng.uniform(0.0, 0.8, size=shape).astype(np.float32)
    brain = np.zeros(shape, dtype=bool)
    brain[25:, 6:26, 6:26] = True
    pet[brain] = 10.0
    primary = _ball(shape, (14, 16, 16), 3)
    pet[primary] = 14.0
    pet[_ball(shape, (14, 16, 16), 1)] = 16.0
    node = _ball(shape, (9, 8, 26), 2)
    pet[node] = 5.0
    return pet, brain, primary, node


def test_brain_mask_is_the_hot_region_cut_by_the_top_slice(phantom):
    pet, brain, primary, _ = phantom
    mask = brain_mask(pet)
    assert mask[brain].all() and not mask[primary].any()
    # Flipped direction: the cranial slice is index 0, where there is no hot region.
    assert not brain_mask(pet, cranial_index=0).any()


def test_suvmax40_rule_finds_the_primary_outside_the_brain(phantom):
    pet, brain, primary, node = phantom
    seg = gtvp_fraction_of_suvmax(pet)
    assert set(np.unique(seg)) == {0, schema.GTVP}
    assert (seg == schema.GTVP)[primary].all()
    assert not seg[brain].any() and not seg[node].any()  # the node (5 < 0.4 * 16) is not GTVp


def test_suv25_rule_hottest_component_gtvp_others_nodes(phantom):
    pet, brain, primary, node = phantom
    seg = suv_threshold_components(pet)
    assert (seg[primary] == schema.GTVP).all()
    assert (seg[node] == schema.GTVN).all()
    assert not seg[brain].any()
    assert (seg > 0).sum() == primary.sum() + node.sum()


def test_cranial_slice_from_direction():
    image = sitk.Image(4, 4, 4, sitk.sitkFloat32)
    assert cranial_slice_index(image) == -1
    image.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, -1))
    assert cranial_slice_index(image) == 0


def test_segment_folder_writes_on_the_pet_grid_and_names_bad_input(tmp_path, phantom):
    pet = phantom[0]
    images = tmp_path / "imagesTr"
    images.mkdir()
    image = sitk.GetImageFromArray(pet)
    image.SetSpacing((3.5, 3.5, 4.0))
    image.SetOrigin((1.0, 2.0, 3.0))
    sitk.WriteImage(image, str(images / "MDA-001_0001.nii.gz"))
    [out] = segment_folder(images, tmp_path / "seg", "suv2.5", progress=False)
    written = sitk.ReadImage(str(out))
    assert written.GetSpacing() == image.GetSpacing() and written.GetOrigin() == image.GetOrigin()
    risk = log_gtvp_volume_risk(tmp_path / "seg")
    expected_ml = phantom[2].sum() * 3.5 * 3.5 * 4.0 / 1000
    assert risk["MDA-001"]["risk"] == pytest.approx(math.log(expected_ml))
    (images / "CHUP-002_0001.nii.gz").write_bytes(b"not an image")
    with pytest.raises(InputDataError, match="CHUP-002"):
        segment_folder(images, tmp_path / "seg", "suv2.5", progress=False)


@pytest.fixture(scope="module")
def two_cohorts(tmp_path_factory):
    """A training and a new-patient cohort (enriched, test size), converted to nnU-Net raw datasets."""
    from nnunet_hecktor.dataset_conversion import convert_dataset
    from nnunet_hecktor.synthetic import make_cohort

    root = tmp_path_factory.mktemp("baselines")
    out = {}
    for name, seed, n, dataset_id in (("train", 0, 40, 801), ("new", 1, 12, 802)):
        cohort = make_cohort(root / f"{name}_src", n_patients=n, seed=seed, size="test", progress=False,
                             enriched=True)
        raw = root / f"Dataset{dataset_id}_{name}"
        convert_dataset(cohort.out_dir, dataset_id=dataset_id, name=name, output=raw, progress=False)
        out[name] = (raw, cohort.ground_truth_path)
    return root, out


def test_run_baselines_scores_every_baseline_and_resumes(two_cohorts):
    from nnunet_hecktor.baselines.suite import DONE_FILE, run_baselines

    root, cohorts = two_cohorts
    (train, train_truth), (new, new_truth) = cohorts["train"], cohorts["new"]
    output = root / "baselines"
    result = run_baselines(train, new, output, train_truth, new_truth, n_bootstrap=0, progress=False)
    assert set(result.metrics) == {"pet_suvmax40", "pet_suv2.5", "clinical_only", "pet_volume", "ceiling"}
    assert result.metrics["pet_suvmax40"]["task1"]["n_patients"] == 12
    assert 0 < result.metrics["pet_suvmax40"]["task1"]["gtvp_dice_mean"] <= 1
    assert "task2" in result.metrics["clinical_only"] and "task3" in result.metrics["clinical_only"]
    assert "task3" not in result.metrics["pet_volume"]
    assert schema.COL_HPV not in result.notes["clinical_only"]["hpv_columns"]
    assert schema.COL_HPV in result.notes["clinical_only"]["risk_columns"]

    # The ceiling is the generator's own truth.
    truth = json.loads(new_truth.read_text())["patients"]
    with open(output / "ceiling" / "predictions.csv", newline="") as handle:
        rows = {r["PatientID"]: r for r in csv.DictReader(handle)}
    assert set(rows) == set(truth)
    for pid, row in rows.items():
        assert float(row["risk"]) == pytest.approx(truth[pid]["true_risk"])
        assert float(row["hpv_probability"]) == pytest.approx(truth[pid]["hpv_probability"])

    # Complete outputs are not recomputed.
    assert (output / DONE_FILE).is_file()
    for seg in (output / "pet_suv2.5" / "segmentations").iterdir():
        seg.unlink()
    again = run_baselines(train, new, output, train_truth, new_truth, n_bootstrap=0, progress=False)
    assert again.metrics == result.metrics
