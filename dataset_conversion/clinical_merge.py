"""Merge the task CSVs into one clinical table: one row per patient, raw values as written.

Rules
-----
- Rows are matched by ``PatientID``; columns are addressed by name (each task CSV carries other columns,
  in any order). The delimiter (``,``, ``;`` or tab) and the header spellings are read as
  :mod:`~.csv_format` describes: a header equal to a known column up to case and white space is read as
  that column (a warning); a near miss (``RFS (days)``, ``HPV_Status``) is an error that names it.
- Headers are read through the edition's contract first (:attr:`nnunet_hecktor.editions.Edition.column_aliases`:
  2021's ``Progression`` / ``Progression free survival`` are ``Relapse`` / ``RFS``, 2022's
  ``HPV status (0=-, 1=+)`` is ``HPV Status``, 2026's ``T_stage`` is ``T-stage``, ...); the renaming is
  recorded in :attr:`ClinicalTable.column_notes`. Several CSVs of one release (2022's clinical info and
  endpoint tables) merge by ``PatientID`` like the task CSVs.
- The merged table keeps the known column names and the raw text of each usable value, except T and N
  stages, stored as the schema's canonical labels (``T4a`` -> ``T4``, ``N2b`` -> ``N2``; ``schema.stage_code``
  gives the ordinal code). Unknown extra columns are kept as written.
- A value that cannot be parsed or is out of range (``nnunet_hecktor.clinical.parse_value`` raises or
  gives nothing) is *treated as missing* with a warning naming patient, file, line, column and value:
  a clinical field never costs a patient its images. ``clinical.csv`` gets an empty cell there, so
  everything downstream reads only values the parser accepts. ``CenterID`` is an open set (used for
  stratification only); whether an unseen code is usable is the parser's decision.
- A row with more cells than the header cannot be read reliably (the values may be shifted): all its
  clinical values are treated as missing, with a warning (:attr:`ClinicalTable.row_errors`).
  A row with fewer cells reads the absent trailing cells as empty.
- The same patient in several CSVs: the first usable value in task order is kept. Two usable values
  that *parse* differently (so ``1.0`` and ``1`` agree) are a conflict: an error naming patient, column,
  values and files (every conflict is listed).
- Two rows for one patient in one file, or a row without PatientID: an error.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from nnunet_hecktor import schema
from nnunet_hecktor.clinical import is_missing, parse_value
from nnunet_hecktor.editions import Edition, all_column_aliases, get_edition
from nnunet_hecktor.errors import HecktorError, InputDataError
from nnunet_hecktor.fileio import write_text_atomic

from .csv_format import decimal_comma_to_point, delimiter_name, detect_delimiter, map_headers
from .layout import ClinicalSource

logger = logging.getLogger(__name__)


@dataclass
class ClinicalTable:
    """The merged clinical table.

    Attributes
    ----------
    columns : list of str
        Output column order: ``PatientID``, the known HECKTOR columns (targets always included), then
        any other column in order of first appearance.
    raw : dict
        PatientID -> column -> raw text as written in the source CSV (usable values only).
    values : dict
        PatientID -> column -> parsed value (``None`` when missing), see ``nnunet_hecktor.clinical``.
    sources : dict
        PatientID -> names of the CSVs that have a row for the patient.
    value_warnings : dict
        PatientID -> warnings about its values treated as missing (file, line, column, value).
    row_errors : dict
        PatientID -> why a row of it could not be read at all (more cells than header columns); that
        row's values are treated as missing (also in :attr:`value_warnings`).
    warnings : list of str
        Dataset-level notes (delimiter, renamed headers, ...).
    column_notes : list of str
        Headers read under the edition's name for them (``Progression`` -> ``Relapse``): information, not warnings.
    found_columns : list of str
        Columns present in at least one CSV header (after renaming), in order of first appearance.
    """

    columns: list[str]
    raw: dict[str, dict[str, str]] = field(default_factory=dict)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[str, list[str]] = field(default_factory=dict)
    value_warnings: dict[str, list[str]] = field(default_factory=dict)
    row_errors: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    column_notes: list[str] = field(default_factory=list)
    found_columns: list[str] = field(default_factory=list)


@dataclass
class _Row:
    source: ClinicalSource
    line: int
    cells: dict[str, str]
    too_many_cells: bool = False


@dataclass
class _CsvFile:
    header: list[str]
    rows: list[_Row]
    problems: list[str]
    notes: list[str]
    column_notes: list[str] = field(default_factory=list)


def _read_text(path: Path, notes: list[str]) -> str:
    """The CSV's text: UTF-8 (with or without BOM), else Windows-1252 (spreadsheets in Western locales)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputDataError(f"cannot read clinical CSV ({exc.strerror})", None, path) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf8_problem = exc.reason
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        raise InputDataError(f"not a UTF-8 text CSV ({utf8_problem})", None, path) from None
    notes.append(f"{path}: not UTF-8; read as Windows-1252 (check accented text in clinical.csv)")
    return text


