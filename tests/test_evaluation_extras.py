"""Issue 19 item 5: what evaluation users expect besides the challenge figures.

Rows: per-centre figures equal the figures of each centre's patients alone; HPV Brier score and
confusion matrix against scikit-learn; time-dependent AUC and integrated Brier score against
scikit-survival called directly; a risk cut read from a model folder (median out-of-fold risk)
replaces the median of the scored patients, whose use is otherwise noted.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss
from sksurv.metrics import cumulative_dynamic_auc, integrated_brier_score
from sksurv.util import Surv
from test_evaluation_cli import EXPECTED_TASK1, write_cohort  # noqa: E402

from nnunet_hecktor.cli import main
from nnunet_hecktor.evaluation.evaluate import evaluate
from nnunet_hecktor.metrics.survival import harrell_c_index
from nnunet_hecktor.metrics.time_dependent import DEFAULT_HORIZONS_DAYS


@pytest.fixture
def cohort(tmp_path):
    return write_cohort(tmp_path)


def test_per_centre_figures(cohort):
    result = evaluate(cohort / "gt", cohort / "pred", cohort / "clinical.csv", cohort / "predictions.csv",
                      cohort / "o", n_bootstrap=0, progress=False, score_subset=True, plots=False)
    centres = {c["centre"]: c for c in result.metrics["per_centre"]}
    assert set(centres) == {"CHUP", "MDA", "all"}
    # CHUP-000 GTVp Dice 8/12, CHUP-001 1.0; MDA-002 both empty (1.0), MDA-003 false positive (0.0).
    assert centres["CHUP"]["gtvp_dice_mean"] == pytest.approx((8 / 12 + 1.0) / 2)
    assert centres["MDA"]["gtvp_dice_mean"] == pytest.approx(0.5)
    assert centres["all"]["gtvp_dice_mean"] == pytest.approx(EXPECTED_TASK1["gtvp_dice_mean"])
    assert centres["CHUP"]["c_index"] == pytest.approx(harrell_c_index([100, 400], [1, 0], [2.5, 0.1]))
    assert centres["MDA"]["c_index"] is None  # one patient with RFS: no comparable pair
    assert centres["MDA"]["n_task3"] == 2 and centres["CHUP"]["n_hpv_positive"] == 2
    assert centres["CHUP"]["hpv_balanced_accuracy"] is None  # both CHUP patients HPV positive
    assert (cohort / "o" / "per_centre.csv").read_text().splitlines()[0].startswith("centre,n_patients,n_task1")


def test_hpv_calibration_and_confusion_matrix(cohort):
    task3 = evaluate(clinical_csv=cohort / "clinical.csv", predictions_csv=cohort / "predictions.csv",
                     n_bootstrap=0, progress=False, score_subset=True).metrics["task3"]
    y, p, hard = [1, 1, 0, 1], [0.9, 0.7, 0.6, 0.2], [1, 1, 1, 0]
    assert task3["calibration"]["brier"] == pytest.approx(brier_score_loss(y, p))
    assert task3["calibration"]["brier_prevalence"] == pytest.approx(brier_score_loss(y, [0.75] * 4))
    assert sum(task3["calibration"]["reliability"]["counts"]) == 4
    matrix = task3["confusion_matrix"]
    assert matrix["matrix"] == [[0, 1], [1, 2]] and (matrix["tp"], matrix["fn"]) == (2, 1)
    assert sum(map(sum, matrix["matrix"])) == len(hard)


def _survival_cohort(root, n=80, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    event_time = rng.exponential(900 * np.exp(-0.8 * x))
    censor = rng.uniform(400, 2500, n)
    time, event = np.minimum(event_time, censor).round(1), (event_time <= censor).astype(int)
    days = (365.25, 730.5, 1095.75)
    survival = np.exp(-np.outer(np.exp(0.8 * x), days) / 900)
    pids = [f"CHUP-{i:03d}" for i in range(n)]
    lines = ["PatientID,RFS,Relapse"] + [f"{p},{t},{e}" for p, t, e in zip(pids, time, event)]
    (root / "surv_clinical.csv").write_text("\n".join(lines) + "\n")
    header = "PatientID,risk," + ",".join(f"survival_{d:g}" for d in days)
    lines = [header] + [f"{p},{r:.6f}," + ",".join(f"{s:.6f}" for s in row) for p, r, row in zip(pids, x, survival)]
    (root / "surv_predictions.csv").write_text("\n".join(lines) + "\n")
    return time, event, x, np.array(days), np.round(survival, 6)


def test_time_dependent_auc_and_integrated_brier_score_match_scikit_survival(tmp_path):
    time, event, risk, days, survival = _survival_cohort(tmp_path)
    found = evaluate(clinical_csv=tmp_path / "surv_clinical.csv", predictions_csv=tmp_path / "surv_predictions.csv",
                     n_bootstrap=0, progress=False).metrics["task2"]["time_dependent"]
    y = Surv.from_arrays(event.astype(bool), time)
    horizons = np.array(DEFAULT_HORIZONS_DAYS)  # 1, 2, 3, 5 years, those inside the follow-up
    keep = horizons[(horizons >= time[event == 1].min()) & (horizons < time.max())]
    auc, mean_auc = cumulative_dynamic_auc(y, y, np.round(risk, 6), keep)
    assert found["times_days"] == pytest.approx(list(keep))
    assert found["auc"] == pytest.approx(list(auc)) and found["mean_auc"] == pytest.approx(mean_auc)
    inside = (days >= time.min()) & (days < time.max())
    assert found["integrated_brier_score"] == pytest.approx(integrated_brier_score(y, y, survival[:, inside],
                                                                                  days[inside]))
    assert found["censoring_from"] == "scored patients"


def test_risk_cut_from_a_model_folder(tmp_path, capsys):
    time, event, risk, _, _ = _survival_cohort(tmp_path)
    model = tmp_path / "model"
    model.mkdir()
    oof = np.linspace(-1, 3, 11)  # median 1.0, far from the scored patients' median (about 0)
    (model / "oof_predictions.csv").write_text("PatientID,risk\n" + "".join(f"T-{i},{r}\n" for i, r in enumerate(oof)))
    argv = ["evaluate", "--clinical", str(tmp_path / "surv_clinical.csv"), "--predictions",
            str(tmp_path / "surv_predictions.csv"), "--output", str(tmp_path / "o"), "--bootstrap", "0"]
    assert main(argv + ["--risk-cut", str(model)]) == 0
    out = capsys.readouterr().out
    assert "log-rank p (fixed cut)" in out
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["settings"]["risk_cut"] == 1.0 and "out-of-fold" in metrics["settings"]["risk_cut_source"]
    assert metrics["task2"]["risk_groups"]["n_high"] == int(np.sum(np.round(risk, 6) > 1.0))
    assert not any("not independent" in n for n in metrics["task2"]["notes"])
    assert (tmp_path / "o" / "kaplan_meier.png").read_bytes()[:4] == b"\x89PNG"

    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "log-rank p (median split)" in out and "not independent of them" in out
    assert main(argv + ["--risk-cut", str(tmp_path / "nowhere")]) == 1
    assert "neither a number nor a model folder" in capsys.readouterr().err
