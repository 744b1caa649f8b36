"""Learning benchmark (issue 9): do the network's heads learn, next to the simple alternatives?

Trains nnU-Net trainers of the plugin with stock ``nnUNetv2_train`` on a synthetic cohort (seed
``--seed``) at the same budget (epochs x iterations), predicts a cohort of NEW patients (seed
``--seed + 1``) with ``nnunet-hecktor predict``, and reports on those new patients, with patient-level
bootstrap 95 % intervals:

- segmentation: GTVp mean Dice and GTVn aggregated Dice per trainer (``evaluate``);
- recurrence risk: C-index of the heads' risk, of the prognosis stage (``prognosis fit`` on features of
  the trainer's PREDICTED masks of the training cohort, applied to features of its predicted masks of
  the new patients: no ground-truth masks anywhere), of a clinical-only Cox/ICARE model (same code,
  clinical columns only, same training patients), of the one-number rule (log predicted GTVp volume)
  and of the generator's true risk (ceiling);
- HPV: AUC and balanced accuracy of the heads, of the ``hpv`` stage on predicted-mask features, of
  clinical-only logistic regression and of the generator's true probability (ceiling);
- wall time of every step.

The same seeds give the same cohorts, baselines, ceilings and stage figures for the same masks; the
network initialisation and augmentation of nnU-Net's training are not seeded by this script.

Usage (CPU, reduced; see ``docs/evidence/learning-benchmark.md`` for the settings of the published table)::

    python benchmarks/bench_learning.py --train-patients 300 --test-patients 200 --epochs 30 \\
        --iterations 50 --device cpu
    # GPU, larger:
    python benchmarks/bench_learning.py --train-patients 600 --test-patients 300 --epochs 100 \\
        --iterations 250 --plans default --device cuda --num-processes 8

Results: ``<workdir>/results.json``, ``<workdir>/table.md`` (Markdown) and a printed table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from nnunet_hecktor.checkpoints import FINAL_CHECKPOINT

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TRAINERS = ("HecktorSWATrainer_benchmark", "HecktorMultiTaskTrainer_benchmark",
                    "HecktorMultiTaskTrainerBottleneckHeads_benchmark")
CONFIGURATION = "3d_fullres"


# --------------------------------------------------------------------------- scoring

def score_rows(rows: dict[str, dict], clinical_csv: Path, out_dir: Path, args) -> dict:
    """Write ``rows`` as a ``predictions.csv`` and score it with ``evaluate`` (Tasks 2/3, bootstrap CIs)."""
    from nnunet_hecktor.baselines.tables import write_predictions_csv
    from nnunet_hecktor.evaluation.evaluate import evaluate

    path = write_predictions_csv(out_dir / "predictions.csv", rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return evaluate(None, None, clinical_csv, path, out_dir / "evaluation", n_bootstrap=args.bootstrap,
                        seed=args.seed, plots=False, progress=False).metrics


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
    """Synthetic training and new-patient releases, converted to nnU-Net raw datasets."""
    from nnunet_hecktor.dataset_conversion import convert_dataset
    from nnunet_hecktor.synthetic import first_free_id_number, make_cohort

    raw = work / "nnUNet_raw"
    out = {}
    id_offset = 0  # new patients are numbered after the training patients: no PatientID repeats
    for role, n, seed, dataset_id, name in (("train", args.train_patients, args.seed, args.dataset_id, "LearnTrain"),
                                             ("test", args.test_patients, args.seed + 1, args.dataset_id + 1,
                                              "LearnNew")):
        release = work / f"synthetic_{role}"
        dataset = raw / f"Dataset{dataset_id:03d}_{name}"
        if not (release / "synthetic_ground_truth.json").is_file():
            clock(f"synth {role}", lambda: make_cohort(release, n_patients=n, seed=seed, size=args.size,
                                                       num_processes=args.num_processes, progress=False,
                                                       overwrite=True, enriched=args.enriched,
                                                       id_offset=id_offset))
        if not (dataset / "dataset.json").is_file():
            clock(f"convert {role}", lambda: convert_dataset(release, dataset_id=dataset_id, name=name,
                                                             output=dataset, num_processes=args.num_processes))
        truth = json.loads((release / "synthetic_ground_truth.json").read_text())
        id_offset = first_free_id_number(truth["patients"])
        out[role] = {"release": release, "dataset": dataset, "dataset_id": dataset_id, "truth": truth,
                     "clinical_csv": dataset / "clinical.csv"}
    return out


def preprocess(args, env: dict, cohorts: dict, work: Path, clock: Clock) -> str:
    from nnunet_hecktor.nnunet_env import run_nnunet
    from nnunet_hecktor.trainers.small_plans import write_small_plans

    dataset_name = cohorts["train"]["dataset"].name
    pre = Path(env["nnUNet_preprocessed"]) / dataset_name
    if not (pre / "nnUNetPlans.json").is_file():
        planning_env = {k: v for k, v in env.items() if k != "nnUNet_n_proc_DA"}
        clock("plan_and_preprocess", lambda: run_nnunet(
            "nnUNetv2_plan_and_preprocess",
            ["-d", str(cohorts["train"]["dataset_id"]), "-c", CONFIGURATION, "-np", str(args.num_processes)],
            planning_env, work / "logs" / "plan_and_preprocess.log"))
    if args.plans == "tiny":
        write_small_plans(pre, "nnUNetPlans", "nnUNetPlansTiny")
        return "nnUNetPlansTiny"
    if args.plans == "demo":
        # The demo's plans (narrow U-Net, 32^3 patches, batch 2): CPU steps ~7x cheaper than "tiny"
        # at the demo size (docs/tutorials/demo.md), so the benchmark and the demo train the same network.
        from nnunet_hecktor.demo.pipeline import DEMO_BATCH_SIZE, DEMO_PATCH_SIZE, DEMO_PLANS

        write_small_plans(pre, "nnUNetPlans", DEMO_PLANS, configurations=(CONFIGURATION,),
                          patch_size=DEMO_PATCH_SIZE, batch_size=DEMO_BATCH_SIZE)
        return DEMO_PLANS
    return "nnUNetPlans"


def has_heads(trainer: str) -> bool:
    """True for the plugin's multi-task trainers (their predictions include HPV and risk)."""
    import nnunet_hecktor.trainers as trainers
    from nnunet_hecktor.trainers.multitask_trainer import HecktorMultiTaskTrainer

    cls = getattr(trainers, trainer, None)
    return isinstance(cls, type) and issubclass(cls, HecktorMultiTaskTrainer)