def _header_problems(path: Path, raw_header: list[str], notes: list[str]) -> tuple[list[str], list[str]]:
    """Column names to use, and header errors (near misses, duplicates, no PatientID)."""
    mapping = map_headers(raw_header)
    problems = []
    for written, known in mapping.renamed:
        notes.append(f"{path}: column {written!r} read as {known!r} (case/white space differ)")
    for written, known in mapping.near_misses:
        if known == schema.COL_CENTER:  # stratification only: not worth stopping the conversion
            notes.append(f"{path}: column {written!r} resembles {known!r} but is kept as an extra column; "
                         f"rename it to {known!r} if it holds the centre codes")
        elif known in mapping.columns:
            notes.append(f"{path}: column {written!r} resembles {known!r}, which the file also has: "
                         "kept as an extra column")
        else:
            alias = all_column_aliases().get(" ".join(written.split()).lower())
            hint = (f" (it is the HECKTOR {alias[1]} name of {alias[0]!r}: pass --edition {alias[1]} if the data are "
                    f"from that edition)" if alias is not None and alias[0] == known else "")
            problems.append(f"{path}: column {written!r} looks like {known!r} but is not spelled like it; "
                            f"rename it to {known!r} if it means the same (same units), otherwise rename it "
                            f"to something else{hint}")
    for duplicate in mapping.duplicates:
        problems.append(f"{path}: two columns read as {duplicate}")
    if schema.COL_PATIENT not in mapping.columns and not any(k == schema.COL_PATIENT for _, k in mapping.near_misses):
        shown = ", ".join(raw_header) or "none"
        hint = ""
        if len(raw_header) == 1:
            hint = " (the header reads as one column: is the file separated by something else than ',', ';' or a tab?)"
        problems.append(f"{path}: no {schema.COL_PATIENT!r} column (columns: {shown}){hint}")
    return mapping.columns, problems


def read_csv_rows(source: ClinicalSource, edition: Edition | None = None) -> _CsvFile:
    """Read one CSV into raw rows (header spellings and delimiter as :mod:`~.csv_format` describes).

    Headers are first renamed by ``edition``'s column aliases (default edition when None).

    Returns
    -------
    _CsvFile
        ``header`` (column names used), ``rows``, ``problems`` (errors: duplicate or empty PatientIDs,
        near-miss headers, no PatientID column) and ``notes`` (warnings: delimiter, renamed headers).

    Raises
    ------
    InputDataError
        The file cannot be read, or is neither UTF-8 nor Windows-1252 text.
    """
    path = source.path
    notes: list[str] = []
    text = _read_text(path, notes)
    first_line = text.splitlines()[0] if text else ""
    delimiter = detect_delimiter(first_line)
    if delimiter != ",":
        notes.append(f"{path}: {delimiter_name(delimiter)}-separated; read with {delimiter!r}")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    contract = edition or get_edition(None)
    column_notes = []
    written = next(reader, [])
    renamed = []
    for before in written:
        after = contract.canonical_column(before)
        if after == " ".join(before.split()):  # no alias of the edition: csv_format reads it as written
            renamed.append(before)
        else:
            renamed.append(after)
            column_notes.append(f"{path.name}: column {before.strip()!r} read as {after!r} (HECKTOR {contract.name})")
    header, problems = _header_problems(path, renamed, notes)
    if schema.COL_PATIENT not in header:
        return _CsvFile(header, [], problems, notes, column_notes)
    pid_index = header.index(schema.COL_PATIENT)
    rows: list[_Row] = []
    first_line_of: dict[str, int] = {}
    decimal_commas = 0
    for line_number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue  # blank line
        pid = cells[pid_index].strip() if pid_index < len(cells) else ""
        if not pid:
            problems.append(f"{path}: line {line_number}: empty {schema.COL_PATIENT}")
            continue
        if pid in first_line_of:
            problems.append(f"{pid}: {path}: duplicate PatientID (rows at lines {first_line_of[pid]} and "
                            f"{line_number})")
            continue
        first_line_of[pid] = line_number
        row = {column: (cells[i] if i < len(cells) else "") for i, column in enumerate(header)}
        if delimiter != ",":
            for column, value in row.items():
                if (point := decimal_comma_to_point(value)) is not None:
                    row[column] = point
                    decimal_commas += 1
        rows.append(_Row(source, line_number, row, too_many_cells=len(cells) > len(header)))
    if decimal_commas:
        notes.append(f"{path}: {decimal_commas} numbers with a decimal comma read with a decimal point")
    return _CsvFile(header, rows, problems, notes, column_notes)


