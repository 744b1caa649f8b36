"""``convert_dataset``: a HECKTOR source folder -> an nnU-Net v2 raw dataset ``DatasetNNN_NAME``.

Order of work (each step's output is written atomically; one function per step):

1. :func:`_read_source`: find the edition, the layout and the patients (:func:`~.layout.discover_layout`),
   merge the clinical CSVs under the edition's column names (:func:`~.clinical_merge.merge_clinical_csvs`),
   read the Bq/mL -> SUV factor table if given (:func:`~.suv.read_suv_factors`); duplicate IDs, near-miss
   column names, conflicting values and a refused factor table stop here, before any image is read or
   anything is written;
2. :func:`_check_output_target`, then the lock (:class:`~.lock.OutputLock`: one ``convert`` per dataset
   folder) and :func:`_prepare_output`: remove ``dataset.json`` (a dataset without it is visibly
   unfinished), leftover temporary files and the outputs of patients no longer in the source;
3. :func:`_convert_patients`: convert the patients not already converted from unchanged sources with the
   same options (done-markers in ``.conversion_state/``), in parallel, with a progress bar;
4. :func:`_write_dataset_files`: ``clinical.csv``, ``splits_final.json``, ``suv_factors.csv`` (when PETs
   were converted to SUV), ``conversion_report.json`` and, last, ``dataset.json`` (labels of the edition:
   2021 is GTVp only). A write error there (full disk) is an error that still lists every failed
   patient with its reason.

What the run found and did is logged (logger ``nnunet_hecktor.dataset_conversion``, INFO) and returned
as a :class:`ConversionSummary`; the command line prints it.
"""

from __future__ import annotations

import datetime
import logging
import multiprocessing
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from nnunet_hecktor import __version__, schema
from nnunet_hecktor.editions import DEFAULT_EDITION, get_edition
from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.fileio import TMP_PREFIX, write_json_atomic, write_text_atomic

from .checks import patient_alert_lines, source_alerts, strict_events
from .clinical_merge import ClinicalTable, merge_clinical_csvs, write_clinical_csv
from .cropping import CROP_MODES, DEFAULT_HEADNECK_BOX_MM
from .layout import SourceLayout, discover_layout
from .lock import LOCK_NAME, OutputLock, describe_holder
from .patient import (
    CROPS_DIR,
    IMAGES_TR,
    IMAGES_TS,
    LABELS_TR,
    STATE_DIR,
    ConversionOptions,
    PatientJob,
    convert_patient,
    remove_patient_outputs,
    up_to_date_entry,
)
from .resampling import INTERPOLATIONS
from .splits import filter_splits, load_splits_file, make_stable_splits, read_previous_splits, split_balance, stratum_of
from .suv import SUV_FACTORS_NAME, SuvFactor, read_suv_factors, suv_factors_csv_text

REPORT_NAME = "conversion_report.json"
CLINICAL_NAME = "clinical.csv"
SPLITS_NAME = "splits_final.json"
DATASET_JSON = "dataset.json"
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
#: Lines of a list shown in the console summary (the report has all of them).
_SHOWN = 10
logger = logging.getLogger(__name__)


