"""``nnunet-hecktor evaluate``: HECKTOR metrics of segmentations and patient-level predictions."""

from __future__ import annotations

import argparse

from nnunet_hecktor.commands._options import add_num_processes

NAME = "evaluate"
ORDER = 40
HELP = ("HECKTOR metrics (GTVp Dice, GTVn DSCagg/F1agg, C-index, HPV and T/N balanced accuracy, the 2026 score) "
        "with bootstrap CIs, per centre, and paired comparisons of prediction sets")
DESCRIPTION = """\
Score predictions the way HECKTOR does and write OUTPUT/metrics.json, OUTPUT/per_patient.csv,
OUTPUT/per_centre.csv and PNG figures (per-patient Dice, Kaplan-Meier curves of two risk groups with
numbers at risk, HPV ROC and reliability curves, confusion matrices).

Task 1 compares every <PID>.nii.gz of --gt (0 background, 1 GTVp, 2 GTVn) with <PID>.nii.gz,
<PID>.nii, <PID>.mha or <PID>.nrrd in --pred; predictions must lie on the label's grid (nothing is
resampled). Tasks 2 and 3 compare --predictions (PatientID,hpv_probability,hpv_status,risk; risk
higher = earlier relapse) with the targets RFS/Relapse and HPV Status of --clinical; patients without
a target are left out and counted. A patient with a target but no prediction is an error (as a
missing segmentation is for Task 1) unless --score-subset is given: then only the predicted patients
are scored and the number left out is printed and recorded.

--edition 2026 adds T and N stage (columns t_stage,n_stage of --predictions, or t-stage.json and
n-stage.json of the container; truth T-stage,N-stage of --clinical; multi-class balanced accuracy) and
the weighted score 0.25 x mean Dice (GTVp, GTVn) + 0.35 x mean balanced accuracy (T, N) + 0.40 x
C-index; --dice-rule says which Dice (default hecktor2025: GTVp mean per patient, GTVn aggregated).

The challenge container's outputs can be scored directly: --challenge-outputs DIR with one folder per
case in the edition's layout (2025: <case>/images/tumor-lymph-node-segmentation/output.mha,
<case>/rfs.json, <case>/hpv-status.json; 2026: <case>/images/head-neck-tumor-segmentation/output.mha,
<case>/t-stage.json, <case>/n-stage.json, <case>/rfs.json); folder names are PatientIDs, or
--case-map MAP.csv (columns case,PatientID) names them. --rfs-convention says what rfs.json holds
(2026 default: time, anti-concordant with risk, as the organisers' README; 2025: risk).

Risk groups (log-rank, Kaplan-Meier) are cut at --risk-cut: a number or a prognosis model folder
(median out-of-fold training risk); without it the median of the scored patients is used, which is
not independent of them (said in the output).

Paired comparisons: --compare NAME=PATH (repeatable; PATH a predictions CSV, a prediction folder or a
challenge output folder; one NAME may be given twice, a folder and a CSV) scores each set on the same
patients into OUTPUT/NAME/ and writes OUTPUT/comparisons.json: the paired bootstrap interval of the
difference of every figure, first set minus each other, with a verdict (better / worse / undecided).

examples:
  nnunet-hecktor evaluate --gt labelsTs --pred predictions --clinical clinical.csv \\
      --predictions predictions/predictions.csv --output evaluation --num-processes 4
  nnunet-hecktor evaluate --edition 2026 --gt labelsTs --clinical clinical.csv \\
      --challenge-outputs container_runs --case-map cases.csv --output evaluation
  nnunet-hecktor evaluate --gt labelsTs --clinical clinical.csv --output comparison \\
      --compare new=run2/seg --compare new=run2/predictions.csv \\
      --compare old=run1/seg --compare old=run1/predictions.csv
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
    parser.add_argument("-o", "--output", help="output folder (default: the --pred folder's 'evaluation' subfolder)")
    add_num_processes(parser, "worker processes for Task 1 (default 1)")
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
    parser.add_argument("--edition", choices=("2021", "2022", "2025", "2026"), default=None,
                        help="HECKTOR edition: container layout, clinical header aliases, 2026 T/N stage and score "
                             "(default 2025)")
    parser.add_argument("--rfs-convention", choices=("time", "risk"), default=None,
                        help="what the containers' rfs.json holds: time (anti-concordant with risk, scored as -value; "
                             "2026 default) or risk (higher = earlier relapse; 2025 default)")
    parser.add_argument("--risk-cut", metavar="VALUE|MODEL_DIR", default=None,
                        help="risk-group cut fixed on training data: a number, or a prognosis model folder / "
                             "oof_predictions.csv (median out-of-fold risk); default: the median of the scored patients")
    parser.add_argument("--dice-rule", choices=("hecktor2025", "aggregated", "per-patient"), default="hecktor2025",
                        help="Dice of the 2026 score: hecktor2025 = GTVp mean per patient and GTVn aggregated "
                             "(default), aggregated = both aggregated, per-patient = both means per patient")
    parser.add_argument("--compare", metavar="NAME=PATH", action="append", default=None,
                        help="a prediction set to compare (repeatable): PATH = predictions CSV, prediction folder or "
                             "challenge output folder; the first NAME is compared with every other one")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nnunet_hecktor.errors import HecktorError, UsageError
    from nnunet_hecktor.evaluation.evaluate import evaluate, format_summary
    from nnunet_hecktor.metrics.segmentation import SegmentationMetricOptions

    output = args.output
    if args.compare:
        return _run_compare(args)
    if not (args.gt or args.pred or args.predictions or args.challenge_outputs):
        raise UsageError("nothing to evaluate: give --gt and --pred (segmentation), --clinical and --predictions "
                         "(patient level), --challenge-outputs, or --compare NAME=PATH ...")
    if output is None:
        if args.pred is None:
            raise UsageError("give --output (there is no --pred folder to put the results in)")
        output = Path(args.pred) / "evaluation"
    try:
        options = SegmentationMetricOptions(args.connectivity, args.iou_threshold, args.gtvp_both_empty,
                                            args.gtvp_gt_empty)
    except ValueError as exc:
        raise HecktorError(str(exc)) from None
    result = evaluate(args.gt, args.pred, args.clinical, args.predictions, output,
                      num_processes=args.num_processes, n_bootstrap=args.bootstrap, seed=args.seed,
                      options=options, plots=not args.no_plots, score_subset=args.score_subset,
                      challenge_outputs=args.challenge_outputs, case_map=args.case_map, edition=args.edition,
                      rfs_convention=args.rfs_convention, risk_cut=args.risk_cut, dice_rule=args.dice_rule)
    print(format_summary(result.metrics))
    print(f"[evaluate] wrote {', '.join(str(f) for f in result.files)}")
    return 0


def _run_compare(args: argparse.Namespace) -> int:
    from nnunet_hecktor.errors import UsageError
    from nnunet_hecktor.evaluation.compare import compare_prediction_sets, format_comparisons, parse_compare_specs
    from nnunet_hecktor.metrics.segmentation import SegmentationMetricOptions

    if args.output is None:
        raise UsageError("give --output with --compare (each set's evaluation goes into OUTPUT/NAME/)")
    if args.pred or args.predictions or args.challenge_outputs:
        raise UsageError("with --compare, give every prediction set as --compare NAME=PATH "
                           "(not --pred/--predictions/--challenge-outputs)")
    options = SegmentationMetricOptions(args.connectivity, args.iou_threshold, args.gtvp_both_empty, args.gtvp_gt_empty)
    result = compare_prediction_sets(parse_compare_specs(args.compare), args.output, gt_dir=args.gt,
                                     clinical_csv=args.clinical, case_map=args.case_map,
                                     num_processes=args.num_processes, n_bootstrap=args.bootstrap, seed=args.seed,
                                     options=options, plots=not args.no_plots, score_subset=args.score_subset,
                                     edition=args.edition, rfs_convention=args.rfs_convention,
                                     risk_cut=args.risk_cut, dice_rule=args.dice_rule)
    print(format_comparisons(result))
    print(f"[evaluate] wrote {result.path}")
    return 0
