"""Feasible and true ceilings of the synthetic generator (nnunet_hecktor.baselines.ceilings)."""

from __future__ import annotations

import json

import pytest

from nnunet_hecktor import schema
from nnunet_hecktor.baselines.ceilings import (
    ceiling_predictions,
    feasible_ceiling_predictions,
    feasible_design,
    permitted_inputs,
    population_ceilings,
)
from nnunet_hecktor.synthetic import draw_patients, make_cohort


@pytest.fixture(scope="module")
def draws():
    fit = [p.to_json() for p in draw_patients(500, seed=31)]
    evaluate = [p.to_json() for p in draw_patients(500, seed=32)]
    return fit, evaluate


def test_permitted_inputs_follow_the_edition():
    assert schema.COL_HPV not in permitted_inputs("2025", "risk")
    assert schema.COL_HPV not in permitted_inputs("2025", "hpv")
    assert schema.COL_HPV in permitted_inputs("2026", "risk") and schema.COL_MSTAGE not in permitted_inputs("2026", "risk")
    assert all(schema.COL_CENTER not in permitted_inputs(e, "risk") for e in ("2025", "2026"))


def test_design_uses_recorded_values_only(draws):
    fit, _ = draws
    x = feasible_design(fit, permitted_inputs("2025", "risk"), ("log_volume", "suvmax", "node_count"))
    assert schema.COL_CENTER not in x.columns and "true_risk" not in x.columns
    missing = [p["clinical_recorded"][schema.COL_TOBACCO] is None for p in fit]
    assert list(x[f"{schema.COL_TOBACCO} missing"] == 1) == missing
    with pytest.raises(ValueError, match="rich"):
        feasible_design(fit, (), ("necrosis",))


def test_population_ceilings_order(draws):
    fit, evaluate = draws
    rows = {r["row"]: r for r in population_ceilings(fit, evaluate, "2025")}
    assert list(rows)[-2:] == ["feasible ceiling (all permitted inputs)", "true (generator)"]
    # Image quantities add to the clinical values; nothing permitted reaches the generator's own truth.
    assert rows["+ node count"]["c_index"] > rows["clinical only"]["c_index"] + 0.05
    assert rows["true (generator)"]["auc"] > rows["feasible ceiling (all permitted inputs)"]["auc"]
    assert rows["feasible ceiling (all permitted inputs)"]["c_index"] == rows["+ node count"]["c_index"]


def test_feasible_ceiling_predictions_for_a_written_cohort(tmp_path, draws):
    fit, _ = draws
    summary = make_cohort(tmp_path / "new", n_patients=6, seed=4, layout="flat", progress=False)
    rows, threshold = feasible_ceiling_predictions(summary.ground_truth_path, fit)
    truth = json.loads(summary.ground_truth_path.read_text())["patients"]
    assert set(rows) == set(truth) and 0 < threshold < 1
    assert all(0 <= r["hpv_probability"] <= 1 and r["hpv_status"] in (0, 1) for r in rows.values())
    rows_2026, _ = feasible_ceiling_predictions(summary.ground_truth_path, fit, edition="2026")
    assert rows_2026.keys() == rows.keys()


def test_true_ceiling_uses_the_rich_posterior(tmp_path):
    summary = make_cohort(tmp_path / "rich", n_patients=6, seed=4, layout="flat", progress=False, world="rich")
    rows, _ = ceiling_predictions(summary.ground_truth_path, summary.ground_truth_path)
    truth = json.loads(summary.ground_truth_path.read_text())["patients"]
    for pid, row in rows.items():
        assert row["hpv_probability"] == truth[pid]["image_factors"]["hpv_posterior"]
