"""The rich synthetic world: image-only outcome factors, drawn, rendered and driving the outcomes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from nnunet_hecktor import schema
from nnunet_hecktor.synthetic import anatomy, draw_patients, patients_table
from nnunet_hecktor.synthetic.geometry import draw_grids, size_preset
from nnunet_hecktor.synthetic.image_factors import hpv_posterior, rich_risk_term
from nnunet_hecktor.synthetic.patients import CENTRE_PROFILES, patient_rng


def _render(patient, seed=0):
    preset = size_preset("demo")
    grids = draw_grids(patient_rng(seed, patient.index, 2), preset, with_planning=False)
    frame = anatomy.body_frame(patient, preset, grids.ct)
    profile = CENTRE_PROFILES[patient.centre]
    label = anatomy.render_label(patient, frame, grids.ct)
    # Noise-free CT, PET without calibration: the factors' effects are not hidden by noise.
    ct = anatomy.render_ct(patient, frame, grids.ct, patient_rng(seed, patient.index, 3), 0.0, preset.z_chunk)
    pet_on_ct = anatomy.render_pet(patient, frame, grids.ct, patient_rng(seed, patient.index, 4),
                                   profile.pet_fwhm_mm * preset.pet_fwhm_scale, 1.0, preset.z_chunk)
    return label, ct, pet_on_ct


@pytest.fixture(scope="module")
def worlds():
    default = draw_patients(60, seed=0)
    rich = draw_patients(60, seed=0, world="rich")
    return default, rich


def test_rich_world_keeps_everything_but_the_factors(worlds):
    default, rich = worlds
    for d, r in zip(default, rich):
        assert d.patient_id == r.patient_id and d.hpv == r.hpv
        inputs = [c for c in d.clinical_recorded if c not in (schema.COL_RELAPSE, schema.COL_RFS)]
        assert all(d.clinical_recorded[c] == r.clinical_recorded[c] for c in inputs)
        assert [n.radii_mm for n in d.nodes] == [n.radii_mm for n in r.nodes]
        assert d.image_factors is None and r.image_factors is not None
        assert r.true_risk == pytest.approx(d.true_risk + rich_risk_term(r.image_factors))
        assert "image_factors" not in d.to_json() and r.to_json()["world"] == "rich"
    table = patients_table(rich[:5])
    assert (table["necrosis"].to_numpy() == [p.image_factors["necrosis"] for p in rich[:5]]).all()
    assert "necrosis" not in patients_table(default[:5]).columns


def test_hpv_posterior_uses_cystic_nodes():
    assert hpv_posterior(0.8, 0, 0) == pytest.approx(0.8)
    # Bayes by hand: prior odds 4, each cystic node x 0.45 / 0.10, each solid node x 0.55 / 0.90.
    odds = 4 * (0.45 / 0.10) * (0.55 / 0.90)
    assert hpv_posterior(0.8, 2, 1) == pytest.approx(odds / (1 + odds))
    assert hpv_posterior(0.8, 2, 2) > 0.95 > 0.8 > hpv_posterior(0.8, 2, 0) > hpv_posterior(0.8, 4, 0)


def test_factors_are_rendered(worlds):
    default, rich = worlds
    index = next(i for i, p in enumerate(rich) if p.image_factors["extranodal_extension"]
                 and p.image_factors["necrosis"] > 0.35 and p.primary is not None and 1 in p.tasks)
    d, r = default[index], rich[index]
    label_d, ct_d, pet_d = _render(d)
    label_r, ct_r, pet_r = _render(r)
    np.testing.assert_array_equal(label_d, label_r)  # the factors never change the label

    # Necrotic core: colder PET and lower CT at the primary's centre.
    frame = anatomy.body_frame(r, size_preset("demo"), draw_grids(patient_rng(0, r.index, 2), size_preset("demo"),
                                                                  with_planning=False).ct)
    grid = draw_grids(patient_rng(0, r.index, 2), size_preset("demo"), with_planning=False).ct
    box, q = anatomy.lesion_field(frame, r.primary, grid)
    core = q < 0.5 * r.image_factors["necrosis"]
    assert pet_r[box][core].mean() < 0.8 * pet_d[box][core].mean()
    assert ct_r[box][core].mean() < ct_d[box][core].mean() - 15

    # Extranodal extension: uptake and soft-tissue density outside the node's label, around it.
    node = r.nodes[r.image_factors["ene_node"]]
    box, q = anatomy.lesion_field(frame, node, grid, reach=1.6)
    rim = (q > 1.05) & (q < 1.5) & (label_r[box] == 0)
    # PET: a thin rim, blurred by the PSF, adds little; CT shows the stranding clearly.
    assert pet_r[box][rim].mean() > pet_d[box][rim].mean() + 0.05
    assert ct_r[box][rim].mean() > ct_d[box][rim].mean() + 5

    # Heterogeneity: more texture inside the primary at a higher index (same patient otherwise).
    smooth = replace(r, image_factors={**r.image_factors, "heterogeneity": 0.0})
    rough = replace(r, image_factors={**r.image_factors, "heterogeneity": 1.0})
    inside = (label_r == schema.GTVP)
    assert _render(rough)[2][inside].std() > 1.2 * _render(smooth)[2][inside].std()


def test_factors_carry_risk_beyond_the_feature_table():
    """On drawn patients the rich factors explain outcome variance the default covariates do not."""
    import pandas as pd
    from lifelines import CoxPHFitter

    patients = draw_patients(1500, seed=11, world="rich")
    rows = pd.DataFrame({
        "log_volume": [np.log(max(p.primary_volume_ml, 0.5) / 15) for p in patients],
        "suvmax": [p.suvmax for p in patients], "nodes": [p.node_count for p in patients],
        "hpv": [p.hpv for p in patients], "age": [p.clinical_true["Age"] for p in patients],
        "necrosis": [p.image_factors["necrosis"] for p in patients],
        "heterogeneity": [p.image_factors["heterogeneity"] for p in patients],
        "ene": [p.image_factors["extranodal_extension"] for p in patients],
        "T": [p.rfs_days for p in patients], "E": [p.relapse for p in patients]})
    fit = CoxPHFitter().fit(rows, "T", "E")
    # Within 3 standard errors of the generating coefficients (M-stage left out: it is independent).
    for name, expected in (("necrosis", 2.2), ("heterogeneity", 1.2), ("ene", 0.8), ("nodes", 0.45),
                           ("hpv", -1.0)):
        assert abs(fit.params_[name] - expected) < 3 * fit.standard_errors_[name], (name, fit.params_[name])
