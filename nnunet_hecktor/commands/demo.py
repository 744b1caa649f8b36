"""``nnunet-hecktor demo``: the end-to-end pipeline on built-in synthetic data, with a report."""

from __future__ import annotations

import argparse

from nnunet_hecktor.commands._options import add_dataset_id, add_device, add_num_processes

NAME = "demo"
ORDER = 1
HELP = "train and test the whole pipeline on a built-in synthetic HECKTOR cohort, with a report (the README's main job)"
DESCRIPTION = """\
Run the pipeline end to end on synthetic data and show what it learned: generate an enriched
synthetic HECKTOR cohort (real-size neck, ~30 % HPV negative, ~43 % relapse) and a cohort of new
patients, convert both to nnU-Net datasets, plan and preprocess, train fold 0 of the multi-task
model (segmentation + HPV + risk, HecktorMultiTaskTrainer_demo), tune the post-processing on fold
0's validation patients and stage it in the model folder, predict the new patients, score
them next to simple baselines (PET-threshold rules, clinical-only models, log tumour volume, the
synthetic ceilings) and write OUTPUT/report/report.html. Steps, times and current results:
docs/tutorials/demo.md. Everything is written under OUTPUT; running the same command again resumes where it
stopped, and the same --seed gives the same figures on the same machine (seeded training).

With --edition 2026: HECKTOR 2026 cohorts (T/N stages), a third cohort of stage patients on whose
predicted masks the patient-level models (T stage, N stage, risk) are fitted as deployed, and the
2026 weighted score (0.25 Dice + 0.35 stage balanced accuracy + 0.40 C-index) next to the 2026
baselines with paired verdicts.

examples:
  nnunet-hecktor demo demo_output
  nnunet-hecktor demo demo_2026 --edition 2026
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nnunet_hecktor.demo.pipeline import DEMO_EDITIONS, DEMO_NEW_PATIENTS, DEMO_PATIENTS, DEMO_STAGE_PATIENTS

    parser.add_argument("output", help="demo folder (created; an existing demo folder is resumed)")
    parser.add_argument("--patients", type=int, default=DEMO_PATIENTS,
                        help=f"synthetic training patients (default {DEMO_PATIENTS})")
    parser.add_argument("--test-patients", type=int, default=DEMO_NEW_PATIENTS,
                        help=f"synthetic new patients to predict and score (default {DEMO_NEW_PATIENTS})")
    add_device(parser)
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the training cohort; the new patients use seed + 1000 (default 0)")
    add_dataset_id(parser, required=False, default=501)
    add_num_processes(parser)
    parser.add_argument("--edition", choices=DEMO_EDITIONS, default="2025",
                        help="HECKTOR edition (default 2025: segmentation, HPV, risk; 2026: segmentation, T/N "
                             "stage, risk and the weighted score, with a stage cohort for the patient-level models)")
    parser.add_argument("--stage-patients", type=int, default=DEMO_STAGE_PATIENTS,
                        help=f"2026 only: synthetic patients of the stage cohort (default {DEMO_STAGE_PATIENTS})")


def run(args: argparse.Namespace) -> int:
    from nnunet_hecktor.demo import run_demo
    from nnunet_hecktor.demo.summary import comparisons, markdown_table
    from nnunet_hecktor.errors import HecktorError

    for flag, value, least in (("--patients", args.patients, 20), ("--test-patients", args.test_patients, 5),
                               ("--num-processes", args.num_processes, 1),
                               ("--stage-patients", args.stage_patients, 20)):
        if value < least:
            raise HecktorError(f"{flag} must be at least {least}")
    result = run_demo(args.output, patients=args.patients, test_patients=args.test_patients, seed=args.seed,
                      dataset_id=args.dataset_id, num_processes=args.num_processes, device=args.device,
                      edition=args.edition, stage_patients=args.stage_patients)
    total = sum(result.steps.values())
    steps = ", ".join(f"{k} {v:.0f} s" for k, v in result.steps.items())
    resumed = f" ({', '.join(result.resumed)} from an earlier run)" if result.resumed else ""
    if args.edition == "2026":
        from nnunet_hecktor.demo.edition2026 import comparison_lines_2026, markdown_table_2026

        table, lines = markdown_table_2026(result.table), comparison_lines_2026(args.output)
    else:
        table, lines = markdown_table(result.table), comparisons(result.table)
    print(f"\n[demo] new patients, model and baselines:\n{table}\n")
    for line in lines:
        print(f"[demo]   {line}")
    print(f"\n[demo] done in {total / 60:.1f} min{resumed}: {steps}")
    print(f"[demo] report: {result.report}")
    return 0
