"""``nnunet-hecktor import-model``: install a model zip into a results folder (thin wrapper)."""

from __future__ import annotations

import argparse

NAME = "import-model"
ORDER = 24
HELP = "install a model zip of export-model (or nnU-Net's) into $nnUNet_results, stage and settings included"
DESCRIPTION = """\
Unpack ZIP (written by 'nnunet-hecktor export-model', or nnU-Net's nnUNetv2_export_model_to_zip)
into the results folder (default $nnUNet_results). Members outside the results folder are refused;
an existing model folder is kept unless --replace. The staged prognosis stage is loaded as a check,
and the summary says whether the model has one.

example:
  nnunet-hecktor import-model hecktor_model.zip
  nnunet-hecktor import-model hecktor_model.zip --output /data/nnUNet_results --replace
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("zip", help="model zip file")
    parser.add_argument("-o", "--output", default=None, help="results folder (default $nnUNet_results)")
    parser.add_argument("--replace", action="store_true", help="replace existing model folders")


def run(args: argparse.Namespace) -> int:
    from nnunet_hecktor.model_folder.archive import import_model

    for summary in import_model(args.zip, args.output, args.replace):
        print(summary.describe("imported"))
    return 0
