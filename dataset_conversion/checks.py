"""Checks of the converter: per image (dimensionality, finite voxels, label values and grid, PET units, CT
offset) and over the discovered patients (IDs that differ only in case, one scan under two IDs).

Each per-image check raises :class:`~nnunet_hecktor.errors.InputDataError` naming patient, file and
problem, or returns warnings/statistics for the conversion report. Label values: 0 background, 1 GTVp,
2 GTVn.

Alerts
    Some warnings mean that a patient's data is probably wrong in a way that changes what is learnt or
    predicted, without failing the patient: the PET looks like Bq/mL, the PET covers a small part of the
    CT, the CT looks stored as HU + 1024. A report entry keeps them under ``"alerts"`` (kind ->
    message, :data:`ALERT_TITLES`) besides its ``"warnings"``; :func:`patient_alert_lines` sums them up
    for the console (one line per kind, naming the patients) and :func:`strict_events` lists everything
    ``convert --strict`` refuses.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from nnunet_hecktor import schema
from nnunet_hecktor.errors import InputDataError
from nnunet_hecktor.metrics.components import bounding_box, label_components

from .geometry import (
    LABEL_GRID_TOLERANCE_VOXELS,
    ROUNDOFF_TOLERANCE_VOXELS,
    GridGeometry,
    describe_grid_difference,
    grid_offset_voxels,
)

#: A PET whose 99th percentile exceeds this is probably in Bq/mL rather than SUV: SUV in the head and neck,
#: brain included, stays well below 100, while activity concentrations are in the thousands.
PET_SUV_P99_LIMIT: float = 100.0
#: A CT whose smallest value is >= 0 and whose 99th percentile is >= this is taken as stored in HU + 1024
#: (no rescale intercept): in HU, air is about -1000 and fat about -100, so a head-and-neck CT in HU always
#: has negative voxels, while soft tissue (about 40 HU) stored with the offset is above 1000.
CT_OFFSET_P99_LIMIT: float = 900.0
_LABEL_NAMES = {value: name for name, value in schema.LABELS.items()}

#: Alert kinds of a report entry -> what they mean (the console line per kind starts with it).
ALERT_TITLES: dict[str, str] = {
    "pet_units": "PET probably in Bq/mL, not SUV (99th percentile > 100; NOT rescaled)",
    "pet_coverage": "PET covers only a small part of the CT grid (the PET channel is 0 elsewhere)",
    "ct_offset": "CT probably stored as HU + 1024 without rescale (no negative voxel; NOT shifted)",
}
#: Patients named per alert kind in the console line (the report has them all).
_ALERT_PATIENTS_SHOWN = 10
#: Read size when hashing source files.
_HASH_CHUNK = 1 << 20


def check_scalar_3d(image, patient: str, path: Path, what: str) -> None:
    """Reject images that are not 3-D with one component per voxel."""
    if image.GetDimension() != 3:
        raise InputDataError(f"{what} must be a 3-D image, got {image.GetDimension()}-D", patient, path)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputDataError(f"{what} must have one value per voxel, got "
                             f"{image.GetNumberOfComponentsPerPixel()} components", patient, path)
    if min(image.GetSize()) < 1:
        raise InputDataError(f"{what} is empty (size {list(image.GetSize())})", patient, path)


def check_finite(array: np.ndarray, patient: str, path: Path, what: str) -> None:
    """Reject NaN/inf voxels (integer images cannot hold them and are not scanned)."""
    if not np.issubdtype(array.dtype, np.floating):
        return
    finite = np.isfinite(array)
    if not finite.all():
        n_nan = int(np.isnan(array).sum())
        n_inf = int(array.size - finite.sum()) - n_nan
        raise InputDataError(f"{what} has non-finite voxels ({n_nan} NaN, {n_inf} inf)", patient, path)


def pet_statistics(pet_array: np.ndarray) -> dict[str, float]:
    """Min, max and 99th percentile of the PET on its own grid (its units: SUV expected)."""
    return {"min": float(pet_array.min()), "max": float(pet_array.max()),
            "p99": float(np.percentile(pet_array, 99))}


def pet_unit_warning(stats: dict[str, float]) -> str | None:
    """A warning when the PET looks like Bq/mL instead of SUV (it is never rescaled)."""
    if stats["p99"] > PET_SUV_P99_LIMIT:
        return (f"PET 99th percentile is {stats['p99']:.4g} (> {PET_SUV_P99_LIMIT:g}): probably in Bq/mL, not SUV; "
                "it was NOT rescaled, convert it to SUV (body weight) before training")
    return None


def ct_offset_warning(ct_array: np.ndarray) -> str | None:
    """A warning when the CT looks stored as HU + 1024 without a rescale (see :data:`CT_OFFSET_P99_LIMIT`).

    The CT is never shifted (its voxels are copied unchanged); the message says what to do. Only the
    minimum is computed for an ordinary CT (with negative voxels); the percentile only when it is >= 0.
    """
    low = float(ct_array.min())
    if low < 0:
        return None
    # A strided sample is enough for a percentile of a whole volume and keeps this cheap on 512x512x300.
    sample = np.asarray(ct_array[::2, ::4, ::4], dtype=np.float32)
    p1, p99 = (float(v) for v in np.percentile(sample, (1, 99)))
    if p99 < CT_OFFSET_P99_LIMIT:
        return None
    return (f"CT has no negative voxel (minimum {low:g}, 1st percentile {p1:g}, 99th {p99:g}): probably stored as "
            "HU + 1024 without a rescale intercept (air should be near -1000 HU); it was NOT shifted: subtract "
            "1024 (or set the rescale intercept to -1024) in the source, otherwise its CT channel is 1024 above "
            "every other patient's")


def check_label_values(label_array: np.ndarray, patient: str, path: Path) -> np.ndarray:
    """Check that a label holds only 0, 1, 2 and return it as a new uint8 array.

    Float labels are accepted when every value is one of 0.0, 1.0, 2.0.
    """
    allowed = sorted(schema.LABELS.values())
    if np.issubdtype(label_array.dtype, np.floating):
        finite = np.isfinite(label_array)
        bad = ~finite | ((label_array != 0) & (label_array != 1) & (label_array != 2))
    elif np.issubdtype(label_array.dtype, np.integer):
        low, high = label_array.min(), label_array.max()
        if low >= 0 and high <= max(allowed):
            return np.array(label_array, dtype=np.uint8)  # a copy: the input may be a view of a SimpleITK image
        bad = (label_array < 0) | (label_array > max(allowed))
    else:
        raise InputDataError(f"label has unsupported pixel type {label_array.dtype}", patient, path)
    if bad.any():
        values = np.unique(label_array[bad])
        shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values[:8].tolist())
        more = f" and {values.size - 8} more" if values.size > 8 else ""
        raise InputDataError(f"label values {{{shown}{more}}} outside {{0, 1, 2}} ({int(bad.sum())} voxels)",
                             patient, path)
    return np.array(label_array, dtype=np.uint8)


def check_label_grid(label_geometry: GridGeometry, ct_geometry: GridGeometry, patient: str, path: Path) -> str | None:
    """Compare the label grid with the CT grid.

    Returns
    -------
    str or None
        ``None`` when identical; a warning text when they differ by less than
        :data:`~.geometry.LABEL_GRID_TOLERANCE_VOXELS` (every voxel centre, the far corner included,
        that close to its CT counterpart): the CT geometry is then copied onto the label (voxels
        unchanged). Below :data:`~.geometry.ROUNDOFF_TOLERANCE_VOXELS` the text calls it round-off.

    Raises
    ------
    InputDataError
        Other size, or spacing, origin or direction off by more: the label does not belong to this CT.
    """
    if label_geometry == ct_geometry:
        return None
    offset = grid_offset_voxels(ct_geometry, label_geometry)
    difference = describe_grid_difference(ct_geometry, label_geometry)
    if offset > LABEL_GRID_TOLERANCE_VOXELS:
        shown = "different size" if offset == float("inf") else f"up to {offset:.3g} voxel apart"
        raise InputDataError(f"label grid differs from the CT grid ({difference}; voxel centres {shown}, "
                             f"accepted below {LABEL_GRID_TOLERANCE_VOXELS:g} voxel); the label must be on the "
                             "CT grid (labels are never resampled)", patient, path)
    if offset <= ROUNDOFF_TOLERANCE_VOXELS:
        return (f"label grid differed from the CT grid only by round-off (max {offset:.2g} voxel; {difference}); "
                "snapped onto the CT grid")
    return (f"label grid differs from the CT grid by up to {offset:.3g} voxel at the far corner ({difference}; "
            f"accepted below {LABEL_GRID_TOLERANCE_VOXELS:g} voxel): the CT geometry was copied onto the label "
            "(label voxels unchanged, not resampled)")


def label_statistics(label_image, voxel_volume_ml: float) -> dict[str, dict[str, Any]]:
    """Volume (mL) and number of 26-connected components of each foreground label (GTVp, GTVn)."""
    import SimpleITK as sitk

    array = sitk.GetArrayViewFromImage(label_image)
    counts = label_voxel_counts(array)
    stats: dict[str, dict[str, Any]] = {}
    for value in (schema.GTVP, schema.GTVN):
        components = 0
        if counts[value]:
            # Components inside the label's bounding box only: much cheaper on 512x512x200 volumes.
            box = bounding_box(array == value)
            components = label_components(array[box] == value, 26)[1]
        stats[_LABEL_NAMES[value]] = {"voxels": int(counts[value]),
                                      "volume_ml": round(float(counts[value]) * voxel_volume_ml, 4),
                                      "components": components}
    return stats


def label_voxel_counts(array: np.ndarray) -> dict[int, int]:
    """Voxels of GTVp (1) and GTVn (2). (``np.bincount`` would cast a 512x512x200 uint8 volume to int64.)"""
    return {value: int(np.count_nonzero(array == value)) for value in (schema.GTVP, schema.GTVN)}


# -- alerts: the console summary and --strict -----------------------------------------------------------------

def patient_alert_lines(entries: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per alert kind of the report entries: ``N patients: <title>: PID, PID, ...``.

    Parameters
    ----------
    entries : mapping
        PatientID -> conversion-report entry (its ``"alerts"``: kind -> message; entries without are fine).
    """
    by_kind: dict[str, list[str]] = {}
    for pid, entry in entries.items():
        for kind in entry.get("alerts") or {}:
            by_kind.setdefault(kind, []).append(pid)
    lines = []
    for kind, pids in by_kind.items():
        shown = ", ".join(pids[:_ALERT_PATIENTS_SHOWN]) + (" ..." if len(pids) > _ALERT_PATIENTS_SHOWN else "")
        lines.append(f"{len(pids)} patients: {ALERT_TITLES.get(kind, kind)}: {shown} (details per patient in the "
                     "report)")
    return lines


