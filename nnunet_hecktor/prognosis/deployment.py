"""The prognosis stage as the risk/HPV/T/N source of ``nnunet-hecktor predict`` and the challenge container.

A model folder can carry fitted stage models in ``<model>/prognosis/`` (put there by
``nnunet-hecktor prognosis build`` / ``prognosis stage``): ``survival.joblib`` (``prognosis fit``),
``hpv.joblib`` (``hpv fit``) and/or ``stage.joblib`` (``staging fit``: T and N stage, HECKTOR 2026;
registered by :mod:`~nnunet_hecktor.prognosis.stage_target`). For each new patient,
:meth:`StageModels.predict_patient` measures the features of the PREDICTED segmentation with the code the stage was fitted on
(:func:`~nnunet_hecktor.prognosis.features.features_from_images`), joins the clinical record and
applies the stage's own prediction (:func:`~nnunet_hecktor.prognosis.survival_stage.survival_risk`,
:func:`~nnunet_hecktor.prognosis.hpv_stage.hpv_prediction`), so the values equal those of
``prognosis predict`` / ``hpv predict`` on the same features. Missing clinical values are imputed by
the fitted pipeline, as in cross-validation.

Conventions: risk higher = earlier relapse; HPV status 1 = positive; T/N stages are canonical labels
(``schema.T_STAGES``/``N_STAGES``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from nnunet_hecktor import schema
from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.prognosis.feature_catalogue import FEATURE_NAMES, HEAD_COLUMNS, PATIENT_COLUMN, SEG_SOURCE_COLUMN
from nnunet_hecktor.prognosis.model_store import PrognosisModel, load_model
from nnunet_hecktor.prognosis.targets import BUILTIN_TARGETS, registered_targets

logger = logging.getLogger(__name__)

#: Sub-folder of a model folder holding the stage models used by default.
STAGE_FOLDER = "prognosis"
#: Manifest of a stage written by ``prognosis build``: edition, post-processing, figures, fallbacks.
STAGE_MANIFEST = "stage.json"
#: File name of each built-in target's model inside a stage folder (:func:`stage_files` adds the
#: targets registered by plugin modules).
STAGE_FILES: dict[str, str] = {name: f"{name}.joblib" for name in BUILTIN_TARGETS}
#: What ``prognosis fit`` / ``hpv fit`` write into their output folder.
FIT_OUTPUT_FILE = "model.joblib"
#: Clinical columns that are never inputs at inference (identifiers, centre, targets).
NOT_PRODUCIBLE: dict[str, tuple[str, ...]] = {
    "survival": (schema.COL_PATIENT, schema.COL_CENTER, schema.COL_RELAPSE, schema.COL_RFS),
    "hpv": (schema.COL_PATIENT, schema.COL_CENTER, schema.COL_RELAPSE, schema.COL_RFS, schema.COL_HPV),
    # T/N staging: outcomes come after staging, so they are not inputs either.
    "stage": (schema.COL_PATIENT, schema.COL_CENTER, schema.COL_RELAPSE, schema.COL_RFS, schema.COL_TSTAGE,
              schema.COL_NSTAGE),
}


def stage_files() -> dict[str, str]:
    """Target name -> file name in a stage folder, for every registered target."""
    return {name: t.stage_file for name, t in registered_targets().items()}


def _not_producible(task: str) -> tuple[str, ...]:
    """Columns a model of ``task`` cannot take at inference: identifiers, centre and its own labels."""
    if task in NOT_PRODUCIBLE:
        return NOT_PRODUCIBLE[task]
    labels = registered_targets()[task].label_columns if task in registered_targets() else ()
    return (schema.COL_PATIENT, schema.COL_CENTER, *labels)


@dataclass
class StageModels:
    """Fitted models of the prognosis stage (one per registered target), ready for one patient at a time.

    Attributes
    ----------
    folder : Path
        Where the models were found.
    models : dict
        Target name (``"survival"``, ``"hpv"``, ...) -> PrognosisModel.
    paths : dict
        Target name -> model file.
    manifest : dict
        ``stage.json`` of ``prognosis build`` ({} for a stage put together by ``prognosis stage``).
    """

    folder: Path
    models: dict[str, PrognosisModel] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def survival(self) -> PrognosisModel | None:
        return self.models.get("survival")

    @property
    def hpv(self) -> PrognosisModel | None:
        return self.models.get("hpv")

    @property
    def stage(self) -> PrognosisModel | None:
        """The T/N staging model (``staging fit``), if staged."""
        return self.models.get("stage")

    @property
    def source(self) -> str:
        """``"prognosis stage <folder>"`` (recorded per output by predict)."""
        return f"prognosis stage {self.folder}"

    @property
    def outputs(self) -> tuple[str, ...]:
        """Routing outputs this stage provides (``"risk"``, ``"hpv"``, ...), in registry order."""
        targets = registered_targets()
        return tuple(o for name in targets if name in self.models for o in targets[name].outputs)

    def kind_of(self, output: str) -> str:
        """``"stage"`` when the model answering ``output`` measures the segmentation, else ``"clinical-only"``."""
        for name, model in self.models.items():
            if output in registered_targets()[name].outputs:
                return "stage" if model.image_columns else "clinical-only"
        raise KeyError(output)

    @property
    def clinical_columns(self) -> tuple[str, ...]:
        """Clinical columns the models read (to be parsed from the clinical source)."""
        columns: dict[str, None] = {}
        for model in self.models.values():
            columns.update(dict.fromkeys(model.clinical_columns))
        return tuple(columns)

    @property
    def needs_heads(self) -> bool:
        """Whether a model takes the network heads' outputs (``net_risk``/``net_hpv_probability``) as inputs."""
        return any(c in HEAD_COLUMNS.values() for m in self.models.values() for c in m.image_columns)

    @property
    def postprocessing(self) -> dict | None:
        """Post-processing rules the stage was fitted with (``prognosis build``), None when unrecorded or none."""
        return self.manifest.get("postprocessing")

    def fallback(self) -> dict[str, Any]:
        """Output column -> value for a patient the stage cannot predict, on the stage's own scale
        (survival: the training patients' median risk; HPV: training prevalence and majority class)."""
        targets = registered_targets()
        values: dict[str, Any] = {}
        for name, model in self.models.items():
            values.update(targets[name].fallback(model))
        return values

    def _models(self) -> dict[str, PrognosisModel]:
        return dict(self.models)

    def describe(self) -> str:
        lines = [f"{self.source}:"]
        for task, model in self.models.items():
            lines.append(f"  {task}: {self.paths.get(task)} ({model.description}; "
                         f"{len(model.image_columns)} image, {len(model.clinical_columns)} clinical inputs)")
        if self.manifest:
            lines.append(f"  built by 'prognosis build' for HECKTOR {self.manifest.get('edition')} "
                         f"({self.manifest.get('created', 'date unknown')})")
        return "\n".join(lines)

    def check_inputs(self, heads_available: bool) -> None:
        """Raise unless every input of the models can be produced at prediction time.

        Image features come from :data:`~nnunet_hecktor.prognosis.feature_catalogue.FEATURE_NAMES`
        (plus the ``net_`` head columns when the network has heads); clinical columns from the
        clinical record, except identifiers, ``CenterID`` and targets.

        Raises
        ------
        HecktorError
            Names the model file and every column it needs that cannot be produced.
        """
        image_ok = set(FEATURE_NAMES) | (set(HEAD_COLUMNS.values()) if heads_available else set())
        problems = []
        for task, model in self.models.items():
            missing_image = [c for c in model.image_columns if c not in image_ok]
            missing_clinical = [c for c in model.clinical_columns if c in _not_producible(task)]
            parts = []
            if missing_image:
                heads = [c for c in missing_image if c in HEAD_COLUMNS.values()]
                parts.append(f"feature column(s) {', '.join(missing_image)}"
                             + (" (network-head outputs: this model has no heads)" if heads else ""))
            if missing_clinical:
                parts.append(f"clinical column(s) {', '.join(missing_clinical)}")
            if parts:
                path = self.paths.get(task, self.folder)
                problems.append(f"{path} needs {' and '.join(parts)}, which prediction cannot produce")
        if problems:
            raise HecktorError("cannot use the prognosis stage: " + "; ".join(problems))

    def feature_row(self, ct, pet, segmentation, patient_id: str,
                    heads: Mapping[str, float] | None = None) -> dict[str, float]:
        """Features of one patient: :func:`deployed_feature_row`."""
        return deployed_feature_row(ct, pet, segmentation, patient_id, heads)

    def predict_features(self, row: Mapping[str, float], clinical: Mapping[str, Any] | None,
                         patient_id: str) -> dict[str, float]:
        """Stage outputs of one patient from its feature row and clinical record (None = all missing).

        Returns
        -------
        dict
            The output columns of every model: ``risk`` (survival model), ``hpv_probability`` and
            ``hpv_status`` (HPV model, with its stored threshold), ...
        """
        import pandas as pd

        table = pd.DataFrame([dict(row)], index=pd.Index([patient_id], name=PATIENT_COLUMN))
        table.insert(0, SEG_SOURCE_COLUMN, "predicted")
        record = {column: None for column in (*schema.CLINICAL_COLUMNS, *self.clinical_columns)}
        record.update({k: v for k, v in dict(clinical or {}).items()})
        records = {patient_id: record}
        targets = registered_targets()
        outputs: dict[str, float] = {}
        for name, model in self.models.items():
            frame = targets[name].predict(model, _needed(model, table), records)
            for column, value in frame.loc[patient_id].items():
                outputs[str(column)] = int(value) if column.endswith("_status") else _plain(value)
        return outputs

    def predict_patient(self, patient_id: str, ct, pet, segmentation, clinical: Mapping[str, Any] | None,
                        heads: Mapping[str, float] | None = None) -> dict[str, float]:
        """Stage outputs of one patient from images: :meth:`feature_row` then :meth:`predict_features`.

        Parameters
        ----------
        patient_id : str
        ct, pet : SimpleITK.Image
            CT (HU) and PET (SUV, any grid).
        segmentation : SimpleITK.Image
            Predicted labels 0/1/2 (CT grid, or a grid around it), post-processed as deployed.
        clinical : dict or None
            Typed clinical record (inference policy); absent or None values are imputed.
        heads : dict, optional
            The network heads' ``hpv_probability`` and ``risk`` (for models using them).

        Raises
        ------
        InputDataError
            The images cannot be measured.
        """
        return self.predict_features(self.feature_row(ct, pet, segmentation, patient_id, heads), clinical,
                                     patient_id)


