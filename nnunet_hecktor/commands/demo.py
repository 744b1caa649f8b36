"""``nnunet-hecktor demo``: the end-to-end pipeline on built-in synthetic data."""

from __future__ import annotations

import argparse

NAME = "demo"
ORDER = 1
HELP = "run the whole pipeline on a built-in synthetic HECKTOR cohort (the README's main job)"
DESCRIPTION = """\
Run the pipeline end to end on synthetic data: generate a HECKTOR-like release, convert it
to an nnU-Net dataset and run nnU-Net's planning and preprocessing. Everything is written
under OUTPUT (its own nnUNet_raw / nnUNet_preprocessed / nnUNet_results).

example:
  nnunet-hecktor demo demo_output --patients 16
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", help="demo folder (created)")
    parser.add_argument("--patients", type=int, default=16, help="synthetic patients (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic cohort (default 0)")
    parser.add_argument("--dataset-id", type=int, default=501, help="nnU-Net dataset id (default 501)")
    parser.add_argument("--num-processes", type=int, default=1, help="worker processes (default 1)")


def run(args: argparse.Namespace) -> int:
    from nnunet_hecktor.demo import run_demo

    result = run_demo(args.output, patients=args.patients, seed=args.seed, dataset_id=args.dataset_id,
                      num_processes=args.num_processes)
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in result.steps.items())
    print(f"[demo] done: {result.dataset_name} in {result.output} ({steps})")
    return 0
