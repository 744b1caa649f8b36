"""Typed parsing and validation of HECKTOR clinical tables (CSV rows and ``ehr.json``).

Conventions (those of the 2025 release's clinical CSVs, docs/reference/conventions.md):

- Missing values are empty cells in the CSVs and absent keys in ``ehr.json``; they become ``None``.
- ``Gender``, ``Tobacco Consumption``, ``Alcohol Consumption``, ``Treatment``: 0/1, written ``0.0``/``1.0``;
  raw polarity kept (returned as ``int``).
- ``Performance Status``: ECOG 0-4 or Karnofsky 80/90/100, returned raw as ``int``;
  :func:`performance_status_to_ecog` maps both onto ECOG.
- ``M-stage``: ``"M0"``, ``"M1"`` or ``"Mx"`` (case-insensitive on input, canonical on output).
- ``HPV Status``: 1 positive, 0 negative. ``Relapse``: 1 event, 0 censored. ``RFS``: days, >= 0.
- ``CenterID``: int code (schema.CENTER_CODES). ``Age``: years, float.

Columns are addressed by name; unknown extra columns are kept as raw strings.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Mapping

from nnunet_hecktor import schema
from nnunet_hecktor.errors import InputDataError

ClinicalRecord = dict[str, Any]


def is_missing(raw: Any) -> bool:
    """True for a missing clinical value: None, NaN, or an empty/"nan"/"NA"-like string."""
    if raw is None:
        return True
    if isinstance(raw, float) and math.isnan(raw):
        return True
    return isinstance(raw, str) and raw.strip().lower() in ("", "nan", "na", "n/a", "none", "null")


def _as_float(raw: Any, column: str) -> float:
    if isinstance(raw, bool):
        raise ValueError(f"column {column!r}: expected a number, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"column {column!r}: expected a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"column {column!r}: expected a finite number, got {raw!r}")
    return value


def _as_integer(raw: Any, column: str, allowed: tuple[int, ...]) -> int:
    value = _as_float(raw, column)
    if value != int(value) or int(value) not in allowed:
        allowed_text = ", ".join(str(a) for a in allowed)
        raise ValueError(f"column {column!r}: expected one of {{{allowed_text}}}, got {raw!r}")
    return int(value)


def parse_value(column: str, raw: Any) -> Any:
    """Parse one raw clinical value of ``column``; ``None`` for missing.

    Raises
    ------
    ValueError
        The value is malformed (non-numeric Age, unknown M-stage, negative RFS, Relapse not 0/1, ...).
    """
    if is_missing(raw):
        return None
    if column == schema.COL_PATIENT:
        return str(raw).strip()
    if column == schema.COL_AGE:
        age = _as_float(raw, column)
        if not 0 <= age <= 120:
            raise ValueError(f"column {column!r}: age {raw!r} outside 0-120 years")
        return age
    if column in schema.BINARY_COLUMNS or column in (schema.COL_HPV, schema.COL_RELAPSE):
        return _as_integer(raw, column, (0, 1))
    if column == schema.COL_PERFORMANCE:
        return _as_integer(raw, column, schema.ECOG_VALUES + schema.KARNOFSKY_VALUES)
    if column == schema.COL_MSTAGE:
        text = str(raw).strip()
        for stage in schema.M_STAGES:
            if text.lower() == stage.lower():
                return stage
        raise ValueError(f"column {column!r}: unknown M-stage {raw!r} (expected one of {', '.join(schema.M_STAGES)})")
    if column == schema.COL_RFS:
        rfs = _as_float(raw, column)
        if rfs < 0:
            raise ValueError(f"column {column!r}: negative RFS {raw!r} (days)")
        return rfs
    if column == schema.COL_CENTER:
        return _as_integer(raw, column, tuple(sorted(set(schema.CENTER_CODES.values()))))
    return str(raw).strip()


def parse_clinical_row(row: Mapping[str, Any], patient: str | None = None,
                       source: str | Path | None = None) -> ClinicalRecord:
    """Parse a raw row (CSV dict or ehr.json dict) into a typed record.

    Parameters
    ----------
    row : mapping
        Column name -> raw value (string from a CSV, number from JSON). Absent keys are missing.
    patient : str, optional
        PatientID for error messages (taken from the row when absent).
    source : path, optional
        File the row came from, for error messages.

    Returns
    -------
    dict
        One entry per column present in ``row`` plus every known clinical column (``None`` when missing).

    Raises
    ------
    InputDataError
        Naming the patient, the file and the malformed column/value.
    """
    patient = patient or (str(row.get(schema.COL_PATIENT, "")).strip() or None)
    record: ClinicalRecord = {column: None for column in schema.CLINICAL_COLUMNS}
    for column, raw in row.items():
        if column is None:
            raise InputDataError("malformed CSV row (more cells than header columns)", patient, source)
        column = column.strip()
        try:
            record[column] = parse_value(column, raw)
        except ValueError as exc:
            raise InputDataError(str(exc), patient, source) from None
    if patient is not None:
        record[schema.COL_PATIENT] = patient
    return record


def read_clinical_csv(path: str | Path) -> dict[str, ClinicalRecord]:
    """Read a HECKTOR clinical CSV (a task CSV or the converter's ``clinical.csv``).

    Returns
    -------
    dict
        PatientID -> typed record (see :func:`parse_clinical_row`), in file order.

    Raises
    ------
    InputDataError
        Unreadable file, no ``PatientID`` column, an empty PatientID, a duplicate PatientID or a malformed row.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in (reader.fieldnames or [])]
            if schema.COL_PATIENT not in header:
                raise InputDataError(f"no {schema.COL_PATIENT!r} column (columns: {', '.join(header) or 'none'})",
                                     None, path)
            records: dict[str, ClinicalRecord] = {}
            for line_number, row in enumerate(reader, start=2):
                row = {(k.strip() if isinstance(k, str) else k): v for k, v in row.items()}
                pid = (row.get(schema.COL_PATIENT) or "").strip()
                if not pid:
                    raise InputDataError(f"line {line_number}: empty {schema.COL_PATIENT}", None, path)
                if pid in records:
                    raise InputDataError(f"duplicate PatientID (second row at line {line_number})", pid, path)
                records[pid] = parse_clinical_row(row, pid, path)
    except UnicodeDecodeError as exc:
        raise InputDataError(f"not a UTF-8 text CSV ({exc.reason})", None, path) from None
    except OSError as exc:
        raise InputDataError(f"cannot read clinical CSV ({exc.strerror})", None, path) from None
    return records


