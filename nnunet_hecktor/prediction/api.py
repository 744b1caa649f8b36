"""``nnunet-hecktor predict`` as a Python API: a folder of patients -> segmentations + predictions.csv.

Example
-------
>>> from nnunet_hecktor.prediction import predict
>>> summary = predict("hecktor_test/", "predictions/",
...                   "$nnUNet_results/Dataset501_HECKTOR/HecktorMultiTaskTrainer__nnUNetPlans__3d_fullres",
...                   folds=[0, 1, 2, 3, 4], device="cuda")  # doctest: +SKIP

See :mod:`.outputs` for the files written, :mod:`.predictor` for how a case is predicted and
:mod:`.ensemble` for how folds are combined.

Clinical values follow the inference policy of :mod:`nnunet_hecktor.clinical`: they are advisory.
Unknown columns and ``CenterID`` are not read; Karnofsky 10-100, ``M1a``/``M1b``/``M1c`` and spelled-out
sexes are mapped; any other value that cannot be parsed or is out of range becomes missing (the
encoder's missing indicator) with one warning naming patient, column and value. Every substitution is
listed in ``predictions_clinical_substitutions.csv`` and in the summary.

Progress goes to a tqdm bar; everything else is reported through :mod:`logging` (logger
``nnunet_hecktor.prediction.api``), which the command line shows.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from nnunet_hecktor.errors import HecktorError, InputDataError

from .ensemble import ENSEMBLE_RULES
from .inputs import InputCases, find_input_cases
from .model import DEFAULT_CHECKPOINT, ModelInfo
from .outputs import (
    SETTINGS_JSON,
    check_output_location,
    prepare_output_folder,
    write_prediction_tables,
    write_probabilities,
    write_segmentation,
    write_substitutions,
)
from .patient_level import OutputSources, PatientLevelModel
from .routing import Routing, missing_stage_warning, model_postprocessing_file, postprocessing_mismatch, route_outputs

logger = logging.getLogger(__name__)


@dataclass
class PredictionSummary:
    """What :func:`predict` did.

    Attributes
    ----------
    output_dir : Path
    model : ModelInfo
    predicted : list of str
        PatientIDs written.
    failed : dict
        PatientID -> reason (bad input data); the run raises after writing the others.
    files : list of Path
        Tables and settings written (segmentations are ``<output_dir>/<PID>.nii.gz``).
    warnings : dict
        PatientID -> warnings.
    without_clinical : list of str
        Patients predicted with every clinical variable missing (no row in the clinical table).
    substitutions : list of ClinicalSubstitution
        Clinical values of the predicted patients treated as missing or mapped (inference policy).
    seconds : float
    sources : OutputSources or None
        Where risk and HPV come from (``"heads"`` or ``"prognosis stage <path>"``).
    routing : Routing or None
        The routing decision (:mod:`.routing`) with its warnings.
    """

    output_dir: Path
    model: ModelInfo
    predicted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    without_clinical: list[str] = field(default_factory=list)
    substitutions: list = field(default_factory=list)
    seconds: float = 0.0
    sources: OutputSources | None = None
    routing: Routing | None = None

    def describe(self) -> str:
        lines = [f"predicted {len(self.predicted)} patients in {self.seconds:.1f} s -> {self.output_dir}"]
        sources = self.sources
        if sources is not None and (sources.risk or sources.hpv):
            lines.append("  predictions.csv: PatientID,hpv_probability,hpv_status,risk (1 = HPV positive; risk higher "
                         "= earlier relapse; only the columns that have a source)")
            lines.append(f"  {sources.describe()}")
            if _heads_in_extra_columns(sources, self.model.multitask):
                lines.append("  the heads' own outputs: head_hpv_probability,head_hpv_status,head_risk")
        if self.without_clinical:
            lines.append(f"  no clinical row (all clinical inputs missing) for {len(self.without_clinical)}: "
                         + ", ".join(self.without_clinical[:10]) + (" ..." if len(self.without_clinical) > 10 else ""))
        if self.substitutions:
            dropped = sum(s.is_missing for s in self.substitutions)
            lines.append(f"  clinical substitutions: {dropped} values treated as missing, "
                         f"{len(self.substitutions) - dropped} mapped (listed in the substitutions file):")
            lines += [f"    {s.describe()}" for s in self.substitutions[:20]]
            if len(self.substitutions) > 20:
                lines.append(f"    ... ({len(self.substitutions)} in all)")
        for warning in (self.routing.warnings if self.routing is not None else []):
            lines.append(f"  warning: {warning}")
        for pid, warnings in self.warnings.items():
            for warning in warnings:
                lines.append(f"  warning: {pid}: {warning}")
        for pid, reason in self.failed.items():
            lines.append(f"  FAILED: {reason}")
        return "\n".join(lines)


def _heads_in_extra_columns(sources: OutputSources, multitask: bool) -> bool:
    """Whether the heads' outputs go to the ``head_*`` columns (a patient-level model fills the main ones)."""
    return multitask and any(s not in (None, "heads") for s in (sources.risk, sources.hpv))


