"""The demo's steps, from synthetic data to the report (see :mod:`nnunet_hecktor.demo`)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnunet_hecktor.checkpoints import FINAL_CHECKPOINT, LATEST_CHECKPOINT
from nnunet_hecktor.demo.steps import StepRunner, run_nnunet_with_progress
from nnunet_hecktor.errors import HecktorError

#: The default recipe (what ``nnunet-hecktor demo OUTPUT`` runs); see docs/tutorials/demo.md for how it was chosen.
DEMO_TRAINER = "HecktorMultiTaskTrainer_demo"
DEMO_PLANS = "nnUNetPlansDemo"
DEMO_CONFIGURATION = "3d_fullres"
#: Patch (z, y, x) and batch of the demo plans: CPU iterations stay cheap on the "demo" image size.
DEMO_PATCH_SIZE = (32, 32, 32)
DEMO_BATCH_SIZE = 2
DEMO_SIZE = "demo"
DEMO_PATIENTS = 100
DEMO_NEW_PATIENTS = 110
#: The new patients' cohort seed is the training seed plus this (never the same patients).
NEW_PATIENTS_SEED_OFFSET = 1000
#: HECKTOR editions the demo runs (2025: segmentation, HPV, risk; 2026: segmentation, T/N stage, risk,
#: ranked by the weighted score).
DEMO_EDITIONS = ("2025", "2026")
#: 2026 only: the stage cohort, whose masks the fold-0 network predicts as it would a new patient's, so
#: the patient-level models are fitted on masks as deployed (docs/tutorials/demo.md, "HECKTOR 2026").
DEMO_STAGE_PATIENTS = 100
#: The stage cohort's seed is the training seed plus this.
STAGE_PATIENTS_SEED_OFFSET = 2000

#: Settings for nnU-Net subprocesses on a small CPU machine: no augmentation worker processes,
#: no torch.compile, and OpenMP threads that sleep instead of spin-waiting when cores are shared.
CPU_FRIENDLY_VARIABLES = {
    "nnUNet_n_proc_DA": "0",
    "nnUNet_compile": "false",
    "OMP_WAIT_POLICY": "PASSIVE",
}


@dataclass
class DemoResult:
    """What the demo produced: folders, seconds per step, the summary table and the report."""

    output: Path
    dataset_name: str = ""
    model_dir: Path | None = None
    predictions_dir: Path | None = None
    report: Path | None = None
    steps: dict[str, float] = field(default_factory=dict)
    resumed: list[str] = field(default_factory=list)
    table: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, object] = field(default_factory=dict)


def _trainer_epochs(trainer: str) -> int | None:
    """Epochs of a trainer class for the progress bar (``demo_epochs``, or 2 for ``*_tiny``), else None."""
    import nnunet_hecktor.trainers as trainers

    cls = getattr(trainers, trainer, None)
    if cls is not None and getattr(cls, "demo_epochs", None):
        return int(cls.demo_epochs)
    return 2 if trainer.endswith("_tiny") else None


def run_demo(output: str | os.PathLike, patients: int = DEMO_PATIENTS, test_patients: int = DEMO_NEW_PATIENTS,
             seed: int = 0, dataset_id: int = 501, num_processes: int = 1, device: str = "auto",
             size: str = DEMO_SIZE, trainer: str = DEMO_TRAINER, n_bootstrap: int = 200, edition: str = "2025",
             stage_patients: int = DEMO_STAGE_PATIENTS) -> DemoResult:
    """Run the demo into ``output`` (resuming a previous run there) and return what it made.

    Parameters
    ----------
    output : path
        Demo folder; receives ``synthetic_train/``, ``synthetic_new_patients/``, ``nnUNet_raw/``,
        ``nnUNet_preprocessed/``, ``nnUNet_results/``, ``predictions/``, ``evaluation/``,
        ``baselines/``, ``report/`` (``report.html``, ``report.md``, PNGs), ``logs/``,
        ``demo_steps/`` (one done-marker per completed step) and ``demo_summary.json``.
    patients : int
        Synthetic training patients (enriched cohort: ~30 % HPV negative, ~43 % relapse).
    test_patients : int
        Synthetic new patients (another seed, also enriched) to predict and score.
    seed : int
        Seed of the training cohort (the new patients use ``seed + 1000``).
    dataset_id : int
        nnU-Net dataset id of the training dataset (``dataset_id + 1`` holds the new patients).
    num_processes : int
        Worker processes for generation, conversion, preprocessing and scoring.
    device : str
        ``auto`` (CUDA when available, else the CPU), ``cpu`` or ``cuda``: for training and prediction.
    size : str
        Synthetic size preset (``demo``: real-size neck at ~3.5 mm; ``test`` for quick checks).
    trainer : str
        nnU-Net trainer class (default :data:`DEMO_TRAINER`).
    n_bootstrap : int
        Bootstrap replicates of the confidence intervals.
    edition : str
        ``2025`` (default: segmentation, HPV, risk) or ``2026``: a third synthetic cohort of
        ``stage_patients`` (seed ``seed + 2000``, dataset ``dataset_id + 2``) whose masks the fold-0
        network predicts, post-processed as deployed; the prognosis stage (T stage, N stage, risk;
        :func:`nnunet_hecktor.model_folder.build.build_stage`) is fitted on them (step ``prognosis``,
        after ``train``); the new patients are scored with the 2026 weighted score next to the 2026
        baselines (:mod:`nnunet_hecktor.demo.edition2026`).
    stage_patients : int
        2026 only: patients of the stage cohort.
    """
    from nnunet_hecktor.nnunet_env import nnunet_environment
    from nnunet_hecktor.prediction.model import resolve_device

    # nnUNetv2_train takes cpu/cuda only: "auto" is decided here, once, for every step.
    device = str(resolve_device(device))

    if edition not in DEMO_EDITIONS:
        raise HecktorError(f"the demo runs HECKTOR {' or '.join(DEMO_EDITIONS)}, not {edition!r}")
    is_2026 = edition == "2026"
    output = Path(output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    env = nnunet_environment(output, extra=CPU_FRIENDLY_VARIABLES)
    raw = Path(env["nnUNet_raw"])
    name, test_name = ("HECKTOR2026Demo", "HECKTOR2026DemoNew") if is_2026 else ("HECKTORDemo", "HECKTORDemoNew")
    stage_name = "HECKTOR2026DemoStage"
    result = DemoResult(output=output, dataset_name=f"Dataset{dataset_id:03d}_{name}")
    train_dataset = raw / result.dataset_name
    test_dataset = raw / f"Dataset{dataset_id + 1:03d}_{test_name}"
    train_src, test_src = output / "synthetic_train", output / "synthetic_new_patients"
    stage_src = output / "synthetic_stage_patients"
    stage_dataset = raw / f"Dataset{dataset_id + 2:03d}_{stage_name}"
    preprocessed = Path(env["nnUNet_preprocessed"]) / result.dataset_name
    model_dir = Path(env["nnUNet_results"]) / result.dataset_name / f"{trainer}__{DEMO_PLANS}__{DEMO_CONFIGURATION}"
    predictions_dir = output / "predictions"
    result.model_dir, result.predictions_dir = model_dir, predictions_dir
    steps = StepRunner(output, order=["synth", "convert", "plan_and_preprocess", "train", "postprocessing"]
                       + (["prognosis"] if is_2026 else []) + ["predict", "evaluate", "baselines", "report"])

    def fresh(*folders: Path) -> None:
        """Remove what an incomplete (or now stale) earlier attempt of a step left behind."""
        for folder in folders:
            if folder.exists():
                shutil.rmtree(folder)

    def synth() -> dict:
        from nnunet_hecktor.synthetic import first_free_id_number, make_cohort

        fresh(train_src, test_src, stage_src)
        made = {}
        id_offset = 0
        cohorts = [(train_src, patients, seed), (test_src, test_patients, seed + NEW_PATIENTS_SEED_OFFSET)]
        if is_2026:
            cohorts.insert(1, (stage_src, stage_patients, seed + STAGE_PATIENTS_SEED_OFFSET))
        for folder, n, cohort_seed in cohorts:
            summary = make_cohort(folder, n_patients=n, seed=cohort_seed, size=size, num_processes=num_processes,
                                  overwrite=True, enriched=True, id_offset=id_offset, edition=edition)
            # New patients are numbered after the training patients: no PatientID repeats across cohorts.
            id_offset = first_free_id_number(summary.all_patient_ids)
            made[folder.name] = {"patients": summary.n_patients, "seed": cohort_seed,
                                 "relapse_rate": summary.event_rate, "hpv_positive_rate": summary.hpv_positive_rate}
        return made

    def convert() -> dict:
        from nnunet_hecktor.dataset_conversion import convert_dataset

        fresh(train_dataset, test_dataset, stage_dataset)
        convert_dataset(train_src, dataset_id=dataset_id, name=name, output=train_dataset,
                        num_processes=num_processes)
        convert_dataset(test_src, dataset_id=dataset_id + 1, name=test_name, output=test_dataset,
                        num_processes=num_processes)
        made = {"train": str(train_dataset), "new": str(test_dataset)}
        if is_2026:
            convert_dataset(stage_src, dataset_id=dataset_id + 2, name=stage_name, output=stage_dataset,
                            num_processes=num_processes)
            made["stage"] = str(stage_dataset)
        return made

    def plan() -> dict:
        from nnunet_hecktor.trainers.small_plans import write_small_plans

        # nnU-Net's planner sets torch's thread count from nnUNet_n_proc_DA, so 0 would break it.
        # No --verify_dataset_integrity: the converter has checked every case's geometry and labels.
        planning_env = {k: v for k, v in env.items() if k != "nnUNet_n_proc_DA"}
        fresh(preprocessed)
        run_nnunet_with_progress(
            "nnUNetv2_plan_and_preprocess",
            ["-d", str(dataset_id), "-c", DEMO_CONFIGURATION, "-np", str(num_processes), "-npfp", str(num_processes)],
            planning_env, output / "logs" / "plan_and_preprocess.log", total=3, unit="stage", kind="plan")
        path = write_small_plans(preprocessed, "nnUNetPlans", DEMO_PLANS, configurations=(DEMO_CONFIGURATION,),
                                 patch_size=DEMO_PATCH_SIZE, batch_size=DEMO_BATCH_SIZE)
        return {"plans": str(path)}

    def train() -> dict:
        from nnunet_hecktor.nnunet_env import SEED_VARIABLE

        args = [str(dataset_id), DEMO_CONFIGURATION, "0", "-tr", trainer, "-p", DEMO_PLANS, "-device", device]
        if steps.ran_earlier:
            fresh(model_dir)  # trained on data that has just been remade
        elif any((model_dir / "fold_0" / name).is_file()
                 for name in (FINAL_CHECKPOINT, LATEST_CHECKPOINT)):
            # An interrupted training continues from its last checkpoint (nnU-Net's --c; after the
            # last epoch only the end-of-training steps are redone).
            args.append("--c")
        # Seeded training (initialisation and the in-process augmentation stream): the same command
        # gives the same model on the same machine.
        run_nnunet_with_progress("nnUNetv2_train", args, {**env, SEED_VARIABLE: str(seed)},
                                 output / "logs" / "train_fold0.log", total=_trainer_epochs(trainer), unit="epoch",
                                 kind="train")
        return {"model": str(result.model_dir)}

    def postprocessing() -> dict:
        from nnunet_hecktor.model_folder.fold_postprocessing import tune_on_fold_validation

        # Chosen on fold 0's validation patients (training patients the network never trained on),
        # never on the new patients it is scored on.
        tuned = tune_on_fold_validation(model_dir, train_dataset, preprocessed / "splits_final.json", fold=0,
                                        device=device, use_mirroring=False, progress=False)
        return {"rules": tuned.config.describe(), "validation_patients": tuned.n_cases,
                "validation_before": tuned.before, "validation_after": tuned.after}

    def prognosis() -> dict:
        from nnunet_hecktor.demo.edition2026 import fit_stage_on_stage_cohort

        return fit_stage_on_stage_cohort(model_dir, stage_dataset, train_dataset, device=device,
                                         n_bootstrap=n_bootstrap, random_state=seed)

    def predict() -> dict:
        from nnunet_hecktor.prediction.api import predict as predict_folder

        fresh(predictions_dir)
        # No test-time mirroring: 8x fewer network passes keeps prediction of 100+ patients to minutes on a CPU.
        # Default checkpoint: the deployed (validated, SWA-averaged) weights; the model folder's
        # post-processing (step "postprocessing") is applied, as deployment applies it.
        stage = None
        if is_2026:
            # The staged prognosis stage (T stage, N stage, risk), as the predict command routes it.
            from nnunet_hecktor.prognosis.deployment import resolve_stage_models

            stage = resolve_stage_models(model_dir, None, False)
            if stage is None:
                raise HecktorError(f"{model_dir}: no staged prognosis stage; the 'prognosis' step must run first")
        summary = predict_folder(test_src, predictions_dir, model_dir, folds=[0],
                                 device=device, use_mirroring=False, prognosis=stage,
                                 # 2026 scores no HPV output (HPV status is an input): no warning that
                                 # the stage gives no HPV model.
                                 warn_missing_stage=not is_2026)
        return {"predicted": len(summary.predicted)}

    def evaluate() -> dict:
        from nnunet_hecktor.evaluation.evaluate import evaluate as evaluate_folder

        fresh(output / "evaluation")
        evaluate_folder(test_dataset / "labelsTr", predictions_dir, clinical_csv=test_dataset / "clinical.csv",
                        predictions_csv=predictions_dir / "predictions.csv", output_dir=output / "evaluation",
                        n_bootstrap=n_bootstrap, num_processes=num_processes, edition=edition)
        return {"metrics": str(output / "evaluation" / "metrics.json")}

    def baselines() -> dict:
        from nnunet_hecktor.baselines.suite import run_baselines

        fresh(output / "baselines")
        if is_2026:
            from nnunet_hecktor.demo.edition2026 import run_baselines_2026

            run_baselines_2026(train_dataset, test_dataset, predictions_dir, output / "baselines",
                               train_ground_truth=train_src / "synthetic_ground_truth.json",
                               new_ground_truth=test_src / "synthetic_ground_truth.json",
                               n_bootstrap=n_bootstrap, seed=seed, num_processes=num_processes)
            return {"baselines": str(output / "baselines")}
        run_baselines(train_dataset, test_dataset, output / "baselines",
                      train_ground_truth=train_src / "synthetic_ground_truth.json",
                      new_ground_truth=test_src / "synthetic_ground_truth.json", n_bootstrap=n_bootstrap,
                      num_processes=num_processes)
        return {"baselines": str(output / "baselines")}

    cohorts = (f"{patients} training + {stage_patients} stage + {test_patients} new patients" if is_2026
               else f"{patients} training + {test_patients} new patients")
    steps.run("synth", f"synthetic HECKTOR {edition} cohorts: {cohorts} (size '{size}', enriched)", synth)
    steps.run("convert", "both cohorts -> nnU-Net raw datasets (PET resampled onto the CT grid)", convert)
    steps.run("plan_and_preprocess", f"nnUNetv2_plan_and_preprocess, then plans '{DEMO_PLANS}' "
                                     f"(patch {DEMO_PATCH_SIZE}, batch {DEMO_BATCH_SIZE}, 8-32 features)", plan)
    steps.run("train", f"nnUNetv2_train fold 0 with {trainer} (segmentation + HPV + risk heads, SWA)", train)
    steps.run("postprocessing", "tune-postprocessing on fold 0's validation patients (predicted as new patients), "
                                "staged in the model folder", postprocessing)
    if is_2026:
        steps.run("prognosis", f"prognosis build --edition 2026 (T stage, N stage, risk) on the fold-0 masks of the "
                               f"{stage_patients} stage patients, post-processed as deployed", prognosis)
    steps.run("predict", f"nnunet-hecktor predict: {test_patients} new patients on their CT grids "
                         "(SWA weights, no mirroring)", predict)
    steps.run("evaluate", f"HECKTOR {edition} metrics of the predictions on the new patients", evaluate)
    steps.run("baselines", "PET rules, clinical-only T/N and risk, AJCC 7 rule on the predicted masks" if is_2026 else
              "PET-threshold rules, clinical-only models, one-number rule, synthetic ceilings", baselines)

    def report() -> dict:
        if is_2026:
            from nnunet_hecktor.demo.edition2026 import write_report_2026

            paths = write_report_2026(output, test_dataset, test_src, steps.seconds, model_dir)
            return {"report": str(paths["html"])}
        from nnunet_hecktor.demo.report import write_report

        paths = write_report(output, test_dataset, test_src, steps.seconds, model_dir)
        return {"report": str(paths["html"])}

    steps.run("report", "report.html / report.md with overlays, Dice, Kaplan-Meier, ROC and the table", report)

    from nnunet_hecktor.demo.summary import read_summary_table

    result.steps, result.resumed = dict(steps.seconds), list(steps.resumed)
    if is_2026:
        from nnunet_hecktor.demo.edition2026 import read_table_2026

        result.table = read_table_2026(output)
    else:
        result.table = read_summary_table(output)
    result.report = output / "report" / "report.html"
    summary = {"dataset": result.dataset_name, "model": str(result.model_dir), "trainer": trainer, "edition": edition,
               "seconds_per_step": result.steps, "cpu_seconds_per_step": steps.cpu_seconds,
               "resumed_steps": result.resumed, "table": result.table,
               "report": str(result.report), "steps": steps.info}
    from nnunet_hecktor.fileio import write_json_atomic

    write_json_atomic(output / "demo_summary.json", json.loads(json.dumps(summary, default=str)))
    return result
