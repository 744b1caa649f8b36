"""Learning benchmark (issues 9, 18, 19): does the deployed model beat the simple alternatives, seed after seed?

One set of synthetic cohorts, several training seeds. For each seed the script trains the demo's
recipe (``HecktorMultiTaskTrainer_demo`` on the demo plans; ``--trainer`` for another) with stock
``nnUNetv2_train`` seeded through ``NNUNET_HECKTOR_SEED``, then follows the deployed path a user
follows:

0. **post-processing**: the demo's step, rules tuned on fold 0's validation patients and staged in
   the model folder (:func:`nnunet_hecktor.model_folder.fold_postprocessing.tune_on_fold_validation`);
1. **stage**: :func:`nnunet_hecktor.model_folder.held_out.build_stage_on_held_out_cohort` predicts
   the masks of a *held-out cohort* (patients the network never saw) with the fold-0 network, as
   ``predict`` does, and fits the prognosis stage on their features and the edition's test-time
   inputs (``prognosis build``'s code; HECKTOR 2025 risk without HPV status);
2. **predict**: ``nnunet-hecktor predict``'s Python API on the new patients, with a clinical input
   from which HPV status is withheld (the 2025 test input carries none), the staged stage answering
   risk and HPV and the heads' values kept in ``head_*`` columns.

Rows scored on the same new patients (never chosen on them):

- segmentation: the model; the 40 %-of-SUVmax and SUV > 2.5 PET rules;
- risk and HPV: the deployed stage; the network's heads; clinical-only models (the stage's own code,
  clinical columns only, fitted on the same held-out patients); the one-number rule (log GTVp volume
  of the 40 % SUVmax rule); the **feasible ceiling** (models on every permitted input with the image
  quantities read perfectly, fitted on a large reference draw of the same generator,
  :func:`nnunet_hecktor.baselines.ceilings.feasible_ceiling_predictions`) and the generator's true
  risk / HPV probability.

Every comparison is a paired bootstrap of the difference on the same patients
(:mod:`nnunet_hecktor.metrics.paired`): ``better``/``worse`` only when the 95 % interval excludes 0,
else ``undecided``. Segmentation is compared with both PET rules, risk and HPV with clinical-only and
with the feasible ceiling. Across seeds the table gives the median and range and counts the verdicts.

In the rich world (``--world rich``, the default) relapse risk also depends on image factors that
volume, SUV and node count do not measure (:mod:`nnunet_hecktor.synthetic.image_factors`). Which
risk scores capture that factor is measured as the partial Spearman correlation of each score with
the rich-world risk term, given the rest of the true log-risk (the factor is drawn independently of
everything else, so a model that does not read it from the image gets 0 up to noise); for HPV, with
the number of cystic nodes given the generator's HPV probability before them.

Usage (this machine: 2-core CPU; about 20 min per seed at the settings below, see
``docs/evidence/learning-benchmark.md`` for the published run)::

    python benchmarks/bench_learning.py --seeds 0 1 2 --train-patients 100 --stage-patients 300 \\
        --test-patients 1000 --device cpu
    # GPU, larger (nnU-Net's default plans):
    python benchmarks/bench_learning.py --seeds 0 1 2 --train-patients 600 --stage-patients 400 \\
        --test-patients 1000 --plans default --trainer HecktorMultiTaskTrainer_100epochs --device cuda \\
        --num-processes 8

Results: ``<workdir>/results.json``, ``<workdir>/table.md`` and a printed table. Every step is resumable:
a rerun with the same workdir skips what is done.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from nnunet_hecktor.checkpoints import FINAL_CHECKPOINT

REPO = Path(__file__).resolve().parents[1]
CONFIGURATION = "3d_fullres"
DEFAULT_TRAINER = "HecktorMultiTaskTrainer_demo"
#: Cohort seeds relative to ``--cohort-seed``: training, held-out (stage) and new patients never share a seed.
STAGE_SEED_OFFSET, NEW_SEED_OFFSET, REFERENCE_SEED_OFFSET = 2000, 1000, 5000
EDITION = "2025"
#: Rows of the tables, in order. ``model`` rows change with the training seed.
MODEL_ROWS = ("model: network + staged stage (deployed)", "model: network heads")
BASELINE_ROWS = ("clinical only (held-out patients)", "one number: log GTVp volume, 40 % SUVmax rule",
                 "PET rule: 40 % of SUVmax", "PET rule: SUV > 2.5",
                 "feasible without the image-only factors",
                 "feasible ceiling (permitted inputs)", "true ceiling (generator)")
DEPLOYED, HEADS = MODEL_ROWS
CLINICAL, ONE_NUMBER, PET40, PET25, FEASIBLE_PLAIN, FEASIBLE, TRUE = BASELINE_ROWS


# --------------------------------------------------------------------------- steps

class Clock:
    """Seconds per named step, printed as they finish; kept in ``store`` so a resumed run keeps the
    times of the steps an earlier run did."""

    def __init__(self, store: Path | None = None) -> None:
        self.store = store
        self.seconds: dict[str, float] = json.loads(store.read_text()) if store and store.is_file() else {}

    def __call__(self, label: str, fn):
        print(f"[bench_learning] {label} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        value = fn()
        self.seconds[label] = round(time.perf_counter() - start, 1)
        if self.store is not None:
            self.store.write_text(json.dumps(self.seconds, indent=1))
        print(f"[bench_learning] {label}: {self.seconds[label]:.0f} s", file=sys.stderr, flush=True)
        return value


def make_cohorts(args, work: Path, clock: Clock) -> dict:
    """Training, held-out and new-patient releases (never the same seed, never a repeated PatientID),
    converted to nnU-Net raw datasets."""
    from nnunet_hecktor.dataset_conversion import convert_dataset
    from nnunet_hecktor.synthetic import first_free_id_number, make_cohort

    raw = work / "nnUNet_raw"
    out = {}
    id_offset = 0
    for role, n, seed_offset, id_step, name in (("train", args.train_patients, 0, 0, "LearnTrain"),
                                                 ("stage", args.stage_patients, STAGE_SEED_OFFSET, 2, "LearnStage"),
                                                 ("new", args.test_patients, NEW_SEED_OFFSET, 1, "LearnNew")):
        seed, dataset_id = args.cohort_seed + seed_offset, args.dataset_id + id_step
        release = work / f"synthetic_{role}"
        dataset = raw / f"Dataset{dataset_id:03d}_{name}"
        if not (release / "synthetic_ground_truth.json").is_file():
            clock(f"synth {role}", lambda: make_cohort(release, n_patients=n, seed=seed, size=args.size,
                                                       num_processes=args.num_processes, progress=False,
                                                       overwrite=True, enriched=True, world=args.world,
                                                       id_offset=id_offset))
        if not (dataset / "dataset.json").is_file():
            clock(f"convert {role}", lambda: convert_dataset(release, dataset_id=dataset_id, name=name,
                                                             output=dataset, num_processes=args.num_processes))
        truth = json.loads((release / "synthetic_ground_truth.json").read_text())
        id_offset = first_free_id_number(truth["patients"])
        out[role] = {"release": release, "dataset": dataset, "dataset_id": dataset_id, "seed": seed,
                     "truth": release / "synthetic_ground_truth.json", "clinical_csv": dataset / "clinical.csv"}
    return out


def preprocess(args, env: dict, cohorts: dict, work: Path, clock: Clock) -> str:
    """nnU-Net planning and preprocessing of the training cohort; the plans name the benchmark trains with."""
    from nnunet_hecktor.nnunet_env import run_nnunet
    from nnunet_hecktor.trainers.small_plans import write_small_plans

    dataset_name = cohorts["train"]["dataset"].name
    pre = Path(env["nnUNet_preprocessed"]) / dataset_name
    if not (pre / "nnUNetPlans.json").is_file():
        # nnU-Net's planner sets torch's thread count from nnUNet_n_proc_DA, so 0 would break it.
        planning_env = {k: v for k, v in env.items() if k != "nnUNet_n_proc_DA"}
        clock("plan_and_preprocess", lambda: run_nnunet(
            "nnUNetv2_plan_and_preprocess",
            ["-d", str(cohorts["train"]["dataset_id"]), "-c", CONFIGURATION, "-np", str(args.num_processes)],
            planning_env, work / "logs" / "plan_and_preprocess.log"))
    if args.plans == "demo":
        # The demo's plans (narrow U-Net, 32^3 patches, batch 2): the benchmark trains the demo's network.
        from nnunet_hecktor.demo.pipeline import DEMO_BATCH_SIZE, DEMO_PATCH_SIZE, DEMO_PLANS

        write_small_plans(pre, "nnUNetPlans", DEMO_PLANS, configurations=(CONFIGURATION,),
                          patch_size=DEMO_PATCH_SIZE, batch_size=DEMO_BATCH_SIZE)
        return DEMO_PLANS
    return "nnUNetPlans"


def withheld_input(clinical_csv: Path, work: Path, name: str = "new_patients_input.csv") -> Path:
    """A converted cohort's ``clinical.csv`` as the 2025 test input gives it: no HPV status, no outcome."""
    from nnunet_hecktor import schema

    path = work / name
    if path.is_file():
        return path
    with clinical_csv.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    dropped = {schema.COL_HPV, schema.COL_RFS, schema.COL_RELAPSE}
    columns = [c for c in rows[0] if c not in dropped]
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
    return path


