"""Folder layouts and clinical CSVs of the synthetic cohort, encoded as the 2025 release.

Layouts
-------
``release``             ``OUT/Task 1/<PID>/<PID>__CT.nii.gz, <PID>__PT.nii.gz, <PID>.nii.gz`` +
                        ``OUT/Task 1/HECKTOR_2025_Training_Task_1.csv``; ``Task 2`` (CT, PT and, for
                        some patients, ``__CTPlanning``/``__RTDOSE``), ``Task 3`` (CT, PT).
``release_underscore``  the same with ``Task_1``, ``Task_2``, ``Task_3``.
``task``                the contents of one task folder directly in ``OUT``.
``flat``                ``OUT/<PID>__CT.nii.gz``, ``OUT/<PID>__PT.nii.gz``, ``OUT/<PID>.nii.gz`` (label
                        for Task 1 patients only) and one CSV :data:`FLAT_CSV_NAME` with all columns.

Edition 2026 (``make_cohort(..., edition="2026")``, layout ``release`` only): every patient in
``OUT/hecktor2026_training/<PID>/<PID>__CT.nii.gz, <PID>__PT.nii.gz, <PID>.nii.gz`` and one CSV
``OUT/HECKTOR_2026_Training_Task.csv`` (the name of :func:`nnunet_hecktor.editions.get_edition`),
columns :data:`COLUMNS_2026`: the 2026 test-time inputs (HPV Status included, no M-stage), then the
targets Relapse, RFS, T-stage, N-stage (canonical labels ``T0``..``T4``, ``N0``..``N3``), blanks for
missing values.

CSV columns per task (column order differs between files on purpose, as readers must use
names): Task 1 carries the clinical inputs only, Task 2 adds ``Relapse`` and ``RFS``, Task 3
adds ``HPV Status``. Encoding: binary values and ``Relapse``/``HPV Status`` as ``0.0``/``1.0``,
Age, Performance Status and RFS as floats (``63.0``, ``90.0``, ``1234.0``), CenterID as an
integer, M-stage as ``M0``/``M1``/``Mx``, missing values as empty cells.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path
from typing import Any

from nnunet_hecktor import schema
from nnunet_hecktor.editions import get_edition
from nnunet_hecktor.fileio import atomic_path, write_text_atomic
from nnunet_hecktor.synthetic.patients import SyntheticPatient

LAYOUTS: tuple[str, ...] = ("release", "release_underscore", "flat", "task")
FLAT_CSV_NAME = "HECKTOR_2025_Training_clinical.csv"
GROUND_TRUTH_NAME = "synthetic_ground_truth.json"

_INPUTS = (schema.COL_AGE, schema.COL_GENDER, schema.COL_TOBACCO, schema.COL_ALCOHOL,
           schema.COL_PERFORMANCE, schema.COL_TREATMENT, schema.COL_MSTAGE)
#: Columns of each task CSV, in file order.
TASK_COLUMNS: dict[int, tuple[str, ...]] = {
    1: (schema.COL_PATIENT, *_INPUTS, schema.COL_CENTER),
    2: (schema.COL_PATIENT, schema.COL_CENTER, *_INPUTS, schema.COL_RELAPSE, schema.COL_RFS),
    3: (schema.COL_PATIENT, schema.COL_HPV, schema.COL_CENTER, schema.COL_GENDER, schema.COL_AGE,
        *[c for c in _INPUTS if c not in (schema.COL_AGE, schema.COL_GENDER)]),
}
FLAT_COLUMNS: tuple[str, ...] = schema.CLINICAL_COLUMNS

#: Editions a synthetic release can be written as.
EDITIONS: tuple[str, ...] = ("2025", "2026")
#: The 2026 release's image folder (one patient folder per patient, all with a label).
FOLDER_2026 = "hecktor2026_training"
#: The 2026 release's CSV name and columns, in file order (PatientID, CenterID, inputs, targets).
CSV_NAME_2026: str = get_edition("2026").csv_names[0]
COLUMNS_2026: tuple[str, ...] = (schema.COL_PATIENT, schema.COL_CENTER, *get_edition("2026").test_inputs,
                                 *get_edition("2026").targets)

_FLOAT_COLUMNS = (schema.COL_AGE, schema.COL_PERFORMANCE, schema.COL_RFS, schema.COL_HPV, schema.COL_RELAPSE,
                  *schema.BINARY_COLUMNS)


def format_cell(column: str, value: Any) -> str:
    """CSV text of one clinical value as the release writes it (empty for missing)."""
    if value is None:
        return ""
    if column in _FLOAT_COLUMNS:
        return f"{float(value):.1f}"
    if column == schema.COL_CENTER:
        return str(int(value))
    return str(value)


def clinical_row(patient: SyntheticPatient, columns: tuple[str, ...], edition: str = "2025") -> dict[str, str]:
    """Recorded values of ``patient`` for ``columns``; targets only where the task has them."""
    values = patient.released_values(edition)
    return {c: format_cell(c, values.get(c)) for c in columns}


def csv_text(patients: list[SyntheticPatient], columns: tuple[str, ...], edition: str = "2025") -> str:
    """The CSV file content for ``patients`` (sorted by PatientID)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for patient in sorted(patients, key=lambda p: p.patient_id):
        writer.writerow(clinical_row(patient, columns, edition))
    return buffer.getvalue()


