"""Unit tests of the trainer helpers (no nnU-Net command, no preprocessed data): SWA, patient data,
sampling weights, head patch placement, head metrics files, small plans."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.heads.inference import crop_patch, head_patch_centre
from nnunet_hecktor.trainers.head_metrics import hpv_metrics, mean_per_patient, survival_metrics, write_validation_heads
from nnunet_hecktor.trainers.patient_data import (
    PatientTable,
    effective_hpv_prevalence,
    find_clinical_table,
    hpv_sampling_weights,
)
from nnunet_hecktor.trainers.swa import (
    WeightAverager,
    has_batchnorm_running_stats,
    recompute_batchnorm_statistics,
    swa_start_epoch,
)


# -- SWA --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_epochs, fraction, start", [
    (1000, 0.25, 750),   # epochs 750..999 averaged (250 snapshots)
    (2, 1.0, 0),
    (2, 0.5, 1),
    (10, 0.01, 9),       # at least the last epoch
    (5, 0.3, 3),         # ceil(1.5) = 2 epochs: 3, 4
    (1, 0.25, 0),
])
def test_swa_start_epoch_table(num_epochs, fraction, start):
    assert swa_start_epoch(num_epochs, fraction) == start


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_swa_start_epoch_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError):
        swa_start_epoch(10, fraction)


def test_weight_averager_is_the_arithmetic_mean_of_the_snapshots_from_start_epoch():
    torch.manual_seed(0)
    snapshots = [{"w": torch.randn(3, 4), "step": torch.tensor(e, dtype=torch.long)} for e in range(5)]
    averager = WeightAverager(start_epoch=2)
    for epoch, sd in enumerate(snapshots):
        added = averager.maybe_update(sd, epoch)
        assert added == (epoch >= 2)
    assert not averager.maybe_update(snapshots[4], 4)  # the same epoch is never averaged twice
    avg = averager.averaged_state_dict()
    expected = torch.stack([s["w"] for s in snapshots[2:]]).mean(0)
    torch.testing.assert_close(avg["w"], expected, rtol=0, atol=1e-6)
    assert avg["step"].item() == 4 and avg["step"].dtype == torch.long  # integer buffers: newest value
    assert averager.n_averaged == 3 and averager.last_epoch == 4


def test_weight_averager_state_round_trip_continues_the_same_average():
    torch.manual_seed(1)
    snaps = [{"w": torch.randn(5)} for _ in range(4)]
    full = WeightAverager(0)
    for e, s in enumerate(snaps):
        full.update(s, e)
    first = WeightAverager(0)
    for e, s in enumerate(snaps[:2]):
        first.update(s, e)
    resumed = WeightAverager(99)
    resumed.load_state_dict(first.state_dict())
    for e, s in enumerate(snaps[2:], start=2):
        assert resumed.maybe_update(s, e)
    torch.testing.assert_close(resumed.averaged_state_dict()["w"], full.averaged_state_dict()["w"])
    assert resumed.start_epoch == 0


def test_averaged_state_dict_takes_the_dtypes_of_the_live_network():
    averager = WeightAverager(0)
    averager.update({"w": torch.ones(2, dtype=torch.float16)}, 0)
    assert averager.averaged_state_dict()["w"].dtype == torch.float32
    assert averager.averaged_state_dict(like={"w": torch.ones(2, dtype=torch.float16)})["w"].dtype == torch.float16
    with pytest.raises(RuntimeError):
        WeightAverager(0).averaged_state_dict()


class _AliasedNet(torch.nn.Module):
    """Registers one convolution twice, as nnU-Net's ConvDropoutNormReLU (conv / all_modules.0) does."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(8, 32, 3)
        self.all_modules = torch.nn.Sequential(self.conv, torch.nn.InstanceNorm3d(32, affine=True))