def load_clinical(cases: InputCases, clinical_csv: str | os.PathLike | None,
                  columns: Sequence[str] | None = None) -> tuple[dict, str, list]:
    """Clinical records of the cases to predict (inference policy), where they came from, and the substitutions.

    An explicit ``clinical_csv`` wins; otherwise the task CSVs of a HECKTOR layout are merged (as the
    converter does, raw values as written); otherwise there is none (every clinical input missing).
    Values are parsed with :func:`nnunet_hecktor.clinical.parse_inference_record`: a bad value is
    missing, never an error. ``columns``: the columns read (default: the network's inputs,
    :data:`nnunet_hecktor.clinical.MODEL_INPUT_COLUMNS`).

    Returns
    -------
    records : dict
        PatientID -> typed record.
    source : str
    substitutions : list of ClinicalSubstitution
        Only those of the patients in ``cases``.

    Raises
    ------
    InputDataError, HecktorError
        The table itself is unusable (unreadable, no PatientID column, duplicate PatientIDs, or task
        CSVs that disagree about a patient).
    """
    from nnunet_hecktor.clinical import MODEL_INPUT_COLUMNS, parse_inference_record, read_inference_csv

    columns = tuple(columns) if columns is not None else MODEL_INPUT_COLUMNS
    wanted = {c.patient_id for c in cases.cases}
    if clinical_csv is not None:
        records, substitutions = read_inference_csv(clinical_csv, columns)
        source = str(Path(clinical_csv))
    elif cases.clinical_sources:
        from nnunet_hecktor.dataset_conversion import merge_clinical_csvs

        # Read with the release's own column names (2026 T_stage, 2022 HPV status (0=-, 1=+), ...).
        table = merge_clinical_csvs(cases.clinical_sources, cases.edition)
        for warning in table.warnings:  # lost columns, absent inputs, mapped words: said once per column
            logger.warning("%s", warning)
        records, substitutions = {}, []
        for pid in wanted & set(table.raw):
            records[pid], found = parse_inference_record(table.raw[pid], pid, columns)
            substitutions += found
        names = ", ".join(str(s.path) for s in cases.clinical_sources)
        source = f"merged task CSVs of the input folder ({names})"
    else:
        return {}, "none (every clinical input missing)", []
    # Keyed like ClinicalSubstitution.patient (None: no patient); the filter keeps only patients of `cases`.
    order: dict[str | None, int] = {c.patient_id: i for i, c in enumerate(cases.cases)}
    substitutions = sorted((s for s in substitutions if s.patient in wanted), key=lambda s: order[s.patient])
    return records, source, substitutions


