"""Reading the inputs of ``prognosis``/``hpv`` fit and predict, shared by both stages."""

from __future__ import annotations

import csv
import logging
import warnings
from pathlib import Path
from typing import Any

from nnunet_hecktor.clinical import read_clinical_csv
from nnunet_hecktor.errors import HecktorError, InputDataError
from nnunet_hecktor.prognosis.feature_catalogue import SEG_SOURCE_COLUMN
from nnunet_hecktor.prognosis.model_store import PrognosisModel, check_input_columns
from nnunet_hecktor.prognosis.stage_data import (
    StageInputs,
    assemble_inputs,
    check_training_seg_source,
    image_feature_columns,
)
from nnunet_hecktor.prognosis.threads import small_matrix_threads

logger = logging.getLogger(__name__)

__all__ = ["clinical_csv_columns", "load_prediction_inputs", "load_training_inputs", "plain_warnings",
           "prediction_inputs", "small_matrix_threads"]


def clinical_csv_columns(path: str | Path) -> list[str]:
    """Header of a clinical CSV (a column counts as present even when all its cells are empty)."""
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as handle:
            return [h.strip() for h in next(csv.reader(handle), [])]
    except OSError as exc:
        raise InputDataError(f"cannot read clinical CSV ({exc.strerror})", None, path) from None


class plain_warnings:
    """Context manager for the CLI: print warnings as ``warning: <message>`` lines on stderr
    (no source file and line, which mean nothing to a command-line user)."""

    def __enter__(self):
        self._saved = warnings.showwarning
        warnings.showwarning = lambda message, category, *args, **kwargs: logger.warning(str(message))
        return self

    def __exit__(self, *exc):
        warnings.showwarning = self._saved
        return False


def load_training_inputs(task: str, features_csv, clinical_csv, feature_set: str, clinical_columns,
                         allow_ground_truth_features: bool) -> tuple[StageInputs, dict[str, Any]]:
    """Feature table + clinical table joined for training; patients that cannot be used are reported.

    When a feature table is given, the patients are those of the feature table for every
    feature set, so a clinical-only baseline is fitted on the same patients as the image models.

    Returns
    -------
    (inputs, report)
        ``report`` lists the patients left out and why (no clinical row, no features).
    """
    from nnunet_hecktor.prognosis.features import read_feature_table

    if clinical_csv is None:
        raise HecktorError("fitting needs the clinical table with the targets (--clinical)")
    clinical = read_clinical_csv(clinical_csv)
    report: dict[str, Any] = {}
    table = None
    seg_source = None
    if feature_set in ("all", "image") and features_csv is None:
        raise HecktorError(f"feature set {feature_set!r} needs a feature table (--features)")
    if features_csv is not None:
        table = read_feature_table(features_csv)
        if feature_set != "clinical":  # a clinical-only model never sees the segmentations
            seg_source = check_training_seg_source(table, allow_ground_truth_features, features_csv)
        no_clinical = [p for p in table.index if p not in clinical]
        no_features = [p for p in clinical if p not in table.index]
        report["patients_without_clinical_row"] = no_clinical
        report["patients_without_features"] = no_features
        if no_clinical:
            warnings.warn(f"{len(no_clinical)} patients of the feature table have no clinical row and are left out: "
                          f"{', '.join(no_clinical[:10])}", stacklevel=2)
        if no_features:
            logger.info(f"note: {len(no_features)} patients of the clinical table have no features and are not used")
        patients = [p for p in table.index if p in clinical]
    else:
        patients = list(clinical)
    inputs = assemble_inputs(task, table if feature_set != "clinical" else None, clinical, feature_set,
                             clinical_columns, patients=patients, clinical_path=clinical_csv,
                             features_path=features_csv)
    if seg_source is not None:
        inputs.seg_source = seg_source
    return inputs, report


def load_prediction_inputs(model: PrognosisModel, features_csv, clinical_csv) -> StageInputs:
    """The inputs ``model`` needs, read from the given CSV files (see :func:`prediction_inputs`)."""
    from nnunet_hecktor.prognosis.features import read_feature_table

    table = read_feature_table(features_csv) if features_csv is not None else None
    clinical = read_clinical_csv(clinical_csv) if clinical_csv is not None else None
    return prediction_inputs(model, table, clinical,
                             clinical_csv_columns(clinical_csv) if clinical_csv is not None else None,
                             features_csv, clinical_csv)


def prediction_inputs(model: PrognosisModel, feature_table=None, clinical: dict[str, dict] | None = None,
                      clinical_columns_present=None, features_path=None, clinical_path=None) -> StageInputs:
    """The inputs ``model`` needs, from tables in memory, with clear errors for missing columns.

    Parameters
    ----------
    feature_table : DataFrame indexed by PatientID with ``seg_source``, optional
        As written by ``nnunet-hecktor features`` (a one-row table for a single patient works).
    clinical : dict, optional
        PatientID -> typed clinical record (:func:`nnunet_hecktor.clinical.read_clinical_csv`; in a
        challenge container, whose ``ehr.json`` values are advisory, ``{pid: record}`` with ``record, subs =
        read_inference_ehr_json(path, pid, columns=tuple(model.clinical_columns))``: a bad value becomes
        missing, listed in ``subs``, instead of an error).
    clinical_columns_present : list of str, optional
        Columns the clinical source has (a CSV header); default: every key of the records
        (:func:`nnunet_hecktor.clinical.parse_clinical_row` gives every known column, None when
        missing, so a missing value is imputed rather than refused).

    Raises
    ------
    HecktorError
        A needed table is absent, or it lacks columns the model was trained on (all named).
    """
    if model.image_columns and feature_table is None:
        raise HecktorError("this model needs image features: give the feature table (--features)")
    if model.clinical_columns and clinical is None:
        raise HecktorError(f"this model needs clinical variables ({', '.join(model.clinical_columns)}): "
                           "give the clinical table (--clinical)")
    if clinical is not None and clinical_columns_present is None:
        clinical_columns_present = sorted({column for record in clinical.values() for column in record})
    check_input_columns(model, image_feature_columns(feature_table) if feature_table is not None else [],
                        clinical_columns_present or [], features_path, clinical_path)
    if model.image_columns:
        sources = set(feature_table[SEG_SOURCE_COLUMN])
        if model.seg_source == "predicted" and sources != {"predicted"}:
            warnings.warn(f"the model was trained on features of predicted segmentations but this table holds "
                          f"{'/'.join(sorted(sources))} ones: figures will not match deployment", stacklevel=2)
        elif model.seg_source != "predicted" and "predicted" in sources:
            warnings.warn("the model was trained on ground-truth segmentation features and is applied to predicted "
                          "ones: expect worse results than its cross-validation (predicted masks are not ground truth)",
                          stacklevel=2)
    if model.image_columns:
        patients = list(feature_table.index)
    else:
        assert clinical is not None  # a model without image columns has clinical ones: checked above
        patients = list(clinical)
    # What the model actually uses decides which tables are needed (an "all" model trained
    # where no clinical column had values uses image features only).
    feature_set = ("all" if model.clinical_columns else "image") if model.image_columns else "clinical"
    inputs = assemble_inputs(model.task, feature_table, clinical, feature_set, list(model.clinical_columns),
                             patients=patients, clinical_path=clinical_path, features_path=features_path)
    inputs.frame = inputs.frame[model.input_columns]
    return inputs
