"""``nnunet-hecktor tune-postprocessing``: choose post-processing rules on cross-validation predictions."""

from __future__ import annotations

import argparse

from nnunet_hecktor.commands._options import add_num_processes

NAME = "tune-postprocessing"
ORDER = 36
HELP = "grid-search post-processing rules on nnU-Net cross-validation predictions; writes pp.json and postprocessing.pkl"
DESCRIPTION = """\
Search the post-processing rules on the cross-validation predictions of a trained model
(RESULTS/fold_k/validation/<PID>.nii.gz, and <PID>.npz when trained with --npz) against the
training labels, maximising a Task 1 objective (default: mean of GTVp Dice, GTVn aggregated Dice
and GTVn aggregated F1). A greedy coordinate search in the order the rules are applied; a rule
is kept only if it improves the objective, except the prior rule (one GTVp lesion: extra
GTVp components relabelled GTVn), which stays on unless it lowers it (--no-prior: none).
Writes the chosen configuration with the before/after figures (OUTPUT) and nnU-Net's
postprocessing.pkl for nnUNetv2_apply_postprocessing.

example:
  nnunet-hecktor tune-postprocessing \\
      --results $nnUNet_results/Dataset501_HECKTOR/HecktorMultiTaskTrainer__nnUNetPlans__3d_fullres \\
      --gt $nnUNet_raw/Dataset501_HECKTOR/labelsTr --output pp.json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", required=True, help="model folder Trainer__Plans__configuration with fold_k/validation")
    parser.add_argument("--gt", required=True, help="training labels folder (labelsTr)")
    parser.add_argument("--output", "-o", required=True, help="configuration JSON to write (e.g. pp.json)")
    parser.add_argument("-f", "--folds", type=int, nargs="+", help="folds to use (default: every fold_k with validation)")
    parser.add_argument("--objective", default="mean",
                        choices=("mean", "gtvp_dice", "gtvn_dice", "gtvn_f1", "gtvn"),
                        help="figure to maximise: mean = mean of GTVp Dice, GTVn DSCagg, GTVn F1agg (default); "
                             "gtvn = mean of the two GTVn figures")
    parser.add_argument("--grid",
                        help="JSON {coordinate: [values]} replacing default grids (see docs/how-to/postprocess.md)")
    parser.add_argument("--pkl", help="where to write postprocessing.pkl (default: next to --output)")
    parser.add_argument("--plans", help="nnU-Net plans.json (default: RESULTS/plans.json)")
    parser.add_argument("--min-improvement", type=float, default=0.0,
                        help="a rule is kept only if the objective rises by more than this (default 0)")
    parser.add_argument("--max-sweeps", type=int, default=3,
                        help="sweeps over the rules at most: the first greedy, the later ones revisit each rule with "
                             "all others on, until a sweep changes nothing (default 3; 1 = greedy only)")
    parser.add_argument("--no-prior", action="store_true",
                        help="do not keep the prior rules on when they tie (default: a single GTVp lesion, extra GTVp "
                             "components relabelled GTVn, stays on unless it lowers the objective)")
    parser.add_argument("--connectivity", type=int, choices=(6, 18, 26), default=26,
                        help="neighbourhood of components for rules and metrics (default 26)")
    add_num_processes(parser, "worker processes for reading (default 1)")


def run(args: argparse.Namespace) -> int:
    from nnunet_hecktor.metrics.segmentation import SegmentationMetricOptions
    from nnunet_hecktor.postprocessing.tuning import load_grid, tune_postprocessing

    result = tune_postprocessing(args.results, args.gt, args.output, folds=args.folds, objective=args.objective,
                                 grid=load_grid(args.grid), pkl_path=args.pkl, plans_json=args.plans,
                                 options=SegmentationMetricOptions(connectivity=args.connectivity),
                                 min_improvement=args.min_improvement, num_processes=args.num_processes,
                                 max_sweeps=args.max_sweeps, prior={} if args.no_prior else None)

    def line(name, f):
        return (f"  {name:<7} GTVp Dice {f['gtvp_dice_mean']:.4f}  GTVn DSCagg {f['gtvn_dice_agg']:.4f}  "
                f"GTVn F1agg {f['gtvn_f1_agg']:.4f}  objective {f['objective']:.4f}")

    print(f"[tune-postprocessing] {result.n_cases} cases, objective: {args.objective}, {result.sweeps} sweep(s)")
    print(line("before", result.before))
    print(line("after", result.after))
    if result.after_pkl is not None:
        print(line("pkl", result.after_pkl) + "  (one median spacing for every case)")
    print(f"[tune-postprocessing] chosen: {result.config.describe()}")
    print(f"[tune-postprocessing] wrote {args.output} and {args.pkl or 'postprocessing.pkl next to it'}")
    return 0
