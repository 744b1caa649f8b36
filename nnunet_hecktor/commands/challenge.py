"""``nnunet-hecktor challenge``: the HECKTOR 2025 grand-challenge container job for one patient."""

from __future__ import annotations

import argparse

NAME = "challenge"
ORDER = 45
HELP = "challenge container job: /input (CT, PET .mha, ehr.json) -> the official output of Task 1, 2 or 3"
DESCRIPTION = """\
Read the grand-challenge input layout of one patient and write exactly the official output:

  INPUT/images/ct/<uuid>.mha, INPUT/images/pet/<uuid>.mha, INPUT/ehr.json (absent key = missing;
  images/ct-planning and images/rt-dose are ignored)

  Task 1  OUTPUT/images/tumor-lymph-node-segmentation/output.mha  uint8 0/1/2 on the original CT grid
  Task 2  OUTPUT/rfs.json          one JSON float: risk score (higher = earlier relapse)
  Task 3  OUTPUT/hpv-status.json   one JSON boolean: true = HPV positive

Prediction is the one of `nnunet-hecktor predict` (same preprocessing, folds ensembled the same way).
Nothing is written outside OUTPUT.

Every case gets its outputs: when a step fails for the case (an unreadable or degenerate image, such
as the organisers' 1x1 2-D test dummies), the error is logged with its reason and the safest valid
output is written instead (an empty mask on the CT grid, the training cohort's median risk, its
majority HPV class); the exit code stays 0. --strict stops at the first failure (exit 1) instead.
Task 1 never reads ehr.json; for Tasks 2 and 3 its values are advisory: unknown keys are ignored,
CenterID is never an input, Karnofsky 10-100 / M1a-c / spelled-out sexes are mapped, and any other
value that cannot be parsed or is out of range is treated as missing with a warning.
Tasks 2 and 3 need a multi-task model. A model staged for the container (docker/build.sh) carries
its folds, checkpoint and post-processing in challenge_model.json.

example:
  nnunet-hecktor challenge --task 1 --input /input --output /output --model /opt/app/model
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, nargs="+", type=int, choices=(1, 2, 3),
                        help="1 segmentation, 2 RFS risk, 3 HPV status (several share one prediction)")
    parser.add_argument("--input", default="/input", help="input folder (default /input)")
    parser.add_argument("--output", default="/output", help="output folder (default /output)")
    parser.add_argument("--model", required=True, help="trained (or staged) model folder")
    parser.add_argument("-f", "--folds", nargs="+", default=None,
                        help="folds to ensemble (default: challenge_model.json, else every fold with the checkpoint)")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint file (default: challenge_model.json, else the validated weights "
                             "as for predict)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--postprocessing", default=None, help="post-processing JSON for Task 1")
    parser.add_argument("--no-mirroring", action="store_true", help="disable test-time mirroring (faster)")
    parser.add_argument("--step-size", type=float, default=0.5, help="sliding-window step (default 0.5)")
    parser.add_argument("--strict", action="store_true",
                        help="fail fast (exit 1) on a bad case instead of writing the fallback outputs")
    parser.add_argument("--quiet", action="store_true", help="print nothing but warnings and errors")


def run(args: argparse.Namespace) -> int:
    from nnunet_hecktor.challenge.run import run_challenge

    run_challenge(args.task, args.input, args.output, args.model, folds=args.folds, checkpoint=args.checkpoint,
                  device=args.device, postprocessing=args.postprocessing, use_mirroring=not args.no_mirroring,
                  tile_step_size=args.step_size, verbose=not args.quiet, strict=args.strict)
    return 0
