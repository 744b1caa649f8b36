"""``nnunet-hecktor warm-start``: a stock nnU-Net checkpoint -> a checkpoint with heads for -pretrained_weights."""

from __future__ import annotations

import argparse

NAME = "warm-start"
ORDER = 21
HELP = "turn a stock nnU-Net segmentation checkpoint into one with heads, for nnUNetv2_train -pretrained_weights"
DESCRIPTION = """\
nnU-Net's -pretrained_weights requires every key of the new network in the old checkpoint, so a
stock segmentation checkpoint cannot warm-start HecktorMultiTaskTrainer directly. This command
builds the multi-task network for the target dataset's plans, copies the segmentation weights
(they must match the plans exactly), keeps the heads at their initial values and writes a
checkpoint that -pretrained_weights accepts.

example:
  nnunet-hecktor warm-start stock/fold_0/checkpoint_final.pth -d 501 -o warm_start.pth
  nnUNetv2_train 501 3d_fullres 0 -tr HecktorMultiTaskTrainer -pretrained_weights warm_start.pth
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="stock nnU-Net checkpoint (e.g. .../fold_0/checkpoint_final.pth)")
    parser.add_argument("-d", "--dataset", required=True, help="target dataset id or DatasetNNN_Name")
    parser.add_argument("-o", "--output", required=True, help="checkpoint to write (.pth)")
    parser.add_argument("-c", "--configuration", default="3d_fullres", help="configuration (default 3d_fullres)")
    parser.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    parser.add_argument("-tr", "--trainer", default="HecktorMultiTaskTrainer",
                        help="multi-task trainer that will train (default HecktorMultiTaskTrainer)")


def run(args: argparse.Namespace) -> int:
    from nnunet_hecktor.trainers.handover import write_warm_start_checkpoint

    path = write_warm_start_checkpoint(args.checkpoint, args.dataset, args.output, args.configuration,
                                       args.plans, args.trainer)
    print(f"[warm-start] wrote {path}; train with: nnUNetv2_train {args.dataset} {args.configuration} FOLD "
          f"-tr {args.trainer} -p {args.plans} -pretrained_weights {path}")
    import sys

    from nnunet_hecktor.nnunet_env import setup_problems

    for problem in setup_problems():
        print(f"[warm-start] before nnUNetv2_train: {problem}", file=sys.stderr)
    return 0
