"""Feature tables from image files: layouts, PET resampling, provenance, errors (nnunet_hecktor.prognosis)."""

import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from nnunet_hecktor.cli import main as cli_main
from nnunet_hecktor.errors import HecktorError, InputDataError
from nnunet_hecktor.prognosis.features import extract_features, read_feature_table, write_feature_table

CT_SPACING = (1.5, 1.5, 3.0)  # x, y, z mm
CT_SIZE = (40, 40, 20)
CT_ORIGIN = (-30.0, -30.0, -30.0)


def pet_value(x, y, z):
    """A PET that is linear in physical coordinates: trilinear resampling reproduces it exactly."""
    return 6.0 + 0.05 * x - 0.03 * y + 0.04 * z


def _grid_points(size, spacing, origin):
    axes = [o + s * np.arange(n) for n, s, o in zip(size, spacing, origin)]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    return x, y, z


def _image(array, spacing, origin):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image


def make_patient(kind):
    """(CT, PET on its own grid, PET on the CT grid, label) images of a patient of the given kind."""
    x, y, z = _grid_points(CT_SIZE, CT_SPACING, CT_ORIGIN)
    ct = (30.0 + 0.5 * z).astype(np.float32)
    label = np.zeros(ct.shape, np.uint8)
    if kind == "tumour":
        label[(x - 10) ** 2 + (y - 15) ** 2 + (z + 15) ** 2 <= 5.0 ** 2] = 2
        label[(x + 8) ** 2 + (y + 5) ** 2 + z ** 2 <= 9.0 ** 2] = 1
    pet_spacing, pet_origin = (3.0, 3.0, 3.5), (-34.0, -33.0, -35.0)
    px, py, pz = _grid_points((24, 24, 20), pet_spacing, pet_origin)
    pet_native = _image(pet_value(px, py, pz).astype(np.float32), pet_spacing, pet_origin)
    pet_on_ct = _image(pet_value(x, y, z).astype(np.float32), CT_SPACING, CT_ORIGIN)
    return (_image(ct, CT_SPACING, CT_ORIGIN), pet_native, pet_on_ct, _image(label, CT_SPACING, CT_ORIGIN))


PATIENTS = {"CHUP-000": "tumour", "MDA-001": "empty"}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """The same patients in the release layout (PET on its own grid) and the converter layout."""
    root = tmp_path_factory.mktemp("features")
    release = root / "release" / "Task 1"
    images_tr, labels_tr = root / "Dataset501" / "imagesTr", root / "Dataset501" / "labelsTr"
    for folder in (images_tr, labels_tr):
        folder.mkdir(parents=True)
    for pid, kind in PATIENTS.items():
        ct, pet_native, pet_on_ct, label = make_patient(kind)
        (release / pid).mkdir(parents=True)
        sitk.WriteImage(ct, str(release / pid / f"{pid}__CT.nii.gz"))
        sitk.WriteImage(pet_native, str(release / pid / f"{pid}__PT.nii.gz"))
        sitk.WriteImage(label, str(release / pid / f"{pid}.nii.gz"))
        sitk.WriteImage(ct, str(images_tr / f"{pid}_0000.nii.gz"))
        sitk.WriteImage(pet_on_ct, str(images_tr / f"{pid}_0001.nii.gz"))
        sitk.WriteImage(label, str(labels_tr / f"{pid}.nii.gz"))
    return root


def test_release_and_converter_layouts_give_the_same_features(cohort):
    release = extract_features(cohort / "release", cohort / "release", progress=False)
    converter = extract_features(cohort / "Dataset501" / "imagesTr", cohort / "Dataset501" / "labelsTr", progress=False)
    assert release.metadata["seg_source"] == converter.metadata["seg_source"] == "ground_truth"
    assert list(release.table.index) == sorted(PATIENTS)
    # PET on its own grid was resampled onto the CT grid; a linear PET makes that exact.
    pd.testing.assert_frame_equal(release.table, converter.table, rtol=1e-5)
    tumour, empty = release.table.loc["CHUP-000"], release.table.loc["MDA-001"]
    assert tumour["gtvp_suvmax"] > 0 and tumour["gtvn_lesion_count"] == 1
    assert tumour["gtvp_volume_ml"] == pytest.approx(4 / 3 * np.pi * 9.0 ** 3 / 1000, rel=0.05)
    assert empty["gtvp_present"] == 0 and empty["total_volume_ml"] == 0
    assert not release.table.drop(columns="seg_source").isna().any().any()


def test_parallel_run_equals_serial_run(cohort):
    serial = extract_features(cohort / "release", cohort / "release", num_processes=1, progress=False)
    parallel = extract_features(cohort / "release", cohort / "release", num_processes=2, progress=False)
    pd.testing.assert_frame_equal(serial.table, parallel.table)


def test_table_and_sidecar_round_trip(cohort, tmp_path):
    features = extract_features(cohort / "Dataset501", cohort / "Dataset501" / "labelsTr", progress=False)
    table_path, sidecar = write_feature_table(features, tmp_path / "features.csv")
    assert sidecar.name == "features.json"
    meta = json.loads(sidecar.read_text())
    assert meta["seg_source"] == "ground_truth" and meta["n_patients"] == 2
    assert {f["name"] for f in meta["features"]} >= {"gtvp_suvpeak", "gtvn_lesion_count"}
    again = read_feature_table(table_path)
    assert list(again["seg_source"]) == ["ground_truth"] * 2
    pd.testing.assert_frame_equal(again.drop(columns="seg_source"), features.table.drop(columns="seg_source"),
                                  rtol=1e-5, check_dtype=False)


