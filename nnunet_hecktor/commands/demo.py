"""``nnunet-hecktor demo``: the end-to-end pipeline on built-in synthetic data."""

from __future__ import annotations

import argparse

NAME = "demo"
ORDER = 1
HELP = "run the whole pipeline on a built-in synthetic HECKTOR cohort (the README's main job)"
DESCRIPTION = """\
Run the pipeline end to end on synthetic data: generate a HECKTOR-like release, convert it
to an nnU-Net dataset, plan and preprocess it with nnU-Net, train fold 0 of the multi-task
model for a few iterations (HecktorMultiTaskTrainer_tiny), predict new synthetic patients on
their original CT grids and score them with the HECKTOR metrics. Everything is written under
OUTPUT (its own nnUNet_raw / nnUNet_preprocessed / nnUNet_results). A smoke run of the whole
tool chain: the tiny model is not meant to be accurate.

example:
  nnunet-hecktor demo demo_output --patients 16
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", help="demo folder (created)")
    parser.add_argument("--patients", type=int, default=16, help="synthetic training patients (default 16)")
    parser.add_argument("--test-patients", type=int, default=8, help="synthetic new patients to predict (default 8)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic cohort (default 0)")
    parser.add_argument("--dataset-id", type=int, default=501, help="nnU-Net dataset id (default 501)")
    parser.add_argument("--num-processes", type=int, default=1, help="worker processes (default 1)")


def run(args: argparse.Namespace) -> int:
    from nnunet_hecktor.demo import run_demo

    result = run_demo(args.output, patients=args.patients, test_patients=args.test_patients, seed=args.seed,
                      dataset_id=args.dataset_id, num_processes=args.num_processes, device=args.device)
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in result.steps.items())
    print(f"[demo] done in {result.output} ({steps})")
    headline = ("gtvp_dice_mean", "gtvn_dice_agg", "gtvn_f1_agg", "c_index", "balanced_accuracy", "auc", "n")
    for task, figures in result.figures.get("new_patients_metrics", {}).items():
        shown = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in figures.items() if k in headline)
        if shown:
            print(f"[demo] new patients, {task}: {shown}")
    print(f"[demo] summary: {result.output / 'demo_summary.json'}")
    return 0
