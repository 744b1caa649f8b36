"""``nnunet-hecktor export-model`` / ``import-model``: a whole trained model folder as one zip (thin wrapper)."""

from __future__ import annotations

import argparse

from nnunet_hecktor.commands._options import add_checkpoint, add_folds, add_model_folder

NAME = "export-model"
ORDER = 23
HELP = "zip a whole model folder (checkpoints, plans, prognosis stage, post-processing, container settings)"
DESCRIPTION = """\
Write MODEL into ZIP in nnU-Net's zip layout (DatasetNNN_Name/<Trainer>__<Plans>__<config>/...), so
nnUNetv2_install_pretrained_model_from_zip still installs it, with everything nnU-Net's own
nnUNetv2_export_model_to_zip leaves out: the staged prognosis stage (MODEL/prognosis/), the
post-processing file and challenge_model.json. Per-patient files (fold_k/validation,
validation_heads.csv, prognosis_build/) are not exported. Install with 'nnunet-hecktor import-model'.

A model folder exported with nnUNetv2_export_model_to_zip loses its stage without notice; 'predict'
then warns that risk/HPV come from the heads and names 'nnunet-hecktor prognosis build'.

example:
  nnunet-hecktor export-model -m $nnUNet_results/Dataset501_HECKTOR/HecktorMultiTaskTrainer__nnUNetPlans__3d_fullres \\
      -o hecktor_model.zip
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_folder(parser)
    parser.add_argument("-o", "--output", required=True, help="zip file to write")
    add_folds(parser)
    add_checkpoint(parser)


def run(args: argparse.Namespace) -> int:
    from nnunet_hecktor.model_folder.archive import export_model

    print(export_model(args.model, args.output, args.folds, args.checkpoint).describe("exported"))
    return 0