def train_and_predict(trainer: str, plans: str, args, env: dict, cohorts: dict, work: Path, clock: Clock) -> dict:
    """Train fold 0, predict the new patients (heads too) and the training cohort (segmentation only)."""
    from nnunet_hecktor.nnunet_env import run_nnunet
    from nnunet_hecktor.prediction.api import predict

    dataset_name = cohorts["train"]["dataset"].name
    model_dir = Path(env["nnUNet_results"]) / dataset_name / f"{trainer}__{plans}__{CONFIGURATION}"
    train_env = {**env, "NNUNET_HECKTOR_EPOCHS": str(args.epochs), "NNUNET_HECKTOR_ITERATIONS": str(args.iterations),
                 "NNUNET_HECKTOR_VAL_ITERATIONS": str(args.val_iterations)}
    if not (model_dir / "fold_0" / FINAL_CHECKPOINT).is_file():
        clock(f"train {trainer}", lambda: run_nnunet(
            "nnUNetv2_train", [str(cohorts["train"]["dataset_id"]), CONFIGURATION, "0", "-tr", trainer, "-p", plans,
                               "-device", args.device], train_env, work / "logs" / f"train_{trainer}.log"))
    out = {"model_dir": model_dir}
    for role, segmentation_only in (("test", not has_heads(trainer)), ("train", True)):
        pred_dir = work / "predictions" / trainer / role
        if not (pred_dir / "predict_settings.json").is_file() and not any(pred_dir.glob("*.nii.gz")):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clock(f"predict {role} {trainer}", lambda: predict(
                    cohorts[role]["release"], pred_dir, model_dir, clinical_csv=cohorts[role]["clinical_csv"],
                    folds=[0], checkpoint=args.checkpoint, device=args.device, segmentation_only=segmentation_only,
                    use_mirroring=args.mirroring, num_threads=args.threads, progress=False))
        out[f"{role}_predictions"] = pred_dir
    validation = model_dir / "fold_0" / "validation_heads.json"
    if validation.is_file():
        out["validation_heads"] = json.loads(validation.read_text())
    return out


