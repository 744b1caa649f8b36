"""Command-line options shared by the subcommands: one spelling and one meaning each, nnU-Net's where it has one.

| option | meaning | nnU-Net's |
|---|---|---|
| ``-d/--dataset-id`` | nnU-Net dataset id (1-999) | ``-d`` |
| ``-m/--model`` | a trained model folder (``DatasetNNN_X/<Trainer>__<Plans>__<config>``) | ``-m`` (predict) |
| ``--model-file`` | a fitted patient-level model (``model.joblib``) | |
| ``-f/--folds`` | fold indices of a trained model | ``-f`` |
| ``--cv-folds`` | number of cross-validation folds of a patient-level fit | |
| ``-chk/--checkpoint`` | checkpoint file name inside each fold | ``-chk`` |
| ``-device/--device`` | ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N`` | ``-device`` |
| ``-np/--num-processes`` | worker processes | ``-np`` |

Old spellings keep working for one release (until 0.3.0) and print a deprecation warning
(:func:`add_deprecated_alias`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

#: The release in which deprecated spellings stop working.
REMOVED_IN = "0.3.0"


class _DeprecatedSpelling(argparse.Action):
    """Stores into another option's destination and warns that this spelling is going away."""

    def __init__(self, option_strings, dest, replacement: str, **kwargs: Any):
        self.replacement = replacement
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"warning: {option_string} is deprecated and will be removed in {REMOVED_IN}; use "
              f"{self.replacement}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_deprecated_alias(parser: argparse.ArgumentParser, spelling: str, dest: str, replacement: str,
                         **kwargs: Any) -> None:
    """Accept the old ``spelling`` for ``dest`` (hidden from ``--help``), with a deprecation warning."""
    parser.add_argument(spelling, dest=dest, action=_DeprecatedSpelling, replacement=replacement,
                        help=argparse.SUPPRESS, default=argparse.SUPPRESS, **kwargs)


def require(args: argparse.Namespace, dest: str, spelling: str) -> Any:
    """The value of a required option that also has a deprecated spelling (argparse cannot require either one).

    Raises
    ------
    UsageError
        Neither spelling was given.
    """
    from nnunet_hecktor.errors import UsageError

    value = getattr(args, dest, None)
    if value is None:
        raise UsageError(f"the following argument is required: {spelling}")
    return value


def add_dataset_id(parser: argparse.ArgumentParser, required: bool = True, default: int | None = None) -> None:
    parser.add_argument("-d", "--dataset-id", type=int, required=required, default=default,
                        help="nnU-Net dataset id, 1-999" + ("" if required else f" (default {default})"))


def add_model_folder(parser: argparse.ArgumentParser, required: bool = True, help_text: str | None = None) -> None:
    parser.add_argument("-m", "--model", required=required,
                        help=help_text or "trained model folder ($nnUNet_results/DatasetNNN_X/<Trainer>__<Plans>__"
                                          "<configuration>)")


def add_folds(parser: argparse.ArgumentParser, help_text: str = "folds (default: every trained fold)") -> None:
    parser.add_argument("-f", "--folds", nargs="+", default=None, help=help_text)


def add_cv_folds(parser: argparse.ArgumentParser, default: int = 5) -> None:
    parser.add_argument("--cv-folds", type=int, default=default,
                        help=f"cross-validation folds of --cv kfold (default {default})")
    add_deprecated_alias(parser, "--folds", "cv_folds", "--cv-folds", type=int)


def add_checkpoint(parser: argparse.ArgumentParser, help_text: str = "checkpoint file name in each fold (default: "
                                                                     "the deployed weights)") -> None:
    parser.add_argument("-chk", "--checkpoint", default=None, help=help_text)


def add_device(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    parser.add_argument("-device", "--device", default=default,
                        help=f"auto (CUDA when available), cpu, cuda or cuda:N (default {default})")


def add_num_processes(parser: argparse.ArgumentParser, help_text: str = "worker processes (default 1)") -> None:
    parser.add_argument("-np", "--num-processes", type=int, default=1, help=help_text)
