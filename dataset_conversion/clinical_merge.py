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
- Losses are also reported where they happen, once per column of a file: ``<file>: column 'Age' lost
  N of M values (treated as missing; examples ...)``. Words the parser maps (``Positive``/``Negative``,
  ``Yes``/``No``, ``Male``...) get one line per column of a file saying how they were read; so do
  quoted decimal commas of a comma-separated file (``"595,0"``; ``"1,234"`` is ambiguous and refused).
  A known column (model input or target) that no CSV has is named once. These lines are in
  :attr:`ClinicalTable.warnings`; the losses (and the other events listed under
  :attr:`ClinicalTable.alerts`) are what ``--strict`` refuses.
- A row with more cells than the header cannot be read reliably (the values may be shifted): all its
  clinical values are treated as missing, with a warning (:attr:`ClinicalTable.row_errors`).
  A row with fewer cells reads the absent trailing cells as empty.
- The same patient in several CSVs: the first usable value in task order is kept. Two usable values
  that *parse* differently (so ``1.0`` and ``1`` agree) are a conflict: an error naming patient, column,
  values and files (every conflict is listed). ``Performance Status`` is compared on the ECOG scale
  (``performance_status_to_ecog``): Karnofsky 80 in one file and ECOG 1 in another agree (a warning).
- PatientIDs that differ only in case across the CSVs (``CHUP-001``, ``chup-001``) are read as two
  patients, with a warning naming both (an alert: the targets of one may be meant for the other).
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
from nnunet_hecktor.clinical import (
    canonical_spelling,
    is_missing,
    parse_value,
    performance_status_to_ecog,
    read_csv_text,
)
from nnunet_hecktor.clinical import (
    decimal_comma_to_point as quoted_decimal_comma_to_point,
)
from nnunet_hecktor.editions import Edition, all_column_aliases, get_edition
from nnunet_hecktor.errors import HecktorError
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
        Dataset-level notes (delimiter, renamed headers, per-column losses and readings, ...).
    alerts : list of str
        The dataset-level lines (also in :attr:`warnings`) about something lost or ambiguous, which
        ``convert --strict`` refuses: a column of a file that lost values, rows with more cells than
        header columns, PatientIDs that differ only in case.
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
    alerts: list[str] = field(default_factory=list)
    column_notes: list[str] = field(default_factory=list)
    found_columns: list[str] = field(default_factory=list)


#: Examples of lost values named in a column's summary line.
_EXAMPLES = 3


@dataclass
class _ColumnTally:
    """What happened to the values of one column of one file."""

    given: int = 0
    lost: list[tuple[int, str, str]] = field(default_factory=list)  # (line, value, reason)
    not_assessable: dict[str, int] = field(default_factory=dict)  # written -> count (Tx, Nx, Tis: missing)
    read_as: dict[tuple[str, Any], int] = field(default_factory=dict)  # (written, code) -> count


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
    """The CSV's text (:func:`nnunet_hecktor.clinical.decode_csv_bytes`: UTF-8, UTF-16/32 with byte-order
    mark, else Windows-1252), with a note when it was not UTF-8."""
    text, note = read_csv_text(path)
    if note is not None:
        notes.append(f"{path}: {note}" + (" in clinical.csv" if "Windows-1252" in note else ""))
    return text


def _header_problems(path: Path, raw_header: list[str], notes: list[str]) -> tuple[list[str], list[str]]:
    """Column names to use, and header errors (near misses, duplicates, no PatientID)."""
    mapping = map_headers(raw_header)
    problems = []
    for written, known in mapping.renamed:
        notes.append(f"{path}: column {written!r} read as {known!r} (case/white space differ)")
    for written, known in mapping.aliased:
        notes.append(f"{path}: column {written!r} read as {known!r} (another name of it)")
    for written, known in mapping.alias_kept:
        notes.append(f"{path}: column {written!r} (another name of {known!r}) kept as an extra column: "
                     f"the file also has {known!r}")
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
        The file cannot be read, or is text in none of the accepted encodings
        (:func:`nnunet_hecktor.clinical.decode_csv_bytes`).
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
    quoted_decimal_commas: dict[str, list] = {}  # column -> [count, first value as written]
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
        else:
            # A comma inside a cell of a comma-separated file was quoted ("595,0"): a decimal comma,
            # unless three digits follow it ("1,234": thousands?), which parse_value then refuses.
            for column, value in row.items():
                try:
                    point = quoted_decimal_comma_to_point(value) if column != schema.COL_PATIENT else None
                except ValueError:
                    point = None
                if point is not None:
                    row[column] = point
                    quoted_decimal_commas.setdefault(column, [0, value.strip()])[0] += 1
        rows.append(_Row(source, line_number, row, too_many_cells=len(cells) > len(header)))
    if decimal_commas:
        notes.append(f"{path}: {decimal_commas} numbers with a decimal comma read with a decimal point")
    for column, (count, example) in quoted_decimal_commas.items():
        notes.append(f"{path}: column {column!r}: {count} quoted numbers with a decimal comma (e.g. "
                     f"\"{example}\") read with a decimal point")
    return _CsvFile(header, rows, problems, notes, column_notes)


