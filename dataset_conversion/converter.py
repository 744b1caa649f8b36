"""``convert_dataset``: a HECKTOR source folder -> an nnU-Net v2 raw dataset ``DatasetNNN_NAME``.

Order of work (each step's output is written atomically):

1. find the layout and the patients (:func:`~.layout.discover_layout`), merge the clinical CSVs
   (:func:`~.clinical_merge.merge_clinical_csvs`); duplicate IDs and conflicting values stop here,
   before any image is read;
2. prepare the output folder: remove ``dataset.json`` (a dataset without it is visibly unfinished),
   leftover temporary files and the outputs of patients no longer in the source;
3. convert the patients not already converted from unchanged sources with the same options
   (done-markers in ``.conversion_state/``), in parallel, with a progress bar;
4. write ``clinical.csv``, ``splits_final.json``, ``conversion_report.json`` and, last, ``dataset.json``.
"""

from __future__ import annotations

import datetime
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
from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.fileio import TMP_PREFIX, write_json_atomic

from .clinical_merge import ClinicalTable, merge_clinical_csvs, write_clinical_csv
from .cropping import CROP_MODES, DEFAULT_HEADNECK_BOX_MM
from .layout import SourceLayout, discover_layout
from .patient import (
    CROPS_DIR, IMAGES_TR, IMAGES_TS, LABELS_TR, STATE_DIR, ConversionOptions, PatientJob, convert_patient,
    remove_patient_outputs, up_to_date_entry,
)
from .resampling import INTERPOLATIONS
from .splits import filter_splits, load_splits_file, make_stratified_splits, split_balance, stratum_of