@dataclass
class ConversionSummary:
    """What :func:`convert_dataset` did.

    Attributes
    ----------
    output_dir : Path
        The dataset folder (``.../DatasetNNN_NAME``).
    layout_kind : str
        ``"release"``, ``"task"``, ``"flat"`` or ``"images-labels"``.
    edition : str
        The HECKTOR edition whose contract was used; ``edition_evidence`` says why (detected or given).
    training, test : list of str
        PatientIDs written to ``imagesTr``/``labelsTr`` (labelled) and ``imagesTs`` (no label).
    resumed : list of str
        PatientIDs skipped because they were already converted from unchanged sources.
    failed : dict
        PatientID -> reason, for patients left out.
    warnings : int
        Number of warnings in the report (per patient and dataset level).
    dataset_warnings : list of str
        The dataset-level ones (CSV-only patients, dropped split IDs, ...).
    patient_warnings : dict
        PatientID -> warnings about what was left out or changed for it without failing it: clinical
        values treated as missing, no label in Task 1 (image warnings are in the report only).
    report_path, splits_path : Path
        ``conversion_report.json``; ``splits_final.json`` (``None`` if too few training cases).
    seconds : float
        Wall time of the run.
    unread_csvs : dict
        CSV -> why it was not read (also a dataset warning; ``strict`` fails on it).
    pet_unit_suspects : list of str
        Converted patients whose PET looks like Bq/mL (99th percentile above ``checks.PET_SUV_P99_LIMIT``)
        and had no SUV factor: converted unchanged, warned (``strict`` fails on it).
    suv_converted : dict
        PatientID -> the Bq/mL -> SUV factor applied to its PET.
    """

    output_dir: Path
    dataset_name: str
    layout_kind: str
    training: list[str] = field(default_factory=list)
    test: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    warnings: int = 0
    dataset_warnings: list[str] = field(default_factory=list)
    patient_warnings: dict[str, list[str]] = field(default_factory=dict)
    report_path: Path | None = None
    splits_path: Path | None = None
    seconds: float = 0.0
    edition: str = DEFAULT_EDITION
    edition_evidence: str = ""
    unread_csvs: dict[str, str] = field(default_factory=dict)
    pet_unit_suspects: list[str] = field(default_factory=list)
    suv_converted: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def describe(self) -> str:
        """Short end-of-run summary."""
        lines = [f"{self.dataset_name}: {len(self.training)} training cases (imagesTr/labelsTr), "
                 f"{len(self.test)} without label (imagesTs), {len(self.failed)} failed, "
                 f"{len(self.resumed)} already up to date; {self.warnings} warnings; {self.seconds:.1f} s",
                 f"  edition: {self.edition_evidence or 'HECKTOR ' + self.edition}",
                 f"  dataset: {self.output_dir}", f"  report:  {self.report_path}"]
        if self.suv_converted:
            lines.append(f"  PET converted from Bq/mL to SUV with the factor table: {len(self.suv_converted)} patients "
                         f"(recorded in {SUV_FACTORS_NAME})")
        if self.pet_unit_suspects:
            shown = ", ".join(self.pet_unit_suspects[:_SHOWN]) + (" ..." if len(self.pet_unit_suspects) > _SHOWN else "")
            lines.append(f"  warning: {len(self.pet_unit_suspects)} PETs look like Bq/mL, not SUV (converted unchanged; "
                         f"give their factors with --suv-factors): {shown}")
        for warning in self.dataset_warnings[:_SHOWN]:
            lines.append(f"  warning: {warning}")
        if len(self.dataset_warnings) > _SHOWN:
            lines.append(f"  ... {len(self.dataset_warnings) - _SHOWN} more dataset warnings in the report")
        patient_lines = [f"{pid}: {w}" for pid, ws in self.patient_warnings.items() for w in ws]
        for line in patient_lines[:_SHOWN]:
            lines.append(f"  warning: {line}")
        if len(patient_lines) > _SHOWN:
            lines.append(f"  ... {len(patient_lines) - _SHOWN} more patient warnings in the report")
        lines.extend(f"  {line}" for line in failure_lines(self.failed, _SHOWN))
        return "\n".join(lines)


def failure_lines(failed: dict[str, str], limit: int | None = None) -> list[str]:
    """``FAILED <PID>: <reason>`` per failed patient (at most ``limit``, then how many more)."""
    lines = [f"FAILED {reason if reason.startswith(pid) else pid + ': ' + reason}"
             for pid, reason in list(failed.items())[:limit]]
    if limit is not None and len(failed) > limit:
        lines.append(f"... {len(failed) - limit} more failures in the report")
    return lines


def default_output_dir(dataset_id: int, name: str) -> Path:
    """``$nnUNet_raw/DatasetNNN_NAME``.

    Raises
    ------
    HecktorError
        ``nnUNet_raw`` is not set.
    """
    raw = os.environ.get("nnUNet_raw")
    if not raw:
        raise HecktorError("nnUNet_raw is not set: export nnUNet_raw=/path/to/nnUNet_raw (see the README) "
                           "or pass --output")
    return Path(raw) / f"Dataset{dataset_id:03d}_{name}"


