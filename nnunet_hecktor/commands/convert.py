"""``nnunet-hecktor convert``: a HECKTOR folder -> an nnU-Net v2 raw dataset (thin wrapper)."""

from __future__ import annotations

import argparse

from nnunet_hecktor.commands._options import add_dataset_id, add_num_processes

NAME = "convert"
ORDER = 10
HELP = "convert HECKTOR releases (2021, 2022, 2025, 2026; release, task or flat folders) into an nnU-Net v2 dataset"
DESCRIPTION = """\
Convert a HECKTOR source folder into $nnUNet_raw/DatasetNNN_NAME (or --output):
imagesTr/<PID>_0000 = CT (unchanged), <PID>_0001 = PET resampled onto the CT grid,
labelsTr/<PID> = uint8 {0 background, 1 GTVp, 2 GTVn} (2021: {0, 1 GTVp}); patients without a label go
to imagesTs. The HECKTOR edition (2021, 2022, 2025, 2026) is detected from the file and folder names
and printed (--edition to choose it); its contract says how files and CSV columns are named (see
docs/reference/editions.md). Every CSV of the source is read, or named in a warning (--strict: error).
Also writes dataset.json, clinical.csv (task CSVs merged; unusable values empty), splits_final.json
(5 patient-level folds stratified by centre, HPV and Relapse), conversion_report.json and
crops/<PID>.json. SRC may be the release root ('Task 1', 'Task 2', 'Task 3'; 'Task_1' works too),
one task folder, a flat folder of <PID>__CT.nii.gz / <PID>__PT.nii.gz / <PID>.nii.gz, the 2022
imagesTr/labelsTr folder, the 2026 folder holding hecktor2026_training/ and its CSV, or the 2021
folder holding hecktor_nii/ and its CSVs.
--suv-factors FILE multiplies the PETs it lists by their Bq/mL -> SUV factor (the organisers' 2026
suv_conversion_tags.csv format; checked against weight x 1000 / dose, implausible factors refused),
recorded in suv_factors.csv. A PET whose 99th percentile exceeds 100 without a factor looks like
Bq/mL: converted unchanged, warned in the summary (--strict: error).
A re-run skips patients already converted from unchanged sources; --overwrite empties the folder
(the lock stays) and redoes everything.
A clinical value that cannot be parsed or is out of range becomes missing, with a warning naming
patient, column and value (a patient is never left out for it). Column names are matched up to
case and white space; ',', ';' and tab separated CSVs are read. Task 1 patients without a label
file are converted as unlabelled cases with a warning (--strict: failed). One run at a time per
dataset folder (a lock file names the run holding it). Files are written with your umask.
See docs/reference/conversion-input.md.

examples:
  nnunet-hecktor convert /data/hecktor2025 --dataset-id 501
  nnunet-hecktor convert "/data/hecktor2025/Task 1" --dataset-id 502 --crop headneck --num-processes 4
  nnunet-hecktor convert /data/hecktor2026 --dataset-id 526 --suv-factors suv_conversion_tags.csv
  nnunet-hecktor convert /data/hecktor2021_train --dataset-id 521 --edition 2021
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="HECKTOR source folder (never written to)")
    add_dataset_id(parser)
    parser.add_argument("--name", default="HECKTOR", help="dataset name (default HECKTOR): DatasetNNN_NAME")
    parser.add_argument("--output", default=None,
                        help="dataset folder to write (default $nnUNet_raw/DatasetNNN_NAME)")
    parser.add_argument("--interpolation", choices=("linear", "bspline"), default="linear",
                        help="PET -> CT grid interpolation (default linear; outside value 0)")
    parser.add_argument("--crop", choices=("overlap", "headneck"), default=None,
                        help="crop the CT grid to the CT/PET overlap or to a head-and-neck box (default: no crop)")
    parser.add_argument("--headneck-box-mm", type=float, nargs=3, metavar=("X", "Y", "Z"),
                        default=(200.0, 200.0, 310.0), help="head-and-neck box in mm (default 200 200 310)")
    parser.add_argument("--splits", default=None, metavar="FILE",
                        help="nnU-Net split file to use, filtered to the patients present "
                             "(default: stratified 5 folds)")
    parser.add_argument("--num-folds", type=int, default=5, help="folds of the stratified split (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the stratified split (default 0)")
    add_num_processes(parser, "patients converted in parallel (default 1)")
    parser.add_argument("--overwrite", action="store_true", help="empty the dataset folder and convert everything")
    from nnunet_hecktor.editions import EDITIONS

    parser.add_argument("--edition", choices=sorted(EDITIONS), default=None,
                        help="HECKTOR edition of the source (default: detected from file and folder names)")
    parser.add_argument("--suv-factors", default=None, metavar="FILE",
                        help="Bq/mL -> SUV factor table (PatientID/pid and bqml_to_suvbw_factor, and/or "
                             "patient_weight_kg and dose_for_suv_bq); the listed PETs are converted to SUV")
    parser.add_argument("--strict", action="store_true",
                        help="exit non-zero (after writing every output) when any patient failed, a CSV was not "
                             "read, a clinical column lost values, or a data alert was raised (PET in Bq/mL, "
                             "small-field PET, CT stored as HU+1024, IDs differing only in case, one scan under "
                             "two IDs); Task 1 patients without a label file fail")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def run(args: argparse.Namespace) -> int:
    from nnunet_hecktor.dataset_conversion import convert_dataset
    from nnunet_hecktor.errors import HecktorError

    # The converter logs what it found, per-patient warnings and its summary; the CLI's logging
    # set-up (nnunet_hecktor.logs) prints them (only warnings with --quiet).
    try:
        convert_dataset(args.src, dataset_id=args.dataset_id, name=args.name, output=args.output,
                        interpolation=args.interpolation, crop=args.crop,
                        headneck_box_mm=tuple(args.headneck_box_mm), splits_file=args.splits,
                        num_folds=args.num_folds, seed=args.seed, num_processes=args.num_processes,
                        overwrite=args.overwrite, strict=args.strict, progress=not args.quiet,
                        edition=args.edition, suv_factors=args.suv_factors)
    except OSError as exc:
        # What the converter does not turn into its own message (a folder vanishing mid-run, ...):
        # still one line naming the file and the reason, never a traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        raise HecktorError(f"{where}{exc.strerror or exc}") from None
    if not args.quiet:  # the next steps are stock nnU-Net commands: say now what would stop them
        import sys

        from nnunet_hecktor.nnunet_env import setup_problems

        for problem in setup_problems():
            print(f"[convert] before nnU-Net: {problem}", file=sys.stderr)
    return 0