def _usable_cells(row: _Row, pid: str, warnings: list[str]) -> dict[str, str]:
    """The row's non-empty values that parse, stripped; a warning for each one treated as missing."""
    where = f"{row.source.path}: line {row.line}"
    if row.too_many_cells:
        warnings.append(f"{where}: more cells than header columns (values may be shifted); every "
                        "clinical value of this row treated as missing")
        return {}
    usable = {}
    for column, value in row.cells.items():
        if column == schema.COL_PATIENT or is_missing(value):
            continue
        try:
            parsed = parse_value(column, value)
        except ValueError as exc:
            reason = str(exc).replace(f"column {column!r}: ", "")
            warnings.append(f"{where}: column {column!r}: value {value.strip()!r} not usable ({reason}); "
                            "treated as missing")
            continue
        if parsed is None:
            warnings.append(f"{where}: column {column!r}: value {value.strip()!r} read as missing")
            continue
        # T/N stages are stored as the schema's canonical labels (one coding for every reader).
        usable[column] = parsed if column in schema.STAGES_OF_COLUMN else value.strip()
    return usable


def merge_clinical_csvs(sources: Iterable[ClinicalSource], edition: Edition | str | None = None) -> ClinicalTable:
    """Read and merge the clinical CSVs (see the module docstring for the rules).

    Parameters
    ----------
    sources : iterable of ClinicalSource
        CSVs in preference order (task order).
    edition : Edition or str, optional
        The HECKTOR edition whose column names the CSVs use (default: :data:`~nnunet_hecktor.editions.DEFAULT_EDITION`).

    Returns
    -------
    ClinicalTable
        Unusable values are missing there and listed in ``value_warnings`` (never an error).

    Raises
    ------
    HecktorError
        Unreadable CSV, no PatientID column, a near-miss header of a known column, duplicate PatientIDs in
        one file, rows without PatientID, or conflicting values for one patient across files (each
        problem listed with patient, column, files).
    """
    columns: list[str] = list(schema.CLINICAL_COLUMNS)
    table = ClinicalTable(columns=columns)
    problems: list[str] = []
    rows_by_patient: dict[str, list[_Row]] = {}
    contract = edition if isinstance(edition, Edition) else get_edition(edition)
    for source in sources:
        read = read_csv_rows(source, contract)
        problems.extend(read.problems)
        table.warnings.extend(read.notes)
        table.column_notes.extend(read.column_notes)
        for column in read.header:
            if column and column not in columns:
                columns.append(column)
            if column and column not in table.found_columns:
                table.found_columns.append(column)
        for row in read.rows:
            rows_by_patient.setdefault(row.cells[schema.COL_PATIENT].strip(), []).append(row)
    if problems:
        raise HecktorError("problems in the clinical CSVs:\n  " + "\n  ".join(problems))

    conflicts: list[str] = []
    for pid in sorted(rows_by_patient):
        rows = rows_by_patient[pid]
        table.sources[pid] = [row.source.path.name for row in rows]
        warnings: list[str] = []
        raw: dict[str, str] = {}
        chosen_from: dict[str, _Row] = {}
        for row in rows:
            if row.too_many_cells:
                table.row_errors[pid] = f"{row.source.path}: line {row.line}: more cells than header columns"
            for column, value in _usable_cells(row, pid, warnings).items():
                if column not in raw:
                    raw[column] = value
                    chosen_from[column] = row
                elif parse_value(column, raw[column]) != parse_value(column, value):
                    first = chosen_from[column]
                    conflicts.append(
                        f"{pid}: column {column!r}: {raw[column]!r} in {first.source.path} (line {first.line}) "
                        f"vs {value!r} in {row.source.path} (line {row.line})")
        if warnings:
            table.value_warnings[pid] = warnings
            for warning in warnings:
                logger.debug("%s: %s", pid, warning)
        raw[schema.COL_PATIENT] = pid
        table.raw[pid] = raw
        table.values[pid] = {c: parse_value(c, raw[c]) if c in raw else None for c in columns}
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
