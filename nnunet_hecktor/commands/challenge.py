"""``nnunet-hecktor challenge``: the HECKTOR grand-challenge container job for one patient (2025 or 2026)."""

from __future__ import annotations

import argparse

NAME = "challenge"
ORDER = 45
HELP = "challenge container job: /input (CT, PET .mha, ehr.json) -> the official outputs (2025 tasks or 2026)"
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

HECKTOR 2026 (--edition 2026, no --task: one run writes all four outputs):

  OUTPUT/images/head-neck-tumor-segmentation/output.mha  uint8 0/1/2 on the original CT grid
  OUTPUT/t-stage.json, OUTPUT/n-stage.json  one JSON string ("T2", "N1")
  OUTPUT/rfs.json   one JSON float: -risk by default (--rfs-convention time: anti-concordant with
                    the risk, as the organisers' README describes it), or the risk (--rfs-convention risk)

  The fallback outputs are written first and replaced as each prediction is written and checked.
  The model: --model, else /opt/ml/model (the extracted model.tar.gz), else /opt/app/model.
  A time guard fits folds and mirroring into --time-budget seconds; CTs longer than --long-ct-mm are
  cropped to the head and neck and the mask pasted back into the full CT grid.

examples:
  nnunet-hecktor challenge --task 1 --input /input --output /output --model /opt/app/model
  nnunet-hecktor challenge --edition 2026 --input /input --output /output
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--edition", default="2025", choices=("2025", "2026"),
                        help="challenge edition (default 2025; 2026 writes all four outputs in one run)")
    parser.add_argument("--task", nargs="+", type=int, choices=(1, 2, 3),
                        help="2025 only (required there): 1 segmentation, 2 RFS risk, 3 HPV status "
                             "(several share one prediction)")
    parser.add_argument("-i", "--input", default="/input", help="input folder (default /input)")
    parser.add_argument("-o", "--output", default="/output", help="output folder (default /output)")
    parser.add_argument("-m", "--model", default=None,
                        help="trained (or staged) model folder (2025: required; 2026 default: the mounted "
                             "/opt/ml/model, else the baked-in /opt/app/model)")
    parser.add_argument("--model-mount", default="/opt/ml/model",
                        help="2026: where the model.tar.gz is mounted (default /opt/ml/model)")
    parser.add_argument("--rfs-convention", default="time", choices=("time", "risk"),
                        help="2026 rfs.json: time = -risk, anti-concordant with risk (default, the organisers' "
                             "README); risk = the risk score (higher = earlier relapse)")
    parser.add_argument("--time-budget", type=float, default=None,
                        help="2026: seconds for the whole case (default 1320 = 22 min of the 25-min limit); "
                             "folds and mirroring are reduced to fit")
    parser.add_argument("--stage-fallback", default="geometry", choices=("geometry", "prevalence"),
                        help="2026: T/N when no staging model answers: AJCC size/count rule on the mask "
                             "(default) or the most frequent training stage")
    parser.add_argument("--long-ct-mm", type=float, default=None,
                        help="2026: crop CTs longer than this (mm) to the head and neck (default 500; also "
                             "when over 100 M voxels; 0 = never crop)")
    parser.add_argument("-f", "--folds", nargs="+", default=None,
                        help="folds to ensemble (default: challenge_model.json, else every fold with the checkpoint)")
    parser.add_argument("-chk", "--checkpoint", default=None,
                        help="checkpoint file (default: challenge_model.json, else the validated weights "
                             "as for predict)")
    parser.add_argument("-device", "--device", default="auto",
                        help="auto (CUDA when available), cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--postprocessing", default=None, help="post-processing JSON for Task 1")
    parser.add_argument("--no-mirroring", action="store_true", help="disable test-time mirroring (faster)")
    parser.add_argument("--step-size", type=float, default=0.5, help="sliding-window step (default 0.5)")
    parser.add_argument("--strict", action="store_true",
                        help="fail fast (exit 1) on a bad case instead of writing the fallback outputs")
    parser.add_argument("--quiet", action="store_true", help="print nothing but warnings and errors")


def run(args: argparse.Namespace) -> int:
    import time

    from nnunet_hecktor.errors import HecktorError

    if args.edition == "2026":
        from nnunet_hecktor.challenge.guards import DEFAULT_TIME_BUDGET_S, LONG_CT_MM, MAX_CT_VOXELS
        from nnunet_hecktor.challenge.model_location import resolve_model_dir
        from nnunet_hecktor.challenge.run2026 import run_challenge_2026

        start = time.monotonic()
        if args.task:
            raise HecktorError("--task is for --edition 2025; the 2026 container writes all four outputs")
        model, how = resolve_model_dir(args.model, mount=args.model_mount)
        if not args.quiet:
            print(f"model: {model} ({how})")
        long_ct = LONG_CT_MM if args.long_ct_mm is None else (args.long_ct_mm or None)
        max_voxels = None if args.long_ct_mm == 0 else MAX_CT_VOXELS  # 0: never crop
        run_challenge_2026(args.input, args.output, model, folds=args.folds, checkpoint=args.checkpoint,
                           device=args.device, postprocessing=args.postprocessing,
                           use_mirroring=not args.no_mirroring, tile_step_size=args.step_size,
                           verbose=not args.quiet, strict=args.strict, rfs_convention=args.rfs_convention,
                           time_budget_s=args.time_budget or DEFAULT_TIME_BUDGET_S, stage_rule=args.stage_fallback,
                           long_ct_mm=long_ct, max_ct_voxels=max_voxels, budget_start=start)
        return 0
    if not args.task:
        raise HecktorError("--task is required for --edition 2025 (1, 2 and/or 3)")
    if not args.model:
        raise HecktorError("--model is required for --edition 2025")
    from nnunet_hecktor.challenge.run import run_challenge

    run_challenge(args.task, args.input, args.output, args.model, folds=args.folds, checkpoint=args.checkpoint,
                  device=args.device, postprocessing=args.postprocessing, use_mirroring=not args.no_mirroring,
                  tile_step_size=args.step_size, verbose=not args.quiet, strict=args.strict)
    return 0
