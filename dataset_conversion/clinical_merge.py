"""Merge the task CSVs into one clinical table: one row per patient, raw values as written.

Rules
-----
- Rows are matched by ``PatientID``; columns are addressed by name (each task CSV carries other columns,
  in any order). The merged table keeps the original column names and the raw text of each value.
- The same patient in several CSVs: the first non-empty value in task order is kept. Two non-empty values
  that *parse* differently (``nnunet_hecktor.clinical.parse_value``; so ``1.0`` and ``1`` agree) are a
  conflict: an error naming patient, column, values and files (every conflict is listed).
- Two rows for one patient in one file: a duplicate-ID error.
- A malformed row (non-numeric Age, unknown M-stage, negative RFS, Relapse not 0/1, more cells than
  columns, ...) is a failure of that patient, not of the whole conversion: it is returned in
  :attr:`ClinicalTable.row_errors` and the converter leaves the patient out with that reason.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from nnunet_hecktor import schema
from nnunet_hecktor.clinical import parse_clinical_row, parse_value
from nnunet_hecktor.errors import HecktorError, InputDataError
from nnunet_hecktor.fileio import write_text_atomic

from .layout import ClinicalSource


@dataclass
class ClinicalTable:
    """The merged clinical table.

    Attributes
    ----------
    columns : list of str
        Output column order: ``PatientID``, the known HECKTOR columns (targets always included), then
        any other column in order of first appearance.
    raw : dict
        PatientID -> column -> raw text as written in the source CSV.
    values : dict
        PatientID -> column -> parsed value (``None`` when missing), see ``nnunet_hecktor.clinical``.
    sources : dict
        PatientID -> names of the CSVs that have a row for the patient.
    row_errors : dict
        PatientID -> why its row is malformed (the patient is left out of the dataset).
    warnings : list of str
        Dataset-level notes (empty rows skipped, ...).
    """

    columns: list[str]
    raw: dict[str, dict[str, str]] = field(default_factory=dict)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[str, list[str]] = field(default_factory=dict)
    row_errors: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Row:
    source: ClinicalSource
    line: int
    cells: dict[str, str]


def read_csv_rows(source: ClinicalSource) -> tuple[list[str], list[_Row], list[str]]:
    """Read one CSV into raw rows.

    Returns
    -------
    header, rows, problems
        ``problems`` lists duplicate PatientIDs and rows without a PatientID (dataset-level errors).

    Raises
    ------
    InputDataError
        The file cannot be read or has no ``PatientID`` column.
    """
    path = source.path
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputDataError(f"not a UTF-8 text CSV ({exc.reason})", None, path) from None
    except OSError as exc:
        raise InputDataError(f"cannot read clinical CSV ({exc.strerror})", None, path) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in next(reader, [])]
    if schema.COL_PATIENT not in header:
        raise InputDataError(f"no {schema.COL_PATIENT!r} column (columns: {', '.join(header) or 'none'})", None, path)
    pid_index = header.index(schema.COL_PATIENT)
    rows: list[_Row] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for line_number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue  # blank line
        pid = cells[pid_index].strip() if pid_index < len(cells) else ""
        if not pid:
            problems.append(f"{path}: line {line_number}: empty {schema.COL_PATIENT}")
            continue
        if pid in first_line:
            problems.append(f"{pid}: {path}: duplicate PatientID (rows at lines {first_line[pid]} and {line_number})")
            continue
        first_line[pid] = line_number
        row = {column: (cells[i] if i < len(cells) else None) for i, column in enumerate(header)}
        if len(cells) > len(header):
            row[None] = cells[len(header):]  # type: ignore[index]  # parse_clinical_row reports it
        rows.append(_Row(source, line_number, row))
    return header, rows, problems


def _row_error(row: _Row, pid: str) -> str | None:
    if any(v is None for k, v in row.cells.items() if k is not None):
        return f"{row.source.path}: line {row.line}: malformed CSV row (fewer cells than header columns)"
    try:
        parse_clinical_row(row.cells, pid, row.source.path)
    except InputDataError as exc:
        return f"{row.source.path}: line {row.line}: {exc.problem}"
    return None


def _parsed_or_raw(column: str, raw: str) -> Any:
    try:
        return parse_value(column, raw)
    except ValueError:
        return raw.strip()


def merge_clinical_csvs(sources: Iterable[ClinicalSource]) -> ClinicalTable:
    """Read and merge the clinical CSVs (see the module docstring for the rules).

    Parameters
    ----------
    sources : iterable of ClinicalSource
        CSVs in preference order (task order).

    Returns
    -------
    ClinicalTable

    Raises
    ------
    HecktorError
        Unreadable CSV, no PatientID column, duplicate PatientIDs in one file, rows without PatientID, or
        conflicting values for one patient across files (each problem listed with patient, column, files).
    """
    columns: list[str] = list(schema.CLINICAL_COLUMNS)
    table = ClinicalTable(columns=columns)
    problems: list[str] = []
    rows_by_patient: dict[str, list[_Row]] = {}
    for source in sources:
        header, rows, file_problems = read_csv_rows(source)
        problems.extend(file_problems)
        for column in header:
            if column and column not in columns:
                columns.append(column)
        for row in rows:
            pid = row.cells[schema.COL_PATIENT].strip()
            rows_by_patient.setdefault(pid, []).append(row)
    if problems:
        raise HecktorError("problems in the clinical CSVs:\n  " + "\n  ".join(problems))

    conflicts: list[str] = []
    for pid in sorted(rows_by_patient):
        rows = rows_by_patient[pid]
        table.sources[pid] = [row.source.path.name for row in rows]
        errors = [e for e in (_row_error(row, pid) for row in rows) if e]
        if errors:
            table.row_errors[pid] = "; ".join(errors)
        raw: dict[str, str] = {}
        chosen_from: dict[str, _Row] = {}
        for row in rows:
            for column, value in row.cells.items():
                if column is None or column == schema.COL_PATIENT or value is None or not value.strip():
                    continue
                if column not in raw:
                    raw[column] = value.strip()
                    chosen_from[column] = row
                elif _parsed_or_raw(column, raw[column]) != _parsed_or_raw(column, value):
                    first = chosen_from[column]
                    conflicts.append(
                        f"{pid}: column {column!r}: {raw[column]!r} in {first.source.path} (line {first.line}) "
                        f"vs {value.strip()!r} in {row.source.path} (line {row.line})")
        raw[schema.COL_PATIENT] = pid
        table.raw[pid] = raw
        if pid not in table.row_errors:
            table.values[pid] = {c: _parsed_or_raw(c, raw[c]) if c in raw else None for c in columns}
            table.values[pid][schema.COL_PATIENT] = pid
    if conflicts:
        raise HecktorError("conflicting clinical values for the same patient across CSVs:\n  " + "\n  ".join(conflicts))
    return table


def clinical_csv_text(table: ClinicalTable, patient_ids: Iterable[str]) -> str:
    """The merged table as CSV text: one row per patient of ``patient_ids`` (empty cells where unknown)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.columns)
    for pid in patient_ids:
        raw = table.raw.get(pid, {schema.COL_PATIENT: pid})
        writer.writerow([raw.get(column, "") for column in table.columns])
    return buffer.getvalue()


def write_clinical_csv(table: ClinicalTable, patient_ids: Iterable[str], destination: str | Path) -> None:
    """Write ``clinical.csv`` atomically (see :func:`clinical_csv_text`)."""
    write_text_atomic(destination, clinical_csv_text(table, patient_ids))