def _validate_options(dataset_id: int, name: str, interpolation: str, crop: str | None,
                      headneck_box_mm: Sequence[float], num_folds: int, num_processes: int) -> None:
    if not 1 <= int(dataset_id) <= 999:
        raise HecktorError(f"dataset id must be 1-999 (nnU-Net's three digits), got {dataset_id}")
    if not _NAME_PATTERN.match(name):
        raise HecktorError(f"dataset name {name!r} must be letters, digits, '_' or '-' (it becomes a folder name)")
    if interpolation not in INTERPOLATIONS:
        raise HecktorError(f"unknown interpolation {interpolation!r} (choose from {', '.join(INTERPOLATIONS)})")
    if crop not in (None, *CROP_MODES):
        raise HecktorError(f"unknown crop mode {crop!r} (choose from {', '.join(CROP_MODES)})")
    if len(headneck_box_mm) != 3 or not all(float(v) > 0 for v in headneck_box_mm):
        raise HecktorError(f"the head-and-neck box needs three positive sizes in mm, got {list(headneck_box_mm)}")
    if num_folds < 2:
        raise HecktorError(f"num_folds must be at least 2, got {num_folds}")
    if num_processes < 1:
        raise HecktorError(f"num_processes must be at least 1, got {num_processes}")


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_output_target(output: Path, source: Path, given_source: Path, overwrite: bool) -> None:
    """Refuse unsafe or impossible output folders before anything is written (read-only checks)."""
    resolved = output.resolve()
    for src in {source, given_source}:
        if _is_within(resolved, src):
            raise HecktorError(f"the output folder {output} is inside the source folder {src}; "
                               "the source is never written to, choose another --output")
        if _is_within(src, resolved):
            raise HecktorError(f"the source folder {src} is inside the output folder {output}")
    existing = next((p for p in (resolved, *resolved.parents) if p.exists()), None)
    if existing is not None and existing != resolved:
        if not existing.is_dir():
            raise HecktorError(f"cannot create the output folder {output}: {existing} is a file, not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise HecktorError(f"cannot create the output folder {output}: no permission to write in {existing}")
    if not output.exists():
        return
    if not output.is_dir():
        raise HecktorError(f"output {output} exists and is not a folder")
    if not os.access(output, os.W_OK | os.X_OK):
        raise HecktorError(f"cannot write in the output folder {output} (permission denied)")
    contents = [p for p in output.iterdir() if p.name != LOCK_NAME]
    ours = (output / STATE_DIR).is_dir() or (output / LOCK_NAME).exists()
    looks_like_dataset = ours or (output / DATASET_JSON).exists() or (output / IMAGES_TR).is_dir()
    if contents and overwrite and not looks_like_dataset:
        raise HecktorError(f"refusing to delete {output} for --overwrite: it does not look like an "
                           "nnU-Net dataset folder")
    if contents and not overwrite and not ours:
        raise HecktorError(f"output folder {output} exists and was not written by 'nnunet-hecktor convert'; "
                           "pass --overwrite to replace it or choose another --output")


def _prepare_output(output: Path, overwrite: bool) -> None:
    """With the lock held: empty the folder for ``overwrite``, make the sub-folders, mark it unfinished."""
    if overwrite:
        for path in output.iterdir():
            if path.name == LOCK_NAME:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    for sub in (IMAGES_TR, LABELS_TR, IMAGES_TS, CROPS_DIR, STATE_DIR):
        (output / sub).mkdir(parents=True, exist_ok=True)
    # Unfinished until the end of this run: nnU-Net refuses a folder without dataset.json.
    (output / DATASET_JSON).unlink(missing_ok=True)
    for folder in (output, *(output / sub for sub in (IMAGES_TR, LABELS_TR, IMAGES_TS, CROPS_DIR, STATE_DIR))):
        for leftover in folder.glob(f"{TMP_PREFIX}*"):
            if leftover.is_file():
                leftover.unlink()


def _case_id(folder: str, filename: str) -> str | None:
    ending = schema.FILE_ENDING
    if folder == IMAGES_TR or folder == IMAGES_TS:
        match = re.match(rf"^(.*)_\d{{4}}{re.escape(ending)}$", filename)
        return match.group(1) if match else None
    if folder == LABELS_TR:
        return filename[: -len(ending)] if filename.endswith(ending) else None
    return filename[:-5] if filename.endswith(".json") else None


def _remove_stale_cases(output: Path, keep: set[str]) -> list[str]:
    """Delete outputs of patients that are not in the source any more; return their IDs."""
    stale: set[str] = set()
    for sub in (IMAGES_TR, LABELS_TR, IMAGES_TS, CROPS_DIR, STATE_DIR):
        for path in (output / sub).iterdir():
            pid = _case_id(sub, path.name)
            if pid is not None and pid not in keep:
                stale.add(pid)
    for pid in stale:
        remove_patient_outputs(output, pid)
        for sub in (IMAGES_TR, IMAGES_TS):  # channels beyond the two written here
            for path in (output / sub).glob(f"{pid}_*{schema.FILE_ENDING}"):
                if _case_id(sub, path.name) == pid:
                    path.unlink()
    return sorted(stale)


def _run_jobs(jobs: list[PatientJob], num_processes: int, progress: bool) -> Iterator[dict[str, Any]]:
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="convert", unit="patient", disable=not progress or not jobs,
               file=sys.stderr, dynamic_ncols=True)
    failed = 0
    try:
        if num_processes <= 1 or len(jobs) <= 1:
            results: Iterable[dict[str, Any]] = map(convert_patient, jobs)
            pool = None
        else:
            # spawn: safe with SimpleITK's threads and identical on every platform.
            pool = multiprocessing.get_context("spawn").Pool(min(num_processes, len(jobs)))
            results = pool.imap_unordered(convert_patient, jobs)
        try:
            for entry in results:
                failed += entry["status"] == "failed"
                bar.set_postfix(failed=failed, refresh=False)
                bar.update()
                yield entry
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    finally:
        bar.close()


