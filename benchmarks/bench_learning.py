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

The same seeds give the same figures (nnU-Net's own training randomness aside: it seeds nothing,
so a retrain moves segmentation figures by a few hundredths; see the docs page).

Usage (CPU, reduced; see ``docs/learning-benchmark.md`` for the settings of the published table)::

    python benchmarks/bench_learning.py --train-patients 300 --test-patients 200 --epochs 30 \\
        --iterations 50 --device cpu
    # GPU, larger:
    python benchmarks/bench_learning.py --train-patients 600 --test-patients 300 --epochs 100 \\
        --iterations 250 --plans default --device cuda --num-processes 8

Results: ``<workdir>/results.json`` and a printed table.
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

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TRAINERS = ("HecktorSWATrainer_benchmark", "HecktorMultiTaskTrainer_benchmark",
                    "HecktorMultiTaskTrainerLesionHeads_benchmark")
CONFIGURATION = "3d_fullres"


# --------------------------------------------------------------------------- figures with intervals

def interval(values: np.ndarray) -> list[float] | None:
    from nnunet_hecktor.metrics.bootstrap import percentile_interval

    ci = percentile_interval(values)
    return None if not math.isfinite(ci.low) else [round(ci.low, 4), round(ci.high, 4)]


def risk_figures(time_, event, risk, n_bootstrap: int, seed: int) -> dict:
    """Harrell's C-index (HECKTOR rules) with a patient bootstrap interval, on patients with known RFS."""
    from nnunet_hecktor.metrics.bootstrap import bootstrap_c_index, resampling_weights
    from nnunet_hecktor.metrics.survival import concordance_index

    t, e, r = (np.asarray(a, dtype=float) for a in (time_, event, risk))
    ok = np.isfinite(t) & np.isfinite(e) & np.isfinite(r)
    if ok.sum() < 2 or e[ok].sum() == 0:
        return {"c_index": None, "n": int(ok.sum())}
    result = concordance_index(t[ok], e[ok].astype(int), r[ok])
    w = resampling_weights(int(ok.sum()), n_bootstrap, seed)
    return {"c_index": result.c_index, "ci95": interval(bootstrap_c_index(t[ok], e[ok].astype(int), r[ok], w)),
            "n": int(ok.sum()), "events": int(e[ok].sum()), "comparable_pairs": int(result.comparable)}


def hpv_figures(y, probability, status, n_bootstrap: int, seed: int) -> dict:
    """AUC of the probability and balanced accuracy of the hard status, with bootstrap intervals."""
    from nnunet_hecktor.metrics.bootstrap import bootstrap_binary, resampling_weights
    from nnunet_hecktor.metrics.classification import binary_metrics

    y, p = np.asarray(y, dtype=float), np.asarray(probability, dtype=float)
    s = np.asarray(status, dtype=float)
    ok = np.isfinite(y) & np.isfinite(p) & np.isfinite(s)
    if ok.sum() < 2 or len(set(y[ok])) < 2:
        return {"auc": None, "balanced_accuracy": None, "n": int(ok.sum())}
    m = binary_metrics(y[ok].astype(int), s[ok].astype(int), p[ok])
    reps = bootstrap_binary(y[ok].astype(int), s[ok].astype(int), resampling_weights(int(ok.sum()), n_bootstrap, seed),
                            score=p[ok])
    return {"auc": m.auc, "auc_ci95": interval(reps["auc"]), "balanced_accuracy": m.balanced_accuracy,
            "balanced_accuracy_ci95": interval(reps["balanced_accuracy"]), "n": int(ok.sum()),
            "negatives": int((y[ok] == 0).sum())}


# --------------------------------------------------------------------------- steps