def test_aliased_weights_are_averaged_once_and_saved_once(tmp_path):
    from nnunet_hecktor.checkpoints import unique_storage_bytes

    torch.manual_seed(2)
    net = _AliasedNet()
    averager = WeightAverager(0)
    snapshots = []
    for epoch in range(3):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        snapshots.append({k: v.clone() for k, v in net.state_dict().items()})
        averager.update(net.state_dict(), epoch)
    avg = averager.averaged_state_dict()
    expected = torch.stack([s["conv.weight"] for s in snapshots]).mean(0)
    # An alias updated twice per snapshot would not be the mean.
    torch.testing.assert_close(avg["conv.weight"], expected, rtol=0, atol=1e-6)
    assert avg["all_modules.0.weight"].data_ptr() == avg["conv.weight"].data_ptr()
    unique = unique_storage_bytes(net.state_dict())
    assert unique_storage_bytes(avg) == unique
    assert unique_storage_bytes({k: v.clone() for k, v in avg.items()}) > 1.5 * unique  # what a per-key copy costs

    # Saved, loaded (resume) and averaged further: aliases stay shared and the mean stays exact.
    torch.save(averager.state_dict(), tmp_path / "swa.pt")
    resumed = WeightAverager(0)
    resumed.load_state_dict(torch.load(tmp_path / "swa.pt", weights_only=False, mmap=True))
    assert unique_storage_bytes(resumed.state_dict()["average"]) == unique
    resumed.update(net.state_dict(), 3)
    expected = torch.stack([s["conv.weight"] for s in snapshots] + [net.state_dict()["conv.weight"]]).mean(0)
    torch.testing.assert_close(resumed.averaged_state_dict()["all_modules.0.weight"], expected, rtol=0, atol=1e-6)
    assert (tmp_path / "swa.pt").stat().st_size < 1.2 * unique


def test_instance_norm_needs_no_statistics_update_but_batch_norm_does():
    inorm = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3), torch.nn.InstanceNorm3d(2, affine=True))
    assert not has_batchnorm_running_stats(inorm)
    assert recompute_batchnorm_statistics(inorm, [torch.zeros(1)], lambda n, b: None) == 0
    bn = torch.nn.Sequential(torch.nn.Linear(3, 3, bias=False), torch.nn.BatchNorm1d(3))
    assert has_batchnorm_running_stats(bn)
    torch.manual_seed(0)
    batches = [torch.randn(8, 3) * 2 + 5 for _ in range(4)]
    n = recompute_batchnorm_statistics(bn, batches, lambda net, b: net(b))
    assert n == 4
    with torch.no_grad():
        expected_mean = torch.stack([bn[0](b).mean(0) for b in batches]).mean(0)
    torch.testing.assert_close(bn[1].running_mean, expected_mean, rtol=1e-5, atol=1e-5)
    assert bn[1].momentum == 0.1  # restored


