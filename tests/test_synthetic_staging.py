"""T/N stages of synthetic patients: AJCC 7 rules on lesion geometry, clinical disagreement, missingness."""

from __future__ import annotations

from collections import Counter

import pytest

from nnunet_hecktor import schema
from nnunet_hecktor.synthetic import draw_patients
from nnunet_hecktor.synthetic.lesions import Lesion
from nnunet_hecktor.synthetic.staging import (
    STAGE_SHIFT_RATES,
    geometric_n_stage,
    geometric_t_stage,
    largest_diameter_mm,
    node_sides,
)


def _lesion(kind: str, u: float, diameter_mm: float) -> Lesion:
    r = diameter_mm / 2.0
    return Lesion(kind=kind, position=(u, 0.0, 0.5), radii_mm=(r, 0.8 * r, 0.9 * r), suv_peak=10.0,
                  ct_contrast_hu=20.0)


@pytest.mark.parametrize("diameter, invades, stage", [
    (18.0, False, "T1"), (20.0, False, "T1"), (20.5, False, "T2"), (40.0, True, "T2"), (41.0, False, "T3"),
    (41.0, True, "T4"), (61.0, False, "T4"),
])
def test_t_stage_from_largest_diameter(diameter, invades, stage):
    primary = _lesion("primary", 0.2, diameter)
    assert largest_diameter_mm(primary) == pytest.approx(diameter)
    assert geometric_t_stage(primary, invades) == stage


def test_no_primary_is_t0():
    assert geometric_t_stage(None, False) == "T0"


def test_n_stage_rules_with_laterality():
    primary = _lesion("primary", 0.2, 30.0)  # right of the midline (u > 0)
    ipsi_small, ipsi_big = _lesion("node", 0.5, 25.0), _lesion("node", 0.6, 35.0)
    contra = _lesion("node", -0.5, 15.0)
    assert geometric_n_stage(primary, []) == "N0"
    assert geometric_n_stage(primary, [ipsi_small]) == "N1"
    assert geometric_n_stage(primary, [ipsi_big]) == "N2"  # single ipsilateral 3-6 cm: N2a
    assert geometric_n_stage(primary, [ipsi_small, _lesion("node", 0.4, 12.0)]) == "N2"  # N2b
    assert geometric_n_stage(primary, [contra]) == "N2"  # contralateral: N2c
    assert node_sides(primary, [ipsi_small, contra]) == ["ipsilateral", "contralateral"]
    assert geometric_n_stage(primary, [_lesion("node", 0.5, 65.0)]) == "N3"
    # Without a primary the largest node defines the ipsilateral side.
    assert node_sides(None, [contra, ipsi_big]) == ["contralateral", "ipsilateral"]
    assert geometric_n_stage(None, [contra]) == "N1"


def test_drawn_stages_follow_geometry_with_documented_disagreement():
    patients = draw_patients(600, seed=2)
    for p in patients:
        s = p.staging
        assert s[schema.COL_TSTAGE] in schema.T_STAGES and s[schema.COL_NSTAGE] in schema.N_STAGES
        assert s["T-stage (geometry)"] == geometric_t_stage(p.primary, s["invasion"])
        assert s["N-stage (geometry)"] == geometric_n_stage(p.primary, p.nodes)
        for column in (schema.COL_TSTAGE, schema.COL_NSTAGE):
            clinical, geometry = s[column], s[f"{column} (geometry)"]
            # One stage away at most.
            assert abs(schema.stage_code(column, clinical) - schema.stage_code(column, geometry)) <= 1
            assert s["recorded"][column] in (None, clinical)
    for column in (schema.COL_TSTAGE, schema.COL_NSTAGE):
        shifted = sum(p.staging[column] != p.staging[f"{column} (geometry)"] for p in patients) / len(patients)
        assert 0.4 * STAGE_SHIFT_RATES[column] < shifted < 1.6 * STAGE_SHIFT_RATES[column]
        missing = sum(p.staging["recorded"][column] is None for p in patients)
        assert 0 < missing < 0.1 * len(patients)
    # Every stage class shows up in a cohort of this size (T0: patients without a visible primary).
    assert set(Counter(p.staging[schema.COL_TSTAGE] for p in patients)) == set(schema.T_STAGES)
    assert set(Counter(p.staging[schema.COL_NSTAGE] for p in patients)) == set(schema.N_STAGES)


def test_stages_do_not_change_other_draws():
    """Staging has its own random stream and stays out of the 2025 ground truth."""
    p = draw_patients(3, seed=0)[1]
    assert "staging" not in p.to_json()
    assert p.to_json(with_staging=True)["staging"] == p.staging
