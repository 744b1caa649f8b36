"""Issue 17 item 5: ``evaluate --edition 2026`` scores T/N stage and the weighted 2026 score.

Rows: the weighted score against a team's published figures; the same predictions given as a CSV and
as the 2026 container layout (rfs.json as time, the README's convention) score alike; the rfs
convention flips the C-index; the Dice rules of the score against hand-computed values; a 2026 output
folder read as 2025 is a clear error.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from sklearn.metrics import balanced_accuracy_score
from test_evaluation_cli import EXPECTED_TASK1, write_cohort  # noqa: E402

from nnunet_hecktor.cli import main
from nnunet_hecktor.editions import get_edition
from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.evaluation.evaluate import evaluate
from nnunet_hecktor.metrics.challenge_score import score_components, weighted_score
from nnunet_hecktor.metrics.survival import harrell_c_index

CLINICAL_2026 = """PatientID,CenterID,Age,HPV Status,Relapse,RFS,T_stage,N_stage
CHUP-000,2,60,1,1,100,T2,N1
CHUP-001,2,55,1,0,400,T4a,N2b
MDA-002,5,70,0,1,250,T1,N0
MDA-003,5,66,1,0,300,T3,N2
"""
# Predicted stages and a time-like RFS output (higher = later relapse).
PREDICTED = {"CHUP-000": ("T2", "N1", 200.0), "CHUP-001": ("T3", "N2", 500.0), "MDA-002": ("T1", "N1", 50.0),
             "MDA-003": ("T3", "N0", 100.0)}
T_TRUE, N_TRUE = [2, 4, 1, 3], [1, 2, 0, 2]
TIME, EVENT = [100, 400, 250, 300], [1, 0, 1, 0]


def test_weighted_score_reproduces_a_published_2026_result():
    """A team's official test figures (Dice 0.652, T BA 0.461, N BA 0.564, C 0.558) give 0.5654; the
    inputs are rounded to 3 decimals, so the score agrees to within 0.0005."""
    weights = get_edition("2026").score_weights
    assert weights == {"dice": 0.25, "stage_balanced_accuracy": 0.35, "c_index": 0.40}
    components = {"dice": 0.652, "stage_balanced_accuracy": (0.461 + 0.564) / 2, "c_index": 0.558}
    assert weighted_score(components, weights) == pytest.approx(0.5654, abs=5e-4)
    assert np.isnan(weighted_score({**components, "c_index": float("nan")}, weights))
    with pytest.raises(ValueError):
        weighted_score(components, get_edition("2025").score_weights)


@pytest.fixture
def cohort(tmp_path):
    root = write_cohort(tmp_path)
    (root / "clinical.csv").write_text(CLINICAL_2026)
    lines = ["PatientID,T-stage,n_stage,risk"] + [f"{p},{t},{n},{-time}" for p, (t, n, time) in PREDICTED.items()]
    (root / "predictions.csv").write_text("\n".join(lines) + "\n")
    return root


def _container_outputs(root, convention="time"):
    layout = get_edition("2026").container_outputs
    out = root / "runs"
    for pid, (t, n, time) in PREDICTED.items():
        (out / pid / layout["segmentation"]).parent.mkdir(parents=True)
        sitk.WriteImage(sitk.ReadImage(str(root / "pred" / f"{pid}.nii.gz")), str(out / pid / layout["segmentation"]))
        (out / pid / layout["t_stage"]).write_text(json.dumps(t))
        (out / pid / layout["n_stage"]).write_text(json.dumps(n))
        (out / pid / layout["rfs"]).write_text(json.dumps(time if convention == "time" else -time))
    return out


def test_2026_csv_and_container_outputs_score_alike(cohort):
    from_csv = evaluate(cohort / "gt", cohort / "pred", cohort / "clinical.csv", cohort / "predictions.csv",
                        n_bootstrap=50, progress=False, edition="2026").metrics
    from_container = evaluate(cohort / "gt", clinical_csv=cohort / "clinical.csv",
                              challenge_outputs=_container_outputs(cohort), n_bootstrap=50, progress=False,
                              edition="2026").metrics
    t_ba = balanced_accuracy_score(T_TRUE, [2, 3, 1, 3])
    n_ba = balanced_accuracy_score(N_TRUE, [1, 2, 1, 0])
    c = harrell_c_index(TIME, EVENT, [-p[2] for p in PREDICTED.values()])
    for metrics in (from_csv, from_container):
        assert metrics["t_stage"]["balanced_accuracy"] == pytest.approx(t_ba)
        assert metrics["n_stage"]["balanced_accuracy"] == pytest.approx(n_ba)
        assert metrics["t_stage"]["confusion_matrix"][4] == [0, 0, 0, 1, 0]  # T4a read as T4, predicted T3
        assert metrics["task2"]["c_index"] == pytest.approx(c)
        score = metrics["edition_score"]
        expected = weighted_score(score_components(EXPECTED_TASK1["gtvp_dice_mean"], EXPECTED_TASK1["gtvn_dice_agg"],
                                                   t_ba, n_ba, c), get_edition("2026").score_weights)
        assert score["score"] == pytest.approx(expected) and score["dice_rule"] == "hecktor2025"
        low, high = score["ci95"]["score"]
        assert low <= score["score"] <= high
    assert from_container["settings"]["rfs_convention"] == "time"

    # The same files read as risks: every comparable pair flips (no tied risks), C -> 1 - C.
    flipped = evaluate(clinical_csv=cohort / "clinical.csv", challenge_outputs=cohort / "runs", n_bootstrap=0,
                       progress=False, edition="2026", rfs_convention="risk").metrics
    assert flipped["task2"]["c_index"] == pytest.approx(1 - c)


def test_dice_rules_of_the_2026_score(cohort):
    metrics = evaluate(cohort / "gt", cohort / "pred", cohort / "clinical.csv", cohort / "predictions.csv",
                       n_bootstrap=0, progress=False, edition="2026", dice_rule="aggregated").metrics
    variants = metrics["edition_score"]["dice_variants"]
    # GTVp voxels (2 mm3 each): intersections 4 + 8, volumes (8 + 4) + (8 + 8) + 0 + (0 + 1).
    assert variants["aggregated"]["gtvp"] == pytest.approx(2 * 12 / 29)
    assert variants["hecktor2025"] == {"gtvp": pytest.approx(EXPECTED_TASK1["gtvp_dice_mean"]),
                                       "gtvn": pytest.approx(EXPECTED_TASK1["gtvn_dice_agg"])}
    # Per patient GTVn: A 1.0, B 0.0, C and D no GTVn anywhere (1.0 as GTVp's rule).
    assert variants["per-patient"]["gtvn"] == pytest.approx((1.0 + 0.0 + 1.0 + 1.0) / 4)
    assert metrics["edition_score"]["parts"]["gtvp_dice"] == pytest.approx(2 * 12 / 29)


def test_2026_outputs_read_as_2025_say_so(cohort, capsys):
    _container_outputs(cohort)
    with pytest.raises(HecktorError, match="hold HECKTOR 2026 outputs .* give --edition 2026"):
        evaluate(cohort / "gt", challenge_outputs=cohort / "runs", n_bootstrap=0, progress=False)
    assert main(["evaluate", "--edition", "2026", "--gt", str(cohort / "gt"), "--clinical",
                 str(cohort / "clinical.csv"), "--challenge-outputs", str(cohort / "runs"), "--output",
                 str(cohort / "o"), "--bootstrap", "20"]) == 0
    out = capsys.readouterr().out
    assert "T stage (4 patients): balanced accuracy" in out and "HECKTOR 2026 score" in out
    for name in ("confusion_t_stage.png", "confusion_n_stage.png", "kaplan_meier.png"):
        assert (cohort / "o" / name).read_bytes()[:4] == b"\x89PNG"


def test_paired_2026_score(cohort):
    from nnunet_hecktor.evaluation.compare import compare_rows

    a = evaluate(cohort / "gt", cohort / "pred", cohort / "clinical.csv", cohort / "predictions.csv",
                 n_bootstrap=0, progress=False, edition="2026")
    (cohort / "other.csv").write_text("PatientID,t_stage,n_stage,risk\nCHUP-000,T1,N0,1\nCHUP-001,T1,N0,2\n"
                                      "MDA-002,T1,N0,3\nMDA-003,T1,N0,4\n")
    b = evaluate(cohort / "gt", cohort / "pred", cohort / "clinical.csv", cohort / "other.csv",
                 n_bootstrap=0, progress=False, edition="2026")
    weights = get_edition("2026").score_weights
    found, skipped = compare_rows(a.per_patient, b.per_patient, "a", "b", n_bootstrap=200, score_weights=weights)
    score = next(c for task, c in found if task == "edition_score")
    assert score.value_a == pytest.approx(a.metrics["edition_score"]["score"])
    assert score.value_b == pytest.approx(b.metrics["edition_score"]["score"])
    assert score.n_patients == 4 and not skipped
    same, _ = compare_rows(a.per_patient, a.per_patient, "a", "a", n_bootstrap=50, score_weights=weights)
    assert all(c.difference == 0 and c.verdict == "undecided" for _, c in same)