# -- patient data -------------------------------------------------------------------------------------
def test_patient_table_masks_unknown_and_half_known_outcomes():
    table = {
        "CHUP-000": {"HPV Status": 1, "RFS": 400.0, "Relapse": 1, "Age": 60.0},
        "CHUP-001": {"HPV Status": None, "RFS": 900.0, "Relapse": None},   # half-known outcome -> unknown
        "CHUP-002": {"HPV Status": 0, "RFS": None, "Relapse": 0},
    }
    t = PatientTable.from_records(["CHUP-002", "CHUP-000", "CHUP-001", "MDA-000"], table)
    assert t.patient_ids == ["CHUP-000", "CHUP-001", "CHUP-002", "MDA-000"]  # sorted: stable integer index
    np.testing.assert_array_equal(t.hpv, [1, np.nan, 0, np.nan])
    np.testing.assert_array_equal(t.rfs, [400, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(t.relapse, [1, np.nan, np.nan, np.nan])
    assert t.without_row == ["MDA-000"] and t.records[3] == {}
    np.testing.assert_array_equal(t.index_of(["MDA-000", "CHUP-000"]), [3, 0])
    with pytest.raises(KeyError, match="HGJ-001"):
        t.index_of(["HGJ-001"])
    assert "4 patients" in t.summary() and "1 without a clinical row" in t.summary()


def test_clinical_table_is_looked_up_in_preprocessed_then_raw(tmp_path):
    pre, raw = tmp_path / "pre", tmp_path / "raw"
    (raw / "Dataset001_X").mkdir(parents=True)
    (pre / "Dataset001_X").mkdir(parents=True)
    with pytest.raises(HecktorError, match="clinical.csv") as info:
        find_clinical_table("Dataset001_X", pre, raw)
    assert str(pre / "Dataset001_X" / "clinical.csv") in str(info.value)
    (raw / "Dataset001_X" / "clinical.csv").write_text("PatientID\n")
    assert find_clinical_table("Dataset001_X", pre, raw) == raw / "Dataset001_X" / "clinical.csv"
    (pre / "Dataset001_X" / "clinical.csv").write_text("PatientID\n")
    assert find_clinical_table("Dataset001_X", pre, raw) == pre / "Dataset001_X" / "clinical.csv"


@pytest.mark.parametrize("hpv, power, expected", [
    ([1, 1, 1, 0], 0.0, [1, 1, 1, 1]),
    ([1, 1, 1, 0], 1.0, [4 / 6, 4 / 6, 4 / 6, 2.0]),             # each class sums to 2
    ([1, 1, 1, 0], 0.5, [math.sqrt(4 / 6)] * 3 + [math.sqrt(2)]),
    ([1, 1, np.nan, 0], 1.0, [3 / 4, 3 / 4, 1.0, 1.5]),          # unknown keeps 1
    ([1, 1, 1, 1], 1.0, [1, 1, 1, 1]),                            # one class: uniform
])
def test_hpv_sampling_weights_table(hpv, power, expected):
    np.testing.assert_allclose(hpv_sampling_weights(np.array(hpv, dtype=float), power), expected)


def test_full_balancing_gives_an_effective_prevalence_of_one_half():
    hpv = np.array([1.0] * 9 + [0.0] + [np.nan])
    assert effective_hpv_prevalence(hpv, hpv_sampling_weights(hpv, 1.0)) == pytest.approx(0.5)
    assert effective_hpv_prevalence(hpv, hpv_sampling_weights(hpv, 0.0)) == pytest.approx(0.9)
    with pytest.raises(ValueError):
        hpv_sampling_weights(hpv, 1.5)


# -- head patch placement -------------------------------------------------------------------------------
def test_head_patch_centre_prefers_the_largest_gtvp_component():
    seg = np.zeros((20, 20, 20), np.uint8)
    seg[2:4, 2:4, 2:4] = 1          # small false positive
    seg[10:16, 8:14, 4:10] = 1      # primary tumour: centroid (12.5, 10.5, 6.5)
    seg[0:5, 15:20, 15:20] = 2
    centre, source = head_patch_centre(seg)
    assert (centre, source) == ((12, 10, 6), "GTVp")  # round(12.5) == 12: Python rounds half to even


def test_head_patch_centre_falls_back_to_gtvn_then_image_centre():
    seg = np.zeros((1, 10, 12, 14), np.uint8)
    assert head_patch_centre(seg) == ((5, 6, 7), "image centre")
    seg[0, 1:3, 1:3, 1:3] = 2
    assert head_patch_centre(seg) == ((2, 2, 2), "GTVn")
    assert head_patch_centre(None, (8, 9, 10)) == ((4, 4, 5), "image centre")


def test_crop_patch_pads_outside_the_image_with_zeros():
    image = np.arange(2 * 4 * 4 * 4, dtype=np.float32).reshape(2, 4, 4, 4) + 1
    patch = crop_patch(image, (0, 0, 0), (4, 4, 4))
    assert patch.shape == (2, 4, 4, 4)
    assert np.all(patch[:, :2] == 0) and np.all(patch[:, 2:, 2:, 2:] == image[:, :2, :2, :2])


# -- metrics files ------------------------------------------------------------------------------------
def test_patient_means_and_metrics_ignore_unknown_labels(tmp_path):
    patients, (prob, hpv) = mean_per_patient(["A", "B", "A", "C"], [0.2, 0.9, 0.4, 0.6], [0, 1, 0, np.nan])
    assert patients == ["A", "B", "C"]
    np.testing.assert_allclose(prob, [0.3, 0.9, 0.6])
    m = hpv_metrics(hpv, prob, threshold=0.5)
    assert m["n_known"] == 2 and m["auc"] == 1.0 and m["balanced_accuracy"] == 1.0
    s = survival_metrics([100, 200, np.nan], [1, 0, 1], [2.0, 1.0, 0.0])
    assert s["c_index"] == 1.0 and s["comparable_pairs"] == 1 and s["n_known"] == 2
    assert math.isnan(survival_metrics([np.nan], [1], [0.0])["c_index"])
    rows = [{"PatientID": "A", "hpv_probability": 0.3, "risk": float("nan")}]
    json_path, csv_path = write_validation_heads(tmp_path, rows, {"hpv": {"auc": float("nan")}, "n": np.int64(1)})
    assert json.loads(json_path.read_text()) == {"hpv": {"auc": None}, "n": 1}   # strict JSON, no NaN
    assert csv_path.read_text().splitlines() == ["PatientID,hpv_probability,risk", "A,0.3,"]


# -- small plans ----------------------------------------------------------------------------------------
def test_small_plans_keep_the_preprocessed_data_and_cap_the_features(tmp_path):
    from nnunet_hecktor.trainers.small_plans import write_small_plans

    plans = {"plans_name": "nnUNetPlans", "configurations": {
        "3d_fullres": {"data_identifier": "nnUNetPlans_3d_fullres", "architecture": {"arch_kwargs": {
            "features_per_stage": [32, 64, 128, 256, 320]}}},
        "3d_cascade_fullres": {"inherits_from": "3d_fullres"}}}
    (tmp_path / "nnUNetPlans.json").write_text(json.dumps(plans))
    out = json.loads(write_small_plans(tmp_path, target_plans="nnUNetPlansTiny").read_text())
    cfg = out["configurations"]["3d_fullres"]
    assert out["plans_name"] == "nnUNetPlansTiny"
    assert cfg["architecture"]["arch_kwargs"]["features_per_stage"] == [8, 16, 32, 32, 32]
    assert cfg["data_identifier"] == "nnUNetPlans_3d_fullres"
    assert json.loads((tmp_path / "nnUNetPlans.json").read_text()) == plans  # source untouched
    with pytest.raises(HecktorError, match="plans file not found"):
        write_small_plans(tmp_path, source_plans="missing")


# -- GTVp-centred patch box -------------------------------------------------------------------------------
def test_gtvp_centred_box_is_centred_within_the_jitter_and_inside_nnunets_bounds():
    from nnunet_hecktor.trainers.sampling import gtvp_centred_bbox

    rng = np.random.default_rng(0)
    locations = np.array([[0, 50, 60, 70], [0, 54, 64, 74]])  # centroid (52, 62, 72)
    for _ in range(50):
        lower, upper = gtvp_centred_bbox((120, 130, 140), locations, (40, 40, 40), (32, 32, 32), (8, 8, 8), 0.1, rng)
        centre = (np.array(lower) + np.array(upper)) / 2
        assert np.all(np.abs(centre - [52, 62, 72]) <= 0.1 * 32 + 1)
        assert all(u - lo == 40 for lo, u in zip(lower, upper))
    # Near the border the box is clipped to nnU-Net's bounds: -pad//2 .. shape + pad//2 - patch.
    lower, upper = gtvp_centred_bbox((60, 60, 60), np.array([[0, 1, 1, 58]]), (40, 40, 40), (32, 32, 32),
                                     (8, 8, 8), 0.0, rng)
    assert lower == [-4, -4, 24] and upper == [36, 36, 64]
    # An image smaller than the patch is padded symmetrically, as nnU-Net does.
    lower, upper = gtvp_centred_bbox((20, 20, 20), np.array([[0, 10, 10, 10]]), (32, 32, 32), (32, 32, 32),
                                     (0, 0, 0), 0.0, rng)
    assert lower == [-6, -6, -6] and upper == [26, 26, 26]
