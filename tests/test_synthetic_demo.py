"""The "demo" size preset (real-size neck, resolvable nodes) and enriched cohorts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_hecktor.metrics.components import label_components
from nnunet_hecktor.synthetic import draw_patients, make_cohort
from nnunet_hecktor.synthetic.geometry import PLACEMENT_PRESETS, SIZE_PRESETS
from nnunet_hecktor.synthetic.patients import ENRICHMENT_ACCEPTANCE


@pytest.fixture(scope="module")
def demo_cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_size")
    summary = make_cohort(out, n_patients=24, seed=11, layout="flat", size="demo", progress=False)
    return out, summary, json.loads(summary.ground_truth_path.read_text())


def test_demo_preset_does_not_constrain_node_placement():
    # Adding a preset must not change what an existing seed draws for "test" and "benchmark".
    assert set(PLACEMENT_PRESETS) == {"test", "benchmark"}
    demo, benchmark = SIZE_PRESETS["demo"], SIZE_PRESETS["benchmark"]
    assert (demo.body_scale_xy, demo.body_scale_z, demo.lesion_scale) == \
        (benchmark.body_scale_xy, benchmark.body_scale_z, benchmark.lesion_scale)


def test_demo_size_nodes_are_resolvable_and_separate(demo_cohort):
    out, _, truth = demo_cohort
    widths, checked = [], 0
    for pid, patient in truth["patients"].items():
        path = out / f"{pid}.nii.gz"
        if not path.exists():
            continue
        image = sitk.ReadImage(str(path))
        spacing = image.GetSpacing()
        assert 3.3 <= spacing[0] <= 3.7 and spacing[2] == 4.0
        label = sitk.GetArrayFromImage(image)
        _, n = label_components(label == 2)
        # Every node its own component, and none cut off by the neck-cropped field of view.
        assert n == patient["node_count"], pid
        rendered = patient["images"]["label_volume_ml"]
        if patient["node_volume_ml"] > 0:
            assert rendered["GTVn"] / patient["node_volume_ml"] > 0.75, pid
        if patient["primary_volume_ml"] > 0:
            assert rendered["GTVp"] / patient["primary_volume_ml"] > 0.75, pid
        for node in patient["nodes"]:
            widths.append(2 * np.mean(node["radii_mm"][:2]) / spacing[0])
        checked += 1
    assert checked >= 10 and len(widths) >= 10
    # A typical node (17 mm across) is ~5 voxels across in-plane.
    assert np.median(widths) >= 4.5


def test_demo_size_shows_neck_and_skull_base(demo_cohort):
    out, _, truth = demo_cohort
    pid = next(p for p in truth["patients"] if (out / f"{p}__PT.nii.gz").exists())
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"{pid}__CT.nii.gz")))
    # Bone (skull base / mandible / spine) and air around the body are in the cropped field of view.
    assert (ct > 500).any() and (ct < -900).any()
    assert 56 <= ct.shape[0] <= 58 and 45 <= ct.shape[1] <= 47


def test_enriched_cohort_shares_and_tasks():
    patients = draw_patients(300, seed=2, enriched=True)
    hpv = np.array([p.hpv for p in patients])
    relapse = np.array([p.relapse for p in patients])
    assert len(patients) == 300
    assert 0.22 <= 1 - hpv.mean() <= 0.38  # ~12 % without enrichment
    assert 0.33 <= relapse.mean() <= 0.52  # ~25 % without enrichment
    assert all(p.tasks == (1, 2, 3) for p in patients)
    assert len({p.patient_id for p in patients}) == 300
    assert set(ENRICHMENT_ACCEPTANCE) == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_enriched_cohort_is_deterministic():
    first = draw_patients(30, seed=4, enriched=True)
    again = draw_patients(30, seed=4, enriched=True)
    assert [(p.patient_id, p.rfs_days, p.hpv) for p in first] == [(p.patient_id, p.rfs_days, p.hpv) for p in again]
    assert [p.index for p in first] == sorted(p.index for p in first)
    # Ids are numbered afresh per centre (no gaps of the pool), three digits.
    assert max(int(p.patient_id[-3:]) for p in first) < 30


def test_enriched_cohort_written_with_its_targets(tmp_path):
    summary = make_cohort(tmp_path / "c", n_patients=10, seed=0, layout="release", size="test", progress=False,
                          enriched=True)
    truth = json.loads(summary.ground_truth_path.read_text())
    assert truth["enriched"] is True and truth["enrichment_acceptance"]
    assert all(len(ids) == 10 for ids in summary.patient_ids.values())
    assert "enriched" in summary.summary_line()
