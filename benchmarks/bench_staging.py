"""Benchmark of T and N staging (HECKTOR 2026) on new synthetic patients: the staging model next to a
clinical-only model and the plain AJCC 7 geometry rule, with paired bootstrap CIs of the differences.

Usage::

    python benchmarks/bench_staging.py --train 200 --new 160 --num-processes 2

What is measured
----------------
1. A synthetic cohort at the ``demo`` size (real-size anatomy and lesions, ~3.5 mm CT voxels) is
   generated with the package's generator (``--train + --new`` patients, each with a label).
2. Stages. By default (``--stages generator``) the generator's HECKTOR 2026 release
   (``make_cohort(edition="2026")``, ``nnunet_hecktor/synthetic/staging.py``): T/N from the lesion
   geometry as AJCC 7 assigns them (largest primary diameter, invasion for some tumours > 40 mm,
   node number/size/side), the recorded (clinical) stage one stage away for 15 % (T) / 10 % (N) of
   patients, a few stages missing; HPV Status an input for every patient. ``--stages geometry``
   instead labels a 2025 cohort with this script's own rule (:func:`geometry_stages`: T from the
   primary's greatest dimension with a 12 % lognormal measurement error, T4 for invasion with a
   probability rising with size, occult nodes, 8 % of T (T1-T3) and N (N1-N2) moved one stage).
   The table also shows the generator's geometry stage before the clinical disagreement
   (``generator geometry``, what perfect masks and a perfect reader of invasion would give).
3. Masks: no trained network is available here, so the "predicted" masks are SIMULATED by
   degrading the ground-truth labels with the ``best_2025`` error model of
   ``benchmarks/bench_prognosis.py`` (set at the test image size near the best HECKTOR 2025
   entries; at the demo size it degrades less: the Dice it reaches and the node recall are
   printed with the results); features are measured on them (``nnunet-hecktor features`` code).
   Training patients' masks stand in for out-of-fold predictions; new patients' for test ones.
4. Models are fitted on the training patients only (``fit_staging``, the CLI's code) and applied
   to the new patients: ``staging`` (clinical + staging geometry features), ``image`` (geometry
   only), ``clinical`` (clinical only, HPV included). The AJCC 7 rule needs no fitting.
   Balanced accuracy = sklearn ``balanced_accuracy_score`` on the new patients; differences with
   a paired bootstrap CI (``metrics.paired``, 2000 replicates): better/worse when the 95 % CI of
   the difference excludes 0, else undecided.

Results go to ``bench_output/staging/results.json`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

#: Disagreement of the geometry-labelled cohort (see :func:`geometry_stages`).
MEASUREMENT_ERROR_SD = 0.12
P_OCCULT_NODE = 0.08
P_SHIFT_T = 0.08
P_SHIFT_N = 0.08


def _shift(code: int, n_codes: int, rng: np.random.Generator, low: int = 0) -> int:
    return int(np.clip(code + rng.choice([-1, 1]), low, n_codes - 1))


def geometry_stages(patient, seed: int) -> tuple[str, str]:
    """AJCC 7 T and N of a synthetic patient from its generating lesions, with realistic disagreement.

    Primary greatest dimension = 2 x largest semi-axis (mm) x lognormal error (sd
    :data:`MEASUREMENT_ERROR_SD`); T4 (invasion) with probability ``0.5 / (1 + exp(-(d - 45) / 6))``;
    T0 without a primary. Nodes: side = sign of the node's left-right position; ipsilateral = the
    primary's side (the largest node's without a primary); N by the AJCC 7 rule
    (:func:`nnunet_hecktor.prognosis.staging_rules.ajcc7_n_stage`); N0 becomes N1 with probability
    :data:`P_OCCULT_NODE` (occult/palpable nodes); T and N each shift one stage with probability
    :data:`P_SHIFT_T` / :data:`P_SHIFT_N` (reader disagreement between T1, T2 and T3, and between N1
    and N2: T0/N0 never shift, and no shift creates T4 or N3, which rest on invasion or a > 6 cm node).
    """
    from nnunet_hecktor.prognosis.staging_rules import ajcc7_n_stage, ajcc7_t_stage
    from nnunet_hecktor.synthetic.patients import patient_rng

    rng = patient_rng(seed, patient.index, stream=41)
    if patient.primary is None:
        t = 0
    else:
        d = 2.0 * max(patient.primary.radii_mm) * math.exp(rng.normal(0.0, MEASUREMENT_ERROR_SD))
        t = int(ajcc7_t_stage(d)[1])
        if rng.random() < 0.5 / (1.0 + math.exp(-(d - 45.0) / 6.0)):
            t = 4
        elif t > 0 and rng.random() < P_SHIFT_T:
            t = _shift(t, 4, rng, low=1)
    nodes = patient.nodes
    if nodes:
        sizes = [2.0 * max(n.radii_mm) * math.exp(rng.normal(0.0, MEASUREMENT_ERROR_SD)) for n in nodes]
        sides = np.sign([n.position[0] for n in nodes])
        reference = (np.sign(patient.primary.position[0]) if patient.primary is not None
                     else sides[int(np.argmax(sizes))])
        contralateral = bool((sides == -reference).any())
        bilateral = bool((sides > 0).any() and (sides < 0).any())
        n = int(ajcc7_n_stage(len(nodes), max(sizes), contralateral, bilateral)[1])
        if n < 3 and rng.random() < P_SHIFT_N:
            n = _shift(n, 3, rng, low=1)  # N1 <-> N2: an N3 (> 6 cm) is never a reader's call
    else:
        n = 1 if rng.random() < P_OCCULT_NODE else 0
    return f"T{t}", f"N{n}"


def staged_clinical_table(cohort_dir: Path, patients, seed: int, stages: str) -> tuple[Path, str]:
    """A 2026-style clinical CSV of the labelled patients (no M-stage; HPV for everyone; T/N stages)."""
    import pandas as pd

    from nnunet_hecktor import schema

    source = sorted(cohort_dir.glob("*clinical*.csv"))
    table = pd.read_csv(source[0], dtype={schema.COL_PATIENT: str}).set_index(schema.COL_PATIENT)
    by_id = {p.patient_id: p for p in patients}
    table = table.loc[[pid for pid in table.index if pid in by_id]]
    labels = {pid: geometry_stages(by_id[pid], seed) for pid in table.index}
    table[schema.COL_TSTAGE] = [labels[pid][0] for pid in table.index]
    table[schema.COL_NSTAGE] = [labels[pid][1] for pid in table.index]
    table[schema.COL_HPV] = [by_id[pid].clinical_recorded.get(schema.COL_HPV) for pid in table.index]
    table = table.drop(columns=[c for c in (schema.COL_MSTAGE,) if c in table.columns])
    out = cohort_dir.parent / f"clinical_2026_{stages}_stages.csv"
    table.to_csv(out)
    return out, stages


def _subset_csv(path: Path, patients, out: Path) -> Path:
    import pandas as pd

    table = pd.read_csv(path, dtype={"PatientID": str})
    table[table["PatientID"].isin(set(patients))].to_csv(out, index=False)
    return out


def _ba(y, p) -> float:
    from sklearn.metrics import balanced_accuracy_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(balanced_accuracy_score(y, p))


def prepare_cohort(args, work: Path):
    """Generate (once) the cohort; return ``(flat image/label folder, ground truth, drawn patients,
    patient ids used, clinical CSV with stages, stage source)``."""
    from nnunet_hecktor.synthetic import draw_patients, make_cohort

    cohort_dir = work / "cohort"
    target = args.train + args.new
    if args.stages == "generator":
        # The generator's 2026 release: every patient labelled, T/N stages in the CSV.
        if not (cohort_dir / "synthetic_ground_truth.json").is_file():
            make_cohort(cohort_dir, n_patients=target, seed=args.seed, layout="release", size=args.size,
                        edition="2026", num_processes=args.num_processes, progress=False, overwrite=True)
        flat_dir = work / "flat"
        flat_dir.mkdir(exist_ok=True)
        for folder in sorted((cohort_dir / "hecktor2026_training").iterdir()):
            for path in folder.glob("*.nii.gz"):
                link = flat_dir / path.name
                if not link.exists():
                    link.symlink_to(path.resolve())
        clinical_csv = cohort_dir / "HECKTOR_2026_Training_Task.csv"
    else:
        n_total = int(target / 0.55) + 10
        while sum(1 in p.tasks for p in draw_patients(n_total, args.seed)) < target:
            n_total += 20
        if not (cohort_dir / "synthetic_ground_truth.json").is_file():
            make_cohort(cohort_dir, n_patients=n_total, seed=args.seed, layout="flat", size=args.size,
                        num_processes=args.num_processes, progress=False, overwrite=True)
        flat_dir = cohort_dir
        clinical_csv = None
    ground_truth = json.loads((cohort_dir / "synthetic_ground_truth.json").read_text())
    patients = draw_patients(len(ground_truth["patients"]), ground_truth["seed"])
    labelled = sorted(p.name[: -len(".nii.gz")] for p in flat_dir.glob("*.nii.gz") if "__" not in p.name)
    chosen = sorted(np.random.default_rng(args.seed).permutation(labelled)[:target].tolist())
    if clinical_csv is None:
        clinical_csv, _ = staged_clinical_table(cohort_dir, patients, args.seed, "geometry")
    return flat_dir, ground_truth, patients, chosen, clinical_csv, args.stages


def run(args) -> dict:

    from bench_prognosis import SEGMENTATION_ERRORS, simulate_predictions

    from nnunet_hecktor import schema
    from nnunet_hecktor.clinical import read_clinical_csv
    from nnunet_hecktor.metrics.paired import paired_multiclass_balanced_accuracy
    from nnunet_hecktor.prognosis.features import extract_features, read_feature_table, write_feature_table
    from nnunet_hecktor.prognosis.stage_models import stage_codes
    from nnunet_hecktor.prognosis.staging_fit import fit_staging, stage_prediction
    from nnunet_hecktor.prognosis.staging_rules import ajcc7_rule_table

    work = Path(args.workdir)
    timings = {}
    t = time.perf_counter()
    flat_dir, ground_truth, patients, chosen, clinical_csv, stages = prepare_cohort(args, work)
    timings["cohort_s"] = time.perf_counter() - t
    rng = np.random.default_rng(args.seed)
    new_ids = sorted(rng.permutation(chosen)[: args.new].tolist())
    train_ids = sorted(set(chosen) - set(new_ids))

    seg_dir = work / "predicted_seg"
    features_csv, gt_csv = work / "features_predicted.csv", work / "features_ground_truth.csv"
    dice_json = work / "simulated_segmentation_quality.json"
    # Masks and features depend only on the cohort, the seed and the error model: a rerun in the same
    # workdir reuses them (delete the workdir, or pass --fresh, to recompute).
    if args.fresh or not (features_csv.is_file() and gt_csv.is_file() and dice_json.is_file()):
        t = time.perf_counter()
        dice = simulate_predictions(flat_dir, chosen, seg_dir, args.seed,
                                    SEGMENTATION_ERRORS[args.segmentation_errors], ground_truth)
        dice_json.write_text(json.dumps(dice))
        timings["simulate_predictions_s"] = time.perf_counter() - t
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            features = extract_features(flat_dir, seg_dir, seg_source="predicted",
                                        num_processes=args.num_processes, progress=False)
            gt_features = extract_features(flat_dir, [flat_dir], seg_source="ground_truth",
                                           num_processes=args.num_processes, progress=False)
        timings["features_s"] = time.perf_counter() - t
        write_feature_table(features, features_csv)
        write_feature_table(gt_features, gt_csv)
    dice = json.loads(dice_json.read_text())
    gt_table = read_feature_table(gt_csv)
    train_csv = _subset_csv(clinical_csv, train_ids, work / "clinical_train.csv")
    table = read_feature_table(features_csv)
    clinical = read_clinical_csv(clinical_csv)
    new_records = {pid: {k: v for k, v in clinical[pid].items() if k not in (schema.COL_TSTAGE, schema.COL_NSTAGE)}
                   for pid in new_ids}

    predictions: dict[str, dict[str, np.ndarray]] = {}
    fits = {}
    for name, feature_set in (("staging", "all"), ("image", "image"), ("clinical", "clinical")):
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = fit_staging(train_csv, work / f"model_{name}", features_csv=features_csv, feature_set=feature_set,
                              random_state=args.seed, progress=False, n_bootstrap=200)
            out = stage_prediction(fit.model, table.loc[new_ids], new_records)
        timings[f"fit_{name}_s"] = time.perf_counter() - t
        fits[name] = fit
        predictions[name] = {schema.COL_TSTAGE: stage_codes(out["t_stage"], schema.COL_TSTAGE),
                             schema.COL_NSTAGE: stage_codes(out["n_stage"], schema.COL_NSTAGE)}
    rule = ajcc7_rule_table(table.loc[new_ids])
    predictions["AJCC 7 rule"] = {c: stage_codes(rule[c], c) for c in (schema.COL_TSTAGE, schema.COL_NSTAGE)}
    if stages == "generator":  # the generator's own geometry stage before clinical disagreement
        staging = {pid: ground_truth["patients"][pid]["staging"] for pid in new_ids}
        predictions["generator geometry"] = {
            c: stage_codes([staging[pid][f"{c} (geometry)"] for pid in new_ids], c)
            for c in (schema.COL_TSTAGE, schema.COL_NSTAGE)}
    rule_gt = ajcc7_rule_table(gt_table.loc[new_ids])
    predictions["AJCC 7 rule on GT masks"] = {c: stage_codes(rule_gt[c], c) for c in (schema.COL_TSTAGE,
                                                                                     schema.COL_NSTAGE)}

    result = {"stages": stages, "size": args.size, "segmentation_errors": args.segmentation_errors,
              "simulated_segmentation_quality": dice, "n_train": len(train_ids), "n_new": len(new_ids),
              "whole_cohort": len(ground_truth["patients"]), "balanced_accuracy": {}, "comparisons": {},
              "class_counts_new": {}, "cv_on_training": {}, "timings": timings}
    for column in (schema.COL_TSTAGE, schema.COL_NSTAGE):
        y = stage_codes([clinical[pid].get(column) for pid in new_ids], column)
        known = y >= 0
        result["class_counts_new"][column] = {schema.stage_label(column, int(c)): int((y == c).sum())
                                              for c in np.unique(y[known])}
        result["balanced_accuracy"][column] = {name: _ba(y[known], p[column][known])
                                               for name, p in predictions.items()}
        result["comparisons"][column] = {}
        for a, b in (("staging", "clinical"), ("staging", "AJCC 7 rule"), ("image", "AJCC 7 rule"),
                     ("staging", "image")):
            comparison = paired_multiclass_balanced_accuracy(
                y[known], predictions[a][column][known], predictions[b][column][known], a, b,
                n_bootstrap=args.bootstrap, seed=args.seed)
            result["comparisons"][column][f"{a} - {b}"] = comparison.to_dict()
        result["cv_on_training"][column] = {name: fit.summary["cross_validation"][column]["balanced_accuracy"]
                                            for name, fit in fits.items()}
    return result


def print_table(r: dict) -> None:
    from nnunet_hecktor import schema

    q = r["simulated_segmentation_quality"]
    print(f"\nT/N staging on {r['n_new']} NEW synthetic patients (models fitted on {r['n_train']} others); stages: "
          f"{r['stages']}; features from SIMULATED predicted masks ({r['segmentation_errors']}: GTVp Dice "
          f"{q['gtvp_mean_dice']:.2f}, GTVn aggregated Dice {q['gtvn_aggregated_dice']:.2f}, node recall "
          f"{q['node_recall']:.2f})")
    names = list(r["balanced_accuracy"][schema.COL_TSTAGE])
    print(f"{'balanced accuracy':<26}" + "".join(f"{n:>26}" for n in names))
    for column in (schema.COL_TSTAGE, schema.COL_NSTAGE):
        print(f"{column:<26}" + "".join(f"{r['balanced_accuracy'][column][n]:>26.3f}" for n in names))
    print("\npaired bootstrap differences (95 % CI; better/worse only when the CI excludes 0):")
    for column in (schema.COL_TSTAGE, schema.COL_NSTAGE):
        for key, c in r["comparisons"][column].items():
            i = c["interval"]
            print(f"  {column}: {key:<26} {c['difference']:+.3f} [{i['low']:+.3f}, {i['high']:+.3f}]  {c['verdict']}")
    print("\nclass counts of the new patients: " + "; ".join(
        f"{col}: " + ", ".join(f"{k} {v}" for k, v in counts.items()) for col, counts in r["class_counts_new"].items()))
    print("5-fold CV balanced accuracy on the training patients: " + "; ".join(
        f"{col}: " + ", ".join(f"{k} {v:.3f}" for k, v in cv.items()) for col, cv in r["cv_on_training"].items()))
    print("timings (s): " + ", ".join(f"{k[:-2]} {v:.1f}" for k, v in r["timings"].items()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=200, help="training patients (default 200)")
    parser.add_argument("--new", type=int, default=160, help="new (test) patients (default 160)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", default="demo", choices=("test", "demo"),
                        help="image size preset (default demo: real-size lesions, ~3.5 mm voxels)")
    parser.add_argument("--stages", default="generator", choices=("generator", "geometry"),
                        help="where T/N come from: the generator's 2026 release (default), or this script's own "
                             "geometry labelling of a 2025 cohort")
    parser.add_argument("--segmentation-errors", default="best_2025", choices=("best_2025", "weak_nodes"))
    parser.add_argument("--bootstrap", type=int, default=2000, help="paired bootstrap replicates")
    parser.add_argument("--num-processes", type=int, default=2)
    parser.add_argument("--fresh", action="store_true",
                        help="recompute the simulated masks and features even when the workdir has them")
    parser.add_argument("--workdir", default=str(REPO / "bench_output" / "staging"))
    args = parser.parse_args(argv)
    result = run(args)
    out = Path(args.workdir) / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    from nnunet_hecktor.strict_json import json_safe

    out.write_text(json.dumps(json_safe(result), indent=2))
    print_table(result)
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
