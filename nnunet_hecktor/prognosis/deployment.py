"""The prognosis stage as the risk/HPV source of ``nnunet-hecktor predict`` and the challenge container.

A model folder can carry fitted stage models in ``<model>/prognosis/`` (put there by
``nnunet-hecktor prognosis stage``): ``survival.joblib`` (``prognosis fit``), ``hpv.joblib``
(``hpv fit``) and/or ``stage.joblib`` (``staging fit``: T and N stage, HECKTOR 2026).
For each new patient, :meth:`StageModels.predict_patient` measures the features of
the PREDICTED segmentation with the code the stage was fitted on
(:func:`~nnunet_hecktor.prognosis.features.features_from_images`), joins the clinical record and
applies the stage's own prediction (:func:`~nnunet_hecktor.prognosis.survival_stage.survival_risk`,
:func:`~nnunet_hecktor.prognosis.hpv_stage.hpv_prediction`,
:func:`~nnunet_hecktor.prognosis.staging_fit.stage_prediction`), so the values equal those of
``prognosis predict`` / ``hpv predict`` / ``staging predict`` on the same features. Missing clinical values are imputed by
the fitted pipeline, as in cross-validation.

Conventions: risk higher = earlier relapse; HPV status 1 = positive; T/N stages are canonical labels
(``schema.T_STAGES``/``N_STAGES``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from nnunet_hecktor import schema
from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.prognosis.feature_catalogue import FEATURE_NAMES, HEAD_COLUMNS, PATIENT_COLUMN, SEG_SOURCE_COLUMN
from nnunet_hecktor.prognosis.model_store import PrognosisModel, load_model

logger = logging.getLogger(__name__)

#: Sub-folder of a model folder holding the stage models used by default.
STAGE_FOLDER = "prognosis"
#: File name of each task's model inside a stage folder.
STAGE_FILES: dict[str, str] = {"survival": "survival.joblib", "hpv": "hpv.joblib", "stage": "stage.joblib"}
#: What ``prognosis fit`` / ``hpv fit`` write into their output folder.
FIT_OUTPUT_FILE = "model.joblib"
#: Clinical columns that are never inputs at inference (identifiers, centre, targets).
NOT_PRODUCIBLE: dict[str, tuple[str, ...]] = {
    "survival": (schema.COL_PATIENT, schema.COL_CENTER, schema.COL_RELAPSE, schema.COL_RFS),
    "hpv": (schema.COL_PATIENT, schema.COL_CENTER, schema.COL_RELAPSE, schema.COL_RFS, schema.COL_HPV),
    "stage": (schema.COL_PATIENT, schema.COL_CENTER, schema.COL_RELAPSE, schema.COL_RFS, schema.COL_TSTAGE,
              schema.COL_NSTAGE),
}


@dataclass
class StageModels:
    """Fitted survival, HPV and/or T/N staging models of the prognosis stage, ready for one patient at a time.

    Attributes
    ----------
    folder : Path
        Where the models were found.
    survival, hpv, stage : PrognosisModel or None
        ``stage`` predicts T and N stage (``staging fit``).
    paths : dict
        Task -> model file.
    """

    folder: Path
    survival: PrognosisModel | None = None
    hpv: PrognosisModel | None = None
    paths: dict[str, Path] | None = None
    stage: PrognosisModel | None = None

    @property
    def source(self) -> str:
        """``"prognosis stage <folder>"`` (recorded per output by predict)."""
        return f"prognosis stage {self.folder}"

    @property
    def outputs(self) -> tuple[str, ...]:
        """``"risk"``, ``"hpv"`` and/or ``"t_stage"``, ``"n_stage"``: the outputs this stage provides."""
        out = [name for name, model in (("risk", self.survival), ("hpv", self.hpv)) if model is not None]
        if self.stage is not None:
            out += ["t_stage", "n_stage"]
        return tuple(out)

    @property
    def clinical_columns(self) -> tuple[str, ...]:
        """Clinical columns the models read (to be parsed from the clinical source)."""
        columns: dict[str, None] = {}
        for model in self._models().values():
            columns.update(dict.fromkeys(model.clinical_columns))
        return tuple(columns)

    @property
    def needs_heads(self) -> bool:
        """Whether a model takes the network heads' outputs (``net_risk``/``net_hpv_probability``) as inputs."""
        return any(c in HEAD_COLUMNS.values() for m in self._models().values() for c in m.image_columns)

    def _models(self) -> dict[str, PrognosisModel]:
        return {task: m for task, m in (("survival", self.survival), ("hpv", self.hpv), ("stage", self.stage))
                if m is not None}

    def describe(self) -> str:
        lines = [f"{self.source}:"]
        for task, model in self._models().items():
            lines.append(f"  {task}: {(self.paths or {}).get(task)} ({model.description}; "
                         f"{len(model.image_columns)} image, {len(model.clinical_columns)} clinical inputs)")
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
        for task, model in self._models().items():
            missing_image = [c for c in model.image_columns if c not in image_ok]
            missing_clinical = [c for c in model.clinical_columns if c in NOT_PRODUCIBLE[task]]
            parts = []
            if missing_image:
                heads = [c for c in missing_image if c in HEAD_COLUMNS.values()]
                parts.append(f"feature column(s) {', '.join(missing_image)}"
                             + (" (network-head outputs: this model has no heads)" if heads else ""))
            if missing_clinical:
                parts.append(f"clinical column(s) {', '.join(missing_clinical)}")
            if parts:
                path = (self.paths or {}).get(task, self.folder)
                problems.append(f"{path} needs {' and '.join(parts)}, which prediction cannot produce")
        if problems:
            raise HecktorError("cannot use the prognosis stage: " + "; ".join(problems))

    def feature_row(self, ct, pet, segmentation, patient_id: str,
                    heads: Mapping[str, float] | None = None) -> dict[str, float]:
        """Features of one patient: the stage's feature code on the predicted segmentation.

        ``segmentation`` (0/1/2) is put onto ``ct``'s grid by nearest neighbour when it lies on
        another one (the full CT grid around a cropped case: exact for a sub-grid, 0 outside).
        ``heads`` (``hpv_probability``/``risk`` of the network) fill the ``net_`` columns.
        """
        from nnunet_hecktor.prognosis.features import features_from_images

        row = features_from_images(ct, pet, _on_grid(segmentation, ct), patient_id)
        for name, column in HEAD_COLUMNS.items():
            if heads is not None and heads.get(name) is not None:
                row[column] = float(heads[name])
        return row

    def predict_features(self, row: Mapping[str, float], clinical: Mapping[str, Any] | None,
                         patient_id: str) -> dict[str, Any]:
        """Stage outputs of one patient from its feature row and clinical record (None = all missing).

        Returns
        -------
        dict
            ``risk`` (survival model) and/or ``hpv_probability``, ``hpv_status`` (HPV model, with
            its stored threshold) and/or ``t_stage``, ``n_stage`` (canonical labels, e.g. ``"T2"``,
            ``"N1"``) with ``p_T0``..``p_T4``, ``p_N0``..``p_N3`` (staging model).
        """
        import pandas as pd

        from nnunet_hecktor.prognosis.hpv_stage import hpv_prediction
        from nnunet_hecktor.prognosis.survival_stage import survival_risk

        table = pd.DataFrame([dict(row)], index=pd.Index([patient_id], name=PATIENT_COLUMN))
        table.insert(0, SEG_SOURCE_COLUMN, "predicted")
        record = {column: None for column in (*schema.CLINICAL_COLUMNS, *self.clinical_columns)}
        record.update({k: v for k, v in dict(clinical or {}).items()})
        records = {patient_id: record}
        outputs: dict[str, Any] = {}
        if self.survival is not None:
            risk = survival_risk(self.survival, _needed(self.survival, table), records)
            outputs["risk"] = float(risk.loc[patient_id])
        if self.hpv is not None:
            hpv, _ = hpv_prediction(self.hpv, _needed(self.hpv, table), records)
            outputs["hpv_probability"] = float(hpv.loc[patient_id, "hpv_probability"])
            outputs["hpv_status"] = int(hpv.loc[patient_id, "hpv_status"])
        if self.stage is not None:
            from nnunet_hecktor.prognosis.staging_fit import stage_prediction

            stages = stage_prediction(self.stage, _needed(self.stage, table), records)
            for column in stages.columns:
                value = stages.loc[patient_id, column]
                outputs[column] = value if column in ("t_stage", "n_stage") else float(value)
        return outputs

    def predict_patient(self, patient_id: str, ct, pet, segmentation, clinical: Mapping[str, Any] | None,
                        heads: Mapping[str, float] | None = None) -> dict[str, Any]:
        """Stage outputs of one patient from images: :meth:`feature_row` then :meth:`predict_features`.

        Parameters
        ----------
        patient_id : str
        ct, pet : SimpleITK.Image
            CT (HU) and PET (SUV, any grid).
        segmentation : SimpleITK.Image
            Predicted labels 0/1/2 (CT grid, or a grid around it).
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
    names = [folder / name for name in STAGE_FILES.values()] + [folder / FIT_OUTPUT_FILE]
    names += sorted(folder.glob(f"*/{FIT_OUTPUT_FILE}"))
    return [p for p in names if p.is_file()]


def load_stage_models(folder: str | os.PathLike) -> StageModels:
    """Load the stage models of ``folder``.

    ``folder`` holds ``survival.joblib`` and/or ``hpv.joblib`` (``prognosis stage``), or is a
    ``prognosis fit``/``hpv fit`` output folder (``model.joblib``), or holds such folders; each
    model's task is read from the model itself.

    Raises
    ------
    HecktorError
        No folder, no model in it, an unreadable model, or two models of the same task.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise HecktorError(f"prognosis stage folder {folder} does not exist")
    files = _candidate_files(folder)
    if not files:
        raise HecktorError(f"{folder} holds no prognosis stage model ({', '.join(STAGE_FILES.values())}, or "
                           f"{FIT_OUTPUT_FILE} of 'prognosis fit'/'hpv fit')")
    stage = StageModels(folder.resolve(), paths={})
    for path in files:
        model = load_model(path)
        if model.task in stage.paths:
            raise HecktorError(f"two {model.task} models in {folder}: {stage.paths[model.task]} and {path}; "
                               "keep one")
        stage.paths[model.task] = path.resolve()
        setattr(stage, model.task, model)
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
                     hpv: str | os.PathLike | None = None,
                     stage: str | os.PathLike | None = None) -> dict[str, Path]:
    """Copy fitted stage models into ``<model_dir>/prognosis/`` (atomically, mode from the umask).

    Parameters
    ----------
    model_dir : path-like
        Trained model folder (must exist).
    survival, hpv, stage : path-like, optional
        ``model.joblib`` of ``prognosis fit`` / ``hpv fit`` / ``staging fit`` (or their output
        folders); at least one.

    Returns
    -------
    dict
        Task -> copied file (``survival.joblib``, ``hpv.joblib``, ``stage.joblib``).

    Raises
    ------
    HecktorError
        No model given, a file that is not a model of its task, or no model folder.
    """
    import shutil

    from nnunet_hecktor.fileio import atomic_path

    model_dir = Path(model_dir).expanduser()
    if not model_dir.is_dir():
        raise HecktorError(f"model folder {model_dir} does not exist")
    given = {task: Path(p).expanduser() for task, p in (("survival", survival), ("hpv", hpv), ("stage", stage))
             if p is not None}
    if not given:
        raise HecktorError("give --survival, --hpv and/or --tn-stage (model.joblib of 'prognosis fit' / 'hpv fit' / "
                           "'staging fit')")
    for task, path in given.items():
        if path.is_dir():
            given[task] = path / FIT_OUTPUT_FILE
        load_model(given[task], task=task)  # refuse a wrong file before copying anything
    target = model_dir / STAGE_FOLDER
    target.mkdir(exist_ok=True)
    copied = {}
    for task, path in given.items():
        destination = target / STAGE_FILES[task]
        with atomic_path(destination) as tmp:
            shutil.copyfile(path, tmp)
        copied[task] = destination
    return copied


__all__ = ["STAGE_FILES", "STAGE_FOLDER", "StageModels", "load_stage_models", "resolve_stage_models",
           "stage_into_model"]
