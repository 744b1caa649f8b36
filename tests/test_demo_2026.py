"""The 2026 demo's pieces on a small real 2026 cohort: baselines, weighted-score table, paired verdicts,
report (the whole ``demo --edition 2026`` trains a network: too long for a test; docs/tutorials/demo.md has its run)."""

from __future__ import annotations

import csv
import json
import shutil

import pytest


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    """Converted 2026 training (24) and new (10) cohorts, new patients numbered after the training ones."""
    from nnunet_hecktor.dataset_conversion import convert_dataset
    from nnunet_hecktor.synthetic import first_free_id_number, make_cohort

    root = tmp_path_factory.mktemp("demo2026")
    train = make_cohort(root / "train_src", n_patients=24, seed=5, edition="2026", enriched=True, progress=False)
    make_cohort(root / "new_src", n_patients=10, seed=1005, edition="2026", enriched=True, progress=False,
                id_offset=first_free_id_number(train.all_patient_ids))
    convert_dataset(root / "train_src", dataset_id=961, name="T26", output=root / "train")
    convert_dataset(root / "new_src", dataset_id=962, name="N26", output=root / "new")
    return root


def _perfect_model(root, output):
    """A 'model' that predicts the truth: the true masks, true stages, risk = the generator's true risk."""
    from nnunet_hecktor.baselines.ceilings import ceiling_predictions
    from nnunet_hecktor.baselines.tables import write_predictions_csv
    from nnunet_hecktor.clinical import read_clinical_csv
    from nnunet_hecktor.evaluation.evaluate import evaluate

    predictions = output / "predictions"
    shutil.copytree(root / "new" / "labelsTr", predictions)
    clinical = read_clinical_csv(root / "new" / "clinical.csv")
    risk, _ = ceiling_predictions(root / "new_src" / "synthetic_ground_truth.json",
                                  root / "train_src" / "synthetic_ground_truth.json")
    # A patient without a true stage gets a guess (not scored: no truth), as a model would give one.
    rows = {pid: {"risk": risk[pid]["risk"], "t_stage": record.get("T-stage") or "T2",
                  "n_stage": record.get("N-stage") or "N1"}
            for pid, record in clinical.items()}
    write_predictions_csv(predictions / "predictions.csv", rows)
    evaluate(root / "new" / "labelsTr", predictions, root / "new" / "clinical.csv", predictions / "predictions.csv",
             output / "evaluation", n_bootstrap=20, edition="2026", progress=False)
    return predictions


def test_2026_baselines_table_verdicts_and_report(cohorts, tmp_path):
    from nnunet_hecktor.demo.edition2026 import (
        BASELINES_2026,
        MODEL_ROW,
        markdown_table_2026,
        paired_comparisons_2026,
        read_table_2026,
        run_baselines_2026,
        write_report_2026,
    )

    predictions = _perfect_model(cohorts, tmp_path)
    # predictions.csv carries the stages as labels after risk.
    with (predictions / "predictions.csv").open() as handle:
        header = next(csv.reader(handle))
    assert header[-2:] == ["t_stage", "n_stage"]

    run_baselines_2026(cohorts / "train", cohorts / "new", predictions, tmp_path / "baselines",
                       train_ground_truth=cohorts / "train_src" / "synthetic_ground_truth.json",
                       new_ground_truth=cohorts / "new_src" / "synthetic_ground_truth.json", n_bootstrap=20,
                       progress=False)
    # The clinical-only risk model takes only 2026 test-time inputs: HPV status yes, T/N/M stage never.
    notes = json.loads((tmp_path / "baselines" / "done.json").read_text())["notes"]
    assert "HPV Status" in notes["clinical_only_risk_columns"]
    assert not {"T-stage", "N-stage", "M-stage", "CenterID"} & set(notes["clinical_only_risk_columns"])
    # The stage baselines wrote stage labels the evaluation read.
    with (tmp_path / "baselines" / "pet_pipeline" / "predictions.csv").open() as handle:
        first = next(csv.DictReader(handle))
    assert first["t_stage"].startswith("T") and first["n_stage"].startswith("N")

    rows = read_table_2026(tmp_path)
    assert [r["name"] for r in rows] == [MODEL_ROW, *BASELINES_2026]
    model = rows[0]
    assert model["t_ba"] == pytest.approx(1.0) and model["n_ba"] == pytest.approx(1.0)
    assert model["gtvp_dice"] == pytest.approx(1.0) and model["score"] is not None
    by_name = {r["name"]: r for r in rows}
    # Full rows have a weighted score; part-only rows show their parts only.
    assert by_name["pet_pipeline"]["score"] is not None and by_name["clinical_only"]["score"] is not None
    assert by_name["pet_suvmax40"]["score"] is None and by_name["pet_suvmax40"]["gtvn_dice_agg"] is None
    assert by_name["ceiling"]["gtvp_dice"] is None and by_name["ceiling"]["c_index"] is not None
    # The model with the model's own segmentation differs from those rows only in T/N/risk.
    assert by_name["clinical_only"]["gtvp_dice"] == model["gtvp_dice"]

    compared = paired_comparisons_2026(rows, n_bootstrap=200)
    found = {(c["baseline"], c["metric"]): c for c in compared}
    # Perfect stages beat the clinical-only stages (a verdict from a paired interval, not the point values).
    assert found[("clinical_only", "T stage balanced accuracy")]["verdict"] == "better"
    assert found[("pet_pipeline", "weighted score")]["verdict"] == "better"
    # Segmentation is not compared with a baseline that uses the model's own masks.
    assert ("clinical_only", "GTVp mean Dice") not in found
    assert "weighted score" in markdown_table_2026(rows)

    paths = write_report_2026(tmp_path, cohorts / "new", None, {"evaluate": 1.0, "baselines": 2.0}, None)
    text = paths["markdown"].read_text()
    assert "weighted score" in text and "-> better" in text and "| evaluate |" in text
    assert paths["html"].is_file() and (tmp_path / "report" / "confusion_t_stage.png").is_file()