def predict(input_dir: str | os.PathLike, output_dir: str | os.PathLike, model_dir: str | os.PathLike,
            clinical_csv: str | os.PathLike | None = None, folds: Sequence | None = None,
            checkpoint: str | None = DEFAULT_CHECKPOINT, device: str = "cpu",
            postprocessing: str | os.PathLike | None = None,
            use_mirroring: bool = True, tile_step_size: float = 0.5, segmentation_only: bool = False,
            patients: Sequence[str] | None = None, crops_dir: str | os.PathLike | None = None,
            num_threads: int | None = None, previous_stage: str | os.PathLike | None = None,
            progress: bool = True, prognosis: PatientLevelModel | None = None,
            warn_missing_stage: bool = True, save_probabilities: bool = False) -> PredictionSummary:
    """Predict every patient of a folder.

    Parameters
    ----------
    input_dir : path-like
        A HECKTOR folder (release root, task folder or flat; CT and PET on their own grids) or an
        nnU-Net ``imagesTs``-style folder (``<PID>_0000`` CT, ``<PID>_0001`` PET on the CT grid).
    output_dir : path-like
        Receives ``<PID>.nii.gz`` (uint8 0/1/2 on the original CT grid), ``predictions.csv``,
        ``predictions_per_fold.csv``, ``predictions_clinical_substitutions.csv`` and
        ``prediction_settings.json`` (see :mod:`.outputs`).
    model_dir : path-like
        Trained nnU-Net model folder of ``HecktorMultiTaskTrainer`` (or a variant).
    clinical_csv : path-like, optional
        Clinical table (HECKTOR column names; empty cell = missing). Default: the task CSVs of a
        HECKTOR input folder, else none. Patients without a row get every input missing. Values
        are advisory (module docstring): a bad value is missing and reported, never an error.
    folds : sequence, optional
        Folds to ensemble (default: all with ``checkpoint``).
    checkpoint : str, optional
        Checkpoint file of each fold; default: the deployed (validated) weights, see
        :func:`~nnunet_hecktor.prediction.model.resolve_checkpoint`.
    device : {"cpu", "cuda", "cuda:N", "auto"}
    postprocessing : path-like, optional
        Post-processing JSON (``nnunet-hecktor tune-postprocessing``'s output), applied on the
        original CT grid. Default: the model folder's own
        (:func:`~nnunet_hecktor.prediction.routing.model_postprocessing_file`), as deployment and
        ``prognosis build`` use it, else none.
    use_mirroring : bool
        nnU-Net's test-time mirroring (segmentation and heads).
    tile_step_size : float
        Sliding-window step, fraction of the patch size.
    segmentation_only : bool
        No heads (required for models without heads); without ``prognosis``, segmentations only
        (no predictions.csv).
    patients : sequence of str, optional
        Predict only these PatientIDs.
    crops_dir : path-like, optional
        Converter crop records for nnU-Net-style input (default ``<input_dir>/../crops``).
    num_threads : int, optional
        PyTorch CPU threads during the run (default: unchanged). On a shared machine with more
        busy processes than cores, 1 avoids OpenMP threads spin-waiting on each other.
    previous_stage : path-like, optional
        For a ``3d_cascade_fullres`` model: the ``3d_lowres`` model folder (default: nnU-Net's
        sibling folder ``<Trainer>__<Plans>__3d_lowres``).
    progress : bool
        Show a progress bar and log the summary (INFO).
    prognosis : PatientLevelModel, optional
        Source of risk and/or HPV instead of the heads, e.g. the prognosis stage
        (:func:`nnunet_hecktor.prognosis.deployment.resolve_stage_models` finds the one the command
        line uses: ``--prognosis DIR``, else ``<model_dir>/prognosis/``). Its features are measured on
        each patient's CT, PET and predicted segmentation; the heads' outputs (when the model has
        heads) go to ``head_*`` columns. A model without heads is accepted. Which source answers
        each output is decided by :func:`~nnunet_hecktor.prediction.routing.route_outputs` and
        recorded in the settings (``routing``).
    warn_missing_stage : bool
        Warn (naming ``nnunet-hecktor prognosis build``) when a multi-task model gets risk/HPV from
        its heads because no prognosis stage is staged (False: the heads were asked for).
    save_probabilities : bool
        Also write nnU-Net's softmax before post-processing as ``<PID>.npz`` (key ``probabilities``,
        ``(3, z, y, x)`` float32 on the original CT grid, as ``nnUNetv2_predict --save_probabilities``),
        for ``tune-postprocessing``'s probability thresholds. About 12 bytes per CT voxel before
        compression: hundreds of MB for a full-resolution HECKTOR CT.

    Returns
    -------
    PredictionSummary

    Raises
    ------
    HecktorError
        Bad model folder/fold/checkpoint, unusable input folder or clinical table, output folder
        equal to or inside the input folder, an output folder that cannot be written or lacks free
        space (checked before the first case), or (after every other patient was written) patients
        whose input data were bad.
    """
    start = time.perf_counter()
    if postprocessing is None:  # deployment's post-processing: the model folder's own, when it has one
        postprocessing = model_postprocessing_file(model_dir)
    cases, output, pp_config = _resolve_inputs(input_dir, output_dir, crops_dir, patients, postprocessing)
    from .predictor import HecktorPredictor

    model = HecktorPredictor(model_dir, folds, checkpoint, device, use_mirroring, tile_step_size, segmentation_only,
                             previous_stage, heads_if_present=prognosis is not None)
    if prognosis is not None:
        prognosis.check_inputs(model.predict_heads)
    routing = _routing(model, prognosis, pp_config, segmentation_only, warn_missing_stage)
    uses_clinical = model.predict_heads or prognosis is not None
    columns = _clinical_columns(prognosis)
    clinical, clinical_source, substitutions = (load_clinical(cases, clinical_csv, columns) if uses_clinical
                                                else ({}, "not used", []))
    sources = OutputSources.of_routing(routing)
    _log_plan(cases, model, clinical_source, pp_config, progress, prognosis, sources)
    prepare_output_folder(output, len(cases.cases))  # writable, room, marked: before the first case
    summary = PredictionSummary(output.resolve(), model.info, substitutions=substitutions, sources=sources,
                                routing=routing)
    _log_substitutions(substitutions)
    results = _predict_cases(model, cases, clinical, pp_config, output, summary, num_threads, progress, prognosis,
                             save_probabilities)
    summary.files = write_prediction_tables(results, output)
    if uses_clinical:
        summary.files.append(write_substitutions(substitutions, output))
    summary.seconds = time.perf_counter() - start
    _write_settings(summary, cases, model, tile_step_size, postprocessing, pp_config, clinical_source, output,
                    prognosis)
    if progress:
        logger.info("%s", summary.describe())
    if summary.failed:
        raise HecktorError(f"{len(summary.failed)} of {len(cases.cases)} patients failed (the others were written "
                           f"to {output}):\n  " + "\n  ".join(summary.failed.values()))
    return summary


