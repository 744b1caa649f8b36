"""``nnunet-hecktor evaluate``: HECKTOR metrics of segmentations and patient-level predictions."""

from __future__ import annotations

import argparse

NAME = "evaluate"
ORDER = 40
HELP = "HECKTOR metrics (GTVp Dice, GTVn DSCagg/F1agg, C-index, HPV balanced accuracy) with bootstrap CIs"
DESCRIPTION = """\
Score predictions the way HECKTOR does and write OUTPUT/metrics.json, OUTPUT/per_patient.csv and
PNG figures (per-patient Dice, Kaplan-Meier curves of the median risk split, HPV ROC curve).

Task 1 compares every <PID>.nii.gz of --gt (0 background, 1 GTVp, 2 GTVn) with <PID>.nii.gz,
<PID>.nii, <PID>.mha or <PID>.nrrd in --pred; predictions must lie on the label's grid (nothing is
resampled). Tasks 2 and 3 compare --predictions (PatientID,hpv_probability,hpv_status,risk; risk
higher = earlier relapse) with the targets RFS/Relapse and HPV Status of --clinical; patients without
a target are left out and counted. A patient with a target but no prediction is an error (as a
missing segmentation is for Task 1) unless --score-subset is given: then only the predicted patients
are scored and the number left out is printed and recorded.

The challenge container's outputs can be scored directly: --challenge-outputs DIR with one folder per
case (<case>/images/tumor-lymph-node-segmentation/output.mha, <case>/rfs.json, <case>/hpv-status.json);
folder names are PatientIDs, or --case-map MAP.csv (columns case,PatientID) names them.

examples:
  nnunet-hecktor evaluate --gt labelsTs --pred predictions --clinical clinical.csv \\
      --predictions predictions/predictions.csv --output evaluation --num-processes 4
  nnunet-hecktor evaluate --gt labelsTs --clinical clinical.csv --challenge-outputs container_runs \\
      --case-map cases.csv --output evaluation
"""


def _empty_rule(text: str):
    if text.lower() in ("exclude", "none", "skip"):
        return None
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("expected a score in [0, 1] or 'exclude'")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", help="folder of ground-truth labels <PID>.nii.gz (Task 1)")
    parser.add_argument("--pred", help="folder of predicted labels <PID>.nii.gz, .nii, .mha or .nrrd (Task 1)")
    parser.add_argument("--clinical", help="clinical CSV with RFS, Relapse, HPV Status (Tasks 2, 3)")
    parser.add_argument("--predictions", help="predictions.csv: PatientID,hpv_probability,hpv_status,risk")
    parser.add_argument("--challenge-outputs", metavar="DIR",
                        help="challenge container outputs, one folder per case (replaces --pred and --predictions)")
    parser.add_argument("--case-map", metavar="CSV",
                        help="case,PatientID table naming the case folders of --challenge-outputs "
                             "(default: folder name = PatientID)")
    parser.add_argument("--score-subset", action="store_true",
                        help="Tasks 2/3: score only the predicted patients when some patients with a target have no "
                             "prediction (default: an error listing them)")
    parser.add_argument("--output", help="output folder (default: the --pred folder's 'evaluation' subfolder)")
    parser.add_argument("--num-processes", type=int, default=1, help="worker processes for Task 1 (default 1)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates for 95%% CIs, 0 = none "
                        "(default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--connectivity", type=int, choices=(6, 18, 26), default=26,
                        help="neighbourhood of GTVn lesions (default 26)")
    parser.add_argument("--iou-threshold", type=float, default=0.3,
                        help="GTVn lesions match when IoU is strictly above this (default 0.3)")
    parser.add_argument("--gtvp-both-empty", type=_empty_rule, default=1.0, metavar="SCORE|exclude",
                        help="GTVp Dice when GT and prediction have no GTVp (default 1.0)")
    parser.add_argument("--gtvp-gt-empty", type=_empty_rule, default=0.0, metavar="SCORE|exclude",
                        help="GTVp Dice when the GT has no GTVp but the prediction has (default 0.0)")
    parser.add_argument("--no-plots", action="store_true", help="do not write the PNG figures")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nnunet_hecktor.errors import HecktorError
    from nnunet_hecktor.evaluation.evaluate import evaluate, format_summary
    from nnunet_hecktor.metrics.segmentation import SegmentationMetricOptions

    output = args.output
    if output is None:
        if args.pred is None:
            raise HecktorError("give --output (there is no --pred folder to put the results in)")
        output = Path(args.pred) / "evaluation"
    try:
        options = SegmentationMetricOptions(args.connectivity, args.iou_threshold, args.gtvp_both_empty,
                                            args.gtvp_gt_empty)
    except ValueError as exc:
        raise HecktorError(str(exc)) from None
    result = evaluate(args.gt, args.pred, args.clinical, args.predictions, output,
                      num_processes=args.num_processes, n_bootstrap=args.bootstrap, seed=args.seed,
                      options=options, plots=not args.no_plots, score_subset=args.score_subset,
                      challenge_outputs=args.challenge_outputs, case_map=args.case_map)
    print(format_summary(result.metrics))
    print(f"[evaluate] wrote {', '.join(str(f) for f in result.files)}")
    return 0