def _clinical_notes(table: ClinicalTable, layout: SourceLayout) -> list[str]:
    notes = [f"CSV {path} not read: {why}" for path, why in layout.unread_csvs.items()]
    targets = get_edition(layout.edition).targets
    if not layout.csv_files:
        notes.append(f"no clinical CSV found: every clinical value and the HECKTOR {layout.edition} targets "
                     f"({', '.join(targets)}) are empty in {CLINICAL_NAME}")
    else:
        absent = [t for t in targets if t not in table.found_columns]
        if absent:
            notes.append(f"no clinical CSV has the HECKTOR {layout.edition} target column(s) {', '.join(absent)}: "
                         f"empty for every patient in {CLINICAL_NAME}")
    image_ids = set(layout.patients)
    csv_only = sorted(set(table.raw) - image_ids)
    if csv_only:
        shown = ", ".join(csv_only[:20]) + (" ..." if len(csv_only) > 20 else "")
        notes.append(f"{len(csv_only)} patients have a clinical row but no images (not converted): {shown}")
    if layout.csv_files:
        no_row = sorted(image_ids - set(table.raw))
        if no_row:
            shown = ", ".join(no_row[:20]) + (" ..." if len(no_row) > 20 else "")
            notes.append(f"{len(no_row)} patients have images but no clinical row (empty clinical values): {shown}")
    return notes + table.warnings