def check_edition_layout(edition: str, layout: str) -> str:
    """The edition as a string; the 2026 release has one layout (``release``)."""
    edition = str(edition)
    if edition not in EDITIONS:
        raise ValueError(f"unknown edition {edition!r}; synthetic releases exist for {', '.join(EDITIONS)}")
    if edition == "2026" and layout != "release":
        raise ValueError(f"the 2026 release has one layout ('release'), not {layout!r}")
    return edition


def patient_files_2026(patient: SyntheticPatient, out_dir: Path) -> dict[str, list[Path]]:
    """Destinations of CT, PET and label of ``patient`` in the 2026 release layout."""
    pid = patient.patient_id
    folder = out_dir / FOLDER_2026 / pid
    suffix = schema.FILE_ENDING
    return {"CT": [folder / f"{pid}{schema.MODALITY_SUFFIXES['CT']}{suffix}"],
            "PET": [folder / f"{pid}{schema.MODALITY_SUFFIXES['PET']}{suffix}"],
            "label": [folder / f"{pid}{suffix}"]}


def write_csv_2026(patients: list[SyntheticPatient], out_dir: Path) -> dict[int, Path]:
    """Write the 2026 release CSV; returns ``{0: path}`` (one cohort, as for ``flat``)."""
    path = out_dir / CSV_NAME_2026
    write_text_atomic(path, csv_text(patients, COLUMNS_2026, "2026"))
    return {0: path}


def tasks_in_layout(layout: str, task: int | None) -> tuple[int, ...]:
    """Which task folders a layout writes (``flat`` writes all patients into one folder)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if layout == "task":
        if task not in schema.TASK_FOLDERS:
            raise ValueError(f"layout 'task' needs task 1, 2 or 3, got {task!r}")
        return (int(task),)
    return (1, 2, 3)


def task_dir(out_dir: Path, layout: str, task: int) -> Path:
    """Folder holding the patient folders and CSV of ``task`` in ``layout``."""
    if layout == "release":
        return out_dir / schema.TASK_FOLDERS[task]
    if layout == "release_underscore":
        return out_dir / schema.TASK_FOLDERS[task].replace(" ", "_")
    return out_dir


def patient_files(patient: SyntheticPatient, out_dir: Path, layout: str, task: int | None) -> dict[str, list[Path]]:
    """Destinations of each image of ``patient``: ``{"CT": [...], "PET": [...], "label": [...],
    "CT_PLANNING": [...], "RTDOSE": [...]}`` (kinds without destinations are left out)."""
    pid = patient.patient_id
    files: dict[str, list[Path]] = {}

    def add(kind: str, path: Path) -> None:
        files.setdefault(kind, []).append(path)

    suffix = schema.FILE_ENDING
    if layout == "flat":
        add("CT", out_dir / f"{pid}{schema.MODALITY_SUFFIXES['CT']}{suffix}")
        add("PET", out_dir / f"{pid}{schema.MODALITY_SUFFIXES['PET']}{suffix}")
        if 1 in patient.tasks:
            add("label", out_dir / f"{pid}{suffix}")
        return files
    for t in tasks_in_layout(layout, task):
        if t not in patient.tasks:
            continue
        folder = task_dir(out_dir, layout, t) / pid
        add("CT", folder / f"{pid}{schema.MODALITY_SUFFIXES['CT']}{suffix}")
        add("PET", folder / f"{pid}{schema.MODALITY_SUFFIXES['PET']}{suffix}")
        if t == 1:
            add("label", folder / f"{pid}{suffix}")
        if t == 2 and patient.has_planning:
            add("CT_PLANNING", folder / f"{pid}{schema.MODALITY_SUFFIXES['CT_PLANNING']}{suffix}")
            add("RTDOSE", folder / f"{pid}{schema.MODALITY_SUFFIXES['RTDOSE']}{suffix}")
    return files


def copy_atomic(source: Path, destination: Path) -> None:
    """Byte-identical copy written under a temporary name and renamed into place."""
    with atomic_path(destination) as tmp:
        shutil.copyfile(source, tmp)


def write_csvs(patients: list[SyntheticPatient], out_dir: Path, layout: str, task: int | None) -> dict[int, Path]:
    """Write the clinical CSV(s) of the layout; returns ``{task: path}`` (``{0: path}`` for flat)."""
    if layout == "flat":
        path = out_dir / FLAT_CSV_NAME
        write_text_atomic(path, csv_text(patients, FLAT_COLUMNS))
        return {0: path}
    paths = {}
    for t in tasks_in_layout(layout, task):
        members = [p for p in patients if t in p.tasks]
        path = task_dir(out_dir, layout, t) / schema.TASK_CSV_NAMES[t]
        write_text_atomic(path, csv_text(members, TASK_COLUMNS[t]))
        paths[t] = path
    return paths


def is_nonempty_dir(path: Path) -> bool:
    return path.is_dir() and any(os.scandir(path))
