"""``nnunet-hecktor export-seg``: a trained multi-task fold -> a stock nnU-Net segmentation model."""

from __future__ import annotations

import argparse

from nnunet_hecktor.commands._options import add_checkpoint

NAME = "export-seg"
ORDER = 22
HELP = "strip the HPV/risk heads from a trained fold and write a stock nnUNetTrainer model"
DESCRIPTION = """\
Write FOLD's segmentation weights (heads removed) as a stock nnU-Net model:
OUTPUT_ROOT/DatasetNNN_Name/nnUNetTrainer__<plans>__<configuration>/fold_K/checkpoint_final.pth
plus plans.json, dataset.json and dataset_fingerprint.json. It predicts with stock nnU-Net, no
plugin needed. By default the deployed weights are exported: checkpoint_final.pth (the weights the
training validated), or checkpoint_swa.pth for a fold trained before checkpoint layout 2.

example:
  nnunet-hecktor export-seg $nnUNet_results/Dataset501_HECKTOR/HecktorMultiTaskTrainer__nnUNetPlans__3d_fullres/fold_0 \\
      --output-root exported
  nnUNet_results=exported nnUNetv2_predict -i imagesTs -o seg -d 501 -c 3d_fullres -tr nnUNetTrainer -f 0
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("fold_folder", help="trained fold folder (.../<Trainer>__<plans>__<config>/fold_K)")
    parser.add_argument("--output-root", required=True,
                        help="results root to write into (e.g. a new folder; not the source model folder)")
    add_checkpoint(parser, "checkpoint file name in the fold (default: the validated weights)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing exported checkpoint")


def run(args: argparse.Namespace) -> int:
    from nnunet_hecktor.trainers.handover import export_segmentation_model

    result = export_segmentation_model(args.fold_folder, args.output_root, args.checkpoint, args.overwrite)
    print(f"[export-seg] {result.source_checkpoint} -> {result.checkpoint} "
          f"({result.removed_head_keys} head tensors removed; trainer nnUNetTrainer)")
    return 0