def test_predictions_from_several_fold_folders_are_recorded_as_predicted(cohort, tmp_path):
    for k, pid in enumerate(PATIENTS):
        folder = tmp_path / f"fold_{k}" / "validation"
        folder.mkdir(parents=True)
        sitk.WriteImage(sitk.ReadImage(str(cohort / "Dataset501" / "labelsTr" / f"{pid}.nii.gz")),
                        str(folder / f"{pid}.nii.gz"))
    folders = [tmp_path / "fold_0" / "validation", tmp_path / "fold_1" / "validation"]
    features = extract_features(cohort / "Dataset501" / "imagesTr", folders, progress=False)
    assert features.metadata["seg_source"] == "predicted"
    assert set(features.table["seg_source"]) == {"predicted"}
    assert len(features.table) == 2
    # One patient in two folders is ambiguous.
    sitk.WriteImage(sitk.ReadImage(str(folders[0] / "CHUP-000.nii.gz")), str(folders[1] / "CHUP-000.nii.gz"))
    with pytest.raises(InputDataError, match="CHUP-000.*two segmentation"):
        extract_features(cohort / "Dataset501" / "imagesTr", folders, progress=False)


def test_unknown_segmentation_source_must_be_declared(cohort, tmp_path):
    seg = tmp_path / "segs"
    seg.mkdir()
    label = cohort / "Dataset501" / "labelsTr" / "MDA-001.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(label)), str(seg / "MDA-001.nii.gz"))
    with pytest.raises(HecktorError, match="--seg-source"):
        extract_features(cohort / "Dataset501" / "imagesTr", seg, progress=False)
    with pytest.warns(UserWarning, match="no segmentation"):
        features = extract_features(cohort / "Dataset501" / "imagesTr", seg, seg_source="predicted", progress=False)
    assert features.metadata["patients_without_segmentation"] == ["CHUP-000"]


def test_bad_label_values_and_grid_mismatch_name_the_patient(cohort, tmp_path):
    images = cohort / "Dataset501" / "imagesTr"
    seg = tmp_path / "labelsTr"
    seg.mkdir()
    label = sitk.ReadImage(str(cohort / "Dataset501" / "labelsTr" / "CHUP-000.nii.gz"))
    bad = sitk.GetArrayFromImage(label)
    bad[0, 0, 0] = 3
    bad_image = sitk.GetImageFromArray(bad)
    bad_image.CopyInformation(label)
    sitk.WriteImage(bad_image, str(seg / "CHUP-000.nii.gz"))
    shifted = sitk.ReadImage(str(cohort / "Dataset501" / "labelsTr" / "MDA-001.nii.gz"))
    shifted.SetOrigin((0.0, 0.0, 0.0))
    sitk.WriteImage(shifted, str(seg / "MDA-001.nii.gz"))
    with pytest.raises(HecktorError) as info:
        extract_features(images, seg, progress=False)
    message = str(info.value)
    assert "failed for 2 of 2 patients" in message
    assert "CHUP-000" in message and "label values [3]" in message
    assert "MDA-001" in message and "differs from the segmentation grid" in message


def test_missing_pet_is_an_error(cohort, tmp_path):
    images = tmp_path / "imagesTr"
    images.mkdir()
    ct = cohort / "Dataset501" / "imagesTr" / "MDA-001_0000.nii.gz"
    (images / "MDA-001_0000.nii.gz").write_bytes(ct.read_bytes())
    with pytest.raises(InputDataError, match="MDA-001.*PET image missing"):
        extract_features(images, cohort / "Dataset501" / "labelsTr", progress=False)


def test_network_head_outputs_are_merged(cohort, tmp_path):
    heads = tmp_path / "predictions.csv"
    heads.write_text("PatientID,hpv_probability,hpv_status,risk\n"
                     "CHUP-000,0.9,1,0.3\nMDA-001,0.2,0,-1.5\nX-999,0.5,1,0\n")
    features = extract_features(cohort / "Dataset501", cohort / "Dataset501" / "labelsTr", heads_csv=heads,
                                progress=False)
    assert features.table.loc["MDA-001", "net_risk"] == -1.5
    assert features.table.loc["CHUP-000", "net_hpv_probability"] == 0.9
    heads.write_text("PatientID,hpv_probability,risk\nCHUP-000,0.9,0.3\n")
    with pytest.raises(InputDataError, match="1 patients have no network prediction: MDA-001"):
        extract_features(cohort / "Dataset501", cohort / "Dataset501" / "labelsTr", heads_csv=heads, progress=False)


def test_cli_writes_table_and_reports_errors_plainly(cohort, tmp_path, capsys):
    out = tmp_path / "out" / "features.csv"
    assert cli_main(["features", "--images", str(cohort / "release"), "--seg", str(cohort / "release"),
                     "--output", str(out), "--num-processes", "1", "--quiet"]) == 0
    assert read_feature_table(out).shape[0] == 2
    assert (tmp_path / "out" / "features.json").is_file()
    assert cli_main(["features", "--images", str(tmp_path / "nowhere"), "--seg", str(tmp_path),
                     "--output", str(out), "--quiet"]) == 1
    assert "images folder does not exist" in capsys.readouterr().err