def train_seed(seed: int, plans: str, args, env: dict, cohorts: dict, work: Path, clock: Clock) -> Path:
    """Fold 0 of ``args.trainer``, seeded; its own ``nnUNet_results`` so the seeds never share a folder."""
    from nnunet_hecktor.nnunet_env import SEED_VARIABLE, run_nnunet

    results = work / f"seed_{seed}" / "nnUNet_results"
    model_dir = results / cohorts["train"]["dataset"].name / f"{args.trainer}__{plans}__{CONFIGURATION}"
    if not (model_dir / "fold_0" / FINAL_CHECKPOINT).is_file():
        seeded = {**env, "nnUNet_results": str(results), SEED_VARIABLE: str(seed)}
        clock(f"seed {seed}: train", lambda: run_nnunet(
            "nnUNetv2_train", [str(cohorts["train"]["dataset_id"]), CONFIGURATION, "0", "-tr", args.trainer, "-p",
                               plans, "-device", args.device], seeded, work / "logs" / f"train_seed{seed}.log"))
    return model_dir


def tune_seed(seed: int, model_dir: Path, args, env: dict, cohorts: dict, work: Path, clock: Clock) -> dict:
    """The demo's post-processing step: rules tuned on fold 0's validation patients, staged in the model folder."""
    from nnunet_hecktor.model_folder.fold_postprocessing import tune_on_fold_validation

    done = work / f"seed_{seed}" / "postprocessing.json"
    if not done.is_file():
        splits = Path(env["nnUNet_preprocessed"]) / cohorts["train"]["dataset"].name / "splits_final.json"
        tuned = clock(f"seed {seed}: tune post-processing on fold 0's validation patients", lambda: (
            tune_on_fold_validation(model_dir, cohorts["train"]["dataset"], splits, device=args.device,
                                    use_mirroring=args.mirroring, progress=False)))
        done.write_text(json.dumps({"rules": tuned.config.describe(), "validation_patients": tuned.n_cases,
                                    "before": tuned.before, "after": tuned.after}, indent=1, default=float))
    return json.loads(done.read_text())


