"""Crop bookkeeping: overlap and head-and-neck boxes, records, crop -> uncrop round trip on the original CT grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from test_conversion_helpers import CT_ORIGIN, CT_SIZE, CT_SPACING, ct_array, image_from, read, write_patient

from nnunet_hecktor.dataset_conversion import (
    apply_crop,
    compute_crop,
    convert_dataset,
    find_brain,
    load_crop_record,
    uncrop_to_original,
)
from nnunet_hecktor.errors import InputDataError
from nnunet_hecktor.synthetic import make_cohort

#: The synthetic test-size anatomy is shrunk (x/y by 0.75, z by 0.37): this is the default 200x200x310 mm box
#: scaled the same way.
TEST_SIZE_BOX_MM = (150.0, 150.0, 115.0)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_cohort(tmp_path_factory.mktemp("crop") / "src", n_patients=12, seed=2, layout="task", task=1,
                       progress=False)


@pytest.mark.parametrize("crop, box", [("overlap", (200.0, 200.0, 310.0)), ("headneck", TEST_SIZE_BOX_MM),
                                       ("headneck", (90.0, 80.0, 60.0))])
def test_crop_uncrop_round_trip_reproduces_the_label_on_the_original_grid(cohort, tmp_path, crop, box):
    out = tmp_path / "Dataset540_C"
    summary = convert_dataset(cohort.out_dir, dataset_id=540, name="C", output=out, crop=crop, headneck_box_mm=box,
                              progress=False)
    assert summary.failed == {} and summary.training
    report = json.loads(summary.report_path.read_text())
    cropped_somewhere = False
    for pid in summary.training:
        entry = report["patients"][pid]
        record = load_crop_record(out / "crops" / f"{pid}.json")
        assert record.to_json() == entry["crop"]
        assert record.mode == crop
        source_ct = sitk.ReadImage(entry["sources"]["ct"])
        source_label = sitk.ReadImage(entry["sources"]["label"])
        converted_label = sitk.ReadImage(str(out / "labelsTr" / f"{pid}.nii.gz"))
        converted_ct = sitk.ReadImage(str(out / "imagesTr" / f"{pid}_0000.nii.gz"))
        converted_pet = sitk.ReadImage(str(out / "imagesTr" / f"{pid}_0001.nii.gz"))
        assert converted_ct.GetSize() == tuple(record.cropped_ct.size) == converted_pet.GetSize()
        cropped_somewhere |= not record.is_full
        (x0, y0, z0), (x1, y1, z1) = record.index_start, record.index_stop
        # CT voxels unchanged inside the box, on the same physical positions.
        np.testing.assert_array_equal(sitk.GetArrayFromImage(converted_ct),
                                      sitk.GetArrayFromImage(source_ct)[z0:z1, y0:y1, x0:x1])
        assert np.allclose(converted_ct.GetOrigin(), source_ct.TransformIndexToPhysicalPoint((x0, y0, z0)))
        back = uncrop_to_original(converted_label, out / "crops" / f"{pid}.json")
        assert back.GetSize() == source_ct.GetSize() and back.GetSpacing() == source_ct.GetSpacing()
        assert back.GetOrigin() == source_ct.GetOrigin() and back.GetDirection() == source_ct.GetDirection()
        assert back.GetPixelID() == converted_label.GetPixelID()
        original = sitk.GetArrayFromImage(source_label)
        lost = [w for w in entry["warnings"] if "cut off" in w]
        if not lost:
            np.testing.assert_array_equal(sitk.GetArrayFromImage(back), original)
        else:  # a deliberately small box: the warning is right about what was cut
            kept = sitk.GetArrayFromImage(back)
            assert (kept != original).sum() > 0 and np.all((kept == original) | (kept == 0))
    assert cropped_somewhere
    if box == TEST_SIZE_BOX_MM:
        assert not any("cut off" in w for e in report["patients"].values() for w in e["warnings"])


def test_overlap_box_is_the_ct_voxels_inside_the_pet(tmp_path):
    ct = image_from(ct_array(), CT_SPACING, CT_ORIGIN)
    # PET covering x in [-10, 10] mm, y in [-20, 40], z in [-90, -70] (voxel edges).
    pet = image_from(np.ones((4, 12, 4), np.float32), (5.0, 5.0, 5.0), (-7.5, -17.5, -87.5))
    record = compute_crop("CHUP-001", ct, pet, "overlap")
    # CT voxel centres: x = -24 + 3i in [-10, 10] -> i = 5..11; y = -20 + 3j in [-20, 40] -> j = 0..13 (all 14);
    # z = -100 + 4k in [-90, -70] -> k = 3..7.
    assert record.index_start == (5, 0, 3) and record.index_stop == (12, 14, 8)
    assert record.cropped_ct.size == (7, 14, 5)
    assert record.cropped_ct.origin == (-9.0, -20.0, -88.0)
    cropped = apply_crop(ct, record)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(cropped), ct_array()[3:8, 0:14, 5:12])


def test_no_overlap_is_an_error():
    ct = image_from(ct_array(), CT_SPACING, CT_ORIGIN)
    pet = image_from(np.ones((4, 4, 4), np.float32), (5.0, 5.0, 5.0), (500.0, 0.0, 0.0))
    with pytest.raises(InputDataError, match="CHUP-001: PET and CT do not overlap"):
        compute_crop("CHUP-001", ct, pet, "overlap")


def _head_pet():
    """PET (z, y, x) 40x30x30 at 4 mm: a big warm 'brain' at the top, a small hotter 'tumour' lower down."""
    pet = np.full((40, 30, 30), 0.8, np.float32)
    pet[:, :3], pet[:, -3:], pet[:, :, :3], pet[:, :, -3:] = 0, 0, 0, 0  # air around the body
    z, y, x = np.mgrid[0:40, 0:30, 0:30]
    pet[((z - 33) / 6.0) ** 2 + ((y - 14) / 9.0) ** 2 + ((x - 15) / 9.0) ** 2 <= 1] = 8.0
    pet[((z - 12) / 2.0) ** 2 + ((y - 12) / 2.0) ** 2 + ((x - 18) / 2.0) ** 2 <= 1] = 20.0
    return image_from(pet, (4.0, 4.0, 4.0), (0.0, 0.0, 0.0))


def test_find_brain_picks_the_large_superior_region():
    brain = find_brain(_head_pet())
    assert brain is not None
    assert brain["top_mm"] == pytest.approx(39.5 * 4.0)  # top edge of slice 39 (the ellipsoid reaches z = 39)
    assert brain["centroid_mm"] == pytest.approx([60.0, 56.0, 132.0], abs=0.5)
    assert brain["volume_ml"] > 100


def test_headneck_box_hangs_from_the_brain_centroid():
    pet = _head_pet()
    ct = image_from(np.zeros((80, 60, 60), np.int16), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    record = compute_crop("CHUP-001", ct, pet, "headneck", (40.0, 40.0, 100.0))
    low, high = record.details["box_low_mm"], record.details["box_high_mm"]
    assert high[2] == pytest.approx(132.0, abs=0.5) and high[2] - low[2] == pytest.approx(100.0)
    assert (low[0] + high[0]) / 2 == pytest.approx(60.0, abs=0.5)
    # CT voxel centres (2 mm) inside [low, high]: x in [40, 80] -> 20..40, z in [32, 132] -> 16..66.
    assert record.index_start[0] == 20 and record.index_stop[0] == 41
    assert record.index_start[2] == 16 and record.index_stop[2] == 67
    assert "centroid" in record.details["rule"]


def test_headneck_fallback_without_uptake():
    pet = image_from(np.zeros((10, 10, 10), np.float32), (5.0, 5.0, 5.0), (-20.0, -20.0, -100.0))
    assert find_brain(pet) is None
    ct = image_from(ct_array(), CT_SPACING, CT_ORIGIN)
    record = compute_crop("CHUP-001", ct, pet, "headneck", (30.0, 30.0, 20.0))
    assert record.details["brain"] is None and "fallback" in record.details["rule"]
    assert record.index_stop[2] == CT_SIZE[2]  # hangs from the top of the CT


def test_uncrop_rejects_a_segmentation_on_another_grid(tmp_path):
    src = tmp_path / "src"
    write_patient(src, "CHUP-001")
    out = tmp_path / "Dataset541_U"
    convert_dataset(src, dataset_id=541, name="U", output=out, crop="overlap", progress=False)
    record = load_crop_record(out / "crops" / "CHUP-001.json")
    seg = sitk.ReadImage(str(out / "labelsTr" / "CHUP-001.nii.gz"))
    shifted = sitk.Image(seg)
    shifted.SetOrigin(tuple(o + 2.0 for o in seg.GetOrigin()))
    with pytest.raises(InputDataError, match="CHUP-001: segmentation is not on the cropped CT grid"):
        uncrop_to_original(shifted, record)
    with pytest.raises(InputDataError, match="not on the original CT grid"):
        apply_crop(shifted, record)
    np.testing.assert_array_equal(read(out / "labelsTr" / "CHUP-001.nii.gz"),
                                  sitk.GetArrayFromImage(apply_crop(uncrop_to_original(seg, record.to_json()), record)))