def convert_dataset(src: str | os.PathLike, dataset_id: int = 501, name: str = "HECKTOR",
                    output: str | os.PathLike | None = None, interpolation: str = "linear",
                    crop: str | None = None,
                    headneck_box_mm: Sequence[float] = DEFAULT_HEADNECK_BOX_MM,
                    splits_file: str | os.PathLike | None = None, num_folds: int = 5, seed: int = 0,
                    num_processes: int = 1, overwrite: bool = False, strict: bool = False,
                    progress: bool = True, edition: str | int | None = None,
                    suv_factors: str | os.PathLike | None = None) -> ConversionSummary:
    """Convert a HECKTOR source folder into an nnU-Net v2 raw dataset.

    Parameters
    ----------
    src : path-like
        Release root (``Task 1``/``Task 2``/``Task 3``, with a space or underscore), one task folder, or a
        flat folder (see :func:`~.layout.discover_layout`). Never written to.
    dataset_id : int
        nnU-Net dataset id (1-999).
    name : str
        Dataset name; the folder is ``DatasetNNN_NAME``.
    output : path-like, optional
        The dataset folder to write; default ``$nnUNet_raw/DatasetNNN_NAME``.
    interpolation : {"linear", "bspline"}
        PET -> CT-grid interpolation (outside value 0, float32).
    crop : {None, "overlap", "headneck"}
        Optional crop of the CT grid (see :mod:`~.cropping`); the box of each patient is recorded in
        ``crops/<PID>.json`` and in the report.
    headneck_box_mm : sequence of 3 floats
        Box size (x, y, z) in mm for ``crop="headneck"``.
    splits_file : path-like, optional
        An nnU-Net split file to use instead of the stratified folds, filtered to the patients present.
    num_folds, seed : int
        Folds and seed of the stratified splits (centre x HPV x Relapse, labelled training cases only).
    num_processes : int
        Patients converted in parallel (worker processes started with ``spawn``; in a script, call from
        under ``if __name__ == "__main__":`` as ``multiprocessing`` requires).
    overwrite : bool
        Empty an existing dataset folder (the lock of this run stays) and convert everything again.
        Without it, a re-run resumes: patients converted from unchanged sources with the same options
        are skipped.
    strict : bool
        Raise :class:`HecktorError` (non-zero exit on the command line) when any patient failed, a CSV of
        the source was not read, or a PET looks like Bq/mL without an SUV factor; and fail the Task 1
        patients without a label file (otherwise converted as unlabelled cases with a warning). All
        outputs, including the report, are written first.
    progress : bool
        Show a progress bar, and log what was found and the summary at INFO (logger
        ``nnunet_hecktor.dataset_conversion``; the command line prints it).
    edition : {None, "2021", "2022", "2025", "2026"}
        The HECKTOR edition whose contract applies (file names, CSV names and columns, labels); detected
        from the file and folder names when None (:func:`~nnunet_hecktor.editions.detect_edition`).
    suv_factors : path-like, optional
        A Bq/mL -> SUV factor table (:func:`~.suv.read_suv_factors`; the organisers' 2026
        ``suv_conversion_tags.csv`` format): the PETs of its patients are multiplied by their factor
        (the source files are never modified), recorded in ``suv_factors.csv`` and the report.

    Returns
    -------
    ConversionSummary

    Raises
    ------
    HecktorError
        Bad options or folders, an output folder another ``convert`` is writing, duplicate PatientIDs,
        near-miss clinical column names, conflicting clinical values, an unusable split file, no patient
        converted, a write error of the dataset files (listing the failed patients), or (with
        ``strict``) any failed patient. A clinical value never fails a patient: it becomes missing with a
        warning.
    """
    started = time.perf_counter()
    name = str(name)
    _validate_options(dataset_id, name, interpolation, crop, headneck_box_mm, num_folds, num_processes)
    output_dir = Path(output).expanduser() if output is not None else default_output_dir(int(dataset_id), name)
    _refuse_nnunet_dataset(Path(src).expanduser())
    _refuse_duplicate_id(output_dir, int(dataset_id))
    layout, clinical, given_splits, dataset_warnings, factors = _read_source(src, splits_file, progress, edition,
                                                                             suv_factors)
    dataset_alerts = source_alerts(layout.patients)  # case-variant IDs, one scan under two IDs
    dataset_warnings[:0] = dataset_alerts  # first on the console
    _check_dataset_id(output_dir, int(dataset_id), dataset_warnings)
    _check_output_target(output_dir, layout.root, Path(src).expanduser().resolve(), overwrite)

    threads = 0 if num_processes <= 1 else max(1, (os.cpu_count() or 1) // num_processes)
    box_x, box_y, box_z = (float(v) for v in headneck_box_mm)  # three values (_validate_options)
    options = ConversionOptions(interpolation, crop, (box_x, box_y, box_z), threads, layout.edition)
    options_json = {**options.fingerprint(), "edition": layout.edition,
                    "headneck_box_mm": [float(v) for v in headneck_box_mm],
                    "num_processes": num_processes, "overwrite": overwrite, "strict": strict,
                    "splits_file": None if splits_file is None else str(splits_file), "num_folds": num_folds,
                    "seed": seed, "suv_factors": None if suv_factors is None else str(suv_factors)}
    with OutputLock(output_dir) as lock:
        if lock.took_over is not None:
            dataset_warnings.append("took over the lock of a run that no longer exists "
                                    f"({describe_holder(lock.took_over)})")
        # Read before --overwrite empties the folder: patients keep their folds (see splits.make_stable_splits).
        previous_splits = read_previous_splits(output_dir / SPLITS_NAME, output_dir / REPORT_NAME)
        _prepare_output(output_dir, overwrite)
        # An unreadable patient's earlier outputs go too (it fails this run), without "no longer in the source".
        stale = [p for p in _remove_stale_cases(output_dir, set(layout.patients)) if p not in layout.unreadable]
        if stale:
            dataset_warnings.append(f"removed the outputs of {len(stale)} patients no longer in the source: "
                                    + ", ".join(stale[:20]))
        notes = _patient_notes(layout, clinical, strict)
        entries = _convert_patients(layout, output_dir, options, notes, strict, num_processes, progress, factors)
        dataset_warnings[:0] = patient_alert_lines(entries)  # PET units/field, CT offset: on the console
        summary = _summarise(output_dir, layout, entries, notes, dataset_warnings)
        summary.seconds = time.perf_counter() - started
        _write_dataset_files(summary, layout, clinical, entries, given_splits, splits_file, num_folds, seed,
                             name, options_json, previous_splits)
    if progress:
        logger.info("%s", summary.describe())
    else:  # quiet: what changes the data's meaning still reaches the console
        for path, why in summary.unread_csvs.items():
            logger.warning("CSV %s not read: %s", path, why)
        if summary.pet_unit_suspects:
            logger.warning("%d PETs look like Bq/mL, not SUV (converted unchanged; --suv-factors): %s",
                           len(summary.pet_unit_suspects), ", ".join(summary.pet_unit_suspects))
    if strict:
        # PETs in Bq/mL have their own line below; every other alert and each lost clinical column here.
        other_alerts = {p: {"alerts": {k: v for k, v in (e.get("alerts") or {}).items() if k != "pet_units"}}
                        for p, e in entries.items()}
        _raise_strict(summary, strict_events(other_alerts, clinical.alerts, dataset_alerts))
    return summary


def _raise_strict(summary: ConversionSummary, events: Sequence[str] = ()) -> None:
    """``strict``: failed patients, CSVs not read, PETs that look like Bq/mL, clinical values lost and the
    other data alerts (``checks.strict_events``) are errors, raised after all outputs are written."""
    problems = []
    if summary.failed:
        listing = "; ".join(list(summary.failed.values())[:5]) + (" ..." if len(summary.failed) > 5 else "")
        problems.append(f"{len(summary.failed)} patients failed (--strict): {listing}")
    if summary.unread_csvs:
        problems.append(f"{len(summary.unread_csvs)} CSVs not read (--strict): " + "; ".join(
            f"{path} ({why.split(';')[0]})" for path, why in summary.unread_csvs.items()))
    if summary.pet_unit_suspects:
        problems.append(f"{len(summary.pet_unit_suspects)} PETs look like Bq/mL, not SUV (--strict; give their "
                        "factors with --suv-factors): " + ", ".join(summary.pet_unit_suspects[:10]))
    if events:
        problems.append(f"{len(events)} data problems (--strict): " + "; ".join(events[:5])
                        + (" ..." if len(events) > 5 else ""))
    if problems:
        raise HecktorError("; ".join(problems) + f" (report: {summary.report_path})")


def _read_source(src, splits_file, progress: bool, edition=None, suv_factors=None) -> tuple[
        SourceLayout, ClinicalTable, Any, list[str], dict[str, SuvFactor]]:
    """Step 1 (read only): the layout, the merged clinical table, the given split file, dataset warnings and
    the SUV factors."""
    layout = discover_layout(src, edition)
    if progress:
        logger.info("%s", layout.describe())
    clinical = merge_clinical_csvs(layout.csv_files, layout.edition)
    if progress:
        for note in clinical.column_notes:
            logger.info("  %s", note)
    given_splits = load_splits_file(splits_file) if splits_file is not None else None
    factors = read_suv_factors(suv_factors) if suv_factors is not None else {}
    warnings = list(layout.warnings) + _clinical_notes(clinical, layout)
    no_images = sorted(set(factors) - set(layout.patients))
    if no_images:
        warnings.append(f"SUV factor table: {len(no_images)} patients have a factor but no images here: "
                        + ", ".join(no_images[:20]) + (" ..." if len(no_images) > 20 else ""))
    return layout, clinical, given_splits, warnings, factors


def _patient_notes(layout: SourceLayout, clinical: ClinicalTable, strict: bool) -> dict[str, list[str]]:
    """Per patient, what is left out without failing it: clinical values treated as missing, no label."""
    notes: dict[str, list[str]] = {}
    for pid, warnings in clinical.value_warnings.items():
        if pid in layout.patients:
            notes.setdefault(pid, []).extend(warnings)
    if not strict:
        for pid, warning in layout.missing_labels.items():
            notes.setdefault(pid, []).insert(0, f"{warning}; converted as an unlabelled case (imagesTs)")
    return dict(sorted(notes.items()))


def _convert_patients(layout: SourceLayout, output_dir: Path, options: ConversionOptions,
                      notes: dict[str, list[str]], strict: bool, num_processes: int,
                      progress: bool, factors: dict[str, SuvFactor] | None = None) -> dict[str, dict[str, Any]]:
    """Step 3: the report entry of every patient (resumed, converted or failed), sorted by PatientID.

    An entry's ``warnings`` are this run's ``notes`` followed by the image warnings of its conversion
    (stored in the done-marker, so a resumed patient gets fresh notes and its original image warnings).
    """
    entries: dict[str, dict[str, Any]] = {}
    jobs = []
    for pid, sources in layout.patients.items():
        failure = None
        if pid in layout.unreadable:
            # Another task folder's copy may be readable, but the unreadable one may hold the label.
            failure = layout.unreadable[pid].removeprefix(pid + ": ")
        elif strict and pid in layout.missing_labels:
            failure = f"{layout.missing_labels[pid]} (--strict)"
        job = PatientJob(pid, sources, output_dir, options, failure, (factors or {}).get(pid))
        entry = None if failure else up_to_date_entry(job)
        if entry is not None:
            entries[pid] = dict(entry, resumed=True)
        else:
            jobs.append(job)
    if progress and entries:
        logger.info("  %d patients already converted from unchanged sources: skipped (--overwrite to redo them)",
                    len(entries))
    for entry in _run_jobs(jobs, num_processes, progress):
        entries[entry["patient_id"]] = dict(entry, resumed=False)
    for folder_name, reason in layout.unreadable.items():
        entries.setdefault(folder_name, {"patient_id": folder_name, "status": "failed", "destination": None,
                                         "tasks": [], "sources": {}, "warnings": [], "error": reason,
                                         "resumed": False})
    for pid, entry in entries.items():
        entry["warnings"] = list(notes.get(pid, [])) + list(entry.get("warnings", []))
    return dict(sorted(entries.items()))


def _summarise(output_dir: Path, layout: SourceLayout, entries: dict[str, dict[str, Any]],
               notes: dict[str, list[str]], dataset_warnings: list[str]) -> ConversionSummary:
    """The :class:`ConversionSummary` of the converted patients (adds the dataset warning for 0 labels)."""
    training = [p for p, e in entries.items() if e["status"] == "converted" and e["destination"] == IMAGES_TR]
    test = [p for p, e in entries.items() if e["status"] == "converted" and e["destination"] == IMAGES_TS]
    failed = {p: e["error"] or "failed" for p, e in entries.items() if e["status"] == "failed"}
    if test and not training:
        dataset_warnings.append(f"no converted patient has a label: all {len(test)} cases went to imagesTs "
                                "(numTraining 0), nnU-Net cannot train on this dataset")
    converted = {p: e for p, e in entries.items() if e["status"] == "converted"}
    patient_warnings = {p: list(w) for p, w in notes.items() if p in converted}
    # A PET in Bq/mL would feed nnU-Net values ~1000 times the SUV it was trained on: shown, not only reported.
    suspects = [p for p, e in converted.items() if e.get("pet_units_suspect")]
    for pid in suspects:
        patient_warnings.setdefault(pid, []).append(converted[pid]["pet_units_suspect"])
    return ConversionSummary(
        output_dir=output_dir, dataset_name=output_dir.name, layout_kind=layout.kind, training=training,
        test=test, resumed=[p for p, e in entries.items() if e.get("resumed")], failed=failed,
        warnings=len(dataset_warnings) + sum(len(e.get("warnings", [])) for e in entries.values()),
        dataset_warnings=list(dataset_warnings), patient_warnings=dict(sorted(patient_warnings.items())),
        report_path=output_dir / REPORT_NAME, edition=layout.edition, edition_evidence=layout.edition_evidence,
        unread_csvs={str(p): why for p, why in layout.unread_csvs.items()}, pet_unit_suspects=suspects,
        suv_converted={p: e["suv_conversion"]["factor"] for p, e in converted.items() if e.get("suv_conversion")})


def _write_dataset_files(summary: ConversionSummary, layout: SourceLayout, clinical: ClinicalTable,
                         entries: dict[str, dict[str, Any]], given_splits, splits_file, num_folds: int, seed: int,
                         name: str, options_json: dict[str, Any], previous_splits=None) -> None:
    """Step 4: ``clinical.csv``, ``splits_final.json``, the report and, last, ``dataset.json``.

    Raises
    ------
    HecktorError
        No patient converted (after the report is written), or a file could not be written (full disk,
        permissions): the message lists every failed patient with its reason, since the report may be lost.
    """
    output_dir = summary.output_dir
    try:
        for pid, entry in entries.items():
            entry["clinical_sources"] = clinical.sources.get(pid, [])
        write_clinical_csv(clinical, summary.training + summary.test, output_dir / CLINICAL_NAME)
        _write_suv_factors(output_dir, entries)
        splits_info = _write_splits(output_dir, summary.training, clinical, given_splits, splits_file, num_folds,
                                    seed, summary.dataset_warnings, previous_splits)
        summary.warnings = len(summary.dataset_warnings) + sum(len(e.get("warnings", [])) for e in entries.values())
        if splits_info.get("written"):
            summary.splits_path = output_dir / SPLITS_NAME
        assert summary.report_path is not None  # set when the summary was made
        write_json_atomic(summary.report_path, _report(summary, layout, entries, splits_info, options_json))
        if not summary.training and not summary.test:
            raise HecktorError(f"no patient could be converted ({len(summary.failed)} failed); see "
                               f"{summary.report_path}\n  " + "\n  ".join(failure_lines(summary.failed, 20)))
        write_json_atomic(output_dir / DATASET_JSON,
                          _dataset_json(name, len(summary.training), len(summary.test), options_json, summary.edition))
    except OSError as exc:
        where = exc.filename or output_dir
        failures = failure_lines(summary.failed)
        listing = ("; the failed patients:\n  " + "\n  ".join(failures)) if failures else ""
        raise HecktorError(f"could not write {where} ({exc.strerror or exc}); the dataset in {output_dir} is "
                           f"unfinished (no dataset.json): {len(summary.training)} training and {len(summary.test)} "
                           f"unlabelled cases were converted{listing}") from None


def _write_suv_factors(output_dir: Path, entries: dict[str, dict[str, Any]]) -> None:
    """``suv_factors.csv``: the factor applied to each converted patient's PET (removed when none was)."""
    applied = {p: e["suv_conversion"] for p, e in entries.items()
               if e["status"] == "converted" and e.get("suv_conversion")}
    destination = output_dir / SUV_FACTORS_NAME
    if not applied:
        destination.unlink(missing_ok=True)
        return
    fields = ("patient_id", "factor", "weight_kg", "dose_bq", "origin", "table")
    write_text_atomic(destination, suv_factors_csv_text(
        {p: SuvFactor(**{k: record[k] for k in fields}) for p, record in applied.items()}))


def _report(summary: ConversionSummary, layout: SourceLayout, entries: dict[str, dict[str, Any]],
            splits_info: dict[str, Any], options_json: dict[str, Any]) -> dict[str, Any]:
    return {
        "tool": "nnunet-hecktor convert", "version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "source": str(layout.root), "output": str(summary.output_dir), "options": options_json,
        "edition": {"name": summary.edition, "why": summary.edition_evidence},
        "layout": {"kind": layout.kind, "task_folders": {str(k): str(v) for k, v in layout.task_folders.items()},
                   "csv_root": None if layout.csv_root is None else str(layout.csv_root),
                   "csv_files": [str(c.path) for c in layout.csv_files],
                   "not_clinical_tables": [str(p) for p in layout.other_tables],
                   "unread_csvs": summary.unread_csvs,
                   "ignored": [str(p) for p in layout.ignored]},
        "pet_units": {"suv_converted": summary.suv_converted, "look_like_bq_per_ml": summary.pet_unit_suspects},
        "summary": {"patients": len(entries), "training": len(summary.training), "test": len(summary.test),
                    "failed": len(summary.failed), "resumed": len(summary.resumed), "warnings": summary.warnings,
                    "seconds": round(summary.seconds, 2)},
        "warnings": summary.dataset_warnings, "patient_warnings": summary.patient_warnings,
        "failures": summary.failed, "splits": splits_info, "patients": entries,
    }


def _refuse_nnunet_dataset(src: Path) -> None:
    """An nnU-Net dataset (this converter's output, or any other) is not a HECKTOR release: say so.

    Recognised by a ``dataset.json`` with ``channel_names`` next to ``imagesTr``, or ``imagesTr`` files
    named ``<case>_0000.<ending>`` (nnU-Net's channel suffix; HECKTOR releases name them ``__CT``/``__PT``).
    """
    import json

    images = src / "imagesTr"
    dataset_json = src / "dataset.json"
    is_nnunet = False
    if dataset_json.is_file():
        try:
            is_nnunet = "channel_names" in json.loads(dataset_json.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            is_nnunet = False
    if not is_nnunet and images.is_dir():
        try:
            is_nnunet = any(re.search(r"_\d{4}\.(nii\.gz|nii|mha|nrrd)$", p.name) for p in images.iterdir())
        except OSError:
            is_nnunet = False
    if is_nnunet:
        raise HecktorError(f"{src} is an nnU-Net dataset (dataset.json / imagesTr/<case>_0000 files), not a HECKTOR "
                           "release: it is already converted. Use it directly (nnUNetv2_plan_and_preprocess -d ID), "
                           "or give convert the release it came from")


def _refuse_duplicate_id(output_dir: Path, dataset_id: int) -> None:
    """Another ``DatasetNNN_*`` folder with the same id next to the output: an error before any work."""
    parent = output_dir.parent
    if not parent.is_dir():
        return
    clashes = [p.name for p in parent.glob(f"Dataset{dataset_id:03d}_*") if p.is_dir() and p.name != output_dir.name]
    if clashes:
        # nnU-Net refuses the id while two folders share it.
        raise HecktorError(f"{parent} already holds {', '.join(clashes)} with dataset id {dataset_id}: nnU-Net refuses "
                           f"'-d {dataset_id}' while two folders share an id; choose another --dataset-id, or "
                           f"give --name {clashes[0].split('_', 1)[1]} to convert into that dataset again")


def _check_dataset_id(output_dir: Path, dataset_id: int, warnings: list[str]) -> None:
    if not re.match(rf"^Dataset{dataset_id:03d}_", output_dir.name):
        warnings.append(f"output folder {output_dir.name!r} is not named Dataset{dataset_id:03d}_<NAME>; nnU-Net "
                        f"finds datasets by that name under $nnUNet_raw")


def _write_splits(output_dir: Path, training: list[str], clinical: ClinicalTable, given, splits_file,
                  num_folds: int, seed: int, warnings: list[str], previous=None) -> dict[str, Any]:
    destination = output_dir / SPLITS_NAME
    strata = {pid: stratum_of(pid, clinical.values.get(pid)) for pid in training}
    if given is not None:
        splits, info = filter_splits(given, training, str(splits_file))
        if info["ids_dropped"]:
            warnings.append(f"split file: {info['ids_dropped']} of its {info['ids_in_file']} IDs are not among the "
                            "converted training cases and were dropped")
        if info["patients_not_in_any_val"]:
            warnings.append(f"split file: {len(info['patients_not_in_any_val'])} training cases are in no "
                            "validation fold")
    elif len(training) >= num_folds:
        splits, info = make_stable_splits(strata, num_folds, seed, previous)  # previous patients keep their folds
        if "warning" in info:
            warnings.append(info["warning"])
    else:
        destination.unlink(missing_ok=True)
        if training:
            warnings.append(f"only {len(training)} training cases: no {SPLITS_NAME} written (needs {num_folds})")
        return {"written": False}
    write_json_atomic(destination, splits)
    info.update(split_balance(splits, strata))
    info["written"] = True
    return info


def _dataset_json(name: str, num_training: int, num_test: int, options: dict[str, Any],
                  edition: str | None = None) -> dict[str, Any]:
    labels = get_edition(edition).labels
    structures = " and ".join(f"{k} ({v})" for k, v in labels.items() if v)
    return {
        "name": name,
        "description": f"HECKTOR {get_edition(edition).name} FDG-PET/CT head and neck cancer: {structures}; channel 0 "
                       "CT (HU, original grid), channel 1 PET (SUV) resampled onto the CT grid",
        "channel_names": dict(schema.CHANNEL_NAMES),
        "labels": dict(labels),
        "numTraining": num_training,
        "numTest": num_test,
        "file_ending": schema.FILE_ENDING,
        # The whole plugin works with SimpleITK's view of the geometry (the CT grid predictions are scored on).
        "overwrite_image_reader_writer": "SimpleITKIO",
        "hecktor_conversion": {"converter": f"nnunet-hecktor {__version__}", **options},
    }
