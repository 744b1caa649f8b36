"""``nnunet-hecktor postprocess``: apply post-processing rules to a folder of segmentations."""

from __future__ import annotations

import argparse

from nnunet_hecktor.commands._options import add_deprecated_alias, add_num_processes, require

NAME = "postprocess"
ORDER = 35
HELP = "apply post-processing rules (small-lesion removal, single GTVp, GTVn distance, ...) to <PID>.nii.gz files"
DESCRIPTION = """\
Post-process every INPUT/<PID>.nii.gz (0 background, 1 GTVp, 2 GTVn) into OUTPUT/<PID>.nii.gz on
exactly the same grid. The rules come from one JSON file (written by tune-postprocessing, or by
hand; the rules and their order: docs/how-to/postprocess.md): probability threshold (needs
INPUT/<PID>.npz from nnUNetv2_predict --save_probabilities), closing (mm), removal of components
below a size (mm3 or voxels), removal of lesions touching the cranial face of the volume, one GTVp
lesion, GTVn touching the GTVp removed or made GTVp, at most K components per label, GTVn farther
than D mm from the GTVp removed.

example:
  nnunet-hecktor postprocess --input predictions --output predictions_pp --config pp.json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", "-i", required=True, help="folder of <PID>.nii.gz segmentations")
    parser.add_argument("--output", "-o", required=True, help="output folder (must differ from --input)")
    # -c is nnU-Net's configuration (3d_fullres...); the rules file has its long name only.
    parser.add_argument("--config", default=None, help="post-processing JSON configuration (the rules; required)")
    add_deprecated_alias(parser, "-c", "config", "--config")
    add_num_processes(parser)


def run(args: argparse.Namespace) -> int:
    from nnunet_hecktor.postprocessing.apply import SUMMARY_FILE, postprocess_folder
    from nnunet_hecktor.postprocessing.config import load_config

    config = load_config(require(args, "config", "--config"))
    print(f"[postprocess] rules: {config.describe()}")
    report = postprocess_folder(args.input, args.output, config, args.num_processes)
    changed = sum(c.changed_voxels for c in report.cases)
    print(f"[postprocess] {len(report.cases)} cases written to {args.output}; {report.n_changed} changed "
          f"({changed} voxels in all)"
          + (f"; {len(report.skipped_probabilities)} without probabilities (threshold skipped)"
             if report.skipped_probabilities else "")
          + f"; details in {SUMMARY_FILE}")
    return 0