def _resolve_inputs(input_dir, output_dir, crops_dir, patients, postprocessing):
    """Cases to predict, the output folder (never the input folder) and the post-processing rules."""
    cases = find_input_cases(input_dir, crops_dir, list(patients) if patients else None)
    output = check_output_location(output_dir, cases.folder)  # never in the input tree
    pp_config = None
    if postprocessing is not None:
        from nnunet_hecktor.postprocessing.config import load_config

        pp_config = load_config(postprocessing)
    return cases, output, pp_config


def _routing(model, prognosis: PatientLevelModel | None, pp_config, segmentation_only: bool,
             warn_missing_stage: bool) -> Routing:
    """The source of each output, with the warnings: no staged stage, or post-processing other than the stage's."""
    routing = route_outputs(model.predict_heads, prognosis)
    if warn_missing_stage and not segmentation_only:
        message = missing_stage_warning(model.info.model_dir, model.info.multitask, prognosis)
        if message is not None:
            routing.warnings.append(message)
    manifest = getattr(prognosis, "manifest", None) or {}
    if prognosis is not None:
        message = postprocessing_mismatch(manifest.get("postprocessing"),
                                          None if pp_config is None else pp_config.to_dict(),
                                          recorded="postprocessing" in manifest)
        if message is not None:
            routing.warnings.append(message)
    for message in routing.warnings:
        logger.warning("%s", message)
    return routing


def _clinical_columns(prognosis: PatientLevelModel | None) -> tuple[str, ...]:
    """The network's clinical inputs plus those of the patient-level model."""
    from nnunet_hecktor.clinical import MODEL_INPUT_COLUMNS

    extra = tuple(prognosis.clinical_columns) if prognosis is not None else ()
    return tuple(dict.fromkeys(MODEL_INPUT_COLUMNS + extra))


def _log_plan(cases: InputCases, model, clinical_source: str, pp_config, progress: bool,
              prognosis: PatientLevelModel | None = None, sources: OutputSources | None = None) -> None:
    if not progress:
        return
    logger.info("%s", cases.describe())
    logger.info("%s", model.info.describe())
    if prognosis is not None:
        logger.info("  %s", prognosis.describe().replace("\n", "\n  "))
    if sources is not None:
        logger.info("  %s", sources.describe())
    if model.previous_stage is not None:
        logger.info("  previous stage: %s", model.previous_stage.info.describe().replace("\n", "\n  "))
    logger.info("  clinical: %s", clinical_source)
    if pp_config is not None:
        logger.info("  post-processing: %s", pp_config.describe())


def _log_substitutions(substitutions: list) -> None:
    """One warning per clinical value treated as missing (mapped spellings at INFO)."""
    from nnunet_hecktor.clinical import log_substitutions

    log_substitutions(substitutions, logger)