def read_ehr_json(path: str | Path, patient: str | None = None) -> ClinicalRecord:
    """Read the challenge container's ``ehr.json`` (CSV column names as keys; absent key = missing)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputDataError(f"cannot read ehr.json ({exc})", patient, path) from None
    if not isinstance(data, dict):
        raise InputDataError("ehr.json must hold one JSON object", patient, path)
    return parse_clinical_row(data, patient or data.get(schema.COL_PATIENT), path)


def performance_status_to_ecog(value: int | None) -> int | None:
    """Map a Performance Status value onto ECOG 0-4.

    ECOG values 0-4 pass through; Karnofsky is mapped with the usual correspondence
    (KPS 90-100 -> ECOG 0, 70-80 -> 1, 50-60 -> 2, 30-40 -> 3, 10-20 -> 4). ``None`` stays ``None``.
    """
    if value is None:
        return None
    value = int(value)
    if value in schema.ECOG_VALUES:
        return value
    if 10 <= value <= 100:
        if value >= 90:
            return 0
        if value >= 70:
            return 1
        if value >= 50:
            return 2
        if value >= 30:
            return 3
        return 4
    raise ValueError(f"Performance Status {value} is neither ECOG 0-4 nor Karnofsky 10-100")


def format_value(value: Any) -> str:
    """Format a typed value back into the release's CSV encoding (``1.0`` for 0/1 codes, empty for missing)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1.0" if value else "0.0"
    if isinstance(value, (int, float)):
        return repr(float(value))
    return str(value)