def segmentation_figures(cohorts: dict, pred_dir: Path, work: Path, args, tag: str) -> dict:
    from nnunet_hecktor.evaluation.evaluate import evaluate

    out_dir = work / "evaluation" / tag
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluate(cohorts["test"]["dataset"] / "labelsTr", pred_dir, output_dir=out_dir, n_bootstrap=args.bootstrap,
                 seed=args.seed, num_processes=args.num_processes, plots=False, progress=False)
    return json.loads((out_dir / "metrics.json").read_text())["task1"]


def flat_images(release: Path, out_dir: Path) -> Path:
    """One ``<PID>__CT``/``<PID>__PT`` link per patient (a release repeats a patient's scans per task)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(release.glob("Task */*/*__[CP]T.nii.gz")):
        link = out_dir / path.name
        if not link.exists():
            link.symlink_to(path.resolve())
    return out_dir


def feature_table(cohort: dict, pred_dir: Path, out_csv: Path, args) -> Path:
    from nnunet_hecktor.prognosis.features import extract_features, write_feature_table

    if not out_csv.is_file():
        images = flat_images(cohort["release"], cohort["release"].parent / f"{cohort['release'].name}_flat")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = extract_features(images, [pred_dir], seg_source="predicted",
                                     num_processes=args.num_processes, progress=False)
        write_feature_table(table, out_csv)
    return out_csv


def patient_level(cohorts: dict, train_features: Path, test_features: Path, work: Path, args, tag: str) -> dict:
    """Prognosis / HPV stages (all inputs, clinical only) fitted on the training cohort, applied to the new one."""
    import pandas as pd

    from nnunet_hecktor.prognosis.hpv_stage import fit_hpv, predict_hpv
    from nnunet_hecktor.prognosis.survival_stage import fit_survival, predict_survival

    out = {}
    for feature_set in ("all", "clinical"):
        base = work / "stages" / tag / feature_set
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_survival(cohorts["train"]["clinical_csv"], base / "survival", features_csv=train_features,
                         feature_set=feature_set, random_state=args.seed, progress=False, make_plots=False)
            predict_survival(base / "survival" / "model.joblib", base / "risk_new.csv", features_csv=test_features,
                             clinical_csv=cohorts["test"]["clinical_csv"])
            fit_hpv(cohorts["train"]["clinical_csv"], base / "hpv", features_csv=train_features,
                    feature_set=feature_set, random_state=args.seed, progress=False, make_plots=False)
            predict_hpv(base / "hpv" / "model.joblib", base / "hpv_new.csv", features_csv=test_features,
                        clinical_csv=cohorts["test"]["clinical_csv"])
        risk = pd.read_csv(base / "risk_new.csv", dtype={"PatientID": str}).set_index("PatientID")["risk"]
        hpv = pd.read_csv(base / "hpv_new.csv", dtype={"PatientID": str}).set_index("PatientID")
        out[feature_set] = {"risk": risk.to_dict(), "hpv_probability": hpv["hpv_probability"].to_dict(),
                            "hpv_status": hpv["hpv_status"].to_dict()}
    return out


# --------------------------------------------------------------------------- main

def _rows_from_predictions(path: Path) -> dict[str, dict]:
    import pandas as pd

    table = pd.read_csv(path, dtype={"PatientID": str}).set_index("PatientID")
    return {pid: {k: table.at[pid, k] for k in ("risk", "hpv_probability", "hpv_status") if k in table.columns}
            for pid in table.index}


def run(args) -> dict:
    import pandas as pd

    from nnunet_hecktor.baselines.suite import BASELINE_DESCRIPTIONS, run_baselines
    from nnunet_hecktor.demo import CPU_FRIENDLY_VARIABLES
    from nnunet_hecktor.nnunet_env import nnunet_environment

    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    extra = dict(CPU_FRIENDLY_VARIABLES) if args.device == "cpu" else {"nnUNet_n_proc_DA": str(args.num_processes)}
    env = nnunet_environment(work, extra=extra)
    clock = Clock(work / "seconds.json")
    cohorts = make_cohorts(args, work, clock)
    plans = preprocess(args, env, cohorts, work, clock)
    test_clinical = cohorts["test"]["clinical_csv"]
    result = {"settings": dict(vars(args)), "plans": plans, "segmentation": {}, "patient_level": {},
              "validation_heads": {}}

    baselines = clock("baselines", lambda: run_baselines(
        cohorts["train"]["dataset"], cohorts["test"]["dataset"], work / "baselines",
        cohorts["train"]["release"] / "synthetic_ground_truth.json",
        cohorts["test"]["release"] / "synthetic_ground_truth.json", n_bootstrap=args.bootstrap, seed=args.seed,
        num_processes=args.num_processes, progress=False))
    for name in ("pet_suvmax40", "pet_suv2.5"):
        result["segmentation"][BASELINE_DESCRIPTIONS[name]] = baselines.metrics[name]["task1"]
    for name in ("clinical_only", "pet_volume", "ceiling"):
        if name in baselines.metrics:
            result["patient_level"][BASELINE_DESCRIPTIONS[name]] = {k: baselines.metrics[name].get(k)
                                                                    for k in ("task2", "task3")}
    result["baseline_notes"] = baselines.notes

    for trainer in args.trainers:
        t = train_and_predict(trainer, plans, args, env, cohorts, work, clock)
        result["segmentation"][trainer] = clock(f"evaluate {trainer}", lambda: segmentation_figures(
            cohorts, t["test_predictions"], work, args, trainer))
        if "validation_heads" in t:
            result["validation_heads"][trainer] = {k: t["validation_heads"].get(k)
                                                   for k in ("n_patients", "hpv", "rfs", "reliability", "warnings")}
        scores: dict[str, dict] = {}
        predictions_csv = t["test_predictions"] / "predictions.csv"
        if predictions_csv.is_file():
            scores[f"heads of {trainer}"] = _rows_from_predictions(predictions_csv)
        train_csv = feature_table(cohorts["train"], t["train_predictions"],
                                  work / "features" / trainer / "train.csv", args)
        test_csv = feature_table(cohorts["test"], t["test_predictions"], work / "features" / trainer / "test.csv", args)
        stages = clock(f"prognosis stages {trainer}", lambda: patient_level(cohorts, train_csv, test_csv, work, args,
                                                                             trainer))
        rows = {pid: {"risk": stages["all"]["risk"].get(pid), "hpv_probability": stages["all"]["hpv_probability"].get(pid),
                      "hpv_status": stages["all"]["hpv_status"].get(pid)} for pid in stages["all"]["risk"]}
        scores[f"prognosis stage on {trainer} masks (clinical + image features)"] = rows
        if not result.get("stage_clinical_only"):
            clin = stages["clinical"]
            scores["prognosis stage, clinical columns only (same training patients)"] = {
                pid: {"risk": clin["risk"].get(pid), "hpv_probability": clin["hpv_probability"].get(pid),
                      "hpv_status": clin["hpv_status"].get(pid)} for pid in clin["risk"]}
            result["stage_clinical_only"] = True
        volume = pd.read_csv(test_csv, dtype={"PatientID": str}).set_index("PatientID")["gtvp_volume_ml"]
        scores[f"one number: log GTVp volume of {trainer} masks"] = {
            pid: {"risk": float(np.log1p(v))} for pid, v in volume.items()}
        for index, (name, rows) in enumerate(scores.items()):
            metrics = score_rows(rows, test_clinical, work / "scores" / trainer / str(index), args)
            result["patient_level"][name] = {k: metrics.get(k) for k in ("task2", "task3")}
    result.pop("stage_clinical_only", None)
    result["seconds"] = clock.seconds
    return result


def fmt(value, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def with_ci(block: dict | None, key: str) -> str:
    if not block or block.get(key) is None:
        return "–"
    ci = (block.get("ci95") or {}).get(key)
    if isinstance(ci, dict):
        ci = [ci.get("low"), ci.get("high")]
    return f"{fmt(block[key])} [{fmt(ci[0], 2)}, {fmt(ci[1], 2)}]" if ci and ci[0] is not None else fmt(block[key])


def print_table(result: dict) -> None:
    seconds = result["seconds"]
    print("\nSegmentation of the new patients (95 % bootstrap intervals)")
    print(f"  {'model or rule':62s} {'GTVp mean Dice':22s} {'GTVn DSCagg':22s} {'GTVn F1agg':22s} train s")
    for name, block in result["segmentation"].items():
        print(f"  {name:62s} {with_ci(block, 'gtvp_dice_mean'):22s} {with_ci(block, 'gtvn_dice_agg'):22s} "
              f"{with_ci(block, 'gtvn_f1_agg'):22s} {fmt(seconds.get('train ' + name), 0)}")
    print("\nPatient-level figures on the new patients (95 % bootstrap intervals)")
    print(f"  {'model or rule':80s} {'risk C-index':22s} {'HPV AUC':22s} {'HPV BA':22s}")
    counts = None
    for name, block in result["patient_level"].items():
        t2, t3 = block.get("task2") or {}, block.get("task3") or {}
        print(f"  {name:80s} {with_ci(t2, 'c_index'):22s} {with_ci(t3, 'auc'):22s} "
              f"{with_ci(t3, 'balanced_accuracy'):22s}")
        if t2 and t3 and counts is None:
            counts = (t2.get("n"), t2.get("n_events"), t2.get("comparable_pairs"), t3.get("n"), t3.get("n_negative"))
    if counts:
        print(f"  ({counts[0]} new patients with RFS, {counts[1]} events, {counts[2]} comparable pairs; "
              f"{counts[3]} with HPV known, {counts[4]} negative)")
    print("\nWall time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))


def markdown_table(result: dict) -> str:
    """The results as one Markdown table (segmentation and patient-level columns), for the docs."""
    rows = ["| model or rule | GTVp mean Dice | GTVn DSCagg | risk C-index | HPV AUC | HPV BA |",
            "|---|---|---|---|---|---|"]
    for name, block in result["segmentation"].items():
        rows.append(f"| {name} | {with_ci(block, 'gtvp_dice_mean')} | {with_ci(block, 'gtvn_dice_agg')} | | | |")
    for name, block in result["patient_level"].items():
        t2, t3 = block.get("task2") or {}, block.get("task3") or {}
        rows.append(f"| {name} | | | {with_ci(t2, 'c_index')} | {with_ci(t3, 'auc')} | "
                    f"{with_ci(t3, 'balanced_accuracy')} |")
    return "\n".join(rows) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-patients", type=int, default=300, help="whole synthetic training cohort")
    parser.add_argument("--test-patients", type=int, default=200, help="whole synthetic cohort of new patients")
    parser.add_argument("--seed", type=int, default=0, help="training cohort seed (new patients: seed + 1)")
    parser.add_argument("--size", default="demo", help="synthetic image size preset (demo: nodes resolvable)")
    parser.add_argument("--enriched", action="store_true", help="enriched cohorts (more HPV negatives and relapses)")
    parser.add_argument("--trainers", nargs="+", default=list(DEFAULT_TRAINERS))
    parser.add_argument("--plans", choices=("demo", "tiny", "default"), default="demo",
                        help="demo: the demo's CPU plans (32^3 patch, batch 2); tiny: nnUNetPlansTiny; "
                             "default: nnU-Net's own plans (GPU)")
    parser.add_argument("--mirroring", action="store_true",
                        help="test-time mirroring when predicting (8x the network passes; off by default)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--iterations", type=int, default=50, help="training iterations per epoch")
    parser.add_argument("--val-iterations", type=int, default=5)
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint file (default: the deployed, validated weights)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for prediction")
    parser.add_argument("--bootstrap", type=int, default=1000)
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
    (Path(args.workdir) / "table.md").write_text(markdown_table(result))
    print_table(result)
    print(f"\nresults: {out} and table.md ({result['total_seconds']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
