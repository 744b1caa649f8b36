"""Find the patients, their images and the clinical CSVs in a HECKTOR source folder.

Three layouts are recognised (the 2025 release ships the first):

``release``
    the 2025 release root: ``<root>/Task 1/<PID>/<PID>__CT.nii.gz`` ... with one folder per task,
    named ``Task 1`` (with a space) or ``Task_1`` / ``Task-1`` / ``Task1``.
``task``
    a single task folder: ``<root>/<PID>/<PID>__CT.nii.gz``.
``flat``
    all files side by side: ``<root>/<PID>__CT.nii.gz``, ``<root>/<PID>__PT.nii.gz``, ``<root>/<PID>.nii.gz``.

Images are recognised by name: ``<PID>__CT``, ``<PID>__PT``, ``<PID>__CTPlanning``, ``<PID>__RTDOSE`` and the
label ``<PID>`` with the extension ``.nii.gz``, ``.nii`` or ``.mha``. The PatientID is taken from the file name,
never from the folder name. Clinical CSVs are found by name in release and task folders
(``HECKTOR_*Task_N*.csv``); in a flat folder every CSV with a ``PatientID`` column counts. Everything else
(``synthetic_ground_truth.json``, notes, other CSVs) is ignored and listed.

A patient present in several task folders is one patient with one copy of its files per task folder;
:class:`PatientSources` picks the copy to use (Task 1's, which is the one the label belongs to).
Two folders of one task (or two files of one role in one folder) claiming the same PatientID are a
duplicate-ID error.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_hecktor import schema
from nnunet_hecktor.errors import HecktorError

IMAGE_EXTENSIONS: tuple[str, ...] = (".nii.gz", ".nii", ".mha")

#: File-name suffix (after the double underscore) -> role of the file.
_SUFFIX_ROLES: dict[str, str] = {
    schema.MODALITY_SUFFIXES["CT"].lstrip("_").lower(): "ct",
    schema.MODALITY_SUFFIXES["PET"].lstrip("_").lower(): "pet",
    schema.MODALITY_SUFFIXES["CT_PLANNING"].lstrip("_").lower(): "ct_planning",
    schema.MODALITY_SUFFIXES["RTDOSE"].lstrip("_").lower(): "rtdose",
}
ROLES: tuple[str, ...] = ("ct", "pet", "label", "ct_planning", "rtdose")

_TASK_FOLDER = re.compile(r"^task[\s_-]*(\d+)$", re.IGNORECASE)
_TASK_CSV = re.compile(r"^hecktor_.*task[\s_-]*(\d+).*\.csv$", re.IGNORECASE)


@dataclass
class PatientFiles:
    """The files of one patient in one folder (one task folder's copy, or the flat folder)."""

    folder: Path
    task: int | None
    ct: Path | None = None
    pet: Path | None = None
    label: Path | None = None
    ct_planning: Path | None = None
    rtdose: Path | None = None

    def files(self) -> dict[str, Path]:
        """Role -> path of the files present."""
        return {role: getattr(self, role) for role in ROLES if getattr(self, role) is not None}


@dataclass
class PatientSources:
    """All copies of one patient's files, ordered by preference.

    The preferred copy is the one with a label (Task 1 in the release), then the lowest task number.
    Each of :attr:`ct`, :attr:`pet`, :attr:`label`, ... is taken from the first copy that has it; the
    label lives on that copy's CT grid, which is why Task 1's CT wins when copies differ.
    """

    patient_id: str
    copies: list[PatientFiles] = field(default_factory=list)

    def _first(self, role: str) -> Path | None:
        for copy in self.copies:
            path = getattr(copy, role)
            if path is not None:
                return path
        return None

    @property
    def ct(self) -> Path | None:
        return self._first("ct")

    @property
    def pet(self) -> Path | None:
        return self._first("pet")

    @property
    def label(self) -> Path | None:
        return self._first("label")

    @property
    def ct_planning(self) -> Path | None:
        return self._first("ct_planning")

    @property
    def rtdose(self) -> Path | None:
        return self._first("rtdose")

    @property
    def tasks(self) -> list[int]:
        """Task numbers whose folders hold this patient."""
        return sorted({c.task for c in self.copies if c.task is not None})

    @property
    def has_label(self) -> bool:
        return self.label is not None

    def all_files(self) -> list[Path]:
        """Every source file of every copy (what a re-run must watch for changes)."""
        return [p for copy in self.copies for p in copy.files().values()]

    def other_copies(self, role: str) -> list[tuple[PatientFiles, Path]]:
        """Copies of ``role`` other than the one used, with the copy they come from."""
        used = self._first(role)
        return [(c, getattr(c, role)) for c in self.copies if getattr(c, role) not in (None, used)]

    def _sort_copies(self) -> None:
        self.copies.sort(key=lambda c: (c.label is None, c.task if c.task is not None else 10**6, str(c.folder)))


@dataclass
class ClinicalSource:
    """A clinical CSV and the task it belongs to (``None`` when unknown)."""

    path: Path
    task: int | None


@dataclass
class SourceLayout:
    """What :func:`discover_layout` found in a source folder.

    Attributes
    ----------
    root : Path
        The folder given.
    kind : str
        ``"release"``, ``"task"`` or ``"flat"``.
    task_folders : dict
        Task number (``None`` if the folder name carries none) -> folder; empty for ``flat``.
    patients : dict
        PatientID -> :class:`PatientSources`, sorted by PatientID.
    csv_files : list of ClinicalSource
        Clinical CSVs, in task order.
    ignored : list of Path
        Files and folders that were not used.
    warnings : list of str
        PatientIDs not of the form ``<CENTRE>-<NNN>``, folder names that disagree with file names, ...
    """

    root: Path
    kind: str
    task_folders: dict[int | None, Path]
    patients: dict[str, PatientSources]
    csv_files: list[ClinicalSource]
    ignored: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """A few lines saying what was found (printed by the converter before it starts)."""
        lines = []
        if self.kind == "release":
            names = ", ".join(repr(p.name) for p in self.task_folders.values())
            lines.append(f"{self.root}: HECKTOR release layout with task folders {names}")
        elif self.kind == "task":
            folder = next(iter(self.task_folders.values()))
            task = next(iter(self.task_folders))
            what = f"Task {task}" if task is not None else "task number unknown"
            lines.append(f"{folder}: single task folder ({what}), one sub-folder per patient")
        else:
            lines.append(f"{self.root}: flat folder (<PID>__CT / __PT / label files side by side)")
        n_label = sum(p.has_label for p in self.patients.values())
        per_task = {}
        for p in self.patients.values():
            for t in p.tasks:
                per_task[t] = per_task.get(t, 0) + 1
        task_text = ", ".join(f"Task {t}: {n}" for t, n in sorted(per_task.items()))
        counts = f"  {len(self.patients)} patients ({n_label} with a label)"
        lines.append(counts + (f"; {task_text}" if task_text else ""))
        if self.csv_files:
            lines.append("  clinical CSVs: " + ", ".join(c.path.name for c in self.csv_files))
        else:
            lines.append("  no clinical CSV found")
        if self.ignored:
            shown = ", ".join(p.name for p in self.ignored[:5])
            more = f" and {len(self.ignored) - 5} more" if len(self.ignored) > 5 else ""
            lines.append(f"  ignored: {shown}{more}")
        for warning in self.warnings[:10]:
            lines.append(f"  warning: {warning}")
        if len(self.warnings) > 10:
            lines.append(f"  ... {len(self.warnings) - 10} more warnings (see conversion_report.json)")
        return "\n".join(lines)


def split_image_name(name: str) -> tuple[str, str] | None:
    """Return ``(patient_id, role)`` for a HECKTOR image file name, ``None`` for anything else.

    ``"CHUP-000__CT.nii.gz"`` -> ``("CHUP-000", "ct")``; ``"CHUP-000.nii.gz"`` -> ``("CHUP-000", "label")``.
    """
    if name.startswith("."):
        return None
    lower = name.lower()
    extension = next((e for e in IMAGE_EXTENSIONS if lower.endswith(e)), None)
    if extension is None:
        return None
    stem = name[: -len(extension)]
    if "__" in stem:
        patient_id, suffix = stem.rsplit("__", 1)
        role = _SUFFIX_ROLES.get(suffix.lower())
        if role is None or not patient_id:
            return None
        return patient_id, role
    return (stem, "label") if stem else None


def _task_number(name: str) -> int | None:
    match = _TASK_FOLDER.match(name.strip())
    return int(match.group(1)) if match else None


def _has_patient_id_column(path: Path) -> bool:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError):
        return False
    return schema.COL_PATIENT in [h.strip() for h in header]


