"""``nnunet-hecktor export-model`` / ``import-model``: a whole trained model folder in one zip file.

nnU-Net's ``nnUNetv2_export_model_to_zip`` copies checkpoints, plans, dataset.json and the
fingerprint only: a model folder shared that way loses its prognosis stage, its post-processing and
its container settings, and the receiver's risk/HPV silently fall back to the network heads
(``predict`` warns about it, naming ``nnunet-hecktor prognosis build``). :func:`export_model` writes
the same zip layout (paths relative to ``$nnUNet_results``:
``DatasetNNN_Name/<Trainer>__<Plans>__<configuration>/...``), so
``nnUNetv2_install_pretrained_model_from_zip`` still installs it, with in addition:

- each fold's deployed checkpoint (and ``checkpoint_final.pth``, nnU-Net's default) and ``debug.json``;
- ``plans.json``, ``dataset.json``, ``dataset_fingerprint.json``;
- ``prognosis/`` (the staged models and ``stage.json``);
- ``challenge_model.json`` and the post-processing file it names (or ``postprocessing.json``).

Per-patient files (``fold_k/validation``, ``validation_heads.csv``, ``prognosis_build/``) are not
exported: a shared model carries no patient data. :func:`import_model` unpacks such a zip (or one of
nnU-Net's) into a results folder, refusing paths outside it and an existing model folder unless
asked to replace it, and checks that the staged stage loads.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from nnunet_hecktor.errors import HecktorError

MODEL_FILES: tuple[str, ...] = ("plans.json", "dataset.json", "dataset_fingerprint.json")
FOLD_FILES: tuple[str, ...] = ("debug.json", "progress.png")


@dataclass
class ArchiveSummary:
    """What an export or import contained.

    Attributes
    ----------
    zip_path : Path
    model_dir : Path
        The exported folder, or where it was imported.
    members : list of str
        Paths inside the zip.
    stage_outputs : tuple of str
        Outputs of the staged prognosis stage (empty when the model has none).
    """

    zip_path: Path
    model_dir: Path
    members: list[str] = field(default_factory=list)
    stage_outputs: tuple[str, ...] = ()

    def describe(self, action: str) -> str:
        stage = (f"prognosis stage ({', '.join(self.stage_outputs)})" if self.stage_outputs
                 else "NO prognosis stage (risk/HPV will come from the network heads)")
        return f"{action} {self.model_dir} <-> {self.zip_path}: {len(self.members)} files, {stage}"


def _files_to_export(model_dir: Path, folds, checkpoint) -> list[Path]:
    from nnunet_hecktor.checkpoints import DEPLOYED_CHECKPOINT
    from nnunet_hecktor.prediction.model import check_model_folder, resolve_checkpoint
    from nnunet_hecktor.prediction.routing import CONTAINER_SETTINGS_FILE, STAGE_FOLDER, model_postprocessing_file

    model_dir, chosen = check_model_folder(model_dir, folds, checkpoint)
    checkpoint = resolve_checkpoint(model_dir, chosen, checkpoint)
    files = [model_dir / name for name in MODEL_FILES if (model_dir / name).is_file()]
    for fold in chosen:
        fold_dir = model_dir / f"fold_{fold}"
        names = dict.fromkeys((checkpoint, DEPLOYED_CHECKPOINT, *FOLD_FILES))
        files += [fold_dir / name for name in names if (fold_dir / name).is_file()]
    stage = model_dir / STAGE_FOLDER
    if stage.is_dir():
        files += sorted(p for p in stage.rglob("*") if p.is_file())
    settings = model_dir / CONTAINER_SETTINGS_FILE
    if settings.is_file():
        files.append(settings)
    pp = model_postprocessing_file(model_dir)
    if pp is not None and pp.resolve().parent == model_dir.resolve():
        files.append(pp)
    return list(dict.fromkeys(files))


def export_model(model_dir: str | os.PathLike, zip_path: str | os.PathLike, folds=None,
                 checkpoint: str | None = None) -> ArchiveSummary:
    """Write a whole model folder into ``zip_path`` (module docstring), atomically.

    Parameters
    ----------
    model_dir : path-like
        ``<results>/DatasetNNN_Name/<Trainer>__<Plans>__<configuration>``.
    zip_path : path-like
        Zip file to write (its folder must exist).
    folds : sequence, optional
        Folds to export (default: every fold with the checkpoint).
    checkpoint : str, optional
        Default: the deployed weights.

    Raises
    ------
    HecktorError
        Not a model folder, a fold without the checkpoint, or an unusable staged stage (it is loaded
        before anything is written).
    """
    from nnunet_hecktor.fileio import atomic_path
    from nnunet_hecktor.prognosis.deployment import resolve_stage_models

    model_dir = Path(model_dir).expanduser().resolve()
    files = _files_to_export(model_dir, folds, checkpoint)
    stage = resolve_stage_models(model_dir)
    root = model_dir.parent.parent
    zip_path = Path(zip_path).expanduser()
    members = []
    with atomic_path(zip_path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                name = path.relative_to(root).as_posix()
                archive.write(path, name)
                members.append(name)
    return ArchiveSummary(zip_path, model_dir, members, tuple(stage.outputs) if stage is not None else ())


def _model_folders(names: list[str]) -> list[str]:
    """``DatasetNNN_Name/<Trainer>__<Plans>__<configuration>`` folders of the zip members."""
    return sorted({"/".join(PurePosixPath(n).parts[:2]) for n in names if len(PurePosixPath(n).parts) > 2})


def _check_member(name: str, zip_path: Path) -> None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name or (path.parts and ":" in path.parts[0]):
        raise HecktorError(f"{zip_path}: member {name!r} would be written outside the results folder; refused")


def import_model(zip_path: str | os.PathLike, results_dir: str | os.PathLike | None = None,
                 replace: bool = False) -> list[ArchiveSummary]:
    """Unpack a model zip (:func:`export_model`'s, or nnU-Net's) into ``results_dir``.

    Parameters
    ----------
    zip_path : path-like
    results_dir : path-like, optional
        Default ``$nnUNet_results``.
    replace : bool
        Replace model folders that already exist (default: refuse).

    Returns
    -------
    list of ArchiveSummary
        One per model folder in the zip.

    Raises
    ------
    HecktorError
        Not a zip, a member outside the results folder, an existing model folder without
        ``replace``, or an imported stage that does not load.
    """
    from nnunet_hecktor.prognosis.deployment import resolve_stage_models

    zip_path = Path(zip_path).expanduser()
    if results_dir is None:
        results_dir = os.environ.get("nnUNet_results")
        if not results_dir:
            raise HecktorError("nnUNet_results is not set; give the results folder with --output")
    results = Path(results_dir).expanduser()
    try:
        archive = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise HecktorError(f"{zip_path}: not a readable zip file ({exc})") from None
    with archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        for name in names:
            _check_member(name, zip_path)
        folders = _model_folders(names)
        if not folders:
            raise HecktorError(f"{zip_path} holds no DatasetNNN_Name/<Trainer>__<Plans>__<configuration> folder")
        existing = [f for f in folders if (results / f).exists()]
        if existing and not replace:
            raise HecktorError(f"{', '.join(str(results / f) for f in existing)} already exist(s); "
                               "give --replace to overwrite")
        results.mkdir(parents=True, exist_ok=True)
        # Unpack next to the destination, then move each model folder into place whole.
        with tempfile.TemporaryDirectory(prefix=".import-", dir=results) as staging:
            archive.extractall(staging, members=names)
            summaries = []
            for folder in folders:
                destination = results / folder
                destination.parent.mkdir(parents=True, exist_ok=True)
                if destination.exists():
                    shutil.rmtree(destination)
                os.replace(Path(staging) / folder, destination)
                stage = resolve_stage_models(destination)
                summaries.append(ArchiveSummary(zip_path, destination, [n for n in names if n.startswith(folder + "/")],
                                                tuple(stage.outputs) if stage is not None else ()))
    return summaries


__all__ = ["ArchiveSummary", "export_model", "import_model"]