def _usable_cells(row: _Row, pid: str, warnings: list[str],
                  tallies: dict[tuple[Path, str], _ColumnTally]) -> dict[str, str]:
    """The row's non-empty values that parse, stripped; a warning for each one treated as missing.

    ``tallies`` (file, column) -> :class:`_ColumnTally` receives every non-empty value, lost or read
    through a mapped spelling, for the per-column lines.
    """
    where = f"{row.source.path}: line {row.line}"
    if row.too_many_cells:
        warnings.append(f"{where}: more cells than header columns (values may be shifted); every "
                        "clinical value of this row treated as missing")
        return {}
    usable = {}
    for column, value in row.cells.items():
        if column == schema.COL_PATIENT or is_missing(value):
            continue
        tally = tallies.setdefault((row.source.path, column), _ColumnTally())
        tally.given += 1
        try:
            parsed = parse_value(column, value)
        except ValueError as exc:
            reason = str(exc).replace(f"column {column!r}: ", "")
            warnings.append(f"{where}: column {column!r}: value {value.strip()!r} not usable ({reason}); "
                            "treated as missing")
            tally.lost.append((row.line, value.strip(), reason))
            continue
        if parsed is None:  # a written "missing" (Tx, Nx, Tis: not assessable): said, not a loss
            warnings.append(f"{where}: column {column!r}: value {value.strip()!r} read as missing")
            tally.not_assessable[value.strip()] = tally.not_assessable.get(value.strip(), 0) + 1
            continue
        if isinstance(value, str) and canonical_spelling(column, value) is not value:
            key = (value.strip(), parsed)
            tally.read_as[key] = tally.read_as.get(key, 0) + 1
        # T/N stages are stored as the schema's canonical labels (one coding for every reader).
        usable[column] = parsed if column in schema.STAGES_OF_COLUMN else value.strip()
    return usable


def _column_lines(tallies: dict[tuple[Path, str], _ColumnTally]) -> tuple[list[str], list[str]]:
    """Per column of a file: the loss line (an alert) and the line saying how mapped words were read."""
    losses, readings = [], []
    for (path, column), tally in tallies.items():
        if tally.lost:
            amount = f"all {tally.given}" if len(tally.lost) == tally.given else f"{len(tally.lost)} of {tally.given}"
            examples = "; ".join(f"line {line} {value!r} ({reason})" for line, value, reason in tally.lost[:_EXAMPLES])
            more = "; ..." if len(tally.lost) > _EXAMPLES else ""
            losses.append(f"{path}: column {column!r} lost {amount} values (treated as missing; examples: "
                          f"{examples}{more})")
        if tally.read_as:
            shown = ", ".join(f"{written!r} -> {code!r} ({n})" for (written, code), n in sorted(
                tally.read_as.items(), key=lambda item: str(item[0])))
            readings.append(f"{path}: column {column!r}: words read as the release's codes: {shown}")
        if tally.not_assessable:
            shown = ", ".join(f"{written!r} ({n})" for written, n in sorted(tally.not_assessable.items()))
            readings.append(f"{path}: column {column!r}: values meaning 'not assessable' read as missing: {shown}")
    return losses, readings


def _case_variant_lines(rows_by_patient: dict[str, list[_Row]]) -> list[str]:
    """One line per group of PatientIDs of the CSVs that differ only in case."""
    groups: dict[str, list[str]] = {}
    for pid in rows_by_patient:
        groups.setdefault(pid.casefold(), []).append(pid)
    lines = []
    for variants in groups.values():
        if len(variants) > 1:
            where = ", ".join(f"{v!r} ({', '.join(sorted({r.source.path.name for r in rows_by_patient[v]}))})"
                              for v in sorted(variants))
            lines.append(f"PatientIDs that differ only in case: {where}; read as different patients (their "
                         "values are not merged): spell them alike in every CSV and folder")
    return lines


