"""Files written by ``nnunet-hecktor predict``.

``<PID>.nii.gz``
    uint8 labels (0 background, 1 GTVp, 2 GTVn) on the patient's original CT grid.
``predictions.csv``
    ``PatientID,hpv_probability,hpv_status,risk``: probability of HPV positive, 1 = HPV positive /
    0 = negative, risk score (higher = earlier relapse), from the heads of a multi-task model or from
    a patient-level model (the prognosis stage, see :mod:`.patient_level`); only the columns that
    have a source. With such a model and heads, the heads' values follow as ``head_hpv_probability``,
    ``head_hpv_status``, ``head_risk``.
``predictions_per_fold.csv``
    The same per fold, with the fold's HPV threshold and where the head patch was centred.
``predictions_clinical_substitutions.csv``
    ``PatientID,field,value,used,reason``: every clinical value the inference policy did not use as
    given (``used`` empty = treated as missing; else the release encoding it was mapped to).
    Multi-task models only; a header alone when every value was used as given.
``prediction_settings.json``
    Model, folds, checkpoint, mirroring, preprocessing, post-processing, ensembling rules, clinical
    source, per-patient warnings, failures, timing.
``.nnunet-hecktor-output.json``
    The plugin's output marker (:data:`nnunet_hecktor.fileio.OUTPUT_MARKER`): the converter never reads a
    marked folder as source data, so segmentations cannot come back as labels.

The output folder must lie outside the input folder (:func:`check_output_location`), and is checked for
writability and free space before the first case is predicted (:func:`prepare_output_folder`).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Iterable

from nnunet_hecktor import schema
from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.fileio import (
    atomic_path,
    check_output_folder,
    mark_plugin_output,
    write_image_atomic,
    write_text_atomic,
)

from .patient_level import HEAD_OUTPUT_COLUMNS
from .predictor import CasePrediction

PREDICTIONS_CSV = "predictions.csv"
PER_FOLD_CSV = "predictions_per_fold.csv"
SETTINGS_JSON = "prediction_settings.json"
SUBSTITUTIONS_CSV = "predictions_clinical_substitutions.csv"
PREDICTION_COLUMNS: tuple[str, ...] = (schema.COL_PATIENT, "hpv_probability", "hpv_status", "risk")
#: HECKTOR 2026 stage columns of ``predictions.csv`` (canonical labels ``T0``-``T4`` / ``N0``-``N3``,
#: ``schema.T_STAGES`` / ``N_STAGES``), written after ``risk`` when a patient-level model gives them.
STAGE_PREDICTION_COLUMNS: tuple[str, ...] = ("t_stage", "n_stage")
PER_FOLD_COLUMNS: tuple[str, ...] = (schema.COL_PATIENT, "fold", "hpv_probability", "hpv_logit", "hpv_threshold",
                                     "risk", "patch_centre_from", "patch_centre_voxel")
#: Free space asked for before predicting: per case (a compressed uint8 segmentation on a 512x512x200 CT grid
#: takes well under 1 MB; 2 MB leaves room for the tables) and for the tables and settings.
FREE_BYTES_PER_CASE = 2 * 1024 ** 2
FREE_BYTES_BASE = 1024 ** 2


def check_output_location(output_dir: str | os.PathLike, input_folder: str | os.PathLike) -> Path:
    """The output folder, refused when it is the input folder or lies anywhere inside it.

    Segmentations written inside the input tree (``<input>/predictions/<PID>.nii.gz``) are taken for
    labels by the next ``convert`` of that tree, and input data are never modified. Nothing is created.

    Raises
    ------
    HecktorError
        ``output_dir`` is ``input_folder`` or below it (symbolic links resolved).
    """
    output = Path(output_dir).expanduser()
    resolved, root = output.resolve(), Path(input_folder).expanduser().resolve()
    if resolved == root:
        raise HecktorError(f"output folder {output} must not be the input folder (input data are never modified)")
    if root in resolved.parents:
        raise HecktorError(f"output folder {output} must not be the input folder or inside it ({root}): "
                           "segmentations written there would be read as labels by a later 'convert' of that "
                           "folder; choose a folder outside it")
    return output


def prepare_output_folder(output_dir: str | os.PathLike, num_cases: int) -> Path:
    """Create the output folder, check it can be written and has room, and mark it as ``predict`` output.

    Runs before the first case is predicted, so that an unwritable folder or a full disk is found before
    any work. Raises :class:`~nnunet_hecktor.fileio.OutputWriteError` otherwise. Returns the folder, resolved.
    """
    folder = check_output_folder(output_dir, FREE_BYTES_BASE + FREE_BYTES_PER_CASE * max(0, int(num_cases)))
    mark_plugin_output(folder, "predict")
    return folder


def segmentation_path(output_dir: str | os.PathLike, patient_id: str) -> Path:
    """``<output_dir>/<PID>.nii.gz``."""
    return Path(output_dir) / f"{patient_id}{schema.FILE_ENDING}"


def write_segmentation(prediction: CasePrediction, output_dir: str | os.PathLike) -> Path:
    """Write the segmentation atomically as ``<PID>.nii.gz`` (uint8, compressed)."""
    import SimpleITK as sitk

    image = prediction.segmentation
    if image.GetPixelID() != sitk.sitkUInt8:
        image = sitk.Cast(image, sitk.sitkUInt8)
    path = segmentation_path(output_dir, prediction.patient_id)
    write_image_atomic(image, path)
    return path


def write_probabilities(prediction: CasePrediction, output_dir: str | os.PathLike) -> Path:
    """Write the softmax atomically as ``<PID>.npz`` (key ``probabilities``, ``(3, z, y, x)``, float32).

    The layout of ``nnUNetv2_predict --save_probabilities``, on the original CT grid (the grid of
    ``<PID>.nii.gz``), so that ``tune-postprocessing`` and ``postprocess`` read it as nnU-Net's.
    """
    import numpy as np

    if prediction.probabilities is None:
        raise ValueError(f"{prediction.patient_id}: no probabilities were kept")
    path = Path(output_dir) / f"{prediction.patient_id}.npz"
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:  # a file object: numpy must not append a second ".npz"
            np.savez_compressed(handle, probabilities=np.asarray(prediction.probabilities, dtype=np.float32))
    return path


def _number(value: float) -> str:
    # repr keeps every digit: the C-index must see the same ties as the model produced.
    return repr(float(value))


def _head_values(p: CasePrediction) -> dict[str, str]:
    if p.heads is None:
        return {}
    return {"hpv_probability": _number(p.heads.hpv_probability), "hpv_status": str(int(bool(p.heads.hpv_positive))),
            "risk": _number(p.heads.risk)}


def _stage_values(p: CasePrediction) -> dict[str, str]:
    stage = p.stage or {}
    values = {}
    if "risk" in stage:
        values["risk"] = _number(stage["risk"])
    if "hpv_probability" in stage:
        values["hpv_probability"] = _number(stage["hpv_probability"])
        values["hpv_status"] = str(int(stage["hpv_status"]))
    for column in STAGE_PREDICTION_COLUMNS:
        label = stage.get(column)
        if isinstance(label, str) and label:
            values[column] = label
    return values


def predictions_csv_text(predictions: Iterable[CasePrediction]) -> str:
    """``predictions.csv`` content (rows in the given order; patients without any output are left out).

    A main column comes from the patient-level model when it gives it, else from the heads; the
    heads' values are repeated as ``head_*`` columns when a patient-level model is in use.
    """
    predictions = list(predictions)
    rows = []
    for p in predictions:
        heads, stage = _head_values(p), _stage_values(p)
        if heads or stage:
            rows.append((p.patient_id, {**heads, **stage}, heads if p.stage is not None else {}))
    main = [c for c in PREDICTION_COLUMNS[1:] + STAGE_PREDICTION_COLUMNS if any(c in values for _, values, _ in rows)]
    extra = [c for c in PREDICTION_COLUMNS[1:] if any(c in head for _, _, head in rows)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([schema.COL_PATIENT, *main, *(HEAD_OUTPUT_COLUMNS[c] for c in extra)])
    for pid, values, head in rows:
        writer.writerow([pid, *(values.get(c, "") for c in main), *(head.get(c, "") for c in extra)])
    return buffer.getvalue()


def per_fold_csv_text(predictions: Iterable[CasePrediction]) -> str:
    """``predictions_per_fold.csv`` content."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PER_FOLD_COLUMNS)
    for p in predictions:
        for f in p.folds:
            writer.writerow([p.patient_id, f.fold, _number(f.hpv_probability), _number(f.hpv_logit),
                             _number(f.threshold), _number(f.risk), f.centre_source, " ".join(map(str, f.centre))])
    return buffer.getvalue()


def write_prediction_tables(predictions: list[CasePrediction], output_dir: str | os.PathLike) -> list[Path]:
    """Write ``predictions.csv`` (when heads or a patient-level model gave outputs) and
    ``predictions_per_fold.csv`` (when heads were predicted) atomically."""
    heads = any(p.heads is not None for p in predictions)
    if not heads and not any(p.stage for p in predictions):
        return []
    output_dir = Path(output_dir)
    written = []
    tables = [(PREDICTIONS_CSV, predictions_csv_text(predictions))]
    if heads:
        tables.append((PER_FOLD_CSV, per_fold_csv_text(predictions)))
    for name, text in tables:
        write_text_atomic(output_dir / name, text)
        written.append(output_dir / name)
    return written


def write_substitutions(substitutions: list, output_dir: str | os.PathLike) -> Path:
    """Write ``predictions_clinical_substitutions.csv`` atomically (see the module docstring)."""
    from nnunet_hecktor.clinical import substitutions_csv_text

    path = Path(output_dir) / SUBSTITUTIONS_CSV
    write_text_atomic(path, substitutions_csv_text(substitutions))
    return path
