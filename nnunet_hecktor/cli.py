"""The ``nnunet-hecktor`` console command.

Every subcommand lives in its own module under :mod:`nnunet_hecktor.commands` and is
found automatically. A command module defines

``NAME``          the subcommand name (str),
``HELP``          one line for ``nnunet-hecktor --help``,
``ORDER``         position in the help listing (int, optional),
``add_arguments(parser)``  fills an :class:`argparse.ArgumentParser`,
``run(args) -> int``       calls the plain Python API and returns the exit code.

Command modules import only the standard library at module level (heavy imports such
as torch or nnunetv2 go inside ``run``) so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from types import ModuleType
from typing import Sequence

from nnunet_hecktor import __version__
from nnunet_hecktor.errors import HecktorError, UsageError
from nnunet_hecktor.logs import configure_cli_logging


def _command_modules() -> list[ModuleType]:
    import nnunet_hecktor.commands as commands_pkg

    modules = []
    for info in pkgutil.iter_modules(commands_pkg.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands_pkg.__name__}.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            modules.append(module)
    return sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.NAME))


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level argument parser with one sub-parser per command module."""
    parser = argparse.ArgumentParser(
        prog="nnunet-hecktor",
        description=(
            "nnU-Net v2 plugin for HECKTOR (FDG-PET/CT head and neck cancer): dataset "
            "conversion, multi-task training (segmentation, HPV, recurrence-free survival), "
            "patient-level prediction, HECKTOR metrics and the challenge container."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        sub = subparsers.add_parser(
            module.NAME,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        _add_verbosity_options(sub)
        sub.set_defaults(_run=module.run)
    return parser


def _add_verbosity_options(parser: argparse.ArgumentParser) -> None:
    """``-q/--quiet`` and ``-v/--verbose`` on every command (a command may define its own ``--quiet``)."""
    known = parser._option_string_actions
    group = parser.add_argument_group("output")
    if "--quiet" not in known:
        group.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    elif "-q" not in known:
        known["--quiet"].option_strings = ["-q", *known["--quiet"].option_strings]
        known["-q"] = known["--quiet"]
    if "--verbose" not in known:
        group.add_argument("-v", "--verbose", action="store_true", help="debug messages too")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_cli_logging(quiet=bool(getattr(args, "quiet", False)), verbose=bool(getattr(args, "verbose", False)))
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except UsageError as exc:
        # Called wrongly: argparse's convention (usage line, exit 2).
        sub = _subparser(parser, args.command)
        (sub or parser).print_usage(sys.stderr)
        print(f"nnunet-hecktor {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except HecktorError as exc:
        # Input problems are the user's to fix: one clear line, no traceback.
        print(f"nnunet-hecktor {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"nnunet-hecktor {args.command}: interrupted", file=sys.stderr)
        return 130


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(name)
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