def stage_and_predict(seed: int, model_dir: Path, args, cohorts: dict, work: Path, clock: Clock) -> tuple[Path, dict]:
    """Stage the prognosis stage on the held-out cohort, then predict the new patients as deployed."""
    from nnunet_hecktor.model_folder.held_out import build_stage_on_held_out_cohort
    from nnunet_hecktor.prediction.api import predict
    from nnunet_hecktor.prognosis.deployment import resolve_stage_models

    built_file = work / f"seed_{seed}" / "stage_build.json"
    if not built_file.is_file():
        built = clock(f"seed {seed}: stage on {args.stage_patients} held-out patients", lambda: (
            build_stage_on_held_out_cohort(model_dir, cohorts["stage"]["dataset"], cohorts["train"]["dataset"],
                                           edition=EDITION, device=args.device, n_bootstrap=args.bootstrap,
                                           random_state=seed, use_mirroring=args.mirroring, progress=False)))
        built_file.write_text(json.dumps(built, indent=1))
    built = json.loads(built_file.read_text())
    pred_dir = work / f"seed_{seed}" / "new_patients"
    if not (pred_dir / "prediction_settings.json").is_file():
        stage = resolve_stage_models(model_dir)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clock(f"seed {seed}: predict {args.test_patients} new patients", lambda: predict(
                cohorts["new"]["release"], pred_dir, model_dir,
                clinical_csv=withheld_input(cohorts["new"]["clinical_csv"], work),
                folds=[0], device=args.device, use_mirroring=args.mirroring, prognosis=stage,
                num_threads=args.threads, progress=False))
    return pred_dir, built