def _same_on_ecog_scale(column: str, a: str, b: str) -> bool:
    if column != schema.COL_PERFORMANCE:
        return False
    return performance_status_to_ecog(parse_value(column, a)) == performance_status_to_ecog(parse_value(column, b))


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
    sources_read: list[Path] = []
    headers_seen: set[str] = set()
    contract = edition if isinstance(edition, Edition) else get_edition(edition)
    for source in sources:
        read = read_csv_rows(source, contract)
        sources_read.append(source.path)
        headers_seen.update(read.header)
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
    tallies: dict[tuple[Path, str], _ColumnTally] = {}
    ecog_agreements: list[str] = []
    for pid in sorted(rows_by_patient):
        rows = rows_by_patient[pid]
        table.sources[pid] = [row.source.path.name for row in rows]
        warnings: list[str] = []
        raw: dict[str, str] = {}
        chosen_from: dict[str, _Row] = {}
        for row in rows:
            if row.too_many_cells:
                table.row_errors[pid] = f"{row.source.path}: line {row.line}: more cells than header columns"
            for column, value in _usable_cells(row, pid, warnings, tallies).items():
                if column not in raw:
                    raw[column] = value
                    chosen_from[column] = row
                elif parse_value(column, raw[column]) != parse_value(column, value):
                    first = chosen_from[column]
                    both = (f"{raw[column]!r} in {first.source.path} (line {first.line}) "
                            f"vs {value!r} in {row.source.path} (line {row.line})")
                    if _same_on_ecog_scale(column, raw[column], value):
                        warnings.append(f"column {column!r}: {both} agree on the ECOG scale "
                                        f"(Karnofsky vs ECOG); kept {raw[column]!r}")
                        ecog_agreements.append(pid)
                        continue
                    if column == schema.COL_PERFORMANCE:
                        both += " (they differ on the ECOG scale too)"
                    conflicts.append(f"{pid}: column {column!r}: {both}")
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
    _add_table_lines(table, tallies, rows_by_patient, ecog_agreements, sources_read, headers_seen, contract)
    return table


def _add_table_lines(table: ClinicalTable, tallies: dict[tuple[Path, str], _ColumnTally],
                     rows_by_patient: dict[str, list[_Row]], ecog_agreements: list[str],
                     sources_read: list[Path], headers_seen: set[str], contract: Edition) -> None:
    """The dataset-level lines: per-column losses and readings, case-variant IDs, Karnofsky/ECOG, absent columns."""
    losses, readings = _column_lines(tallies)
    if table.row_errors:
        by_file: dict[str, list[str]] = {}
        for reason in table.row_errors.values():
            file, _, line = reason.partition(": line ")
            by_file.setdefault(file, []).append(line.split(":")[0])
        for file, lines in by_file.items():
            losses.append(f"{file}: {len(lines)} rows with more cells than header columns (lines "
                          f"{', '.join(sorted(lines, key=int))}): every clinical value of them treated as missing")
    case_variants = _case_variant_lines(rows_by_patient)
    table.alerts.extend(losses + case_variants)
    table.warnings[:0] = losses + case_variants  # first: the console shows the first lines only
    table.warnings.extend(readings)
    if ecog_agreements:
        shown = ", ".join(ecog_agreements[:10]) + (" ..." if len(ecog_agreements) > 10 else "")
        table.warnings.append(f"column {schema.COL_PERFORMANCE!r}: {len(ecog_agreements)} patients given as "
                              f"Karnofsky in one CSV and ECOG in another, with the same ECOG grade (the first "
                              f"file's value kept): {shown}")
    if sources_read:
        present = headers_seen
        # The edition's test-time inputs and its targets: what a model of this edition reads or learns.
        for column in dict.fromkeys(contract.test_inputs + contract.targets):
            if column not in present:
                role = "a model input" if column in contract.test_inputs else "a target"
                table.warnings.append(f"no clinical CSV has a column {column!r} ({role}): missing for every "
                                      f"patient (CSVs: {', '.join(p.name for p in sources_read)})")


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