def _predict_cases(model, cases: InputCases, clinical: dict, pp_config, output: Path, summary: PredictionSummary,
                   num_threads: int | None, progress: bool, prognosis: PatientLevelModel | None = None,
                   save_probabilities: bool = False) -> list:
    """Predict and write every case; bad input data of one case is recorded in ``summary.failed``."""
    from tqdm import tqdm

    from .predictor import torch_threads
    from .preparation import prepare_case

    info = model.info
    results = []

    def load(case):
        # Runs in a background thread while the previous case is on the network: reading, PET
        # resampling and nnU-Net's preprocessing are numpy/ITK work that releases the GIL.
        try:
            return model.preprocess(prepare_case(case, info.conversion)), None
        except InputDataError as exc:
            return None, str(exc)

    bar = tqdm(total=len(cases.cases), desc="predict", unit="patient", disable=not progress, file=sys.stdout)
    with torch_threads(num_threads), ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(load, cases.cases[0])
        for index, case in enumerate(cases.cases):
            preprocessed, error = pending.result()
            if index + 1 < len(cases.cases):
                pending = pool.submit(load, cases.cases[index + 1])
            bar.set_postfix_str(case.patient_id)
            prediction = None
            if error is None:
                prediction, error = _predict_one(model, case.patient_id, preprocessed, clinical, pp_config, summary,
                                                 prognosis, save_probabilities)
            if error is not None:
                summary.failed[case.patient_id] = error
            else:
                assert prediction is not None  # _predict_one returns a prediction or an error
                if save_probabilities:  # first: a segmentation on disk means its case is complete
                    write_probabilities(prediction, output)
                    prediction.probabilities = None
                write_segmentation(prediction, output)
                prediction.segmentation = None  # written; keep only the patient-level values in memory
                results.append(prediction)
                summary.predicted.append(case.patient_id)
                if prediction.warnings:
                    summary.warnings[case.patient_id] = prediction.warnings
            bar.update()
    bar.close()
    return results


def _predict_one(model, patient_id: str, preprocessed, clinical: dict, pp_config, summary: PredictionSummary,
                 prognosis: PatientLevelModel | None = None, keep_probabilities: bool = False):
    """(prediction, None), or (None, reason) for bad input data."""
    record = clinical.get(patient_id)
    if (model.predict_heads or prognosis is not None) and record is None:
        summary.without_clinical.append(patient_id)
    try:
        prediction = model.predict(preprocessed, record, pp_config, keep_probabilities)
        if prognosis is not None:
            prepared = preprocessed.prepared
            heads = None if prediction.heads is None else {"hpv_probability": prediction.heads.hpv_probability,
                                                           "risk": prediction.heads.risk}
            # Features on the grid the network saw (the converted, possibly cropped CT and the PET
            # resampled onto it), as the stage's training features were measured.
            prediction.stage = prognosis.predict_patient(patient_id, prepared.ct, prepared.pet,
                                                         prediction.segmentation, record, heads)
        return prediction, None
    except InputDataError as exc:
        return None, str(exc)


def _write_settings(summary: PredictionSummary, cases: InputCases, model, tile_step_size: float, postprocessing,
                    pp_config, clinical_source: str, output: Path, prognosis: PatientLevelModel | None = None) -> None:
    """``prediction_settings.json``: how the predictions were made, and what happened per patient."""
    from nnunet_hecktor.fileio import write_json_atomic

    settings: dict[str, Any] = {
        "input": {"folder": str(cases.folder), "kind": cases.kind, "notes": cases.notes},
        "model": model.info.to_json(),
        "device": str(model.predictor.device),
        "tile_step_size": tile_step_size,
        "segmentation": "nnU-Net sliding window, logits averaged over folds (and mirrored copies), nnU-Net export, "
                        "converter crop undone: uint8 0/1/2 on the original CT grid",
        "postprocessing": None if pp_config is None else {"file": str(postprocessing), "rules": pp_config.to_dict()},
        "ensemble": ENSEMBLE_RULES if model.predict_heads else None,
        "head_patch": model.head_patch_rule() if model.predict_heads else None,
        "previous_stage": None if model.previous_stage is None else model.previous_stage.info.to_json(),
        "output_sources": summary.sources.to_json() if summary.sources is not None else None,
        "routing": summary.routing.to_json() if summary.routing is not None else None,
        "prognosis_stage": None if prognosis is None else {
            "source": prognosis.source, "outputs": list(prognosis.outputs), "description": prognosis.describe(),
            "features": "measured on the predicted segmentation, CT and PET on the grid the network saw; missing "
                        "clinical values imputed by the stage's fitted pipeline"},
        "clinical": clinical_source,
        "clinical_policy": "inference: unknown columns and CenterID not read; Karnofsky 10-100, M1a/M1b/M1c and "
                           "spelled-out sexes mapped; other unparsable or out-of-range values missing"
        if model.predict_heads or prognosis is not None else None,
        "clinical_substitutions": [s.as_row() for s in summary.substitutions],
        "patients_without_clinical_row": summary.without_clinical,
        "predicted": summary.predicted,
        "failed": summary.failed,
        "warnings": summary.warnings,
        "seconds": round(summary.seconds, 2),
    }
    write_json_atomic(output / SETTINGS_JSON, settings)
    summary.files.append(output / SETTINGS_JSON)
