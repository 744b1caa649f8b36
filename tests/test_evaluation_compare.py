"""Issue 19 item 1: paired comparisons of prediction sets on the same patients.

Rows: ``evaluate --compare`` on two sets (each set's own evaluation, then the paired differences
with their verdicts, consistent with each set's figures); a set against itself is undecided with a
difference of 0; the demo summary's comparisons are paired verdicts read from per_patient.csv files.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from test_evaluation_cli import write_cohort  # noqa: E402

from nnunet_hecktor.cli import main
from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.evaluation.compare import compare_rows, parse_compare_specs
from nnunet_hecktor.evaluation.evaluate import evaluate
from nnunet_hecktor.evaluation.per_patient import read_rows
from nnunet_hecktor.metrics.paired import VERDICTS

WORSE = """PatientID,hpv_probability,hpv_status,risk
CHUP-000,0.5,1,0.1
CHUP-001,0.5,1,2.5
MDA-002,0.5,1,3.0
MDA-003,0.5,1,1.0
"""


@pytest.fixture
def cohort(tmp_path):
    root = write_cohort(tmp_path)
    (root / "worse").mkdir()
    for path in sorted((root / "pred").glob("*.nii.gz")):
        image = sitk.ReadImage(str(path))
        empty = sitk.Image(image.GetSize(), sitk.sitkUInt8)
        empty.CopyInformation(image)
        sitk.WriteImage(empty, str(root / "worse" / path.name))
    (root / "worse.csv").write_text(WORSE)
    return root


def test_compare_command_writes_paired_verdicts(cohort, capsys):
    argv = ["evaluate", "--gt", str(cohort / "gt"), "--clinical", str(cohort / "clinical.csv"), "--score-subset",
            "--output", str(cohort / "cmp"), "--bootstrap", "300", "--no-plots",
            "--compare", f"model={cohort / 'pred'}", "--compare", f"model={cohort / 'predictions.csv'}",
            "--compare", f"empty={cohort / 'worse'}", "--compare", f"empty={cohort / 'worse.csv'}"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "GTVp mean Dice: model - empty = " in out and "C-index: model - empty" in out
    saved = json.loads((cohort / "cmp" / "comparisons.json").read_text())
    own = {name: json.loads((cohort / "cmp" / name / "metrics.json").read_text()) for name in ("model", "empty")}
    figures = {"GTVp mean Dice": ("task1", "gtvp_dice_mean"), "GTVn DSCagg": ("task1", "gtvn_dice_agg"),
               "GTVn F1agg": ("task1", "gtvn_f1_agg"), "C-index": ("task2", "c_index"),
               "balanced accuracy": ("task3", "balanced_accuracy"), "AUC": ("task3", "auc")}
    assert {c["metric"] for c in saved["comparisons"]} == set(figures)
    for c in saved["comparisons"]:
        block, key = figures[c["metric"]]
        assert c["value_a"] == pytest.approx(own["model"][block][key]), c["metric"]
        assert c["value_b"] == pytest.approx(own["empty"][block][key]), c["metric"]
        assert c["verdict"] in VERDICTS and c["interval"][0] <= c["difference"] <= c["interval"][1]
    # An empty segmentation misses every GTVp that exists: its GTVp Dice is lower.
    gtvp = next(c for c in saved["comparisons"] if c["metric"] == "GTVp mean Dice")
    assert gtvp["difference"] > 0


def test_a_set_against_itself_is_undecided(cohort):
    rows = evaluate(cohort / "gt", cohort / "pred", cohort / "clinical.csv", cohort / "predictions.csv",
                    n_bootstrap=0, progress=False, score_subset=True).per_patient
    found, skipped = compare_rows(rows, rows, "a", "a", n_bootstrap=100)
    assert found and not skipped
    for _, c in found:
        assert c.difference == 0 and c.verdict == "undecided"


@pytest.mark.parametrize("specs, message", [
    (["a=x.csv"], "neither a predictions CSV nor a folder"),
    (["justname"], "expected NAME=PATH"),
    (["a={csv}"], "at least two named prediction sets"),
    (["a={csv}", "a={csv}"], "two inputs of one kind"),
])
def test_compare_spec_errors(cohort, specs, message):
    specs = [s.format(csv=cohort / "predictions.csv") for s in specs]
    with pytest.raises(HecktorError, match=message):
        parse_compare_specs(specs)


def test_demo_summary_comparisons_are_paired(cohort):
    """The demo summary reads per_patient.csv of the model and of a baseline and gives paired verdicts."""
    from nnunet_hecktor.baselines.suite import DONE_FILE
    from nnunet_hecktor.demo.summary import paired_comparisons, read_summary_table

    demo = cohort / "demo"
    evaluate(cohort / "gt", cohort / "pred", cohort / "clinical.csv", cohort / "predictions.csv",
             demo / "evaluation", n_bootstrap=0, progress=False, score_subset=True, plots=False)
    baseline = evaluate(cohort / "gt", cohort / "worse", cohort / "clinical.csv", cohort / "worse.csv",
                        demo / "baselines" / "clinical_only" / "evaluation", n_bootstrap=0, progress=False,
                        score_subset=True, plots=False)
    (demo / "baselines" / DONE_FILE).write_text(json.dumps({"metrics": {"clinical_only": baseline.metrics}}))
    rows = read_summary_table(demo, "model")
    found = paired_comparisons(rows, n_bootstrap=200)
    assert {c["metric"] for c in found} == {"risk C-index", "HPV AUC", "HPV balanced accuracy"}
    for c in found:
        # C-index on the 3 patients with RFS, HPV figures on all 4.
        n = 3 if c["metric"] == "risk C-index" else 4
        assert c["verdict"] in VERDICTS and f"paired 95 % CI, {n} patients" in c["text"]
    c_index = next(c for c in found if c["metric"] == "risk C-index")
    assert c_index["model"] == pytest.approx(rows[0]["c_index"])
    assert len(read_rows(rows[0]["per_patient"])) == 4
    assert np.isfinite(c_index["difference"])


def test_demo_report_says_synthetic_explains_figures_and_gives_paired_verdicts(cohort):
    from nnunet_hecktor.baselines.suite import DONE_FILE
    from nnunet_hecktor.demo.report import GLOSSARY, SYNTHETIC_NOTICE, write_report

    demo = cohort / "demo"
    evaluate(cohort / "gt", cohort / "pred", cohort / "clinical.csv", cohort / "predictions.csv",
             demo / "evaluation", n_bootstrap=0, progress=False, score_subset=True, plots=False)
    baseline = evaluate(cohort / "gt", cohort / "worse", output_dir=demo / "baselines" / "pet_suv2.5" / "evaluation",
                        n_bootstrap=0, progress=False, plots=False)
    (demo / "baselines" / DONE_FILE).write_text(json.dumps({"metrics": {"pet_suv2.5": baseline.metrics}}))
    paths = write_report(demo, cohort, None, {"evaluate": 1.0})
    page = paths["html"].read_text()
    assert SYNTHETIC_NOTICE.split(":")[0] in page
    for term, _ in GLOSSARY:
        assert term in page
    assert "GTVp mean Dice: model" in page and "paired 95 % CI, 4 patients" in page
    assert "MODEL LOWER" not in page and "model higher" not in page