REPORT_NAME = "conversion_report.json"
CLINICAL_NAME = "clinical.csv"
SPLITS_NAME = "splits_final.json"
DATASET_JSON = "dataset.json"
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass
class ConversionSummary:
    """What :func:`convert_dataset` did.

    Attributes
    ----------
    output_dir : Path
        The dataset folder (``.../DatasetNNN_NAME``).
    layout_kind : str
        ``"release"``, ``"task"`` or ``"flat"``.
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
    report_path, splits_path : Path
        ``conversion_report.json``; ``splits_final.json`` (``None`` if too few training cases).
    seconds : float
        Wall time of the run.
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
    report_path: Path | None = None
    splits_path: Path | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def describe(self) -> str:
        """Short end-of-run summary."""
        lines = [f"{self.dataset_name}: {len(self.training)} training cases (imagesTr/labelsTr), "
                 f"{len(self.test)} without label (imagesTs), {len(self.failed)} failed, "
                 f"{len(self.resumed)} already up to date; {self.warnings} warnings; {self.seconds:.1f} s",
                 f"  dataset: {self.output_dir}", f"  report:  {self.report_path}"]
        for warning in self.dataset_warnings[:5]:
            lines.append(f"  warning: {warning}")
        if len(self.dataset_warnings) > 5:
            lines.append(f"  ... {len(self.dataset_warnings) - 5} more dataset warnings in the report")
        for pid, reason in list(self.failed.items())[:10]:
            lines.append(f"  FAILED {reason if reason.startswith(pid) else pid + ': ' + reason}")
        if len(self.failed) > 10:
            lines.append(f"  ... {len(self.failed) - 10} more failures in the report")
        return "\n".join(lines)


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


def _prepare_output(output: Path, source: Path, overwrite: bool) -> None:
    resolved = output.resolve()
    if _is_within(resolved, source):
        raise HecktorError(f"the output folder {output} is inside the source folder {source}; "
                           "the source is never written to, choose another --output")
    if _is_within(source, resolved):
        raise HecktorError(f"the source folder {source} is inside the output folder {output}")
    if output.exists():
        if not output.is_dir():
            raise HecktorError(f"output {output} exists and is not a folder")
        contents = list(output.iterdir())
        ours = (output / STATE_DIR).is_dir()
        looks_like_dataset = ours or (output / DATASET_JSON).exists() or (output / IMAGES_TR).is_dir()
        if contents and overwrite:
            if not looks_like_dataset:
                raise HecktorError(f"refusing to delete {output} for --overwrite: it does not look like an "
                                   "nnU-Net dataset folder")
            shutil.rmtree(output)
        elif contents and not ours:
            raise HecktorError(f"output folder {output} exists and was not written by 'nnunet-hecktor convert'; "
                               "pass --overwrite to replace it or choose another --output")
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
    notes = []
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
                    progress: bool = True) -> ConversionSummary:
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
        Delete an existing dataset folder and convert everything again. Without it, a re-run resumes:
        patients converted from unchanged sources with the same options are skipped.
    strict : bool
        Raise :class:`HecktorError` (non-zero exit on the command line) when any patient failed. All
        outputs, including the report, are written first.
    progress : bool
        Print what was found, a progress bar and the summary.

    Returns
    -------
    ConversionSummary

    Raises
    ------
    HecktorError
        Bad options or folders, duplicate PatientIDs, conflicting clinical values, an unusable split file,
        no patient converted, or (with ``strict``) any failed patient.
    """
    started = time.perf_counter()
    name = str(name)
    _validate_options(dataset_id, name, interpolation, crop, headneck_box_mm, num_folds, num_processes)
    output_dir = Path(output).expanduser() if output is not None else default_output_dir(int(dataset_id), name)
    layout = discover_layout(src)
    if progress:
        print(layout.describe(), flush=True)
    clinical = merge_clinical_csvs(layout.csv_files)
    given_splits = load_splits_file(splits_file) if splits_file is not None else None
    dataset_warnings = list(layout.warnings) + _clinical_notes(clinical, layout)
    _check_dataset_id(output_dir, int(dataset_id), dataset_warnings)

    _prepare_output(output_dir, layout.root, overwrite)
    stale = _remove_stale_cases(output_dir, set(layout.patients))
    if stale:
        dataset_warnings.append(f"removed the outputs of {len(stale)} patients no longer in the source: "
                                + ", ".join(stale[:20]))

    threads = 0 if num_processes <= 1 else max(1, (os.cpu_count() or 1) // num_processes)
    options = ConversionOptions(interpolation, crop, tuple(float(v) for v in headneck_box_mm), threads)
    entries: dict[str, dict[str, Any]] = {}
    jobs = []
    for pid, sources in layout.patients.items():
        job = PatientJob(pid, sources, output_dir, options, clinical.row_errors.get(pid))
        entry = None if job.clinical_error else up_to_date_entry(job)
        if entry is not None:
            entries[pid] = dict(entry, resumed=True)
        else:
            jobs.append(job)
    if progress and entries:
        print(f"  {len(entries)} patients already converted from unchanged sources: skipped "
              "(--overwrite to redo them)", flush=True)
    for entry in _run_jobs(jobs, num_processes, progress):
        entries[entry["patient_id"]] = dict(entry, resumed=False)
    entries = dict(sorted(entries.items()))
    for pid, entry in entries.items():
        entry["clinical_sources"] = clinical.sources.get(pid, [])

    training = [p for p, e in entries.items() if e["status"] == "converted" and e["destination"] == IMAGES_TR]
    test = [p for p, e in entries.items() if e["status"] == "converted" and e["destination"] == IMAGES_TS]
    failed = {p: e["error"] or "failed" for p, e in entries.items() if e["status"] == "failed"}

    write_clinical_csv(clinical, training + test, output_dir / CLINICAL_NAME)
    splits_info = _write_splits(output_dir, training, clinical, given_splits, splits_file, num_folds, seed,
                                dataset_warnings)

    summary = ConversionSummary(
        output_dir=output_dir, dataset_name=output_dir.name, layout_kind=layout.kind, training=training,
        test=test, resumed=[p for p, e in entries.items() if e.get("resumed")], failed=failed,
        warnings=len(dataset_warnings) + sum(len(e.get("warnings", [])) for e in entries.values()),
        dataset_warnings=list(dataset_warnings),
        report_path=output_dir / REPORT_NAME,
        splits_path=(output_dir / SPLITS_NAME) if splits_info.get("written") else None)
    options_json = {**options.fingerprint(), "headneck_box_mm": [float(v) for v in headneck_box_mm],
                    "num_processes": num_processes, "overwrite": overwrite, "strict": strict,
                    "splits_file": None if splits_file is None else str(splits_file), "num_folds": num_folds,
                    "seed": seed}
    summary.seconds = time.perf_counter() - started
    report = {
        "tool": "nnunet-hecktor convert", "version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "source": str(layout.root), "output": str(output_dir), "options": options_json,
        "layout": {"kind": layout.kind, "task_folders": {str(k): str(v) for k, v in layout.task_folders.items()},
                   "csv_files": [str(c.path) for c in layout.csv_files],
                   "ignored": [str(p) for p in layout.ignored]},
        "summary": {"patients": len(entries), "training": len(training), "test": len(test), "failed": len(failed),
                    "resumed": len(summary.resumed), "warnings": summary.warnings,
                    "seconds": round(summary.seconds, 2)},
        "warnings": dataset_warnings, "failures": failed, "splits": splits_info, "patients": entries,
    }
    write_json_atomic(summary.report_path, report)
    if not training and not test:
        raise HecktorError(f"no patient could be converted ({len(failed)} failed); see {summary.report_path}")
    write_json_atomic(output_dir / DATASET_JSON, _dataset_json(name, len(training), len(test), options_json))
    if progress:
        print(summary.describe(), flush=True)
    if strict and failed:
        listing = "; ".join(list(failed.values())[:5]) + (" ..." if len(failed) > 5 else "")
        raise HecktorError(f"{len(failed)} patients failed (--strict): {listing} (report: {summary.report_path})")
    return summary


def _check_dataset_id(output_dir: Path, dataset_id: int, warnings: list[str]) -> None:
    parent = output_dir.parent
    if not parent.is_dir():
        return
    clashes = [p.name for p in parent.glob(f"Dataset{dataset_id:03d}_*") if p.is_dir() and p.name != output_dir.name]
    if clashes:
        warnings.append(f"{parent} also holds {', '.join(clashes)}: nnU-Net refuses '-d {dataset_id}' while two "
                        "folders share the id")
    if not re.match(rf"^Dataset{dataset_id:03d}_", output_dir.name):
        warnings.append(f"output folder {output_dir.name!r} is not named Dataset{dataset_id:03d}_<NAME>; nnU-Net "
                        f"finds datasets by that name under $nnUNet_raw")


def _write_splits(output_dir: Path, training: list[str], clinical: ClinicalTable, given, splits_file,
                  num_folds: int, seed: int, warnings: list[str]) -> dict[str, Any]:
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
        splits = make_stratified_splits(strata, num_folds, seed)
        info = {"source": "stratified by centre, HPV Status and Relapse", "num_folds": num_folds, "seed": seed}
    else:
        destination.unlink(missing_ok=True)
        if training:
            warnings.append(f"only {len(training)} training cases: no {SPLITS_NAME} written (needs {num_folds})")
        return {"written": False}
    write_json_atomic(destination, splits)
    info.update(split_balance(splits, strata))
    info["written"] = True
    return info


def _dataset_json(name: str, num_training: int, num_test: int, options: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "description": "HECKTOR FDG-PET/CT head and neck cancer: GTVp (1) and GTVn (2); channel 0 CT (HU, "
                       "original grid), channel 1 PET (SUV) resampled onto the CT grid",
        "channel_names": dict(schema.CHANNEL_NAMES),
        "labels": dict(schema.LABELS),
        "numTraining": num_training,
        "numTest": num_test,
        "file_ending": schema.FILE_ENDING,
        # The whole plugin works with SimpleITK's view of the geometry (the CT grid predictions are scored on).
        "overwrite_image_reader_writer": "SimpleITKIO",
        "hecktor_conversion": {"converter": f"nnunet-hecktor {__version__}", **options},
    }
