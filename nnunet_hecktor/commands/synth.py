"""``nnunet-hecktor synth``: write a synthetic HECKTOR 2025 training cohort."""

from __future__ import annotations

import argparse

NAME = "synth"
HELP = "write a synthetic HECKTOR cohort (PET/CT, labels, clinical CSVs, ground truth) for tests and demos"
ORDER = 10
DESCRIPTION = """\
Write a synthetic cohort laid out as the HECKTOR 2025 training release (or, with --edition 2026,
the 2026 one): 'Task 1' (CT, PET,
label), 'Task 2' (CT, PET, planning CT + dose for some patients), 'Task 3' (CT, PET), each with
its clinical CSV. CT and PET are on different grids; the label is on the CT grid. Outcomes
(RFS/Relapse, HPV status) carry real signal; the true risk and HPV probability are written to
OUT/synthetic_ground_truth.json, which the pipeline never reads. Same seed, same bytes.

example:
  nnunet-hecktor synth /tmp/hecktor_synth --patients 12 --seed 0
  nnunet-hecktor synth /tmp/flat --patients 20 --layout flat
  nnunet-hecktor synth /tmp/bench --patients 4 --size benchmark --num-processes 2
  nnunet-hecktor synth /tmp/hecktor2026 --patients 20 --edition 2026
"""


def _int_at_least(minimum: int):
    """An argparse ``type``: an integer >= ``minimum`` (argparse prints the message and exits with 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="output folder (created; must be empty unless --overwrite)")
    parser.add_argument("--patients", type=_int_at_least(1), default=12,
                        help="patients in the whole cohort (default 12)")
    parser.add_argument("--seed", type=_int_at_least(0), default=0, help="random seed, 0 or more (default 0)")
    parser.add_argument("--layout", choices=("release", "release_underscore", "flat", "task"), default="release",
                        help="release: 'Task 1'..'Task 3' folders (default); release_underscore: 'Task_1'...; "
                             "flat: all files in OUT; task: one task folder's contents in OUT (see --task)")
    parser.add_argument("--task", type=int, choices=(1, 2, 3), default=1,
                        help="with --layout task: which task folder to write (default 1)")
    parser.add_argument("--size", choices=("test", "demo", "benchmark"), default="test",
                        help="test: CT ~32x32x23 voxels (default); demo: real-size neck, CT ~46x46x57 at "
                             "~3.5 mm (nodes ~5 voxels across); benchmark: CT 512x512x~200, PET ~4 mm")
    parser.add_argument("--enriched", action="store_true",
                        help="enrich HPV-negative patients (~30 %%) and relapses (~42 %%); every patient in "
                             "all three tasks")
    parser.add_argument("--enrichment", choices=("covariate", "outcome"), default="covariate",
                        help="with --enriched: keep patients on HPV status and high-risk covariates (default; "
                             "the generator's associations hold) or on the drawn outcome (the first scheme, "
                             "which distorts them; to reproduce figures made with it)")
    parser.add_argument("--edition", choices=("2025", "2026"), default="2025",
                        help="release to write: 2025 (default, 'Task 1'..'Task 3'); 2026: every patient in "
                             "hecktor2026_training/<PID>/ (CT, PET, label) and HECKTOR_2026_Training_Task.csv "
                             "(HPV Status as input, no M-stage, targets Relapse, RFS, T-stage, N-stage); "
                             "layout release only")
    parser.add_argument("--world", choices=("default", "rich"), default="default",
                        help="default: outcomes depend on volume, SUVmax, node count and clinical values only; "
                             "rich: also on a necrotic core, uptake heterogeneity and extranodal extension "
                             "(risk) and cystic nodes (HPV), rendered in the images (docs/explanations/synthetic-data.md)")
    parser.add_argument("--id-offset", type=_int_at_least(0), default=0,
                        help="patient numbers start here (default 0); for new patients next to a training "
                             "cohort, one more than its highest number, so no id repeats")
    parser.add_argument("-np", "--num-processes", type=_int_at_least(1), default=1,
                        help="patients generated in parallel (default 1)")
    parser.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary line")


def run(args: argparse.Namespace) -> int:
    from nnunet_hecktor.errors import UsageError
    from nnunet_hecktor.synthetic import make_cohort

    # --patients, --seed, --id-offset and --num-processes are checked by argparse (exit 2 with a usage message).
    if args.edition == "2026" and args.layout != "release":
        raise UsageError(f"--edition 2026 has one layout (release), not --layout {args.layout}")
    make_cohort(args.out, n_patients=args.patients, seed=args.seed, layout=args.layout, task=args.task,
                size=args.size, num_processes=args.num_processes, progress=not args.quiet,
                overwrite=args.overwrite, enriched=args.enriched, edition=args.edition,
                world=args.world, id_offset=args.id_offset,
                enrichment=args.enrichment)
    return 0
