"""Conversion of one patient: read, check, crop, resample, write; and its done-marker for resuming.

:func:`convert_patient` is a top-level function taking one picklable :class:`PatientJob`, so it can run
in ``multiprocessing`` workers started with ``spawn``. It never raises for bad input: the returned
report entry has ``status`` ``"converted"`` or ``"failed"`` with the reason.

Output of a patient (nnU-Net raw layout, ``<PID>`` = PatientID):

- labelled: ``imagesTr/<PID>_0000.nii.gz`` (CT), ``imagesTr/<PID>_0001.nii.gz`` (PET on the CT grid),
  ``labelsTr/<PID>.nii.gz`` (uint8 {0, 1, 2});
- unlabelled: ``imagesTs/<PID>_0000.nii.gz``, ``imagesTs/<PID>_0001.nii.gz``;
- always ``crops/<PID>.json`` (:class:`~.cropping.CropRecord`) and the done-marker
  ``.conversion_state/<PID>.json`` (source sizes and mtimes, options, the report entry), written last.

The images are written under temporary names and renamed together at the end, then the marker is
written: a patient without a valid marker is converted again by the next run.
"""

from __future__ import annotations

import contextlib
import filecmp
import json
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_hecktor import schema
from nnunet_hecktor.editions import get_edition
from nnunet_hecktor.errors import InputDataError
from nnunet_hecktor.fileio import atomic_path, read_image, write_json_atomic
from nnunet_hecktor.image_integrity import check_image_file

from .checks import (
    check_finite,
    check_label_grid,
    check_label_values,
    check_scalar_3d,
    ct_offset_warning,
    label_statistics,
    label_voxel_counts,
    pet_statistics,
    pet_unit_warning,
)
from .cropping import DEFAULT_HEADNECK_BOX_MM, apply_crop, compute_crop
from .geometry import GridGeometry, covered_index_box, describe_grid_difference, geometry_record
from .layout import PatientFiles, PatientSources
from .resampling import resample_pet_to_ct
from .suv import SuvFactor, apply_suv_factor

#: Bumped when the output of a patient changes for the same input and options (invalidates done-markers).
#: 2: report entries carry ``"alerts"``; labels up to LABEL_GRID_TOLERANCE_VOXELS off the CT grid accepted.
FORMAT_VERSION = 2

IMAGES_TR, LABELS_TR, IMAGES_TS = "imagesTr", "labelsTr", "imagesTs"
CROPS_DIR = "crops"
STATE_DIR = ".conversion_state"
CT_CHANNEL, PET_CHANNEL = "0000", "0001"
#: Below this fraction of the CT grid covered by PET, the report warns (the rest of the PET channel is 0).
MIN_PET_COVERAGE = 0.5


@dataclass(frozen=True)
class ConversionOptions:
    """Options that change what a patient's output looks like (they are part of the done-marker).

    ``interpolation``: ``"linear"`` or ``"bspline"``; ``crop``: ``None``, ``"overlap"`` or ``"headneck"``;
    ``headneck_box_mm``: (x, y, z) in mm; ``threads``: SimpleITK threads per process (0 = SimpleITK's default);
    ``edition``: the HECKTOR edition whose contract applies (its label values: 2021 holds GTVp only).
    """

    interpolation: str = "linear"
    crop: str | None = None
    headneck_box_mm: tuple[float, float, float] = DEFAULT_HEADNECK_BOX_MM
    threads: int = 0
    edition: str | None = None

    def fingerprint(self) -> dict[str, Any]:
        data: dict[str, Any] = {"interpolation": self.interpolation, "crop": self.crop}
        if self.crop == "headneck":
            data["headneck_box_mm"] = [float(v) for v in self.headneck_box_mm]
        label_values = list(get_edition(self.edition).label_values)
        if label_values != sorted(schema.LABELS.values()):  # only then: earlier done-markers stay valid
            data["label_values"] = label_values
        return data


