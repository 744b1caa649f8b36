"""``nnunet-hecktor predict`` as a Python API: a folder of patients -> segmentations + predictions.csv.

Example
-------
>>> from nnunet_hecktor.prediction import predict
>>> summary = predict("hecktor_test/", "predictions/",
...                   "$nnUNet_results/Dataset501_HECKTOR/HecktorMultiTaskTrainer__nnUNetPlans__3d_fullres",
...                   folds=[0, 1, 2, 3, 4], checkpoint="checkpoint_swa.pth", device="cuda")  # doctest: +SKIP

See :mod:`.outputs` for the files written, :mod:`.predictor` for how a case is predicted and
:mod:`.ensemble` for how folds are combined.
"""

from __future__ import annotations

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
from .outputs import SETTINGS_JSON, write_prediction_tables, write_segmentation


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
    seconds : float
    """

    output_dir: Path
    model: ModelInfo
    predicted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    without_clinical: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def describe(self) -> str:
        lines = [f"predicted {len(self.predicted)} patients in {self.seconds:.1f} s -> {self.output_dir}"]
        if self.model.multitask:
            lines.append("  predictions.csv: PatientID,hpv_probability,hpv_status,risk (1 = HPV positive; risk higher "
                         "= earlier relapse)")
        if self.without_clinical:
            lines.append(f"  no clinical row (all clinical inputs missing) for {len(self.without_clinical)}: "
                         + ", ".join(self.without_clinical[:10]) + (" ..." if len(self.without_clinical) > 10 else ""))
        for pid, warnings in self.warnings.items():
            for warning in warnings:
                lines.append(f"  warning: {pid}: {warning}")
        for pid, reason in self.failed.items():
            lines.append(f"  FAILED: {reason}")
        return "\n".join(lines)


def load_clinical(cases: InputCases, clinical_csv: str | os.PathLike | None) -> tuple[dict, str]:
    """Typed clinical records by PatientID, and where they came from.

    An explicit ``clinical_csv`` wins; otherwise the task CSVs of a HECKTOR layout are merged (as the
    converter does); otherwise there is none (every clinical input missing).
    """
    from nnunet_hecktor.clinical import read_clinical_csv

    if clinical_csv is not None:
        return read_clinical_csv(clinical_csv), str(Path(clinical_csv))
    if cases.clinical_sources:
        from nnunet_hecktor.dataset_conversion import merge_clinical_csvs

        table = merge_clinical_csvs(cases.clinical_sources)
        wanted = {c.patient_id for c in cases.cases}
        errors = {pid: e for pid, e in table.row_errors.items() if pid in wanted}
        if errors:
            raise HecktorError("malformed clinical rows:\n  " + "\n  ".join(f"{p}: {e}" for p, e in errors.items()))
        names = ", ".join(str(s.path) for s in cases.clinical_sources)
        return table.values, f"merged task CSVs of the input folder ({names})"
    return {}, "none (every clinical input missing)"


def _same_folder(output: Path, cases: InputCases) -> bool:
    return output.resolve() == cases.folder


def predict(input_dir: str | os.PathLike, output_dir: str | os.PathLike, model_dir: str | os.PathLike,
            clinical_csv: str | os.PathLike | None = None, folds: Sequence | None = None,
            checkpoint: str = DEFAULT_CHECKPOINT, device: str = "cpu", postprocessing: str | os.PathLike | None = None,
            use_mirroring: bool = True, tile_step_size: float = 0.5, segmentation_only: bool = False,
            patients: Sequence[str] | None = None, crops_dir: str | os.PathLike | None = None,
            num_threads: int | None = None, previous_stage: str | os.PathLike | None = None,
            progress: bool = True) -> PredictionSummary:
    """Predict every patient of a folder.

    Parameters
    ----------
    input_dir : path-like
        A HECKTOR folder (release root, task folder or flat; CT and PET on their own grids) or an
        nnU-Net ``imagesTs``-style folder (``<PID>_0000`` CT, ``<PID>_0001`` PET on the CT grid).
    output_dir : path-like
        Receives ``<PID>.nii.gz`` (uint8 0/1/2 on the original CT grid), ``predictions.csv``,
        ``predictions_per_fold.csv`` and ``prediction_settings.json`` (see :mod:`.outputs`).
    model_dir : path-like
        Trained nnU-Net model folder of ``HecktorMultiTaskTrainer`` (or a variant).
    clinical_csv : path-like, optional
        Clinical table (HECKTOR column names; empty cell = missing). Default: the task CSVs of a
        HECKTOR input folder, else none. Patients without a row get every input missing.
    folds : sequence, optional
        Folds to ensemble (default: all with ``checkpoint``).
    checkpoint : str
        ``checkpoint_final.pth`` or ``checkpoint_swa.pth``.
    device : {"cpu", "cuda", "cuda:N", "auto"}
    postprocessing : path-like, optional
        Post-processing JSON (``nnunet-hecktor tune-postprocessing``'s output), applied on the
        original CT grid.
    use_mirroring : bool
        nnU-Net's test-time mirroring (segmentation and heads).
    tile_step_size : float
        Sliding-window step, fraction of the patch size.
    segmentation_only : bool
        Write segmentations only (required for models without heads; no predictions.csv).
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
        Show a progress bar and print the summary.

    Returns
    -------
    PredictionSummary

    Raises
    ------
    HecktorError
        Bad model folder/fold/checkpoint, unusable input folder or clinical table, output folder
        equal to the input folder, or (after every other patient was written) patients whose
        input data were bad.
    """
    from tqdm import tqdm

    from nnunet_hecktor.fileio import write_json_atomic

    start = time.perf_counter()
    cases = find_input_cases(input_dir, crops_dir, list(patients) if patients else None)
    output = Path(output_dir).expanduser()
    if _same_folder(output, cases):
        raise HecktorError(f"output folder {output} must not be the input folder (input data are never modified)")
    pp_config = None
    if postprocessing is not None:
        from nnunet_hecktor.postprocessing.config import load_config

        pp_config = load_config(postprocessing)

    from .predictor import HecktorPredictor, torch_threads
    from .preparation import prepare_case

    model = HecktorPredictor(model_dir, folds, checkpoint, device, use_mirroring, tile_step_size, segmentation_only,
                             previous_stage)
    info = model.info
    clinical, clinical_source = load_clinical(cases, clinical_csv) if model.predict_heads else ({}, "not used")
    if progress:
        print(cases.describe())
        print(info.describe())
        if model.previous_stage is not None:
            print("  previous stage: " + model.previous_stage.info.describe().replace("\n", "\n  "))
        print(f"  clinical: {clinical_source}")
        if pp_config is not None:
            print(f"  post-processing: {pp_config.describe()}")
    output.mkdir(parents=True, exist_ok=True)
    summary = PredictionSummary(output.resolve(), info)
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
            if error is not None:
                summary.failed[case.patient_id] = error
                bar.update()
                continue
            record = clinical.get(case.patient_id)
            if model.predict_heads and record is None:
                summary.without_clinical.append(case.patient_id)
            try:
                prediction = model.predict(preprocessed, record, pp_config)
            except InputDataError as exc:
                summary.failed[case.patient_id] = str(exc)
                bar.update()
                continue
            write_segmentation(prediction, output)
            prediction.segmentation = None  # written; keep only the patient-level values in memory
            results.append(prediction)
            summary.predicted.append(case.patient_id)
            if prediction.warnings:
                summary.warnings[case.patient_id] = prediction.warnings
            bar.update()
    bar.close()

    summary.files = write_prediction_tables(results, output)
    summary.seconds = time.perf_counter() - start
    settings: dict[str, Any] = {
        "input": {"folder": str(cases.folder), "kind": cases.kind, "notes": cases.notes},
        "model": info.to_json(),
        "device": str(model.predictor.device),
        "tile_step_size": tile_step_size,
        "segmentation": "nnU-Net sliding window, logits averaged over folds (and mirrored copies), nnU-Net export, "
                        "converter crop undone: uint8 0/1/2 on the original CT grid",
        "postprocessing": None if pp_config is None else {"file": str(postprocessing), "rules": pp_config.to_dict()},
        "ensemble": ENSEMBLE_RULES if model.predict_heads else None,
        "head_patch": model.head_patch_rule() if model.predict_heads else None,
        "previous_stage": None if model.previous_stage is None else model.previous_stage.info.to_json(),
        "clinical": clinical_source,
        "patients_without_clinical_row": summary.without_clinical,
        "predicted": summary.predicted,
        "failed": summary.failed,
        "warnings": summary.warnings,
        "seconds": round(summary.seconds, 2),
    }
    write_json_atomic(output / SETTINGS_JSON, settings)
    summary.files.append(output / SETTINGS_JSON)
    if progress:
        print(summary.describe())
    if summary.failed:
        raise HecktorError(f"{len(summary.failed)} of {len(cases.cases)} patients failed (the others were written "
                           f"to {output}):\n  " + "\n  ".join(summary.failed.values()))
    return summary
