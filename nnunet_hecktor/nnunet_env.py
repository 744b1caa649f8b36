"""nnU-Net environment handling: the three data folders and running stock ``nnUNetv2_*`` commands.

nnU-Net reads ``nnUNet_raw``, ``nnUNet_preprocessed`` and ``nnUNet_results`` from the
environment. The plugin never changes the caller's environment; it passes an explicit
environment to the subprocesses it starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

from nnunet_hecktor.errors import HecktorError

NNUNET_FOLDER_VARIABLES = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


def nnunet_environment(root: str | os.PathLike | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return a copy of ``os.environ`` with the nnU-Net folders (and the plugin's trainer path) set.

    Parameters
    ----------
    root : path-like, optional
        When given, the three folders become ``root/nnUNet_raw``, ``root/nnUNet_preprocessed`` and
        ``root/nnUNet_results`` (created if needed). When omitted they must already be set.
    extra : mapping, optional
        Further variables to set (e.g. ``nnUNet_n_proc_DA``).
    """
    env = dict(os.environ)
    if root is not None:
        root = Path(root).resolve()
        for name in NNUNET_FOLDER_VARIABLES:
            folder = root / name
            folder.mkdir(parents=True, exist_ok=True)
            env[name] = str(folder)
    missing = [name for name in NNUNET_FOLDER_VARIABLES if not env.get(name)]
    if missing:
        raise HecktorError(f"nnU-Net folders not set: {', '.join(missing)} (see the README's nnU-Net set-up)")
    trainer_folder = plugin_trainer_folder()
    existing = [p for p in env.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    if trainer_folder not in existing:
        env["nnUNet_extTrainer"] = os.pathsep.join(existing + [trainer_folder])
    env.update(extra or {})
    return env


def plugin_trainer_folder() -> str:
    """Folder of one-line re-export modules that ``nnUNet_extTrainer`` must point at."""
    return str(Path(__file__).resolve().parent / "nnunet_ext_trainers")


def nnunet_command(name: str) -> list[str]:
    """Command line prefix for a stock ``nnUNetv2_*`` console script of the running interpreter's environment."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    found = shutil.which(name)
    if found is None:
        raise HecktorError(f"{name} not found: is nnunetv2 installed in this environment?")
    return [found]


def run_nnunet(name: str, args: Sequence[str], env: Mapping[str, str], log_file: str | os.PathLike | None = None) -> None:
    """Run a stock nnU-Net command, raising :class:`HecktorError` with the log's tail when it fails."""
    cmd = nnunet_command(name) + [str(a) for a in args]
    result = subprocess.run(cmd, env=dict(env), capture_output=True, text=True)
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        Path(log_file).write_text(f"$ {' '.join(cmd)}\n{result.stdout}\n{result.stderr}")
    if result.returncode != 0:
        tail = "\n".join((result.stdout + "\n" + result.stderr).strip().splitlines()[-25:])
        raise HecktorError(f"{name} failed (exit {result.returncode}):\n{tail}")


#: The one set-up line that makes ``nnUNetv2_train/predict -tr Hecktor*`` find the plugin's trainers.
TRAINER_PATH_SETUP = "export nnUNet_extTrainer=$(nnunet-hecktor trainer-path)"


def setup_problems(env: Mapping[str, str] | None = None) -> list[str]:
    """What in the environment would make a following stock ``nnUNetv2_*`` command fail, with the fix.

    Parameters
    ----------
    env : mapping, optional
        Environment to check (default ``os.environ``).

    Returns
    -------
    list of str
        One message per problem (empty when none): ``nnUNet_extTrainer`` missing the plugin's
        trainer folder (nnU-Net then says it cannot find ``HecktorMultiTaskTrainer``), and
        ``nnUNet_n_proc_DA=0`` exported for every command (``nnUNetv2_plan_and_preprocess`` passes
        it to ``torch.set_num_threads``, which refuses 0).
    """
    env = os.environ if env is None else env
    problems = []
    folder = Path(plugin_trainer_folder())
    listed = [Path(p).expanduser() for p in env.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    if not any(p.exists() and p.resolve() == folder for p in listed):
        problems.append("nnUNet_extTrainer does not point at the plugin's trainers, so nnUNetv2_train/predict "
                        "-tr HecktorMultiTaskTrainer will stop with 'Could not find requested nnunet trainer'. "
                        f"Set it once (e.g. in ~/.bashrc): {TRAINER_PATH_SETUP}")
    if env.get("nnUNet_n_proc_DA", "").strip() == "0":
        problems.append("nnUNet_n_proc_DA=0 makes nnUNetv2_plan_and_preprocess fail (nnU-Net 2.8 passes it to "
                        "torch.set_num_threads); set it for training only: nnUNet_n_proc_DA=0 nnUNetv2_train ...")
    return problems


#: Environment variable that seeds training (an integer), for trainers run through ``nnUNetv2_train``.
SEED_VARIABLE = "NNUNET_HECKTOR_SEED"


def training_seed_from_environment(default: int | None) -> int | None:
    """The seed in :data:`SEED_VARIABLE` (an integer >= 0), else ``default``.

    Raises
    ------
    ValueError
        The variable is set but is not a non-negative integer.
    """
    raw = os.environ.get(SEED_VARIABLE, "").strip()
    if not raw:
        return default
    try:
        seed = int(raw)
    except ValueError:
        raise ValueError(f"{SEED_VARIABLE}={raw!r} is not an integer") from None
    if seed < 0:
        raise ValueError(f"{SEED_VARIABLE} must be >= 0, got {seed}")
    return seed