@dataclass
class PatientJob:
    """Everything a worker needs to convert one patient (picklable).

    ``failure``: a reason decided before any image is read (``--strict`` and a Task 1 patient without
    label); the patient is then reported failed with it and its outputs are removed. ``suv_factor``: the
    Bq/mL -> SUV factor to apply to the PET (:mod:`.suv`), None to keep its values.
    """

    patient_id: str
    sources: PatientSources
    output_dir: Path
    options: ConversionOptions
    failure: str | None = None
    suv_factor: SuvFactor | None = None


@dataclass
class _Outputs:
    ct: Path
    pet: Path
    label: Path | None
    crop: Path
    marker: Path
    destination: str

    def images(self) -> list[Path]:
        return [p for p in (self.ct, self.pet, self.label) if p is not None]


def output_paths(output_dir: Path, patient_id: str, labelled: bool) -> _Outputs:
    """Where a patient's files go in the dataset folder."""
    folder = output_dir / (IMAGES_TR if labelled else IMAGES_TS)
    return _Outputs(
        ct=folder / f"{patient_id}_{CT_CHANNEL}{schema.FILE_ENDING}",
        pet=folder / f"{patient_id}_{PET_CHANNEL}{schema.FILE_ENDING}",
        label=(output_dir / LABELS_TR / f"{patient_id}{schema.FILE_ENDING}") if labelled else None,
        crop=output_dir / CROPS_DIR / f"{patient_id}.json",
        marker=output_dir / STATE_DIR / f"{patient_id}.json",
        destination=IMAGES_TR if labelled else IMAGES_TS,
    )


def remove_patient_outputs(output_dir: Path, patient_id: str) -> None:
    """Delete every output of a patient, marker first (so a crash in between leaves it 'not done')."""
    for labelled in (True, False):
        paths = output_paths(output_dir, patient_id, labelled)
        for path in (paths.marker, paths.crop, *paths.images()):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _file_state(path: Path) -> list[Any]:
    try:
        stat = path.stat()
    except OSError:
        return [str(path), None, None]
    return [str(path), stat.st_size, stat.st_mtime_ns]


def source_fingerprint(job: PatientJob) -> dict[str, Any]:
    """What the output of a patient depends on: every source file's size and mtime, options, format."""
    data = {"format": FORMAT_VERSION, "options": job.options.fingerprint(),
            "files": sorted(_file_state(p) for p in job.sources.all_files())}
    if job.suv_factor is not None:
        data["suv_factor"] = job.suv_factor.factor
    return data