class Clock:
    """Seconds per named step, printed as they finish."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, label: str, fn):
        print(f"[bench_learning] {label} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        value = fn()
        self.seconds[label] = round(time.perf_counter() - start, 1)
        print(f"[bench_learning] {label}: {self.seconds[label]:.0f} s", file=sys.stderr, flush=True)
        return value


def make_cohorts(args, work: Path, clock: Clock) -> dict:
    """Synthetic training and new-patient releases, converted to nnU-Net raw datasets."""
    from nnunet_hecktor.dataset_conversion import convert_dataset
    from nnunet_hecktor.synthetic import make_cohort

    raw = work / "nnUNet_raw"
    out = {}
    for role, n, seed, dataset_id, name in (("train", args.train_patients, args.seed, args.dataset_id, "LearnTrain"),
                                             ("test", args.test_patients, args.seed + 1, args.dataset_id + 1,
                                              "LearnNew")):
        release = work / f"synthetic_{role}"
        dataset = raw / f"Dataset{dataset_id:03d}_{name}"
        if not (release / "synthetic_ground_truth.json").is_file():
            clock(f"synth {role}", lambda: make_cohort(release, n_patients=n, seed=seed, size=args.size,
                                                       num_processes=args.num_processes, progress=False,
                                                       overwrite=True, **cohort_options(args)))
        if not (dataset / "dataset.json").is_file():
            clock(f"convert {role}", lambda: convert_dataset(release, dataset_id=dataset_id, name=name,
                                                             output=dataset, num_processes=args.num_processes))
        truth = json.loads((release / "synthetic_ground_truth.json").read_text())
        out[role] = {"release": release, "dataset": dataset, "dataset_id": dataset_id, "truth": truth,
                     "clinical_csv": dataset / "clinical.csv"}
    return out


def cohort_options(args) -> dict:
    """Extra ``make_cohort`` options (only those this version of the generator knows)."""
    import inspect

    from nnunet_hecktor.synthetic import make_cohort

    wanted = {"enrich": args.enrich} if args.enrich else {}
    known = inspect.signature(make_cohort).parameters
    missing = [k for k in wanted if k not in known]
    if missing:
        raise SystemExit(f"this synthetic generator has no option {', '.join(missing)}")
    return wanted


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
    return "nnUNetPlans"


def train_and_predict(trainer: str, plans: str, args, env: dict, cohorts: dict, work: Path, clock: Clock) -> dict:
    """Train fold 0, predict the new patients (heads too) and the training cohort (segmentation only)."""
    from nnunet_hecktor.nnunet_env import run_nnunet
    from nnunet_hecktor.prediction.api import predict

    dataset_name = cohorts["train"]["dataset"].name
    model_dir = Path(env["nnUNet_results"]) / dataset_name / f"{trainer}__{plans}__{CONFIGURATION}"
    train_env = {**env, "NNUNET_HECKTOR_EPOCHS": str(args.epochs), "NNUNET_HECKTOR_ITERATIONS": str(args.iterations),
                 "NNUNET_HECKTOR_VAL_ITERATIONS": str(args.val_iterations)}
    if not (model_dir / "fold_0" / "checkpoint_final.pth").is_file():
        clock(f"train {trainer}", lambda: run_nnunet(
            "nnUNetv2_train", [str(cohorts["train"]["dataset_id"]), CONFIGURATION, "0", "-tr", trainer, "-p", plans,
                               "-device", args.device], train_env, work / "logs" / f"train_{trainer}.log"))
    out = {"model_dir": model_dir}
    for role, segmentation_only in (("test", False), ("train", True)):
        pred_dir = work / "predictions" / trainer / role
        if not (pred_dir / "predict_settings.json").is_file() and not any(pred_dir.glob("*.nii.gz")):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clock(f"predict {role} {trainer}", lambda: predict(
                    cohorts[role]["release"], pred_dir, model_dir, clinical_csv=cohorts[role]["clinical_csv"],
                    folds=[0], checkpoint=args.checkpoint, device=args.device, segmentation_only=segmentation_only,
                    num_threads=args.threads, progress=False))
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
    metrics = json.loads((out_dir / "metrics.json").read_text())
    return metrics.get("task1", metrics)


def feature_table(cohort: dict, pred_dir: Path, out_csv: Path, args) -> Path:
    from nnunet_hecktor.prognosis.features import extract_features, write_feature_table

    if not out_csv.is_file():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = extract_features(cohort["release"], [pred_dir], seg_source="predicted",
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

def outcome_rows(clinical_csv: Path, patients: list[str], scores: dict[str, dict], args) -> dict:
    """Risk and HPV figures of every score on the new patients with known targets."""
    from nnunet_hecktor.clinical import read_clinical_csv

    records = read_clinical_csv(clinical_csv)
    rfs = np.array([_number(records.get(p, {}).get("RFS")) for p in patients])
    relapse = np.array([_number(records.get(p, {}).get("Relapse")) for p in patients])
    hpv = np.array([_number(records.get(p, {}).get("HPV Status")) for p in patients])
    out = {}
    for name, s in scores.items():
        row = {}
        if "risk" in s:
            row["risk"] = risk_figures(rfs, relapse, [s["risk"].get(p, np.nan) for p in patients], args.bootstrap,
                                       args.seed)
        if "hpv_probability" in s:
            prob = [s["hpv_probability"].get(p, np.nan) for p in patients]
            status = [s["hpv_status"].get(p, np.nan) for p in patients]
            row["hpv"] = hpv_figures(hpv, prob, status, args.bootstrap, args.seed)
        out[name] = row
    return out


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def run(args) -> dict:
    from nnunet_hecktor.demo import CPU_FRIENDLY_VARIABLES
    from nnunet_hecktor.nnunet_env import nnunet_environment

    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    extra = dict(CPU_FRIENDLY_VARIABLES) if args.device == "cpu" else {"nnUNet_n_proc_DA": str(args.num_processes)}
    env = nnunet_environment(work, extra=extra)
    clock = Clock()
    cohorts = make_cohorts(args, work, clock)
    plans = preprocess(args, env, cohorts, work, clock)
    test_truth = cohorts["test"]["truth"]["patients"]
    test_patients = sorted(test_truth)
    result = {"settings": {k: v for k, v in vars(args).items()}, "plans": plans, "trainers": {}, "scores": {}}

    scores: dict[str, dict] = {
        "ceiling: generator's true risk / HPV probability": {
            "risk": {p: test_truth[p]["true_risk"] for p in test_patients},
            "hpv_probability": {p: test_truth[p]["hpv_probability"] for p in test_patients},
            "hpv_status": {p: float(test_truth[p]["hpv_probability"] >= np.mean(
                [test_truth[q]["hpv"] for q in test_patients])) for p in test_patients}},
    }
    for trainer in args.trainers:
        t = train_and_predict(trainer, plans, args, env, cohorts, work, clock)
        entry = {"segmentation": clock(f"evaluate {trainer}", lambda: segmentation_figures(
            cohorts, t["test_predictions"], work, args, trainer))}
        if "validation_heads" in t:
            entry["validation_heads"] = {k: t["validation_heads"].get(k) for k in ("n_patients", "hpv", "rfs",
                                                                                   "reliability", "warnings")}
        predictions_csv = t["test_predictions"] / "predictions.csv"
        if predictions_csv.is_file():
            import pandas as pd

            heads = pd.read_csv(predictions_csv, dtype={"PatientID": str}).set_index("PatientID")
            scores[f"heads: {trainer}"] = {"risk": heads["risk"].to_dict(),
                                           "hpv_probability": heads["hpv_probability"].to_dict(),
                                           "hpv_status": heads["hpv_status"].to_dict()}
        train_csv = feature_table(cohorts["train"], t["train_predictions"],
                                  work / "features" / trainer / "train.csv", args)
        test_csv = feature_table(cohorts["test"], t["test_predictions"], work / "features" / trainer / "test.csv", args)
        stages = clock(f"prognosis stages {trainer}", lambda: patient_level(cohorts, train_csv, test_csv, work, args,
                                                                             trainer))
        scores[f"prognosis stage on {trainer} masks (clinical + image features)"] = stages["all"]
        if "clinical only (Cox/ICARE, logistic)" not in scores:
            scores["clinical only (Cox/ICARE, logistic)"] = stages["clinical"]
        import pandas as pd

        volume = pd.read_csv(test_csv, dtype={"PatientID": str}).set_index("PatientID")["gtvp_volume_ml"]
        scores[f"one number: log GTVp volume of {trainer} masks"] = {
            "risk": {p: float(np.log1p(v)) for p, v in volume.items()}}
        result["trainers"][trainer] = entry
    result["scores"] = outcome_rows(cohorts["test"]["clinical_csv"], test_patients, scores, args)
    result["seconds"] = clock.seconds
    return result


def fmt(value, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def fmt_ci(block: dict | None, key: str) -> str:
    if not block or block.get(key) is None:
        return "–"
    ci = block.get(f"{key}_ci95") if f"{key}_ci95" in block else block.get("ci95")
    return f"{fmt(block[key])} [{fmt(ci[0], 2)}, {fmt(ci[1], 2)}]" if ci else fmt(block[key])


def print_table(result: dict) -> None:
    print("\nSegmentation on the new patients (GTVp mean Dice, GTVn aggregated Dice; 95 % bootstrap intervals)")
    for trainer, entry in result["trainers"].items():
        seg = entry["segmentation"]
        gtvp = seg.get("gtvp_dice_mean")
        gtvn = seg.get("gtvn_dice_agg")
        ci = seg.get("ci95") or {}

        def show(value, key):
            c = ci.get(key)
            return f"{fmt(value)} [{fmt(c['low'], 2)}, {fmt(c['high'], 2)}]" if c else fmt(value)
        print(f"  {trainer:50s} GTVp {show(gtvp, 'gtvp_dice_mean'):24s} GTVn {show(gtvn, 'gtvn_dice_agg')}"
              f"   train {result['seconds'].get('train ' + trainer, float('nan')):.0f} s")
    print("\nPatient-level figures on the new patients (95 % bootstrap intervals)")
    print(f"  {'model or rule':80s} {'risk C-index':24s} {'HPV AUC':24s} {'HPV BA':24s}")
    for name, row in result["scores"].items():
        print(f"  {name:80s} {fmt_ci(row.get('risk'), 'c_index'):24s} {fmt_ci(row.get('hpv'), 'auc'):24s} "
              f"{fmt_ci(row.get('hpv'), 'balanced_accuracy'):24s}")
    any_row = next(iter(result["scores"].values()))
    r, h = any_row.get("risk", {}), any_row.get("hpv", {})
    print(f"  ({r.get('n')} new patients with RFS, {r.get('events')} events, {r.get('comparable_pairs')} comparable "
          f"pairs; {h.get('n')} with HPV known, {h.get('negatives')} negative)")
    print("\nWall time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in result["seconds"].items()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-patients", type=int, default=300, help="whole synthetic training cohort")
    parser.add_argument("--test-patients", type=int, default=200, help="whole synthetic cohort of new patients")
    parser.add_argument("--seed", type=int, default=0, help="training cohort seed (new patients: seed + 1)")
    parser.add_argument("--size", default="test", help="synthetic image size preset")
    parser.add_argument("--enrich", default=None, help="cohort enrichment option of the generator, if it has one")
    parser.add_argument("--trainers", nargs="+", default=list(DEFAULT_TRAINERS))
    parser.add_argument("--plans", choices=("tiny", "default"), default="tiny")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--iterations", type=int, default=50, help="training iterations per epoch")
    parser.add_argument("--val-iterations", type=int, default=5)
    parser.add_argument("--checkpoint", default="checkpoint_swa.pth")
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
    from nnunet_hecktor.prognosis.stage_io import json_safe

    out = Path(args.workdir) / "results.json"
    out.write_text(json.dumps(json_safe(result), indent=2, default=str))
    print_table(result)
    print(f"\nresults: {out} ({result['total_seconds']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
