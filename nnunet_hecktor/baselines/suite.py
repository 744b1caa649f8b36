"""Compute and score every baseline on a set of new patients in one call.

Inputs are nnU-Net raw datasets as :func:`nnunet_hecktor.dataset_conversion.convert_dataset` writes
them (``imagesTr`` with PET on the CT grid, ``labelsTr``, ``clinical.csv``): the training dataset
gives the clinical table the clinical-only models are fitted on, the new patients' dataset gives
images, labels and targets. Every baseline is written as a model's output and scored by
:func:`nnunet_hecktor.evaluation.evaluate.evaluate` (same metrics, same bootstrap).

Layout of ``output_dir``::

    pet_suvmax40/            label maps of the 40 %-of-SUVmax rule
    pet_suv2.5/              label maps of the SUV > 2.5 rule
    <baseline>/predictions.csv   clinical_only, pet_volume (log GTVp volume of pet_suvmax40), ceiling
    <baseline>/evaluation/metrics.json
    done.json                written last: the baselines are complete
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnunet_hecktor.baselines.pet_rules import PET_RULE_DESCRIPTIONS

#: Baseline name -> what it is (row label of tables).
BASELINE_DESCRIPTIONS: dict[str, str] = {
    "pet_suvmax40": PET_RULE_DESCRIPTIONS["suvmax40"],
    "pet_suv2.5": PET_RULE_DESCRIPTIONS["suv2.5"],
    "clinical_only": "clinical only: Cox (risk) / logistic regression (HPV) on the training table",
    "pet_volume": "one number: log GTVp volume of the 40 % SUVmax rule as risk",
    "ceiling": "ceiling: the generator's true risk / HPV probability",
}
DONE_FILE = "done.json"


@dataclass
class BaselineResults:
    """Metrics (``metrics.json`` content) of each baseline, and notes on how they were fitted."""

    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


def run_baselines(train_dataset: str | os.PathLike, new_dataset: str | os.PathLike, output_dir: str | os.PathLike,
                  train_ground_truth: str | os.PathLike | None = None,
                  new_ground_truth: str | os.PathLike | None = None, n_bootstrap: int = 200, seed: int = 0,
                  num_processes: int = 1, progress: bool = True) -> BaselineResults:
    """Compute the PET rules, clinical-only models, one-number rule and (synthetic only) ceilings; score them.

    Parameters
    ----------
    train_dataset, new_dataset : path-like
        nnU-Net raw dataset folders (``imagesTr``, ``labelsTr``, ``clinical.csv``).
    output_dir : path-like
        Where the baselines' outputs and evaluations go (see the module docstring). When
        ``done.json`` exists there, the stored results are returned without recomputing.
    train_ground_truth, new_ground_truth : path-like, optional
        ``synthetic_ground_truth.json`` of both cohorts; without them there is no ceiling row.
    n_bootstrap, seed : int
        Bootstrap of the confidence intervals (as ``evaluate``).
    num_processes : int
        Worker processes for scoring the segmentations.
    progress : bool
        Progress bars.
    """
    from nnunet_hecktor.baselines.ceilings import ceiling_predictions
    from nnunet_hecktor.baselines.clinical_models import clinical_only_predictions
    from nnunet_hecktor.baselines.image_rule import log_gtvp_volume_risk
    from nnunet_hecktor.baselines.pet_rules import segment_folder
    from nnunet_hecktor.baselines.tables import write_predictions_csv
    from nnunet_hecktor.evaluation.evaluate import evaluate
    from nnunet_hecktor.fileio import write_json_atomic

    output_dir = Path(output_dir)
    done = output_dir / DONE_FILE
    if done.is_file():
        stored = json.loads(done.read_text())
        return BaselineResults(stored["metrics"], stored["notes"])
    train_dataset, new_dataset = Path(train_dataset), Path(new_dataset)
    labels, clinical = new_dataset / "labelsTr", new_dataset / "clinical.csv"
    result = BaselineResults()

    def score(name: str, seg_dir: Path | None = None, predictions_csv: Path | None = None) -> None:
        metrics = evaluate(labels if seg_dir else None, seg_dir, clinical if predictions_csv else None,
                           predictions_csv, output_dir / name / "evaluation", n_bootstrap=n_bootstrap, seed=seed,
                           num_processes=num_processes, plots=False, progress=progress).metrics
        result.metrics[name] = metrics

    for rule in ("suvmax40", "suv2.5"):
        seg_dir = output_dir / f"pet_{rule}" / "segmentations"
        segment_folder(new_dataset / "imagesTr", seg_dir, rule, progress=progress)
        score(f"pet_{rule}", seg_dir=seg_dir)

    clinical_baseline = clinical_only_predictions(train_dataset / "clinical.csv", clinical, random_state=seed)
    path = write_predictions_csv(output_dir / "clinical_only" / "predictions.csv", clinical_baseline.rows)
    score("clinical_only", predictions_csv=path)
    result.notes["clinical_only"] = {
        "risk_columns": clinical_baseline.risk_columns, "hpv_columns": clinical_baseline.hpv_columns,
        "train_patients_with_outcome": clinical_baseline.n_train_survival,
        "train_relapses": clinical_baseline.n_train_events, "train_patients_with_hpv": clinical_baseline.n_train_hpv,
        "train_hpv_negative": clinical_baseline.n_train_hpv_negative,
        "hpv_threshold": clinical_baseline.hpv_threshold}

    volume_rows = log_gtvp_volume_risk(output_dir / "pet_suvmax40" / "segmentations")
    path = write_predictions_csv(output_dir / "pet_volume" / "predictions.csv", volume_rows)
    score("pet_volume", predictions_csv=path)

    if train_ground_truth is not None and new_ground_truth is not None:
        rows, threshold = ceiling_predictions(new_ground_truth, train_ground_truth)
        # Only the patients of the new dataset (a ground truth may hold more).
        from nnunet_hecktor.clinical import read_clinical_csv

        rows = {pid: rows[pid] for pid in read_clinical_csv(clinical) if pid in rows}
        path = write_predictions_csv(output_dir / "ceiling" / "predictions.csv", rows)
        score("ceiling", predictions_csv=path)
        result.notes["ceiling"] = {"hpv_threshold": threshold}
    write_json_atomic(done, {"metrics": result.metrics, "notes": result.notes})
    return result