def strict_events(entries: Mapping[str, Mapping[str, Any]], *dataset_alerts: Iterable[str]) -> list[str]:
    """Everything ``convert --strict`` refuses besides failed patients, one line each.

    Parameters
    ----------
    entries : mapping
        PatientID -> conversion-report entry (their alerts, see :func:`patient_alert_lines`).
    *dataset_alerts : iterable of str
        Dataset-level alert lines, e.g. ``ClinicalTable.alerts`` (clinical values lost, per column) and
        :func:`source_alerts` (IDs that differ only in case, one scan under two IDs).
    """
    lines = [line for alerts in dataset_alerts for line in alerts]
    return lines + patient_alert_lines(entries)


def case_variant_patients(patients: Mapping[str, Any]) -> list[str]:
    """One line per group of discovered PatientIDs that differ only in case (``CHUP-001``, ``chup-001``).

    Such IDs are converted as different patients, so the clinical row of one (its targets) goes to the
    other, or one becomes an unlabelled duplicate of the other.

    Parameters
    ----------
    patients : mapping
        PatientID -> :class:`~.layout.PatientSources` (``SourceLayout.patients``).
    """
    groups: dict[str, list[str]] = {}
    for pid in patients:
        groups.setdefault(pid.casefold(), []).append(pid)
    lines = []
    for variants in groups.values():
        if len(variants) < 2:
            continue
        where = ", ".join(f"{v!r} ({_folders_of(patients[v])})" for v in sorted(variants))
        lines.append(f"patient IDs that differ only in case: {where}; converted as different patients: "
                     "spell the ID alike in every task folder and CSV")
    return lines


