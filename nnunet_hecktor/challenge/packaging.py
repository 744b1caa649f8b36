"""Packaging a trained model for the challenge container (a ``docker build`` context).

The organisers' 2025 template builds from a folder holding the code, its requirements and the model
weights (``resources/``), runs as a non-root user from ``/opt/app`` and starts an entry point that
reads ``/input`` and writes ``/output``. :func:`stage_build_context` writes such a folder:

``src/``
    this project (setup.cfg, pyproject.toml, README.md and the four package folders), installed
    with pip in the image;
``model/``
    the model folder reduced to what prediction reads (``plans.json``, ``dataset.json``,
    ``dataset_fingerprint.json``, ``fold_K/<checkpoint>`` of the chosen folds), the optional
    post-processing JSON as ``postprocessing.json``, and ``challenge_model.json`` recording
    folds, checkpoint, post-processing and the fallback outputs of a failed case (the training
    cohort's median risk and majority HPV class, :mod:`.fallback`; computed here so that no
    per-patient file ships in the image), read by :func:`~nnunet_hecktor.challenge.run.run_challenge`;
``Dockerfile``
    ``docker/Dockerfile`` of this repository.

HECKTOR 2026 ships the weights apart from the image: :func:`write_model_archive` writes the staged
model folder as ``model.tar.gz`` with the folder's *content* at the archive's root (the layout
:mod:`.model_location` reads from ``/opt/ml/model``). The 2026 image is built from the same context
with ``--build-arg HECKTOR_EDITION=2026``; its baked-in ``model/`` is the fallback used when nothing
is mounted; the model folder's staged prognosis stage (``prognosis/``: ``survival.joblib``,
``stage.joblib``, ``stage.json``, ...) travels in it. ``--clinical-csv`` records the training table's most
frequent T and N stage in ``challenge_model.json`` (the T/N fallback when no T/N model is staged,
:mod:`.staging`).

Command line (used by ``docker/build.sh``)::

    python -m nnunet_hecktor.challenge.packaging --model MODEL_DIR --context BUILD_DIR \\
        [--folds 0 1 2 3 4] [--checkpoint NAME] [--postprocessing pp.json] \\
        [--archive model.tar.gz] [--clinical-csv HECKTOR_2026_Training.csv]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Sequence

from nnunet_hecktor.errors import HecktorError

from .run import CHALLENGE_MODEL_FILE

MODEL_FILES: tuple[str, ...] = ("plans.json", "dataset.json", "dataset_fingerprint.json")
PROJECT_FILES: tuple[str, ...] = ("setup.cfg", "pyproject.toml", "README.md", "LICENSE", "constraints.txt")
PROJECT_PACKAGES: tuple[str, ...] = ("nnunet_hecktor", "trainers", "heads", "dataset_conversion")
POSTPROCESSING_FILE = "postprocessing.json"


def project_root() -> Path:
    """The repository root this package was installed from (editable install / source checkout)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "setup.cfg").is_file():
        raise HecktorError(f"{root} is not the project's source tree (no setup.cfg): staging needs a checkout "
                           "of nnunet-hecktor (pip install -e)")
    return root


def staged_stage_files(model_dir: str | os.PathLike) -> list[str]:
    """Files of ``<model_dir>/prognosis/`` that make the staged prognosis stage: the model of every registered
    target (:func:`nnunet_hecktor.prognosis.deployment.stage_files`) and ``stage.json``, those present."""
    from nnunet_hecktor.prognosis.deployment import STAGE_FOLDER, STAGE_MANIFEST, stage_files

    folder = Path(model_dir) / STAGE_FOLDER
    return [name for name in (*stage_files().values(), STAGE_MANIFEST) if (folder / name).is_file()]