def _plain(value):
    """A float for numbers, the value itself otherwise (e.g. a stage label such as ``"T2"``)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def deployed_feature_row(ct, pet, segmentation, patient_id: str,
                         heads: Mapping[str, float] | None = None) -> dict[str, float]:
    """Features of one patient exactly as deployment measures them (and as ``prognosis build`` fits on).

    ``segmentation`` (0/1/2, post-processed as deployed) is put onto ``ct``'s grid by nearest
    neighbour when it lies on another one (the full CT grid around a cropped case: exact for a
    sub-grid, 0 outside); the features are then those of
    :func:`~nnunet_hecktor.prognosis.features.features_from_images` on that grid. ``heads``
    (``hpv_probability``/``risk`` of the network) fill the ``net_`` columns.
    """
    from nnunet_hecktor.prognosis.features import features_from_images

    row = features_from_images(ct, pet, _on_grid(segmentation, ct), patient_id)
    for name, column in HEAD_COLUMNS.items():
        if heads is not None and heads.get(name) is not None:
            row[column] = float(heads[name])
    return row


def _needed(model: PrognosisModel, table):
    """The feature table (or None for a clinical-only model, which must not be asked for one)."""
    return table if model.image_columns else None


def _on_grid(segmentation, reference):
    """``segmentation`` on ``reference``'s grid: its header when the grids agree up to round-off
    (the package's one tolerance), else nearest-neighbour resampled."""
    import SimpleITK as sitk

    from nnunet_hecktor.dataset_conversion.geometry import same_grid

    if same_grid(segmentation, reference):
        segmentation = sitk.Image(segmentation)
        segmentation.CopyInformation(reference)
        return segmentation
    return sitk.Resample(segmentation, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                         segmentation.GetPixelID())


def _candidate_files(folder: Path) -> list[Path]:
    """Model files of a stage folder: the staged names, a fit output folder, or fit output sub-folders."""
    names = [folder / name for name in stage_files().values()] + [folder / FIT_OUTPUT_FILE]
    names += sorted(folder.glob(f"*/{FIT_OUTPUT_FILE}"))
    return [p for p in names if p.is_file()]


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """``stage.json`` of a stage folder ({} when absent).

    Raises
    ------
    HecktorError
        The file exists but is not a JSON object.
    """
    import json

    path = Path(folder) / STAGE_MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HecktorError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise HecktorError(f"{path}: expected a JSON object")
    return data


def load_stage_models(folder: str | os.PathLike) -> StageModels:
    """Load the stage models of ``folder``.

    ``folder`` holds ``<target>.joblib`` files (``survival.joblib``, ``hpv.joblib``, ...: ``prognosis
    build`` / ``prognosis stage``), or is a ``prognosis fit``/``hpv fit`` output folder
    (``model.joblib``), or holds such folders; each model's task is read from the model itself.

    Raises
    ------
    HecktorError
        No folder, no model in it, an unreadable model, a model of an unknown target, or two
        models of the same task.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise HecktorError(f"prognosis stage folder {folder} does not exist")
    files = _candidate_files(folder)
    if not files:
        raise HecktorError(f"{folder} holds no prognosis stage model ({', '.join(stage_files().values())}, or "
                           f"{FIT_OUTPUT_FILE} of 'prognosis fit'/'hpv fit')")
    stage = StageModels(folder.resolve(), manifest=read_manifest(folder))
    known = registered_targets()
    for path in files:
        model = load_model(path)
        if model.task not in known:
            raise HecktorError(f"{path} is a {model.task!r} model, which no registered target predicts "
                               f"(known: {', '.join(known)})")
        if model.task in stage.paths:
            raise HecktorError(f"two {model.task} models in {folder}: {stage.paths[model.task]} and {path}; "
                               "keep one")
        stage.paths[model.task] = path.resolve()
        stage.models[model.task] = model
    return stage


def resolve_stage_models(model_dir: str | os.PathLike | None, prognosis_dir: str | os.PathLike | None = None,
                         heads_only: bool = False) -> StageModels | None:
    """The stage models a prediction run uses, or None for the network heads.

    ``prognosis_dir`` when given; else ``<model_dir>/prognosis/`` when it holds models; None with
    ``heads_only``.

    Raises
    ------
    HecktorError
        Both ``prognosis_dir`` and ``heads_only``, or an unusable stage folder.
    """
    if heads_only:
        if prognosis_dir is not None:
            raise HecktorError("--prognosis and --heads-only contradict each other; give one")
        return None
    if prognosis_dir is not None:
        return load_stage_models(prognosis_dir)
    if model_dir is None:
        return None
    default = Path(model_dir).expanduser() / STAGE_FOLDER
    if not default.is_dir():
        return None
    if not _candidate_files(default):
        logger.warning("%s holds no stage model: risk/HPV come from the network heads", default)
        return None
    return load_stage_models(default)


def stage_into_model(model_dir: str | os.PathLike, survival: str | os.PathLike | None = None,
                     hpv: str | os.PathLike | None = None, stage: str | os.PathLike | None = None,
                     models: Mapping[str, str | os.PathLike] | None = None,
                     manifest: Mapping[str, Any] | None = None, replace: bool = False) -> dict[str, Path]:
    """Copy fitted stage models into ``<model_dir>/prognosis/`` (atomically, mode from the umask).

    Parameters
    ----------
    model_dir : path-like
        Trained model folder (must exist).
    survival, hpv, stage : path-like, optional
        ``model.joblib`` of ``prognosis fit`` / ``hpv fit`` / ``staging fit`` (or their output folders).
    models : mapping, optional
        Target name -> ``model.joblib`` (or its folder), for any registered target.
    manifest : mapping, optional
        Written as ``prognosis/stage.json`` (``prognosis build``).
    replace : bool
        Replace the whole stage folder (``prognosis build``: models of targets not fitted this time
        and an old manifest must not survive). The new folder is complete before it takes the old
        one's place. Without it, the given models replace theirs and the rest stays; the manifest
        is removed unless given, since it would no longer describe the folder.

    Returns
    -------
    dict
        Target -> copied file (``survival.joblib``, ``hpv.joblib``, ...).

    Raises
    ------
    HecktorError
        No model given, a file that is not a model of its task, or no model folder.
    """
    import shutil
    import tempfile

    from nnunet_hecktor.fileio import atomic_path, write_json_atomic

    model_dir = Path(model_dir).expanduser()
    if not model_dir.is_dir():
        raise HecktorError(f"model folder {model_dir} does not exist")
    given = {task: Path(p).expanduser() for task, p in (("survival", survival), ("hpv", hpv), ("stage", stage))
             if p is not None}
    given.update({task: Path(p).expanduser() for task, p in dict(models or {}).items()})
    if not given:
        raise HecktorError("give --survival, --hpv and/or --tn-stage (model.joblib of 'prognosis fit' / 'hpv fit' / "
                           "'staging fit')")
    files = stage_files()
    for task, path in given.items():
        if task not in files:
            raise HecktorError(f"unknown patient-level target {task!r} (known: {', '.join(files)})")
        if path.is_dir():
            given[task] = path / FIT_OUTPUT_FILE
        load_model(given[task], task=task)  # refuse a wrong file before copying anything
    target = model_dir / STAGE_FOLDER
    building = Path(tempfile.mkdtemp(prefix=f".{STAGE_FOLDER}-", dir=model_dir)) if replace else target
    building.mkdir(exist_ok=True)
    copied = {}
    for task, path in given.items():
        destination = building / files[task]
        with atomic_path(destination) as tmp:
            shutil.copyfile(path, tmp)
        copied[task] = target / files[task]
    if manifest is not None:
        write_json_atomic(building / STAGE_MANIFEST, dict(manifest))
    elif (building / STAGE_MANIFEST).is_file():
        (building / STAGE_MANIFEST).unlink()
    if replace:
        _make_readable(building)
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{STAGE_FOLDER}-old-", dir=model_dir))
            os.replace(target, old / STAGE_FOLDER)
        os.replace(building, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return copied


def _make_readable(folder: Path) -> None:
    """mkdtemp makes a 0700 folder; give it the mode the umask gives a new folder."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)


__all__ = ["STAGE_FILES", "STAGE_FOLDER", "STAGE_MANIFEST", "StageModels", "deployed_feature_row",
           "load_stage_models", "read_manifest", "resolve_stage_models", "stage_files", "stage_into_model"]
