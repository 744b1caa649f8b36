"""Bq/mL -> SUV at conversion (``--suv-factors``) and PETs that look like Bq/mL without a factor."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from test_conversion_editions import _image, _label, modern_names, write_case, write_rows
from test_conversion_helpers import snapshot

from nnunet_hecktor.cli import main as cli_main
from nnunet_hecktor.dataset_conversion import convert_dataset
from nnunet_hecktor.dataset_conversion.suv import read_suv_factors
from nnunet_hecktor.errors import HecktorError

#: The organisers' factor-table header (HECKTOR2026 repository, suv_conversion_tags.csv).
HEADER = ["pid", "units", "patient_weight_kg", "radiopharmaceutical", "radionuclide_total_dose_bq",
          "radionuclide_half_life_sec", "elapsed_seconds_injection_to_scan", "decay_corrected_dose_at_scan_bq",
          "dose_for_suv_bq", "bqml_to_suvbw_factor"]


def factor_row(pid: str, weight: float, dose: float, factor: float | None = None, units: str = "BQML") -> list[str]:
    factor = weight * 1000 / dose if factor is None else factor
    return [pid, units, repr(weight), "Fluorodeoxyglucose", repr(dose * 1.6), "6586.2", "4500", repr(dose), repr(dose),
            f"{factor:.9f}"]


def test_organisers_table_is_read_and_checked(tmp_path):
    table = write_rows(tmp_path / "suv_conversion_tags.csv", HEADER,
                       [factor_row("CHUP-014", 77, 137231850.3), factor_row("MDA-300", 61, 170686844)])
    factors = read_suv_factors(table)
    assert sorted(factors) == ["CHUP-014", "MDA-300"]
    assert factors["CHUP-014"].factor == pytest.approx(77 * 1000 / 137231850.3)
    assert factors["CHUP-014"].origin == "weight and dose" and factors["MDA-300"].weight_kg == 61


@pytest.mark.parametrize("row, message", [
    (factor_row("MDA-402", 86.4, 250306463.1, factor=4.1e-4), "factor 0.00041 does not match weight x 1000 / dose"),
    (factor_row("MDA-402", 86.4, 250306463.1, units="CNTS"), "units are 'CNTS', not BQML"),
    (factor_row("MDA-402", 86.4, 250.3064631), "implausible"),  # dose in MBq
    (["MDA-402", "BQML", "", "", "", "", "", "", "", ""], "no usable factor"),
])
def test_inconsistent_or_implausible_factor_is_refused_naming_the_patient(tmp_path, row, message):
    table = write_rows(tmp_path / "f.csv", HEADER, [factor_row("CHUP-014", 77, 137231850.3), row])
    with pytest.raises(HecktorError, match=rf"MDA-402: .*{message}"):
        read_suv_factors(table)


def test_factor_only_table_and_duplicates(tmp_path):
    ok = write_rows(tmp_path / "ok.csv", ["PatientID", "bqml_to_suvbw_factor"], [["CHUP-001", "0.0004"]])
    assert read_suv_factors(ok)["CHUP-001"].origin == "factor column"
    twice = write_rows(tmp_path / "twice.csv", ["PatientID", "bqml_to_suvbw_factor"],
                       [["CHUP-001", "0.0004"], ["CHUP-001", "0.0005"]])
    with pytest.raises(HecktorError, match="CHUP-001: .*two rows"):
        read_suv_factors(twice)
    with pytest.raises(HecktorError, match="needs a factor column"):
        read_suv_factors(write_rows(tmp_path / "none.csv", ["PatientID", "x"], [["CHUP-001", "1"]]))


def _bqml_pet(seed: int) -> sitk.Image:
    """A PET in Bq/mL: SUV-like values x ~2500 (1 / a typical factor)."""
    rng = np.random.default_rng(seed)
    return _image((rng.random((6, 6, 6)) * 8 * 2500 + 1000).astype(np.float32), (5.0, 5.0, 5.0), (-14.0, -14.0, -14.0))


@pytest.fixture
def bqml_source(tmp_path):
    """CHUP-001: Bq/mL with a factor; MDA-002: Bq/mL without one; HGJ-003: SUV already."""
    src = tmp_path / "src"
    for seed, pid in enumerate(("CHUP-001", "MDA-002", "HGJ-003")):
        paths = write_case(src / pid, modern_names(pid), seed, _label(seed))
        if pid != "HGJ-003":
            sitk.WriteImage(_bqml_pet(seed), str(paths["pet"]), True)
    return src


def test_factor_applied_recorded_and_input_untouched(tmp_path, bqml_source):
    table = write_rows(tmp_path / "factors.csv", HEADER, [factor_row("CHUP-001", 80, 200e6)])
    before = snapshot(bqml_source)
    summary = convert_dataset(bqml_source, dataset_id=526, output=tmp_path / "out", progress=False,
                              suv_factors=table)
    assert snapshot(bqml_source) == before, "the source PET must never be modified"
    assert summary.failed == {} and summary.suv_converted == {"CHUP-001": pytest.approx(4e-4)}
    source_pet = sitk.ReadImage(str(bqml_source / "CHUP-001" / "CHUP-001__PT.nii.gz"))
    ct = sitk.ReadImage(str(bqml_source / "CHUP-001" / "CHUP-001__CT.nii.gz"))
    expected = sitk.Resample(sitk.Cast(source_pet, sitk.sitkFloat32) * 4e-4, ct, sitk.Transform(), sitk.sitkLinear,
                             0.0, sitk.sitkFloat32)
    converted = sitk.ReadImage(str(tmp_path / "out" / "imagesTr" / "CHUP-001_0001.nii.gz"))
    np.testing.assert_allclose(sitk.GetArrayFromImage(converted), sitk.GetArrayFromImage(expected), rtol=1e-5)
    assert sitk.GetArrayFromImage(converted).max() < 20  # SUV now
    with (tmp_path / "out" / "suv_factors.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["PatientID"], float(r["bqml_to_suvbw_factor"]), r["origin"]) for r in rows] == [
        ("CHUP-001", pytest.approx(4e-4), "weight and dose")]
    report = json.loads(summary.report_path.read_text())
    entry = report["patients"]["CHUP-001"]["suv_conversion"]
    assert entry["factor"] == pytest.approx(4e-4) and entry["pet_p99_before"] > 1000
    # MDA-002 is still Bq/mL: converted unchanged, but shown in the summary (not only in the report).
    assert summary.pet_unit_suspects == ["MDA-002"]
    assert any("Bq/mL" in w for w in summary.patient_warnings["MDA-002"])
    assert "1 PETs look like Bq/mL" in summary.describe() and "MDA-002" in summary.describe()
    assert report["pet_units"]["look_like_bq_per_ml"] == ["MDA-002"]


def test_strict_fails_on_a_bqml_pet_without_factor_and_a_factor_for_an_suv_pet(tmp_path, bqml_source, capsys):
    out = tmp_path / "out"
    assert cli_main(["convert", str(bqml_source), "--dataset-id", "526", "--output", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "2 PETs look like Bq/mL" in err and "CHUP-001, MDA-002" in err  # reaches the console with --quiet
    assert cli_main(["convert", str(bqml_source), "--dataset-id", "526", "--output", str(out), "--quiet",
                     "--strict"]) == 1
    assert "PETs look like Bq/mL, not SUV (--strict" in capsys.readouterr().err
    # A factor for a PET already in SUV would make it ~2000 times too small: that patient fails, named.
    table = write_rows(tmp_path / "f.csv", ["PatientID", "bqml_to_suvbw_factor"],
                       [["HGJ-003", "0.0004"], ["CHUP-001", "0.0004"], ["MDA-002", "0.0004"]])
    summary = convert_dataset(bqml_source, dataset_id=526, output=out, progress=False, suv_factors=table)
    assert list(summary.failed) == ["HGJ-003"] and "already looks like SUV" in summary.failed["HGJ-003"]
    assert summary.pet_unit_suspects == [] and sorted(summary.suv_converted) == ["CHUP-001", "MDA-002"]


def test_refused_table_stops_before_anything_is_written(tmp_path, bqml_source):
    table = write_rows(tmp_path / "f.csv", HEADER, [factor_row("CHUP-001", 80000, 200e6)])  # weight in g
    with pytest.raises(HecktorError, match="CHUP-001: .*implausible"):
        convert_dataset(bqml_source, dataset_id=526, output=tmp_path / "out", progress=False, suv_factors=table)
    assert not (tmp_path / "out").exists()


def test_factor_table_inside_a_2026_release_is_named_not_read_as_clinical(tmp_path):
    from test_conversion_editions import make_2026

    src = make_2026(tmp_path / "hecktor2026")
    write_rows(src / "suv_conversion_tags.csv", HEADER, [factor_row("CHUP-001", 80, 200e6)])
    summary = convert_dataset(src, dataset_id=526, output=tmp_path / "out", progress=False, strict=True)
    report = json.loads(summary.report_path.read_text())
    assert [Path(p).name for p in report["layout"]["not_clinical_tables"]] == ["suv_conversion_tags.csv"]
    assert summary.unread_csvs == {} and summary.suv_converted == {}