def stage_model(model_dir: str | os.PathLike, destination: str | os.PathLike, folds: Sequence | None = None,
                checkpoint: str | None = None, postprocessing: str | os.PathLike | None = None,
                clinical_csv: str | os.PathLike | None = None) -> Path:
    """Copy what prediction needs from a model folder into ``destination``.

    Parameters
    ----------
    model_dir : path-like
        Trained model folder (``<Trainer>__<Plans>__<configuration>``).
    destination : path-like
        New folder (must not exist or be empty).
    folds : sequence, optional
        Folds to ship (default: all with ``checkpoint``).
    checkpoint : str, optional
        Checkpoint file name shipped for each fold (default: the deployed weights, see
        :func:`~nnunet_hecktor.prediction.model.resolve_checkpoint`).
    postprocessing : path-like, optional
        Post-processing JSON, shipped as ``postprocessing.json`` (checked by loading it).
    clinical_csv : path-like, optional
        Training clinical table: its most frequent T and N stage are recorded as the 2026 T/N
        fallback (``fallback.t_stage`` / ``n_stage``); only these two labels ship, no patient row.

    The staged prognosis stage of ``model_dir/prognosis/`` ships whole (:func:`staged_stage_files`:
    the model of every registered target, ``survival.joblib``, ``hpv.joblib``, ``stage.joblib``, ...,
    and the build's manifest ``stage.json``).

    Returns
    -------
    Path
        ``destination``.
    """
    from nnunet_hecktor.fileio import write_json_atomic
    from nnunet_hecktor.prediction.model import check_model_folder, resolve_checkpoint
    from nnunet_hecktor.prognosis.deployment import STAGE_FOLDER

    from .fallback import fallback_values

    source, chosen = check_model_folder(model_dir, folds, checkpoint)
    checkpoint = resolve_checkpoint(source, chosen, checkpoint)
    destination = Path(destination)
    if destination.exists() and any(destination.iterdir()):
        raise HecktorError(f"{destination} exists and is not empty")
    destination.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, destination / name)
    for fold in chosen:
        (destination / f"fold_{fold}").mkdir()
        shutil.copy2(source / f"fold_{fold}" / checkpoint, destination / f"fold_{fold}" / checkpoint)
    for name in staged_stage_files(source):  # the prognosis stage: risk/HPV/T/N in the container (.run, .run2026)
        (destination / STAGE_FOLDER).mkdir(exist_ok=True)
        shutil.copy2(source / STAGE_FOLDER / name, destination / STAGE_FOLDER / name)
    pp_name = None
    if postprocessing is not None:
        from nnunet_hecktor.postprocessing.config import load_config

        load_config(postprocessing)
        shutil.copy2(postprocessing, destination / POSTPROCESSING_FILE)
        pp_name = POSTPROCESSING_FILE
    fallback = fallback_values(source, chosen).to_json()
    if clinical_csv is not None:
        from nnunet_hecktor.clinical import read_clinical_csv

        from .staging import most_frequent_stages

        stages = most_frequent_stages(read_clinical_csv(clinical_csv))
        fallback.update({"t_stage": stages.t_stage, "n_stage": stages.n_stage,
                         "stage_source": f"{stages.source}: {Path(clinical_csv).name}"})
    write_json_atomic(destination / CHALLENGE_MODEL_FILE, {
        "source": str(source), "folds": list(chosen), "checkpoint": checkpoint, "postprocessing": pp_name,
        "fallback": fallback,
    })
    return destination


def write_model_archive(staged_model: str | os.PathLike, archive: str | os.PathLike) -> Path:
    """Write ``model.tar.gz`` of a staged model folder: its content at the archive's root.

    Grand-challenge extracts the archive into ``/opt/ml/model``, which then is the model folder
    (:mod:`.model_location`). Written under a temporary name and renamed when complete.
    """
    import tarfile

    from nnunet_hecktor.fileio import atomic_path

    from .model_location import is_model_folder

    staged_model, archive = Path(staged_model), Path(archive)
    if not is_model_folder(staged_model):
        raise HecktorError(f"{staged_model} is not a model folder (plans.json, dataset.json, fold_*)")
    with atomic_path(archive) as tmp:
        with tarfile.open(tmp, "w:gz") as tar:
            for path in sorted(staged_model.rglob("*")):
                if path.is_file():
                    tar.add(path, arcname=str(path.relative_to(staged_model)))
    return archive


def stage_build_context(model_dir: str | os.PathLike, context: str | os.PathLike, folds: Sequence | None = None,
                        checkpoint: str | None = None,
                        postprocessing: str | os.PathLike | None = None,
                        clinical_csv: str | os.PathLike | None = None) -> Path:
    """Write a ``docker build`` context: ``src/`` (this project), ``model/`` and ``Dockerfile``.

    Returns
    -------
    Path
        The context folder (build it with ``docker build -t TAG --build-arg HECKTOR_TASK=N CONTEXT``).
    """
    root = project_root()
    context = Path(context)
    if context.exists() and any(context.iterdir()):
        raise HecktorError(f"build context {context} exists and is not empty")
    context.mkdir(parents=True, exist_ok=True)
    src = context / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")
    for name in PROJECT_FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, src / name)
    for name in PROJECT_PACKAGES:
        shutil.copytree(root / name, src / name, ignore=ignore)
    stage_model(model_dir, context / "model", folds, checkpoint, postprocessing, clinical_csv)
    shutil.copy2(root / "docker" / "Dockerfile", context / "Dockerfile")
    return context


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nnunet_hecktor.challenge.packaging",
                                     description="Stage a docker build context for the HECKTOR challenge container.")
    parser.add_argument("--model", required=True, help="trained model folder")
    parser.add_argument("--context", required=True, help="new build-context folder")
    parser.add_argument("--folds", nargs="+", default=None)
    parser.add_argument("--checkpoint", default=None, help="default: the validated weights")
    parser.add_argument("--postprocessing", default=None)
    parser.add_argument("--clinical-csv", default=None,
                        help="training table: its most frequent T/N stage becomes the 2026 T/N fallback")
    parser.add_argument("--archive", default=None,
                        help="also write the staged model as this model.tar.gz (2026: mounted at /opt/ml/model)")
    args = parser.parse_args(argv)
    try:
        context = stage_build_context(args.model, args.context, args.folds, args.checkpoint, args.postprocessing,
                                      args.clinical_csv)
        if args.archive:
            print(f"model archive {write_model_archive(context / 'model', args.archive)}")
    except HecktorError as exc:
        print(f"packaging: error: {exc}", file=sys.stderr)
        return 1
    info = json.loads((context / "model" / CHALLENGE_MODEL_FILE).read_text())
    print(f"build context {context}: folds {info['folds']}, {info['checkpoint']}, "
          f"post-processing {info['postprocessing'] or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