# --------------------------------------------------------------------------- prediction sets

def _read_rows(path: Path) -> dict[str, dict[str, float]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["PatientID"]: {k: float(v) for k, v in row.items() if k != "PatientID" and v != ""}
                for row in csv.DictReader(handle)}


def _write_rows(rows: dict[str, dict], path: Path) -> Path:
    from nnunet_hecktor.baselines.tables import write_predictions_csv

    return write_predictions_csv(path, rows)


def heads_rows(pred_dir: Path) -> dict[str, dict]:
    """The heads' risk / HPV of a prediction folder (its ``head_*`` columns)."""
    rows = _read_rows(pred_dir / "predictions.csv")
    return {pid: {k: r[f"head_{k}"] for k in ("risk", "hpv_probability", "hpv_status") if f"head_{k}" in r}
            for pid, r in rows.items()}


def clinical_only_rows(model_dir: Path, cohorts: dict, work: Path) -> dict[str, dict]:
    """Clinical-only survival and HPV models: the stage's own code with clinical columns only, fitted on
    the held-out patients the stage was fitted on, with the same permitted inputs; applied to the new
    patients' withheld input."""
    from nnunet_hecktor.editions import get_edition
    from nnunet_hecktor.model_folder.build import BUILD_FOLDER, permitted_columns
    from nnunet_hecktor.prognosis.hpv_stage import fit_hpv, predict_hpv
    from nnunet_hecktor.prognosis.survival_stage import fit_survival, predict_survival

    out_dir = work / "clinical_only"
    inputs = get_edition(EDITION).test_inputs
    fit_csv, test_csv = cohorts["stage"]["clinical_csv"], withheld_input(cohorts["new"]["clinical_csv"], work)
    common = dict(features_csv=model_dir / BUILD_FOLDER / "features_oof.csv", feature_set="clinical",
                  progress=False, make_plots=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        survival = fit_survival(fit_csv, out_dir / "survival",
                                clinical_columns=permitted_columns("survival", fit_csv, inputs), **common)
        risk = predict_survival(survival.paths["model"], out_dir / "risk.csv", clinical_csv=test_csv)
        hpv = fit_hpv(fit_csv, out_dir / "hpv", clinical_columns=permitted_columns("hpv", fit_csv, inputs), **common)
        table = predict_hpv(hpv.paths["model"], out_dir / "hpv.csv", clinical_csv=test_csv)
    rows: dict[str, dict] = {pid: {"risk": float(r)} for pid, r in zip(risk["PatientID"], risk["risk"])}
    for pid, p, s in zip(table["PatientID"], table["hpv_probability"], table["hpv_status"]):
        rows.setdefault(pid, {}).update({"hpv_probability": float(p), "hpv_status": int(s)})
    return rows


def reference_patients(args) -> list[dict]:
    """Ground-truth records of a large draw of the same generator (enriched, same world): what the
    feasible ceiling is fitted on (never the scored patients)."""
    from nnunet_hecktor.synthetic.patients import draw_patients

    return [p.to_json() for p in draw_patients(args.reference_patients, args.cohort_seed + REFERENCE_SEED_OFFSET,
                                               enriched=True, world=args.world)]


def baseline_sets(args, cohorts: dict, work: Path, clock: Clock) -> dict[str, dict]:
    """Seed-independent rows: ``{row: {"pred": folder or None, "rows": {pid: {...}} or None}}``."""
    from nnunet_hecktor.baselines.ceilings import ceiling_predictions, feasible_ceiling_predictions
    from nnunet_hecktor.baselines.image_rule import log_gtvp_volume_risk
    from nnunet_hecktor.baselines.pet_rules import segment_folder

    images = cohorts["new"]["dataset"] / "imagesTr"
    sets: dict[str, dict] = {}
    for rule, row in (("suvmax40", PET40), ("suv2.5", PET25)):
        seg_dir = work / "baselines" / f"pet_{rule}"
        done = seg_dir.with_name(seg_dir.name + ".done")
        if not done.is_file():
            clock(f"PET rule {rule}", lambda: segment_folder(images, seg_dir, rule, progress=False))
            done.write_text("")
        sets[row] = {"pred": seg_dir, "rows": None}
    sets[ONE_NUMBER] = {"pred": None, "rows": log_gtvp_volume_risk(work / "baselines" / "pet_suvmax40")}
    feasible_file = work / "baselines" / "feasible_ceiling.json"
    stored = json.loads(feasible_file.read_text()) if feasible_file.is_file() else {}
    if set(stored) != {FEASIBLE, FEASIBLE_PLAIN}:  # absent, or written under other row names
        reference = reference_patients(args)
        found = {}
        for row, rich in ((FEASIBLE, True), (FEASIBLE_PLAIN, False)):
            rows, threshold = clock(f"{row} (fitted on {args.reference_patients} drawn patients)",
                                    lambda: feasible_ceiling_predictions(cohorts["new"]["truth"], reference,
                                                                         edition=EDITION, rich_factors=rich))
            found[row] = {"rows": rows, "threshold": threshold}
        feasible_file.write_text(json.dumps(found))
        stored = found
    for row, entry in stored.items():
        sets[row] = {"pred": None, "rows": entry["rows"]}
    true_rows, _ = ceiling_predictions(cohorts["new"]["truth"], cohorts["train"]["truth"])
    sets[TRUE] = {"pred": None, "rows": true_rows}
    return sets


def per_patient(name: str, entry: dict, cohorts: dict, work: Path, args) -> list[dict]:
    """``evaluate``'s per-patient rows of one prediction set (segmentation and/or risk and HPV)."""
    from nnunet_hecktor.evaluation.evaluate import evaluate

    slug = "".join(c if c.isalnum() else "_" for c in name)[:60]
    out_dir = work / "evaluation" / slug
    csv_path = None
    if entry.get("rows") is not None:
        csv_path = _write_rows(entry["rows"], out_dir / "predictions.csv")
    elif entry.get("predictions") is not None:
        csv_path = entry["predictions"]
    pred = entry.get("pred")
    new = cohorts["new"]["dataset"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = evaluate(new / "labelsTr" if pred else None, pred, new / "clinical.csv" if csv_path else None,
                          csv_path, out_dir / "evaluation", n_bootstrap=0, seed=0, num_processes=args.num_processes,
                          plots=False, progress=False)
    return result.per_patient


# --------------------------------------------------------------------------- comparisons

def compare(rows: dict[str, list[dict]], a: str, b: str, args) -> list[dict]:
    from nnunet_hecktor.evaluation.compare import compare_rows, comparison_records

    found, _ = compare_rows(rows[a], rows[b], a, b, n_bootstrap=args.bootstrap, seed=0)
    return comparison_records(found)


def factor_capture(sets: dict[str, dict], truth_path: Path, args) -> dict:
    """Which risk / HPV scores carry the rich world's image-only factors (module docstring).

    For each score: its partial Spearman correlation with the factor given the rest, and the paired
    difference to the feasible model that cannot see the factors (the reference, not 0: the enrichment
    selects on the factors' term too, see docs/explanations/synthetic-data.md).
    """
    from nnunet_hecktor.metrics.association import paired_partial_spearman, partial_spearman

    truth = json.loads(truth_path.read_text())["patients"]
    if not all(p.get("image_factors") for p in truth.values()):
        return {}
    out: dict[str, dict] = {"risk": {}, "hpv": {}}

    def measure(target: str, column: str, factor_of, given_of) -> None:
        scores = {name: {p: v[column] for p, v in values.items()
                         if v.get(column) is not None and math.isfinite(v[column])} for name, values in sets.items()}
        reference = scores.get(FEASIBLE_PLAIN, {})
        for name, score in scores.items():
            pids = [p for p in truth if p in score]
            if len(pids) <= 10:
                continue
            factor = np.array([factor_of(truth[p]) for p in pids], float)
            given = np.array([given_of(truth[p]) for p in pids], float)
            values = np.array([score[p] for p in pids])
            found = partial_spearman(values, factor, given, args.factor_bootstrap).to_dict()
            if name != FEASIBLE_PLAIN and all(p in reference for p in pids):
                found["vs_blind"] = paired_partial_spearman(values, np.array([reference[p] for p in pids]), factor,
                                                            given, args.factor_bootstrap).to_dict()
            out[target][name] = found

    measure("risk", "risk", lambda t: t["image_factors"]["risk_term"],
            lambda t: [t["true_risk"] - t["image_factors"]["risk_term"]])
    measure("hpv", "hpv_probability", lambda t: t["image_factors"]["cystic_nodes"],
            lambda t: [t["hpv_probability"], t["node_count"]])
    return out


def run_seed(seed: int, plans: str, args, env: dict, cohorts: dict, baselines: dict, baseline_rows: dict,
             work: Path, clock: Clock) -> dict:
    model_dir = train_seed(seed, plans, args, env, cohorts, work, clock)
    postprocessing = tune_seed(seed, model_dir, args, env, cohorts, work, clock)
    pred_dir, built = stage_and_predict(seed, model_dir, args, cohorts, work, clock)
    if CLINICAL not in baselines:
        baselines[CLINICAL] = {"pred": None, "rows": clinical_only_rows(model_dir, cohorts, work)}
        baseline_rows[CLINICAL] = per_patient(CLINICAL, baselines[CLINICAL], cohorts, work, args)
    model_sets = {DEPLOYED: {"pred": pred_dir, "predictions": pred_dir / "predictions.csv", "rows": None},
                  HEADS: {"pred": None, "rows": heads_rows(pred_dir)}}
    rows = dict(baseline_rows)
    for name, entry in model_sets.items():
        rows[name] = clock(f"seed {seed}: evaluate {name}", lambda: per_patient(f"seed{seed}_{name}", entry, cohorts,
                                                                               work, args))
    comparisons = []
    for a, b in ((DEPLOYED, PET40), (DEPLOYED, PET25)):
        comparisons += [c for c in compare(rows, a, b, args) if c["task"] == "task1"]
    for a in (DEPLOYED, HEADS, ONE_NUMBER, FEASIBLE_PLAIN, FEASIBLE, TRUE):
        comparisons += [c for c in compare(rows, a, CLINICAL, args) if c["task"] in ("task2", "task3")]
    for a in (DEPLOYED, HEADS, ONE_NUMBER, FEASIBLE_PLAIN):
        comparisons += [c for c in compare(rows, a, FEASIBLE, args) if c["task"] in ("task2", "task3")]
    comparisons += [c for c in compare(rows, DEPLOYED, HEADS, args) if c["task"] in ("task2", "task3")]
    values = {name: {**(baselines.get(name) or {}), **model_sets.get(name, {})} for name in (*MODEL_ROWS,
                                                                                          *BASELINE_ROWS)}
    patient_values = {name: (entry.get("rows") if entry.get("rows") is not None else
                             _read_rows(entry["predictions"]) if entry.get("predictions") else {})
                      for name, entry in values.items() if entry}
    return {"seed": seed, "model_dir": str(model_dir), "postprocessing": postprocessing, "stage_build": built,
            "comparisons": comparisons,
            "figures": {name: figures_of(rows[name]) for name in rows},
            "factor_capture": factor_capture(patient_values, cohorts["new"]["truth"], args)}


def figures_of(rows: list[dict]) -> dict:
    """Point figures of one set from its per-patient rows (the comparisons' own statistics)."""
    from nnunet_hecktor.evaluation.per_patient import hpv_arrays, survival_arrays, task1_arrays
    from nnunet_hecktor.metrics.bootstrap import bootstrap_task1
    from nnunet_hecktor.metrics.classification import balanced_accuracy, roc_auc
    from nnunet_hecktor.metrics.survival import harrell_c_index

    out: dict[str, float] = {}
    seg = task1_arrays(rows)
    if seg is not None:
        whole = bootstrap_task1(seg, np.ones((1, len(seg.patients))))
        out.update({k: float(v[0]) for k, v in whole.items()})
    surv = survival_arrays(rows)
    if surv is not None:
        out["c_index"] = float(harrell_c_index(surv[1], surv[2], surv[3]))
    hpv = hpv_arrays(rows)
    if hpv is not None:
        out["hpv_balanced_accuracy"] = float(balanced_accuracy(hpv[1], hpv[2]))
        if hpv[3] is not None:
            out["hpv_auc"] = float(roc_auc(hpv[1], hpv[3]))
    return out


# --------------------------------------------------------------------------- report

FIGURES = (("gtvp_dice_mean", "GTVp mean Dice"), ("gtvn_dice_agg", "GTVn DSCagg"), ("gtvn_f1_agg", "GTVn F1agg"),
           ("c_index", "risk C-index"), ("hpv_auc", "HPV AUC"), ("hpv_balanced_accuracy", "HPV BA"))


def fmt(value, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def spread(values: list[float]) -> str:
    """``median [min, max]`` over seeds (one value: itself)."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "–"
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(statistics.median(values))} [{fmt(min(values))}, {fmt(max(values))}]"


def verdicts(per_seed: list[dict], a: str, b: str, metric: str) -> str:
    """Per-seed differences ``a - b`` with their intervals and verdicts, e.g. ``+0.031 [+0.01, +0.05] better``."""
    found = []
    for seed_result in per_seed:
        for c in seed_result["comparisons"]:
            if c["name_a"] == a and c["name_b"] == b and c["metric"] == metric:
                low, high = c["interval"]
                found.append(f"{c['difference']:+.3f} [{low:+.3f}, {high:+.3f}] {c['verdict']}")
    return "; ".join(found) if found else "–"


def markdown(result: dict) -> str:
    per_seed = result["seeds"]
    seeds = ", ".join(str(s["seed"]) for s in per_seed)
    lines = [f"Figures on {result['new_patients']} new patients, median [min, max] over training seeds {seeds} "
             "(baselines do not depend on the seed).", "",
             "| row | " + " | ".join(label for _, label in FIGURES) + " |",
             "|---|" + "---|" * len(FIGURES)]
    for name in (*MODEL_ROWS, *BASELINE_ROWS):
        cells = [spread([s["figures"].get(name, {}).get(key) for s in per_seed]) for key, _ in FIGURES]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Paired differences (per seed: difference [95 % interval] verdict)", "",
              "| comparison | figure | seeds |", "|---|---|---|"]
    metrics = sorted({(c["name_a"], c["name_b"], c["metric"]) for s in per_seed for c in s["comparisons"]},
                     key=lambda t: ((*MODEL_ROWS, *BASELINE_ROWS).index(t[1]), (*MODEL_ROWS, *BASELINE_ROWS).index(t[0]),
                                    t[2]))
    for a, b, metric in metrics:
        lines.append(f"| {a} − {b} | {metric} | {verdicts(per_seed, a, b, metric)} |")
    capture = [s.get("factor_capture") or {} for s in per_seed]
    if any(capture):
        lines += ["", "Image-only factors: partial Spearman correlation with the factor given the rest "
                      "(risk: the rich-world risk term given the rest of the true log-risk; HPV: cystic nodes "
                      "given the generator's HPV probability and node count); per seed: value (paired difference "
                      f"to '{FEASIBLE_PLAIN}' [95 % interval])", "",
                  "| row | risk | HPV |", "|---|---|---|"]
        for name in (*MODEL_ROWS, *BASELINE_ROWS):
            cells = []
            for target in ("risk", "hpv"):
                found = [c[target][name] for c in capture if name in c.get(target, {})]
                cells.append("; ".join(
                    f"{f['value']:+.3f}" + (f" ({f['vs_blind']['value']:+.3f} [{f['vs_blind']['interval'][0]:+.3f}, "
                                            f"{f['vs_blind']['interval'][1]:+.3f}])" if "vs_blind" in f else "")
                    for f in found) or "–")
            if any(c != "–" for c in cells):
                lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def run(args) -> dict:
    from nnunet_hecktor.demo import CPU_FRIENDLY_VARIABLES
    from nnunet_hecktor.nnunet_env import nnunet_environment

    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    extra = dict(CPU_FRIENDLY_VARIABLES) if args.device == "cpu" else {"nnUNet_n_proc_DA": str(args.num_processes)}
    env = nnunet_environment(work, extra=extra)
    clock = Clock(work / "seconds.json")
    cohorts = make_cohorts(args, work, clock)
    plans = preprocess(args, env, cohorts, work, clock)
    baselines = baseline_sets(args, cohorts, work, clock)
    baseline_rows = {name: clock(f"evaluate {name}", lambda: per_patient(name, entry, cohorts, work, args))
                     for name, entry in baselines.items()}
    per_seed = []
    for seed in args.seeds:
        per_seed.append(run_seed(seed, plans, args, env, cohorts, baselines, baseline_rows, work, clock))
        (work / f"seed_{seed}" / "result.json").write_text(json.dumps(per_seed[-1], indent=1, default=str))
    truth = json.loads(cohorts["new"]["truth"].read_text())["patients"]
    return {"settings": dict(vars(args)), "plans": plans, "new_patients": len(truth),
            "new_relapses": int(sum(bool(p["relapse"]) for p in truth.values())),
            "new_hpv_negative": int(sum(int(p["hpv"]) == 0 for p in truth.values())),
            "seeds": per_seed, "seconds": clock.seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (nnU-Net init + DA)")
    parser.add_argument("--cohort-seed", type=int, default=0,
                        help="seed of the training cohort (held-out: +2000, new patients: +1000, reference: +5000)")
    parser.add_argument("--train-patients", type=int, default=100)
    parser.add_argument("--stage-patients", type=int, default=300, help="held-out cohort the stage is fitted on")
    parser.add_argument("--test-patients", type=int, default=1000, help="new patients, scored")
    parser.add_argument("--reference-patients", type=int, default=3000,
                        help="drawn patients (no images) the feasible ceiling is fitted on")
    parser.add_argument("--world", choices=("default", "rich"), default="rich")
    parser.add_argument("--size", default="demo", help="synthetic image size preset (demo: nodes resolvable)")
    parser.add_argument("--trainer", default=DEFAULT_TRAINER)
    parser.add_argument("--plans", choices=("demo", "default"), default="demo",
                        help="demo: the demo's CPU plans (32^3 patch, batch 2); default: nnU-Net's own plans (GPU)")
    parser.add_argument("--mirroring", action="store_true",
                        help="test-time mirroring when predicting (8x the network passes; off, as in the demo)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads for prediction")
    parser.add_argument("--bootstrap", type=int, default=2000, help="paired bootstrap replicates")
    parser.add_argument("--factor-bootstrap", type=int, default=500,
                        help="replicates of the image-factor correlations")
    parser.add_argument("--dataset-id", type=int, default=931)
    parser.add_argument("--workdir", default=str(REPO / "bench_output" / "learning"))
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    start = time.perf_counter()
    result = run(args)
    result["total_seconds"] = round(time.perf_counter() - start, 1)
    from nnunet_hecktor.strict_json import json_safe

    out = Path(args.workdir) / "results.json"
    out.write_text(json.dumps(json_safe(result), indent=2, default=str))
    table = markdown(result)
    (Path(args.workdir) / "table.md").write_text(table)
    print(table)
    print("Wall time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in result["seconds"].items()))
    print(f"\nresults: {out} and table.md ({result['total_seconds']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