def _images_in(folder: Path) -> list[tuple[Path, str, str]]:
    found = []
    for path in sorted(folder.iterdir()):
        if path.is_file():
            parsed = split_image_name(path.name)
            if parsed is not None:
                found.append((path, *parsed))
    return found


class _Collector:
    """Gathers patient copies, raising one error that lists every duplicate ID."""

    def __init__(self) -> None:
        self.patients: dict[str, PatientSources] = {}
        self.duplicates: list[str] = []
        self.warnings: list[str] = []
        # (container, task) -> {(pid, role): path}: a container is a task folder or the flat folder.
        self._seen: dict[tuple[Path, int | None], dict[tuple[str, str], Path]] = {}
        self._copies: dict[tuple[Path, str], PatientFiles] = {}

    def add(self, container: Path, task: int | None, folder: Path, path: Path, patient_id: str, role: str) -> None:
        seen = self._seen.setdefault((container, task), {})
        key = (patient_id, role)
        if key in seen:
            first = seen[key]
            where = f"Task {task} ({container})" if task is not None else str(container)
            if first.parent != path.parent:
                message = (f"{patient_id}: two folders of {where} claim this PatientID: "
                           f"{first.parent.name!r} and {path.parent.name!r}")
            else:
                message = f"{patient_id}: two {role} files in {path.parent}: {first.name} and {path.name}"
            if message not in self.duplicates:
                self.duplicates.append(message)
            return
        seen[key] = path
        copy = self._copies.get((folder, patient_id))
        if copy is None:
            copy = PatientFiles(folder=folder, task=task)
            self._copies[(folder, patient_id)] = copy
            sources = self.patients.setdefault(patient_id, PatientSources(patient_id))
            sources.copies.append(copy)
        setattr(copy, role, path)

    def finish(self) -> dict[str, PatientSources]:
        if self.duplicates:
            listing = "\n  ".join(self.duplicates)
            raise HecktorError(f"duplicate PatientIDs in the source folder:\n  {listing}")
        for sources in self.patients.values():
            sources._sort_copies()
            if not schema.PATIENT_ID_PATTERN.match(sources.patient_id):
                self.warnings.append(
                    f"PatientID {sources.patient_id!r} does not match <CENTRE>-<NNN> (e.g. CHUP-000); "
                    "its centre is taken as the text before the first '-'")
        return dict(sorted(self.patients.items()))