def up_to_date_entry(job: PatientJob) -> dict[str, Any] | None:
    """The stored report entry when the patient was converted from unchanged sources with the same options."""
    labelled = job.sources.has_label
    paths = output_paths(job.output_dir, job.patient_id, labelled)
    try:
        marker = json.loads(paths.marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("fingerprint") != source_fingerprint(job):
        return None
    if not all(p.is_file() for p in (*paths.images(), paths.crop)):
        return None
    entry = marker.get("report")
    return entry if isinstance(entry, dict) and entry.get("status") == "converted" else None


def convert_patient(job: PatientJob) -> dict[str, Any]:
    """Convert one patient (worker entry point). Returns its conversion-report entry; never raises for bad input."""
    import SimpleITK as sitk

    if job.options.threads:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(job.options.threads)
    start = time.perf_counter()
    entry: dict[str, Any] = {"patient_id": job.patient_id, "status": "failed", "destination": None,
                             "tasks": job.sources.tasks, "sources": _source_listing(job.sources),
                             "warnings": [], "alerts": {}, "error": None}
    try:
        fingerprint = source_fingerprint(job)
        remove_patient_outputs(job.output_dir, job.patient_id)
        if job.failure:
            raise InputDataError(job.failure, job.patient_id)
        _convert(job, entry)
        entry["status"] = "converted"
        entry["seconds"] = round(time.perf_counter() - start, 3)
        paths = output_paths(job.output_dir, job.patient_id, job.sources.has_label)
        write_json_atomic(paths.marker, {"fingerprint": fingerprint, "report": entry})
    except InputDataError as exc:
        entry["status"], entry["error"] = "failed", str(exc)
    except MemoryError:
        entry["status"], entry["error"] = "failed", f"{job.patient_id}: out of memory while converting"
    except OSError as exc:  # unreadable source, full disk, ...: the system's reason is the whole story
        where = f"{exc.filename}: " if exc.filename else ""
        entry["status"], entry["error"] = "failed", f"{job.patient_id}: {where}{exc.strerror or exc}"
    except Exception as exc:  # noqa: BLE001 - a per-patient failure must not stop the other patients
        entry["status"] = "failed"
        entry["error"] = f"{job.patient_id}: unexpected error: {type(exc).__name__}: {exc}"
        entry["traceback"] = traceback.format_exc()
    if entry["status"] == "failed":
        entry["seconds"] = round(time.perf_counter() - start, 3)
        with contextlib.suppress(OSError):
            remove_patient_outputs(job.output_dir, job.patient_id)
    return entry


def _source_listing(sources: PatientSources) -> dict[str, Any]:
    listing: dict[str, Any] = {role: (str(getattr(sources, role)) if getattr(sources, role) else None)
                               for role in ("ct", "pet", "label", "ct_planning", "rtdose")}
    others = {role: [str(p) for _, p in sources.other_copies(role)] for role in ("ct", "pet", "label")}
    listing["other_copies"] = {k: v for k, v in others.items() if v}
    return listing


def _require(sources: PatientSources, role: str, what: str, patient: str) -> Path:
    path = getattr(sources, role)
    if path is None:
        folders = ", ".join(str(c.folder) for c in sources.copies)
        suffix = schema.MODALITY_SUFFIXES["CT" if role == "ct" else "PET"]
        raise InputDataError(f"{what} file is missing (no {patient}{suffix}{schema.FILE_ENDING} in {folders})",
                             patient)
    return path


def _task_name(copy: PatientFiles) -> str:
    return f"Task {copy.task} folder" if copy.task is not None else f"folder {copy.folder}"


def _compare_copies(sources: PatientSources, role: str, used_image, patient: str) -> list[str]:
    """Warnings for copies of a scan in other task folders that differ from the one used.

    Policy: the copy in the preferred folder (the one holding the label: Task 1) is used, because the
    label and the scored predictions live on its CT grid; a differing copy is reported, not an error.
    """
    import SimpleITK as sitk

    used_path = getattr(sources, role)
    used_copy = next(c for c in sources.copies if getattr(c, role) == used_path)
    warnings = []
    for copy, path in sources.other_copies(role):
        if filecmp.cmp(used_path, path, shallow=False):
            continue
        what = {"ct": "CT", "pet": "PET", "label": "label"}[role]
        try:
            other = sitk.ReadImage(str(path))
            difference = describe_grid_difference(GridGeometry.of(used_image), GridGeometry.of(other))
            if difference == "identical" and other.GetPixelID() == used_image.GetPixelID() and np.array_equal(
                    sitk.GetArrayViewFromImage(other), sitk.GetArrayViewFromImage(used_image)):
                continue  # same image, different file encoding
            if difference == "identical":
                difference = "voxel values differ"
        except RuntimeError:
            difference = "that copy is unreadable"
        warnings.append(f"{what} in the {_task_name(copy)} ({path}) differs from the copy used from the "
                        f"{_task_name(used_copy)} ({difference}); using the {_task_name(used_copy)} copy")
    return warnings


def _alert(entry: dict[str, Any], kind: str, message: str) -> None:
    """A warning that is also an alert (``checks.ALERT_TITLES``): on the console summary, refused by --strict."""
    entry["warnings"].append(message)
    entry["alerts"][kind] = message


def _convert(job: PatientJob, entry: dict[str, Any]) -> None:
    import SimpleITK as sitk

    pid, sources, options = job.patient_id, job.sources, job.options
    edition = get_edition(options.edition)
    warnings: list[str] = entry["warnings"]
    if not edition.patient_id_pattern.match(pid):
        warnings.append(f"PatientID {pid!r} does not match {edition.patient_id_form}")
    ct_path = _require(sources, "ct", "CT", pid)
    pet_path = _require(sources, "pet", "PET", pid)

    for path, what in ((ct_path, "CT"), (pet_path, "PET"), (sources.label, "label")):
        if path is not None:
            check_image_file(path, pid, what)  # ITK hides truncation and NaN/inf in NIfTI files
    ct = read_image(ct_path, pid, "CT")
    check_scalar_3d(ct, pid, ct_path, "CT")
    check_finite(sitk.GetArrayViewFromImage(ct), pid, ct_path, "CT")
    if (warning := ct_offset_warning(sitk.GetArrayViewFromImage(ct))) is not None:
        _alert(entry, "ct_offset", warning)
    pet = read_image(pet_path, pid, "PET")
    check_scalar_3d(pet, pid, pet_path, "PET")
    pet_array = sitk.GetArrayViewFromImage(pet)
    check_finite(pet_array, pid, pet_path, "PET")
    entry["ct"] = geometry_record(ct)
    entry["pet"] = geometry_record(pet)
    stats = pet_statistics(pet_array)
    pet_copy_warnings = _compare_copies(sources, "pet", pet, pid)  # the file's values, before any SUV factor
    if job.suv_factor is not None:
        # Bq/mL -> SUV on a new image: the source file is never modified.
        pet = apply_suv_factor(pet, job.suv_factor, stats["p99"], pet_path)
        pet_array = sitk.GetArrayViewFromImage(pet)
        entry["suv_conversion"] = {**job.suv_factor.to_json(), "pet_p99_before": stats["p99"]}
        stats = pet_statistics(pet_array)
    entry["pet_statistics"] = stats
    if (warning := pet_unit_warning(stats)) is not None:
        _alert(entry, "pet_units", warning)
        entry["pet_units_suspect"] = warning
    warnings.extend(_compare_copies(sources, "ct", ct, pid))
    warnings.extend(pet_copy_warnings)

    ct_geometry = GridGeometry.of(ct)
    label_array = None
    label_path = sources.label
    if label_path is not None:
        label = read_image(label_path, pid, "label")
        check_scalar_3d(label, pid, label_path, "label")
        entry["label"] = geometry_record(label)
        snapped = check_label_grid(GridGeometry.of(label), ct_geometry, pid, label_path)
        label_array = check_label_values(sitk.GetArrayViewFromImage(label), pid, label_path)
        if int(label_array.max(initial=0)) > max(edition.label_values):
            raise InputDataError(f"label value {int(label_array.max())} in a HECKTOR {edition.name} label, whose values "
                                 f"are {set(edition.label_values)} ({', '.join(edition.labels)})", pid, label_path)
        if not snapped:
            entry["label_handling"] = "unchanged grid"
        elif "round-off" in snapped:
            entry["label_handling"] = "snapped onto the CT grid (round-off)"
        else:
            entry["label_handling"] = "CT geometry copied onto the label (less than 0.1 voxel off)"
        if snapped:
            warnings.append(snapped)
        warnings.extend(_compare_copies(sources, "label", label, pid))
        del label

    record = compute_crop(pid, ct, pet, options.crop, options.headneck_box_mm)
    target = record.cropped_ct
    coverage_box = covered_index_box(target, GridGeometry.of(pet))
    coverage = 0.0 if coverage_box is None else float(
        np.prod(np.subtract(coverage_box[1], coverage_box[0])) / np.prod(target.size))
    if coverage == 0.0:
        raise InputDataError("PET and CT do not overlap physically (the PET channel would be all 0)", pid, pet_path)
    if coverage < MIN_PET_COVERAGE:
        _alert(entry, "pet_coverage", f"PET covers only {coverage:.0%} of the CT grid; the PET channel is 0 elsewhere")

    pet_out = resample_pet_to_ct(pet, target, options.interpolation)
    del pet, pet_array
    entry["resampling"] = {
        "pet": f"{options.interpolation} interpolation from the PET grid onto the "
               f"{'cropped ' if not record.is_full else ''}CT grid, outside value 0, float32",
        "pet_coverage_fraction": round(coverage, 4),
        "ct": "not resampled (voxels unchanged)" + ("" if record.is_full else ", cropped"),
        "label": "not resampled" + ("" if record.is_full else ", cropped"),
    }
    entry["crop"] = record.to_json()

    label_out = None
    if label_array is not None:
        full_stats = label_voxel_counts(label_array)
        label_out = sitk.GetImageFromArray(label_array)
        ct_geometry.apply_to(label_out)
        del label_array
        label_out = apply_crop(label_out, record, "label")
        entry["labels"] = label_statistics(label_out, target.voxel_volume_ml)
        for name, value in (("GTVp", schema.GTVP), ("GTVn", schema.GTVN)):
            lost = int(full_stats[value]) - entry["labels"][name]["voxels"]
            if lost:
                warnings.append(f"the crop cut off {lost * target.voxel_volume_ml:.3g} mL of {name} "
                                f"({lost} voxels) outside the {record.mode} box")

    outputs = output_paths(job.output_dir, pid, label_out is not None)
    ct_out = None if record.is_full else apply_crop(ct, record, "CT")
    _write_outputs(ct_path, ct if ct_out is None else ct_out, ct_out is None, pet_out, label_out, outputs)
    write_json_atomic(outputs.crop, record.to_json())
    entry["destination"] = outputs.destination
    entry["outputs"] = [str(p.relative_to(job.output_dir)) for p in (*outputs.images(), outputs.crop)]


def _write_outputs(ct_source: Path, ct_image, ct_unchanged: bool, pet_image, label_image, outputs: _Outputs) -> None:
    """Write the images under temporary names, then rename them all (no half-written file is visible).

    The renames run in reverse order of entry: CT, then PET, then the label. A case counts for nnU-Net
    through its label, so a kill between two renames never leaves a label without its images.
    """
    import SimpleITK as sitk

    with contextlib.ExitStack() as stack:
        label_tmp = None
        if label_image is not None:
            assert outputs.label is not None  # output_paths names a label file for every labelled case
            label_tmp = stack.enter_context(atomic_path(outputs.label))
        pet_tmp = stack.enter_context(atomic_path(outputs.pet))
        ct_tmp = stack.enter_context(atomic_path(outputs.ct))
        if ct_unchanged and ct_source.name.lower().endswith(schema.FILE_ENDING):
            # Uncropped CT already in .nii.gz: copy the file, so voxels and header stay exactly as released
            # (and gzip, the slowest step, is not redone).
            shutil.copyfile(ct_source, ct_tmp)
        else:
            sitk.WriteImage(ct_image, str(ct_tmp), True)
        sitk.WriteImage(pet_image, str(pet_tmp), True)
        if label_tmp is not None:
            sitk.WriteImage(label_image, str(label_tmp), True)


def read_marker(output_dir: Path, patient_id: str) -> dict[str, Any] | None:
    """The stored done-marker of a patient (``None`` if absent or unreadable)."""
    path = output_paths(output_dir, patient_id, True).marker
    with contextlib.suppress(OSError, ValueError):
        return json.loads(path.read_text(encoding="utf-8"))
    return None


__all__ = ["ConversionOptions", "PatientJob", "convert_patient", "output_paths", "remove_patient_outputs",
           "up_to_date_entry", "source_fingerprint", "FORMAT_VERSION", "read_marker"]
