"""``nnunet-hecktor trainer-path``: the folder nnU-Net's ``nnUNet_extTrainer`` must point at."""

from __future__ import annotations

import argparse

NAME = "trainer-path"
ORDER = 20
HELP = "print the folder to put in nnUNet_extTrainer so nnUNetv2_train/predict find the plugin's trainers"
DESCRIPTION = """\
Print the folder of the plugin's trainer entry points. nnU-Net searches the folders listed in
the environment variable nnUNet_extTrainer for trainer classes; the classes themselves live in the
installed package (nnunet_hecktor.trainers), so they pickle for data-augmentation workers and DDP.

example:
  export nnUNet_extTrainer=$(nnunet-hecktor trainer-path)
  nnUNetv2_train 501 3d_fullres 0 -tr HecktorMultiTaskTrainer
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true",
                        help="also import the trainers, list them and check the environment (slower: imports nnU-Net)")


def run(args: argparse.Namespace) -> int:
    from nnunet_hecktor.nnunet_env import plugin_trainer_folder

    print(plugin_trainer_folder())
    if args.check:
        import sys

        import nnunet_hecktor.trainers as trainers
        from nnunet_hecktor.nnunet_env import setup_problems

        for name in trainers.__all__:
            getattr(trainers, name)
            print(f"  {name}", file=sys.stderr)
        problems = setup_problems()
        for problem in problems:
            print(f"problem: {problem}", file=sys.stderr)
        return 1 if problems else 0
    return 0