def _folders_of(sources: Any) -> str:
    return ", ".join(f"Task {c.task}" if c.task is not None else str(c.folder) for c in sources.copies)


def duplicate_scans(patients: Mapping[str, Any], roles: tuple[str, ...] = ("ct", "pet")) -> list[str]:
    """One line per scan file used by two or more PatientIDs: the same file (a link), or identical bytes.

    One scan under two IDs ends up in two folds (training and validation at once: leakage), and a PET
    shared by two patients gives one of them the other's uptake. Files are compared by identity
    (device and inode), then by size, and only files of equal size are hashed (SHA-256), so an ordinary
    release costs one ``stat`` per file. Copies of one patient in several task folders are expected and
    not reported. A scan re-encoded under another name (``.nii`` vs ``.nii.gz``) is not detected.

    Parameters
    ----------
    patients : mapping
        PatientID -> :class:`~.layout.PatientSources` (the file of each role used for the patient).
    roles : tuple of str
        ``"ct"``, ``"pet"`` (and/or ``"label"``).
    """
    lines = []
    for role in roles:
        by_size: dict[int, list[tuple[str, Path, tuple[int, int]]]] = {}
        for pid, sources in patients.items():
            path = getattr(sources, role, None)
            if path is None:
                continue
            try:
                stat = os.stat(path)
            except OSError:
                continue  # unreadable files are reported by the conversion of that patient
            by_size.setdefault(stat.st_size, []).append((pid, Path(path), (stat.st_dev, stat.st_ino)))
        for group in by_size.values():
            if len({pid for pid, _, _ in group}) < 2:
                continue
            same: dict[Any, list[tuple[str, Path]]] = {}
            for pid, path, identity in group:
                key = ("file", identity) if any(i == identity for p, _, i in group if p != pid) else _digest(path)
                if key is not None:
                    same.setdefault(key, []).append((pid, path))
            for key, members in same.items():
                if len({pid for pid, _ in members}) < 2:
                    continue
                how = "the same file" if key[0] == "file" else "identical content"
                listed = ", ".join(f"{pid} ({path})" for pid, path in members)
                what = {"ct": "CT", "pet": "PET", "label": "label"}.get(role, role)
                lines.append(f"one {what} scan under {len({p for p, _ in members})} patient IDs ({how}): {listed}; "
                             "they may land in different folds (training and validation at once): remove the "
                             "duplicate or give it its patient's files")
    return lines


def _digest(path: Path) -> tuple[str, str] | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return ("sha256", digest.hexdigest())


def source_alerts(patients: Mapping[str, Any]) -> list[str]:
    """:func:`case_variant_patients` and :func:`duplicate_scans` of the discovered patients (dataset-level
    alerts: warnings, and refused by ``--strict``)."""
    return case_variant_patients(patients) + duplicate_scans(patients)