def _scan_task_folder(folder: Path, task: int | None, collector: _Collector, ignored: list[Path],
                      csvs: list[ClinicalSource]) -> None:
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            images = _images_in(entry)
            if not images:
                ignored.append(entry)
                continue
            names = {pid for _, pid, _ in images}
            for path, pid, role in images:
                collector.add(folder, task, entry, path, pid, role)
            if images and entry.name not in names:
                collector.warnings.append(f"folder {entry} holds files of {', '.join(sorted(names))} "
                                          "(the PatientID is taken from file names)")
            for other in sorted(entry.iterdir()):
                if other.is_dir() or split_image_name(other.name) is None:
                    ignored.append(other)
        elif entry.is_file():
            parsed = split_image_name(entry.name)
            csv_match = _TASK_CSV.match(entry.name)
            if parsed is not None:
                # Files lying directly in a task folder are accepted as well.
                collector.add(folder, task, folder, entry, *parsed)
            elif csv_match:
                csvs.append(ClinicalSource(entry, task if task is not None else int(csv_match.group(1))))
            else:
                ignored.append(entry)


def discover_layout(src: str | Path) -> SourceLayout:
    """Find the layout, the patients and the clinical CSVs of a HECKTOR source folder.

    Parameters
    ----------
    src : path-like
        The release root (with ``Task 1``/``Task 2``/``Task 3`` or ``Task_1``... folders), a single task
        folder, or a flat folder of ``<PID>__CT.nii.gz`` / ``<PID>__PT.nii.gz`` / ``<PID>.nii.gz`` files.

    Returns
    -------
    SourceLayout
        Layout kind, per patient its files (CT, PET, label, planning CT, dose; every task folder's copy),
        the clinical CSVs and the ignored files. Nothing is read but file names and CSV headers.

    Raises
    ------
    HecktorError
        ``src`` is not a folder, holds no HECKTOR images, or two folders/files of one task claim the same
        PatientID (all duplicates are listed).
    """
    root = Path(src).expanduser()
    if not root.is_dir():
        raise HecktorError(f"source folder {root} does not exist or is not a folder")
    root = root.resolve()
    entries = sorted(root.iterdir())
    task_dirs = [(e, _task_number(e.name)) for e in entries if e.is_dir() and _task_number(e.name) is not None]
    flat_images = [e for e in entries if e.is_file() and split_image_name(e.name) is not None]
    subfolders_with_images = [e for e in entries if e.is_dir() and _task_number(e.name) is None and _images_in(e)]

    collector = _Collector()
    ignored: list[Path] = []
    csvs: list[ClinicalSource] = []
    task_folders: dict[int | None, Path] = {}

    if task_dirs:
        kind = "release"
        for folder, task in task_dirs:
            if task in task_folders:
                raise HecktorError(
                    f"two folders for Task {task} in {root}: {task_folders[task].name!r} and {folder.name!r}")
            task_folders[task] = folder
            _scan_task_folder(folder, task, collector, ignored, csvs)
        for entry in entries:
            if entry.is_dir() and entry not in task_folders.values():
                ignored.append(entry)
            elif entry.is_file():
                csv_match = _TASK_CSV.match(entry.name)
                if csv_match:
                    csvs.append(ClinicalSource(entry, int(csv_match.group(1))))
                else:
                    ignored.append(entry)
    elif subfolders_with_images or (_task_number(root.name) is not None and not flat_images):
        kind = "task"
        task = _task_number(root.name)
        if task is None:
            # The folder name carries no task number: take it from the CSV name when unambiguous.
            numbers = {int(m.group(1)) for e in entries if e.is_file() and (m := _TASK_CSV.match(e.name))}
            task = numbers.pop() if len(numbers) == 1 else None
        task_folders[task] = root
        _scan_task_folder(root, task, collector, ignored, csvs)
    elif flat_images:
        kind = "flat"
        for entry in entries:
            parsed = split_image_name(entry.name) if entry.is_file() else None
            if parsed is not None:
                collector.add(root, None, root, entry, *parsed)
            elif entry.is_file() and entry.suffix.lower() == ".csv" and _has_patient_id_column(entry):
                csv_match = _TASK_CSV.match(entry.name)
                csvs.append(ClinicalSource(entry, int(csv_match.group(1)) if csv_match else None))
            else:
                ignored.append(entry)
    else:
        shown = ", ".join(e.name for e in entries[:8]) or "nothing"
        raise HecktorError(
            f"no HECKTOR images found in {root} (it holds: {shown}). Expected the release root with "
            "'Task 1'/'Task 2'/'Task 3' folders, one task folder with <PID>/<PID>__CT.nii.gz, or a flat "
            "folder with <PID>__CT.nii.gz, <PID>__PT.nii.gz and <PID>.nii.gz files")

    patients = collector.finish()
    if not patients:
        raise HecktorError(f"no HECKTOR images found in {root} ({kind} layout, but no <PID>__CT/__PT files)")
    csvs.sort(key=lambda c: (c.task if c.task is not None else 10**6, str(c.path)))
    return SourceLayout(root=root, kind=kind, task_folders=task_folders, patients=patients, csv_files=csvs,
                        ignored=ignored, warnings=collector.warnings)
