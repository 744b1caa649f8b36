"""Find the patients, their images and the clinical CSVs in a HECKTOR source folder.

The HECKTOR edition (2021, 2022, 2025, 2026; :mod:`nnunet_hecktor.editions`) is detected from the file
and folder names (:func:`~nnunet_hecktor.editions.detect_edition`) unless given; its contract says how
image files are named (2021: ``<PID>_ct``, ``<PID>_pt``, ``<PID>_ct_gtvt``; later ``<PID>__CT``,
``<PID>__PT``, ``<PID>``), which CSVs are clinical tables and which are not (2021's bounding boxes).

Four layouts are recognised (the 2025 release ships the first):

``release``
    the 2025 release root: ``<root>/Task 1/<PID>/<PID>__CT.nii.gz`` ... with one folder per task,
    named ``Task 1`` (with a space) or ``Task_1`` / ``Task-1`` / ``Task1``.
``task``
    a single task folder: ``<root>/<PID>/<PID>__CT.nii.gz``.
``flat``
    all files side by side: ``<root>/<PID>__CT.nii.gz``, ``<root>/<PID>__PT.nii.gz``, ``<root>/<PID>.nii.gz``.
``images-labels``
    the 2022 release: ``<root>/imagesTr/<PID>__CT.nii.gz``, ``__PT.nii.gz`` and ``<root>/labelsTr/<PID>.nii.gz``
    (``imagesTs`` too, without labels).

A folder holding one folder of patients and the clinical CSVs next to it (2026:
``hecktor2026_training/`` and ``HECKTOR_2026_Training_Task.csv``; 2021: ``hecktor_nii/`` and the
``hecktor2021_*.csv`` files) is read as that folder's layout with those CSVs.

Images are recognised by name: ``<PID>__CT``, ``<PID>__PT``, ``<PID>__CTPlanning``, ``<PID>__RTDOSE`` and the
label ``<PID>`` with the extension ``.nii.gz``, ``.nii`` or ``.mha`` (2021: the edition's suffixes). The
PatientID is taken from the file name, never from the folder name.

Every CSV of the release root, a task folder or a flat folder is accounted for, never silently ignored:
a CSV named as a clinical table of some edition (``HECKTOR_*Task_N*.csv``, ``hecktor2022_*_training.csv``,
...) is read; one named as a non-clinical table of the edition (2021's ``*bbox*.csv``) is listed as such;
any other CSV with a ``PatientID`` column is read too, with a warning naming it (a renamed table, e.g.
``Task 3/clinical_data_task3.csv``); a CSV without one is listed in :attr:`SourceLayout.unread_csvs`
(a warning; ``convert --strict`` fails on it). Other files (``synthetic_ground_truth.json``, notes) are
ignored and listed.

Real-world variations that are accepted with a warning: a release unpacked one level too deep
(``Task 1/Task 1/<PID>/...``, or the whole release inside one extra folder) is read from the inner
folder. Reported per patient instead of aborting the discovery: a patient folder that cannot be read
(:attr:`SourceLayout.unreadable`), and a patient of Task 1 without a label file
(:attr:`SourceLayout.missing_labels`, naming label-like files that were not used, e.g. a renamed label or
one nested a level deeper).

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
from nnunet_hecktor.editions import DEFAULT_EDITION, EDITIONS, IMAGE_EXTENSIONS, Edition, detect_edition, get_edition
from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.fileio import plugin_output_note

ROLES: tuple[str, ...] = ("ct", "pet", "label", "ct_planning", "rtdose")

_TASK_FOLDER = re.compile(r"^task[\s_-]*(\d+)$", re.IGNORECASE)
_TASK_CSV = re.compile(r"^hecktor_.*task[\s_-]*(\d+).*\.csv$", re.IGNORECASE)
#: Folders of the images-labels layout (2022; nnU-Net's names): folder name (lower case) -> holds labels.
_IMAGE_LABEL_FOLDERS: dict[str, bool] = {"imagestr": False, "imagests": False, "labelstr": True}


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
        The folder the images were found in (the folder given, or the one folder of patients inside it).
    kind : str
        ``"release"``, ``"task"``, ``"flat"`` or ``"images-labels"``.
    task_folders : dict
        Task number (``None`` if the folder name carries none) -> folder; empty for ``flat``.
    patients : dict
        PatientID -> :class:`PatientSources`, sorted by PatientID.
    csv_files : list of ClinicalSource
        Clinical CSVs, in task order.
    ignored : list of Path
        Files and folders that were not used.
    warnings : list of str
        PatientIDs not of the form ``<CENTRE>-<NNN>``, folder names that disagree with file names, a
        release unpacked one level too deep, ...
    missing_labels : dict
        PatientID -> why it is a Task 1 patient without a label (and which label-like files were seen).
    unreadable : dict
        Folder name (the PatientID as far as can be told) -> why the patient folder could not be read.
    edition : str
        The HECKTOR edition whose contract was used (``"2021"`` ... ``"2026"``).
    edition_evidence : str
        Why (:meth:`~nnunet_hecktor.editions.Detection.describe`, or "given with --edition").
    other_tables : list of Path
        CSVs of the release that are not clinical tables by the edition's contract (2021's bounding boxes).
    unread_csvs : dict
        CSV -> why it was not read (no ``PatientID`` column): a warning, an error with ``--strict``.
    csv_root : Path or None
        The folder given, when its CSVs were read next to the one folder of patients it holds.
    """

    root: Path
    kind: str
    task_folders: dict[int | None, Path]
    patients: dict[str, PatientSources]
    csv_files: list[ClinicalSource]
    ignored: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    missing_labels: dict[str, str] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)
    edition: str = DEFAULT_EDITION
    edition_evidence: str = ""
    other_tables: list[Path] = field(default_factory=list)
    unread_csvs: dict[Path, str] = field(default_factory=dict)
    csv_root: Path | None = None

    def describe(self) -> str:
        """A few lines saying what was found (printed by the converter before it starts)."""
        lines = [f"edition: {self.edition_evidence or 'HECKTOR ' + self.edition}"]
        if self.csv_root is not None:
            lines.append(f"{self.csv_root}: one folder of patients ({self.root.name!r}) and its clinical CSVs")
        if self.kind == "images-labels":
            lines.append(f"{self.root}: imagesTr/labelsTr layout (HECKTOR 2022), labels in labelsTr")
        elif self.kind == "release":
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
        per_task: dict[int, int] = {}
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
        if self.other_tables:
            lines.append(f"  not clinical tables (HECKTOR {self.edition}), not read: "
                         + ", ".join(p.name for p in self.other_tables)
                         + (" (a Bq/mL -> SUV factor table: give it with --suv-factors)"
                            if any("suv" in p.name.lower() for p in self.other_tables) else ""))
        for path, why in self.unread_csvs.items():
            lines.append(f"  warning: CSV {path} not read: {why}")
        if self.ignored:
            shown = ", ".join(p.name for p in self.ignored[:5])
            more = f" and {len(self.ignored) - 5} more" if len(self.ignored) > 5 else ""
            lines.append(f"  ignored: {shown}{more}")
        if self.missing_labels:
            missing = sorted(self.missing_labels)
            lines.append(f"  warning: {len(missing)} Task 1 patients have no label file: "
                         + ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
        if self.unreadable:
            unreadable = sorted(self.unreadable)
            lines.append(f"  warning: {len(unreadable)} patient folders cannot be read: "
                         + ", ".join(unreadable[:10]) + (" ..." if len(unreadable) > 10 else ""))
        for warning in self.warnings[:10]:
            lines.append(f"  warning: {warning}")
        if len(self.warnings) > 10:
            lines.append(f"  ... {len(self.warnings) - 10} more warnings (see conversion_report.json)")
        return "\n".join(lines)


def split_image_name(name: str, edition: Edition | None = None) -> tuple[str, str] | None:
    """Return ``(patient_id, role)`` for a HECKTOR image file name, ``None`` for anything else.

    ``"CHUP-000__CT.nii.gz"`` -> ``("CHUP-000", "ct")``; ``"CHUP-000.nii.gz"`` -> ``("CHUP-000", "label")``;
    with the 2021 edition ``"CHGJ007_ct_gtvt.nii.gz"`` -> ``("CHGJ007", "label")``
    (:meth:`~nnunet_hecktor.editions.Edition.split_image_name`; default edition when None).
    """
    return (edition or get_edition(None)).split_image_name(name)


def _task_number(name: str) -> int | None:
    match = _TASK_FOLDER.match(name.strip())
    return int(match.group(1)) if match else None


def _csv_header(path: Path) -> list[str] | None:
    """The header cells of a CSV (any delimiter :mod:`.csv_format` reads); None when unreadable."""
    from .csv_format import detect_delimiter

    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            first_line = handle.readline()
    except (OSError, UnicodeDecodeError):
        return None
    return next(csv.reader([first_line], delimiter=detect_delimiter(first_line)), [])


def _has_patient_id_column(path: Path) -> bool:
    """True for a CSV whose header names ``PatientID`` (any delimiter and spelling :mod:`.csv_format` reads)."""
    from .csv_format import detect_delimiter, map_headers, near_miss_of

    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            first_line = handle.readline()
    except (OSError, UnicodeDecodeError):
        return False
    header = next(csv.reader([first_line], delimiter=detect_delimiter(first_line)), [])
    return (schema.COL_PATIENT in map_headers(header).columns
            or any(near_miss_of(h) == schema.COL_PATIENT for h in header))


def _images_in(folder: Path, edition: Edition) -> list[tuple[Path, str, str]]:
    found = []
    for path in sorted(folder.iterdir()):
        if path.is_file():
            parsed = edition.split_image_name(path.name)
            if parsed is not None:
                found.append((path, *parsed))
    return found


def _readable_images_in(folder: Path, edition: Edition) -> list[tuple[Path, str, str]]:
    """:func:`_images_in`, or nothing for a folder that cannot be read (reported when it is scanned)."""
    try:
        return _images_in(folder, edition)
    except OSError:
        return []


def _list_folder(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError as exc:
        raise HecktorError(f"cannot read the folder {folder} ({exc.strerror or exc})") from None


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _holds_patient_folders(folder: Path, edition: Edition) -> bool:
    try:
        return any(e.is_dir() and _readable_images_in(e, edition) for e in folder.iterdir())
    except OSError:
        return False


class _Collector:
    """Gathers patient copies, raising one error that lists every duplicate ID."""

    def __init__(self, edition: Edition) -> None:
        self.edition = edition
        self.patients: dict[str, PatientSources] = {}
        self.duplicates: list[str] = []
        self.warnings: list[str] = []
        #: Folder -> label-like files seen there but not used (renamed labels, labels a level deeper).
        self.hints: dict[Path, list[str]] = {}
        #: Folder name -> why it cannot be read.
        self.unreadable: dict[str, str] = {}
        # (container, task) -> {(pid, role): path}: a container is a task folder or the flat folder.
        self._seen: dict[tuple[Path, int | None], dict[tuple[str, str], Path]] = {}
        self._copies: dict[tuple[Path, str], PatientFiles] = {}
        #: CSVs that are not clinical tables by the edition's contract, and CSVs not read (with why).
        self.other_tables: list[Path] = []
        self.unread_csvs: dict[Path, str] = {}

    def add_csv(self, path: Path, task: int | None, csvs: list[ClinicalSource]) -> None:
        """Account for one CSV of a release, task or flat folder (module docstring: never silently ignored)."""
        if self.edition.is_other_table_name(path.name):
            self.other_tables.append(path)
            return
        match = _TASK_CSV.match(path.name)
        number = task if task is not None else (int(match.group(1)) if match else None)
        if match or any(e.is_clinical_csv_name(path.name) for e in EDITIONS.values()):
            csvs.append(ClinicalSource(path, number))
        elif _has_patient_id_column(path):
            csvs.append(ClinicalSource(path, number))
            self.warnings.append(
                f"{path}: read as a clinical table (it has a {schema.COL_PATIENT} column), although its name is "
                f"not one HECKTOR {self.edition.name} uses ({', '.join(self.edition.csv_names[:2])})")
        else:
            header = _csv_header(path)
            shown = "cannot be read as text" if header is None else (
                "columns: " + (", ".join(h.strip() for h in header[:8]) or "none")
                + (" ..." if len(header) > 8 else ""))
            self.unread_csvs[path] = (f"no {schema.COL_PATIENT} column ({shown}); rename its patient column to "
                                      f"{schema.COL_PATIENT!r} if it holds clinical data, or move it out of the "
                                      "source folder")

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
            if not self.edition.patient_id_pattern.match(sources.patient_id):
                self.warnings.append(
                    f"PatientID {sources.patient_id!r} does not match the HECKTOR {self.edition.name} form "
                    f"{self.edition.patient_id_form}; its centre is taken as "
                    f"{schema.centre_of(sources.patient_id)!r}")
        return dict(sorted(self.patients.items()))


def _patient_folder_hints(entry: Path, images: list[tuple[Path, str, str]], others: list[Path],
                          edition: Edition) -> tuple[
        list[tuple[Path, str, str]], list[str], list[Path]]:
    """Split a patient folder's files into images to use, hints about label-like files, and strays.

    A file read as a label (``<X>.nii.gz``) whose ``<X>`` has no CT/PET in the folder while another
    PatientID has (``CHUP-001_seg.nii.gz`` next to ``CHUP-001__CT.nii.gz``) is not a patient of its own:
    it is a stray, named in the hints. So are image files of unknown suffix and images one folder down.
    """
    scans = {pid for _, pid, role in images if role != "label"}
    used, hints, strays = [], [], []
    for path, pid, role in images:
        if role == "label" and scans and pid not in scans:
            hints.append(path.name)
            strays.append(path)
        else:
            used.append((path, pid, role))
    for other in others:
        if other.is_file() and _is_image_name(other.name) and edition.split_image_name(other.name) is None:
            hints.append(other.name)
        elif other.is_dir():
            try:
                hints.extend(f"{other.name}/{p.name}" for p in sorted(other.iterdir())
                             if p.is_file() and _is_image_name(p.name))
            except OSError:
                pass
    return used, hints, strays


def _scan_task_folder(folder: Path, task: int | None, collector: _Collector, ignored: list[Path],
                      csvs: list[ClinicalSource], container: Path | None = None) -> None:
    container = folder if container is None else container
    edition = collector.edition
    for entry in _list_folder(folder):
        if entry.is_dir() and (note := plugin_output_note(entry)):
            # predict/postprocess outputs are never source data (predictions must not become labels).
            collector.warnings.append(note)
            ignored.append(entry)
            continue
        if entry.is_dir():
            try:
                images = _images_in(entry, edition)
                others = [o for o in sorted(entry.iterdir())
                          if o.is_dir() or edition.split_image_name(o.name) is None]
            except OSError as exc:
                # One unreadable patient folder must not stop the others: reported as a failed patient.
                collector.unreadable[entry.name] = (f"{entry.name}: the patient folder {entry} cannot be read "
                                                    f"({exc.strerror or exc}); not converted")
                continue
            if not images:
                nested_task = _task_number(entry.name)
                if (container == folder and nested_task in (None, task) and _holds_patient_folders(entry, edition)):
                    # "Task 1/Task 1/<PID>" (an archive unpacked into a folder of its own name) or
                    # "Task 1/<any folder>/<PID>": read one level deeper, never two.
                    what = "a task folder" if nested_task is not None else "a folder of patient folders"
                    collector.warnings.append(
                        f"{entry} is {what} inside the task folder {folder}: the data seem unpacked one level too "
                        "deep; its patients are read from there")
                    _scan_task_folder(entry, task, collector, ignored, csvs, container)
                else:
                    ignored.append(entry)
                continue
            images, hints, strays = _patient_folder_hints(entry, images, others, edition)
            if hints:
                collector.hints[entry] = hints
            ignored.extend(strays)
            labelled = {pid for _, pid, role in images if role == "label"}
            if strays and {pid for _, pid, _ in images} <= labelled:  # nobody here to attach them to
                collector.warnings.append(f"{entry}: label-like files matching no CT/PET in the folder, not used: "
                                          + ", ".join(p.name for p in strays))
            names = {pid for _, pid, _ in images}
            for path, pid, role in images:
                collector.add(container, task, entry, path, pid, role)
            if entry.name not in names:
                collector.warnings.append(f"folder {entry} holds files of {', '.join(sorted(names))} "
                                          "(the PatientID is taken from file names)")
            ignored.extend(others)
        elif entry.is_file():
            parsed = edition.split_image_name(entry.name)
            if parsed is not None:
                # Files lying directly in a task folder are accepted as well.
                collector.add(container, task, folder, entry, *parsed)
            elif entry.suffix.lower() == ".csv":
                collector.add_csv(entry, task, csvs)
            else:
                ignored.append(entry)


def _missing_labels(patients: dict[str, PatientSources], hints: dict[Path, list[str]]) -> dict[str, str]:
    """Task 1 patients without a label: PatientID -> a warning (without the PatientID) naming the folder and
    the label-like files seen there."""
    missing = {}
    for pid, sources in patients.items():
        if sources.has_label:
            continue
        task1 = [c for c in sources.copies if c.task == 1]
        if not task1:
            continue
        folder = task1[0].folder
        text = (f"no label file in the Task 1 folder {folder} (expected {pid}.nii.gz, .nii or .mha next to "
                "the CT)")
        seen = hints.get(folder, [])
        if seen:
            text += f"; label-like files not used: {', '.join(seen)}"
        missing[pid] = text
    return missing


def _names_for_detection(root: Path, per_level: int = 20) -> list[str]:
    """File and folder names of ``root`` and up to three levels below (a sample of each level's folders)."""
    names: list[str] = []
    level = [root]
    for _ in range(3):
        below: list[Path] = []
        for folder in level[:per_level]:
            try:
                entries = sorted(folder.iterdir())
            except OSError:
                continue
            names.extend(e.name for e in entries)
            below.extend(e for e in entries if e.is_dir())
        level = below
    return names


def discover_layout(src: str | Path, edition: str | int | None = None) -> SourceLayout:
    """Find the edition, the layout, the patients and the clinical CSVs of a HECKTOR source folder.

    Parameters
    ----------
    src : path-like
        The release root (with ``Task 1``/``Task 2``/``Task 3`` or ``Task_1``... folders), a single task
        folder, a flat folder of ``<PID>__CT.nii.gz`` / ``<PID>__PT.nii.gz`` / ``<PID>.nii.gz`` files, the
        2022 ``imagesTr``/``labelsTr`` folders, or a folder holding one such folder and the clinical CSVs
        (2026's ``hecktor2026_training``, 2021's ``hecktor_nii``).
    edition : str or int, optional
        The HECKTOR edition whose contract to use (file names, CSV names); detected from the names when
        None (:func:`~nnunet_hecktor.editions.detect_edition`).

    Returns
    -------
    SourceLayout
        Edition, layout kind, per patient its files (CT, PET, label, planning CT, dose; every task folder's
        copy), the clinical CSVs, the CSVs not read and the ignored files. Nothing is read but file names
        and CSV headers.

    Raises
    ------
    HecktorError
        ``src`` is not a folder, holds no HECKTOR images, or two folders/files of one task claim the same
        PatientID (all duplicates are listed); an unknown ``edition``.
    """
    root = Path(src).expanduser()
    if not root.is_dir():
        raise HecktorError(f"source folder {root} does not exist or is not a folder")
    root = root.resolve()
    if edition is None:
        detection = detect_edition(_names_for_detection(root))
        contract, evidence = detection.edition, detection.describe()
    else:
        try:
            contract = get_edition(edition)
        except ValueError as exc:
            raise HecktorError(str(exc)) from None
        evidence = f"HECKTOR {contract.name} (given with --edition)"
    layout = _discover(root, contract)
    if layout is None:
        layout = _discover_one_level_down(root, contract)
    layout.edition, layout.edition_evidence = contract.name, evidence
    return layout


def _discover_one_level_down(root: Path, edition: Edition) -> SourceLayout:
    """The layout of the one folder ``root`` holds, with ``root``'s CSVs (or the error naming what it holds)."""
    entries = _list_folder(root)
    visible = [e for e in entries if not e.name.startswith(".") and e.name != "__MACOSX"]
    folders = [e for e in visible if e.is_dir()]
    if len(folders) == 1:
        inner = _discover(folders[0], edition)
        if inner is not None:
            files = [e for e in visible if e.is_file()]
            if not files:
                # The whole release inside one extra folder (an archive unpacked into a folder of its own).
                inner.warnings.insert(0, f"{root} holds only the folder {folders[0].name!r}: the HECKTOR data "
                                         f"were found one level deeper and are read from {folders[0]}")
                return inner
            # A folder of patients with the clinical CSVs next to it (2026, 2021): the release as shipped.
            collector = _Collector(edition)
            csvs: list[ClinicalSource] = []
            for entry in files:
                if entry.suffix.lower() == ".csv":
                    collector.add_csv(entry, None, csvs)
                else:
                    inner.ignored.append(entry)
            inner.csv_files = sorted(csvs + inner.csv_files,
                                     key=lambda c: (c.task if c.task is not None else 10**6, str(c.path)))
            inner.warnings.extend(collector.warnings)
            inner.other_tables.extend(collector.other_tables)
            inner.unread_csvs.update(collector.unread_csvs)
            inner.csv_root = root
            return inner
    shown = ", ".join(e.name for e in entries[:8]) or "nothing"
    raise HecktorError(
        f"no HECKTOR images found in {root} (it holds: {shown}). Expected (HECKTOR {edition.name} file names) "
        "the release root with 'Task 1'/'Task 2'/'Task 3' folders, one task folder with "
        "<PID>/<PID>__CT.nii.gz, a flat folder with <PID>__CT.nii.gz, <PID>__PT.nii.gz and <PID>.nii.gz "
        "files, imagesTr/labelsTr (2022) or hecktor_nii/<PID>/<PID>_ct.nii.gz (2021; see "
        "docs/reference/editions.md)")


def _several_patients(folder: Path, edition: Edition) -> bool:
    """True for a folder whose image files belong to more than one PatientID (a flat folder, not a patient's)."""
    return len({pid for _, pid, _ in _readable_images_in(folder, edition)}) > 1


def _scan_flat(folder: Path, container: Path, collector: _Collector, ignored: list[Path],
               csvs: list[ClinicalSource], labels_only: bool = False) -> None:
    """Files side by side in ``folder`` (a flat folder, or 2022's imagesTr/labelsTr)."""
    for entry in _list_folder(folder):
        if entry.is_dir() and (note := plugin_output_note(entry)):
            collector.warnings.append(note)
            ignored.append(entry)
            continue
        parsed = collector.edition.split_image_name(entry.name) if entry.is_file() else None
        if parsed is not None and labels_only and parsed[1] != "label":
            collector.warnings.append(f"{entry}: not a label file but in the label folder {folder.name}; not used")
            ignored.append(entry)
        elif parsed is not None:
            collector.add(container, None, container, entry, *parsed)
        elif entry.is_file() and entry.suffix.lower() == ".csv":
            collector.add_csv(entry, None, csvs)
        else:
            ignored.append(entry)


def _discover(root: Path, edition: Edition) -> SourceLayout | None:
    """:func:`discover_layout` for one folder; ``None`` when it holds no HECKTOR layout at all."""
    entries = _list_folder(root)
    task_dirs = [(e, _task_number(e.name)) for e in entries if e.is_dir() and _task_number(e.name) is not None]
    flat_images = [e for e in entries if e.is_file() and edition.split_image_name(e.name) is not None]
    image_label_dirs = [e for e in entries if e.is_dir() and e.name.lower() in _IMAGE_LABEL_FOLDERS]
    subfolders_with_images = [e for e in entries
                              if e.is_dir() and _task_number(e.name) is None and _readable_images_in(e, edition)]
    visible_dirs = [e for e in entries if e.is_dir() and not e.name.startswith(".") and e.name != "__MACOSX"]
    if (not task_dirs and not flat_images and not image_label_dirs and len(visible_dirs) == 1
            and _task_number(root.name) is None
            and (not subfolders_with_images or _several_patients(visible_dirs[0], edition))):
        return None  # one folder of patients (and maybe CSVs): read by _discover_one_level_down

    collector = _Collector(edition)
    ignored: list[Path] = []
    csvs: list[ClinicalSource] = []
    task_folders: dict[int | None, Path] = {}

    if image_label_dirs:
        kind = "images-labels"
        for folder in image_label_dirs:
            _scan_flat(folder, root, collector, ignored, csvs, labels_only=_IMAGE_LABEL_FOLDERS[folder.name.lower()])
        for entry in entries:
            if entry in image_label_dirs:
                continue
            if entry.is_file() and entry.suffix.lower() == ".csv":
                collector.add_csv(entry, None, csvs)
            else:
                ignored.append(entry)
    elif task_dirs:
        kind = "release"
        if _task_number(root.name) is not None:
            collector.warnings.append(
                f"{root} is named like a task folder but holds task folder(s) "
                f"{', '.join(repr(f.name) for f, _ in task_dirs)}: the data seem unpacked one level too deep; "
                "read as a release root")
        for folder, task in task_dirs:
            if task in task_folders:
                raise HecktorError(
                    f"two folders for Task {task} in {root}: {task_folders[task].name!r} and {folder.name!r}")
            task_folders[task] = folder
            _scan_task_folder(folder, task, collector, ignored, csvs)
        for entry in entries:
            if entry.is_dir() and entry not in task_folders.values():
                ignored.append(entry)
            elif entry.is_file() and entry.suffix.lower() == ".csv":
                collector.add_csv(entry, None, csvs)
            elif entry.is_file():
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
        _scan_flat(root, root, collector, ignored, csvs)
    else:
        return None

    patients = collector.finish()
    if not patients and not collector.unreadable:
        raise HecktorError(f"no HECKTOR images found in {root} ({kind} layout, but no CT/PET files named as "
                           f"HECKTOR {edition.name} names them)")
    csvs.sort(key=lambda c: (c.task if c.task is not None else 10**6, str(c.path)))
    return SourceLayout(root=root, kind=kind, task_folders=task_folders, patients=patients, csv_files=csvs,
                        ignored=ignored, warnings=collector.warnings,
                        missing_labels=_missing_labels(patients, collector.hints),
                        unreadable=dict(sorted(collector.unreadable.items())),
                        other_tables=collector.other_tables, unread_csvs=collector.unread_csvs)
