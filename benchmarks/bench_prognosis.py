"""Benchmark of the prognosis stage on synthetic cohorts: out-of-fold C-index and HPV balanced
accuracy next to the ceilings of the generating model and a clinical-only baseline.

Usage::

    python benchmarks/bench_prognosis.py --sizes 150 400 --num-processes 2 --hpv-repeats 10

For each size N, a synthetic release is generated (``make_cohort``, flat layout, test-size
images) with enough patients that about N of them have a ground-truth label (Task 1) and a
known outcome. No trained segmentation model is available to this benchmark, so the
"predicted" segmentations are SIMULATED by degrading the ground-truth labels with realistic
errors (boundary shifts, missed small nodes, occasional missed primaries, false-positive
node blobs); their Dice against the ground truth is printed so the degradation can be judged.
Two error models are run on the same cohort (``--segmentation-errors``): ``best_2025``, set so
the Dice is near the best entries of the HECKTOR 2025 leaderboard (GTVp DSC
0.73-0.74, GTVn DSCagg 0.72-0.76), and ``weak_nodes``, the first version of this benchmark,
whose GTVn is clearly worse (DSCagg about 0.6, more nodes missed) and GTVp a little better.
Image features are only as good as the segmentation they are measured on; the two rows show
how much of the stage's gain survives a weak node segmentation.
Features are measured on these simulated predictions (``seg_source = predicted``) and the
survival and HPV stages are cross-validated (5-fold, stratified) with three input sets:
clinical only, image features only, and both, always on the same patients. The HPV
cross-validation is repeated with several fold seeds (HPV-negative patients are ~10 %, so one
split is noisy) and its mean and SD are reported.

Ceilings come from the generator's ground truth, on exactly the analysed patients: the
C-index of the true risk (linear predictor that drew the outcomes) and the balanced accuracy
of the true HPV probability thresholded at the prevalence (Bayes rule for balanced accuracy).
Results go to ``bench_output/prognosis/results.json`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- simulated predictions


@dataclass(frozen=True)
class SegmentationErrors:
    """How the simulated automatic segmentation departs from the ground truth (per patient).

    Each structure (GTVp, GTVn) is misplaced by one voxel along a random axis with probability
    ``p_shift[structure]``; its boundary moves in or out (the mask smoothed and re-thresholded at
    a level drawn from ``threshold_range[structure]``); a GTVn lesion whose generating node is
    smaller than 1.5 mL is missed with probability ``p_miss_small_node`` (larger ones
    ``p_miss_large_node``); the primary is missed with probability ``p_miss_primary``; a
    false-positive node blob (radius 1.5 voxels) appears in soft tissue away from the lesions
    with probability ``p_false_node``.
    """

    p_shift: dict[str, float]
    threshold_range: dict[str, tuple[float, float]]
    p_miss_small_node: float
    p_miss_large_node: float
    p_miss_primary: float
    p_false_node: float


#: ``best_2025`` is set so the Dice lands near the best entries of the HECKTOR 2025 leaderboard
#: (GTVp DSC 0.73-0.74, GTVn DSCagg 0.72-0.76); ``weak_nodes``, the first version of this
#: benchmark, misses more nodes and moves their boundaries more (GTVn DSCagg about 0.6).
SEGMENTATION_ERRORS: dict[str, SegmentationErrors] = {
    "best_2025": SegmentationErrors({"gtvp": 0.6, "gtvn": 0.3}, {"gtvp": (0.25, 0.75), "gtvn": (0.4, 0.6)},
                                    0.2, 0.03, 0.02, 0.1),
    "weak_nodes": SegmentationErrors({"gtvp": 0.5, "gtvn": 0.5}, {"gtvp": (0.3, 0.7), "gtvn": (0.3, 0.7)},
                                     0.4, 0.05, 0.03, 0.2),
}
SMALL_NODE_ML = 1.5


def degrade_label(label: np.ndarray, ct: np.ndarray, rng: np.random.Generator, errors: SegmentationErrors,
                  node_masks: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """A plausible automatic segmentation derived from a ground-truth label (0/1/2, (z, y, x)).

    ``node_masks``: per generating node, its rendered region (bool, like ``label``) and its
    generating volume in mL. Whether a node counts as small is decided on that volume, not on
    the rendered voxels: at the test image size every node is drawn with about the minimum
    radius, so a voxel-count rule would call nearly all of them small.
    """
    from scipy import ndimage

    out = np.zeros_like(label)
    for value in (2, 1):  # the primary last, so it wins where they touch (as in the labels)
        mask = label == value
        if not mask.any():
            continue
        if value == 1 and rng.random() < errors.p_miss_primary:
            continue
        structure = "gtvp" if value == 1 else "gtvn"
        if rng.random() < errors.p_shift[structure]:  # misplaced by one voxel along a random axis
            mask = np.roll(mask, int(rng.choice([-1, 1])), axis=int(rng.integers(3)))
        smooth = ndimage.gaussian_filter(mask.astype(np.float32), sigma=0.6)
        moved = smooth > rng.uniform(*errors.threshold_range[structure])
        if value == 2:
            components, count = ndimage.label(moved, structure=np.ones((3, 3, 3)))
            near = [ndimage.binary_dilation(m) for m, _ in node_masks]  # a shifted node still overlaps
            for k in range(1, count + 1):
                component = components == k
                overlaps = [int((component & m).sum()) for m in near]
                volume = node_masks[int(np.argmax(overlaps))][1] if overlaps and max(overlaps) else 0.0
                p_miss = errors.p_miss_small_node if volume < SMALL_NODE_ML else errors.p_miss_large_node
                if rng.random() < p_miss:
                    moved[component] = False
        out[moved] = value
    if rng.random() < errors.p_false_node:
        soft = (ct > -100) & (ct < 200) & (ndimage.distance_transform_edt(label == 0) > 4)
        candidates = np.argwhere(soft)
        if len(candidates):
            centre = candidates[rng.integers(len(candidates))]
            zz, yy, xx = np.ogrid[tuple(slice(0, n) for n in label.shape)]
            blob = (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= 1.5 ** 2
            out[blob & (out == 0)] = 2
    return out


def generating_node_masks(patient, ground_truth_images: dict, size: str, shape) -> list[tuple[np.ndarray, float]]:
    """Rendered region and generating volume (mL) of each node of a synthetic patient."""
    from nnunet_hecktor.synthetic import anatomy
    from nnunet_hecktor.synthetic.geometry import SIZE_PRESETS, Grid

    g = ground_truth_images["grids"]["ct"]
    grid = Grid(tuple(g["size"]), tuple(g["spacing"]), tuple(g["origin"]))
    frame = anatomy.body_frame(patient, SIZE_PRESETS[size], grid)
    masks = []
    for node in patient.nodes:
        mask = np.zeros(shape, dtype=bool)
        box, q = anatomy.lesion_field(frame, node, grid)
        if box is not None:
            mask[box] = q <= 1.0
        masks.append((mask, node.volume_ml))
    return masks


def simulate_predictions(cohort_dir: Path, patient_ids, out_dir: Path, seed: int, errors: SegmentationErrors,
                         ground_truth: dict) -> dict[str, float]:
    """Write degraded labels ``out_dir/<PID>.nii.gz``; return their Dice against the ground truth
    (GTVp mean over patients, GTVp and GTVn aggregated as in docs/explanations/hecktor-metrics.md) and the node recall."""
    import SimpleITK as sitk

    from nnunet_hecktor.synthetic import draw_patients

    patients = {p.patient_id: p for p in draw_patients(len(ground_truth["patients"]), ground_truth["seed"])}
    out_dir.mkdir(parents=True, exist_ok=True)
    dice_p, sums = [], np.zeros((2, 2))  # rows GTVp/GTVn: intersection, sum of sizes
    nodes_total = nodes_found = 0
    for i, pid in enumerate(sorted(patient_ids)):
        label_image = sitk.ReadImage(str(cohort_dir / f"{pid}.nii.gz"))
        ct = sitk.GetArrayFromImage(sitk.ReadImage(str(cohort_dir / f"{pid}__CT.nii.gz")))
        label = sitk.GetArrayFromImage(label_image)
        nodes = generating_node_masks(patients[pid], ground_truth["patients"][pid]["images"], ground_truth["size"],
                                      label.shape)
        pred = degrade_label(label, ct, np.random.default_rng([seed, i, 77]), errors, nodes)
        image = sitk.GetImageFromArray(pred.astype(np.uint8))
        image.CopyInformation(label_image)
        sitk.WriteImage(image, str(out_dir / f"{pid}.nii.gz"), True)
        for row, value in enumerate((1, 2)):
            gt, pr = label == value, pred == value
            sums[row] += ((gt & pr).sum(), gt.sum() + pr.sum())
            if value == 1 and (gt.any() or pr.any()):
                dice_p.append(2 * (gt & pr).sum() / (gt.sum() + pr.sum()))
        for mask, _ in nodes:
            rendered = mask & (label == 2)
            if rendered.any():
                nodes_total += 1
                nodes_found += bool((pred[rendered] == 2).any())
    agg = 2 * sums[:, 0] / np.maximum(sums[:, 1], 1)
    return {"gtvp_mean_dice": float(np.mean(dice_p)), "gtvp_aggregated_dice": float(agg[0]),
            "gtvn_aggregated_dice": float(agg[1]), "node_recall": nodes_found / max(nodes_total, 1)}


# --------------------------------------------------------------------------- cohort


def cohort_size_for(target: int, seed: int) -> int:
    """Whole-cohort size giving about ``target`` Task 1 patients with a known outcome (fast path)."""
    from nnunet_hecktor.synthetic import draw_patients

    n = int(target / 0.7)
    while True:
        patients = draw_patients(n, seed)
        usable = sum(1 for p in patients if 1 in p.tasks and 2 in p.tasks and p.clinical_recorded["RFS"] is not None)
        if usable >= target:
            return n
        n += max(1, (target - usable))


def ceilings(ground_truth: dict, survival_ids, hpv_ids) -> dict[str, float]:
    """Generator ceilings on exactly the analysed patients."""
    from nnunet_hecktor.metrics.classification import balanced_accuracy, roc_auc
    from nnunet_hecktor.metrics.survival import harrell_c_index

    patients = ground_truth["patients"]
    s = [patients[p] for p in survival_ids]
    h = [patients[p] for p in hpv_ids]
    y = np.array([p["hpv"] for p in h])
    prob = np.array([p["hpv_probability"] for p in h])
    return {
        "c_index_true_risk": harrell_c_index([p["rfs_days"] for p in s], [p["relapse"] for p in s],
                                             [p["true_risk"] for p in s]),
        "hpv_balanced_accuracy_true_probability_at_prevalence": balanced_accuracy(y, (prob >= y.mean()).astype(int)),
        "hpv_auc_true_probability": roc_auc(y, prob),
    }


# --------------------------------------------------------------------------- one size


def ground_truth_training_experiment(gt_csv: Path, predicted_csv: Path, clinical_csv: Path, seed: int) -> dict:
    """What training on ground-truth-mask features costs when deployment sees predicted masks.

    Same folds, clinical + image inputs, bagged ICARE (survival) and the HPV classifier: each fold's
    model is fitted on the training rows' features from GROUND-TRUTH masks (what the guard in
    ``fit`` refuses by default) and evaluated on the validation rows' features from PREDICTED masks,
    next to the same model fitted on predicted-mask features (the default) and a model both fitted
    and evaluated on ground-truth features (the optimistic figure such a pipeline would report).
    """
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sksurv.util import Surv

    from nnunet_hecktor.metrics.classification import best_balanced_accuracy_threshold, binary_metrics
    from nnunet_hecktor.metrics.survival import harrell_c_index
    from nnunet_hecktor.prognosis.cross_validation import make_folds
    from nnunet_hecktor.prognosis.hpv_models import hpv_pipeline
    from nnunet_hecktor.prognosis.stage_data import hpv_targets, survival_targets
    from nnunet_hecktor.prognosis.stage_io import load_training_inputs
    from nnunet_hecktor.prognosis.survival_models import RiskScale, survival_pipeline

    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gt, _ = load_training_inputs("survival", gt_csv, clinical_csv, "all", None, True)
        pred, _ = load_training_inputs("survival", predicted_csv, clinical_csv, "all", None, False)
        pids, time_, event, _ = survival_targets(gt.clinical, [p for p in gt.frame.index if p in pred.frame.index])
        y = Surv.from_arrays(event, time_)
        folds = make_folds(event.astype(int), None, "kfold", 5, seed)
        risks = {k: np.zeros(len(pids)) for k in ("gt_to_gt", "gt_to_predicted", "predicted_to_predicted")}
        for fold in folds:
            for train_on, test_on, key in ((gt, gt, "gt_to_gt"), (gt, pred, "gt_to_predicted"),
                                           (pred, pred, "predicted_to_predicted")):
                Xtr = train_on.frame.loc[pids].iloc[fold.train]
                model = survival_pipeline(train_on.roles, "icare", seed).fit(Xtr, y[fold.train])
                scale = RiskScale.of(model.predict(Xtr))
                risks[key][fold.validation] = scale.apply(model.predict(test_on.frame.loc[pids].iloc[fold.validation]))
        out["survival_icare_c_index"] = {k: harrell_c_index(time_, event, v) for k, v in risks.items()}

        gt, _ = load_training_inputs("hpv", gt_csv, clinical_csv, "all", None, True)
        pred, _ = load_training_inputs("hpv", predicted_csv, clinical_csv, "all", None, False)
        pids, labels, _ = hpv_targets(gt.clinical, [p for p in gt.frame.index if p in pred.frame.index])
        folds = make_folds(labels, None, "kfold", 5, seed)
        figures = {}
        for train_on, test_on, key in ((gt, gt, "gt_to_gt"), (gt, pred, "gt_to_predicted"),
                                       (pred, pred, "predicted_to_predicted")):
            prob, status = np.zeros(len(pids)), np.zeros(len(pids), dtype=int)
            for fold in folds:
                Xtr = train_on.frame.loc[pids].iloc[fold.train]
                estimator = hpv_pipeline(train_on.roles, random_state=seed)
                model = clone(estimator).fit(Xtr, labels[fold.train])
                # threshold on the training rows' own out-of-fold probabilities (as fit_hpv does)
                inner = cross_val_predict(clone(estimator), Xtr, labels[fold.train], method="predict_proba",
                                          cv=StratifiedKFold(4, shuffle=True, random_state=seed))[:, 1]
                threshold = best_balanced_accuracy_threshold(labels[fold.train], inner)
                prob[fold.validation] = model.predict_proba(test_on.frame.loc[pids].iloc[fold.validation])[:, 1]
                status[fold.validation] = prob[fold.validation] >= threshold
            m = binary_metrics(labels, status, prob)
            figures[key] = {"balanced_accuracy": m.balanced_accuracy, "auc": m.auc}
        out["hpv"] = figures
    return out


def _sd(values: np.ndarray) -> float:
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def run_size(size: int, quality: str, args) -> dict:
    from nnunet_hecktor.prognosis.features import extract_features, write_feature_table
    from nnunet_hecktor.prognosis.hpv_stage import fit_hpv
    from nnunet_hecktor.prognosis.survival_stage import fit_survival
    from nnunet_hecktor.synthetic import make_cohort

    work = Path(args.workdir) / f"n{size}"
    cohort_dir = work / "cohort"
    run_dir = work / quality
    timings = {}
    t = time.perf_counter()
    n_total = cohort_size_for(size, args.seed)
    if not (cohort_dir / "synthetic_ground_truth.json").is_file():
        make_cohort(cohort_dir, n_patients=n_total, seed=args.seed, layout="flat", size="test",
                    num_processes=args.num_processes, progress=False, overwrite=True)
    timings["cohort_s"] = time.perf_counter() - t
    ground_truth = json.loads((cohort_dir / "synthetic_ground_truth.json").read_text())
    labelled = sorted(p.name[: -len(".nii.gz")] for p in cohort_dir.glob("*.nii.gz") if "__" not in p.name)

    t = time.perf_counter()
    dice = simulate_predictions(cohort_dir, labelled, run_dir / "predicted_seg", args.seed,
                                SEGMENTATION_ERRORS[quality], ground_truth)
    timings["simulate_predictions_s"] = time.perf_counter() - t
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # patients without labels (Task 2/3 only) are expected here
        predicted = extract_features(cohort_dir, run_dir / "predicted_seg", seg_source="predicted",
                                     num_processes=args.num_processes, progress=False)
    timings["features_s"] = time.perf_counter() - t
    features_csv, _ = write_feature_table(predicted, run_dir / "features_predicted.csv")
    clinical_csv = cohort_dir / "HECKTOR_2025_Training_clinical.csv"

    result = {"size": size, "segmentation_errors": quality, "whole_cohort": n_total,
              "labelled_patients": len(labelled), "simulated_segmentation_quality": dice, "survival": {}, "hpv": {}}
    for feature_set in ("clinical", "image", "all"):
        t = time.perf_counter()
        fit = fit_survival(clinical_csv, run_dir / f"survival_{feature_set}", features_csv=features_csv,
                           feature_set=feature_set, random_state=args.seed, progress=False)
        timings[f"survival_{feature_set}_s"] = time.perf_counter() - t
        result["survival"][feature_set] = {
            "final_model": fit.summary["final_model"],
            "oof_c_index": fit.summary["oof_c_index_final"],
            "candidates": {k: v["pooled_oof_c_index"] for k, v in fit.summary["cross_validation"].items()},
            "n_patients": fit.summary["n_patients"], "n_events": fit.summary["n_events"],
        }
        survival_ids = list(fit.oof["PatientID"])
        # HPV figures rest on few HPV-negative patients (~10 %), so one CV split is noisy:
        # repeat the cross-validation with different fold seeds and report mean and SD.
        t = time.perf_counter()
        runs = []
        for repeat in range(args.hpv_repeats):
            hfit = fit_hpv(clinical_csv, run_dir / f"hpv_{feature_set}" / f"cv_seed_{repeat}",
                           features_csv=features_csv, feature_set=feature_set, random_state=args.seed + repeat,
                           progress=False, make_plots=repeat == 0)
            runs.append(hfit.summary["cross_validation"])
        timings[f"hpv_{feature_set}_s"] = time.perf_counter() - t
        ba = np.array([r["nested_threshold"]["balanced_accuracy"] for r in runs])
        auc = np.array([r["nested_threshold"]["auc"] for r in runs])
        result["hpv"][feature_set] = {
            "balanced_accuracy": float(ba.mean()), "balanced_accuracy_sd": _sd(ba),
            "auc": float(auc.mean()), "auc_sd": _sd(auc),
            "balanced_accuracy_per_repeat": ba.tolist(),
            "balanced_accuracy_at_0.5": float(np.mean([r["threshold_0.5"]["balanced_accuracy"] for r in runs])),
            "n_patients": hfit.summary["n_patients"], "n_negative": hfit.summary["n_negative"],
        }
        hpv_ids = list(hfit.oof["PatientID"])
    # The repeats use the same fold seeds for every input set, so the differences are paired.
    for other in ("image", "all"):
        diff = (np.array(result["hpv"][other]["balanced_accuracy_per_repeat"])
                - np.array(result["hpv"]["clinical"]["balanced_accuracy_per_repeat"]))
        result["hpv"][other]["balanced_accuracy_minus_clinical"] = float(diff.mean())
        result["hpv"][other]["balanced_accuracy_minus_clinical_se"] = _sd(diff) / math.sqrt(len(diff))
        result["hpv"][other]["repeats_better_than_clinical"] = int((diff > 0).sum())
    if args.ground_truth_experiment:
        t = time.perf_counter()
        gt_csv = work / "features_ground_truth.csv"
        if not gt_csv.is_file():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                gt_features = extract_features(cohort_dir, cohort_dir, seg_source="ground_truth",
                                               num_processes=args.num_processes, progress=False)
            write_feature_table(gt_features, gt_csv)
        experiment = ground_truth_training_experiment(gt_csv, features_csv, clinical_csv, args.seed)
        result["ground_truth_training"] = experiment
        timings["ground_truth_experiment_s"] = time.perf_counter() - t
    result["ceilings"] = ceilings(ground_truth, survival_ids, hpv_ids)
    result["ceilings_whole_task_cohorts"] = ground_truth.get("best_achievable")
    result["timings"] = timings
    return result


def fmt(value) -> str:
    """Three decimals, or n/a."""
    return "  n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def print_table(results: list[dict]) -> None:
    print("\nPrognosis stage on synthetic cohorts (5-fold CV, out-of-fold; features measured on SIMULATED "
          "predicted segmentations = degraded ground truth)")
    header = ["size", "seg errors", "Dice p/agg p/agg n", "|", "patients", "events", "|", "C ceiling", "clinical",
              "image", "all", "final (all)", "|", "HPV n(neg)", "BA ceiling", "clinical", "image", "all",
              "all-clin (se)", "AUC clin/all"]
    widths = [5, 10, 18, 1, 8, 6, 1, 9, 8, 7, 7, 12, 1, 10, 10, 8, 7, 7, 14, 12]
    print(" ".join(f"{text:>{width}}" for text, width in zip(header, widths)))
    for r in results:
        s, h, c = r["survival"], r["hpv"], r["ceilings"]
        q = r["simulated_segmentation_quality"]
        ba_gain = h["all"]["balanced_accuracy_minus_clinical"], h["all"]["balanced_accuracy_minus_clinical_se"]
        cells = [
            r["size"], r["segmentation_errors"],
            f"{q['gtvp_mean_dice']:.2f}/{q['gtvp_aggregated_dice']:.2f}/{q['gtvn_aggregated_dice']:.2f}", "|",
            s["all"]["n_patients"], s["all"]["n_events"], "|",
            fmt(c["c_index_true_risk"]), fmt(s["clinical"]["oof_c_index"]), fmt(s["image"]["oof_c_index"]),
            fmt(s["all"]["oof_c_index"]), s["all"]["final_model"], "|",
            f"{h['all']['n_patients']}({h['all']['n_negative']})",
            fmt(c["hpv_balanced_accuracy_true_probability_at_prevalence"]),
            fmt(h["clinical"]["balanced_accuracy"]), fmt(h["image"]["balanced_accuracy"]),
            fmt(h["all"]["balanced_accuracy"]),
            f"{ba_gain[0]:+.3f} ({ba_gain[1]:.3f})",
            f"{fmt(h['clinical']['auc'])}/{fmt(h['all']['auc'])}",
        ]
        print(" ".join(f"{str(cell):>{width}}" for cell, width in zip(cells, widths)))
    print("C: pooled out-of-fold Harrell C-index of the final model (chosen by CV among coxnet, rsf, gbsa, icare and "
          "their ensemble; the winner's figure is slightly optimistic). BA: balanced accuracy with each fold's "
          "threshold chosen inside its training rows, mean over repeated CV splits (the same splits for every input "
          "set, so all-clin is a paired difference; se = its standard error). Ceilings: true risk / true HPV "
          "probability (at the prevalence) on the same patients. Dice of the simulated segmentation: GTVp mean "
          "over patients / GTVp aggregated / GTVn aggregated.")
    for r in results:
        tag = f"  size {r['size']}, {r['segmentation_errors']}:"
        print(f"{tag} candidates (all inputs) " + ", ".join(
            f"{k} {fmt(v)}" for k, v in r["survival"]["all"]["candidates"].items())
            + "; HPV BA +- SD over CV repeats: " + ", ".join(
                f"{k} {fmt(v['balanced_accuracy'])} +- {fmt(v['balanced_accuracy_sd'])}" for k, v in r["hpv"].items())
            + "; HPV AUC: " + ", ".join(f"{k} {fmt(v['auc'])} +- {fmt(v['auc_sd'])}" for k, v in r["hpv"].items())
            + f"; repeats where all > clinical: {r['hpv']['all']['repeats_better_than_clinical']}"
            + f"/{len(r['hpv']['all']['balanced_accuracy_per_repeat'])}"
            + f"; ceiling AUC {fmt(r['ceilings']['hpv_auc_true_probability'])}"
            + f"; node recall {r['simulated_segmentation_quality']['node_recall']:.2f}"
            + "; timings (s) " + ", ".join(f"{k[:-2]} {v:.1f}" for k, v in r["timings"].items()))
        g = r.get("ground_truth_training")
        if g:
            c, h = g["survival_icare_c_index"], g["hpv"]
            print(f"{tag} trained on ground-truth-mask features -> C (icare, all inputs) "
                  f"{fmt(c['gt_to_gt'])} evaluated on ground-truth features, {fmt(c['gt_to_predicted'])} on predicted "
                  f"ones, vs {fmt(c['predicted_to_predicted'])} trained on predicted; HPV BA/AUC "
                  f"{fmt(h['gt_to_gt']['balanced_accuracy'])}/{fmt(h['gt_to_gt']['auc'])} on ground truth, "
                  f"{fmt(h['gt_to_predicted']['balanced_accuracy'])}/{fmt(h['gt_to_predicted']['auc'])} on predicted, "
                  "vs "
                  f"{fmt(h['predicted_to_predicted']['balanced_accuracy'])}/{fmt(h['predicted_to_predicted']['auc'])} "
                  "trained on predicted")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[150, 400],
                        help="approximate patients with a label and an outcome (default 150 400)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-processes", type=int, default=2)
    parser.add_argument("--hpv-repeats", type=int, default=10, help="HPV cross-validations with different fold seeds")
    parser.add_argument("--segmentation-errors", nargs="+", choices=sorted(SEGMENTATION_ERRORS),
                        default=["best_2025", "weak_nodes"],
                        help="error models of the simulated predicted segmentations (default: both)")
    parser.add_argument("--no-ground-truth-experiment", dest="ground_truth_experiment", action="store_false",
                        help="skip the train-on-ground-truth / apply-to-predicted comparison")
    parser.add_argument("--workdir", default=str(REPO / "bench_output" / "prognosis"))
    args = parser.parse_args(argv)
    results = []
    for size in args.sizes:
        for quality in args.segmentation_errors:
            print(f"size {size}, segmentation errors {quality} ...", file=sys.stderr, flush=True)
            results.append(run_size(size, quality, args))
    out = Path(args.workdir) / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    from nnunet_hecktor.strict_json import json_safe

    out.write_text(json.dumps(json_safe(results), indent=2))
    print_table(results)
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
