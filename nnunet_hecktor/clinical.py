"""Typed parsing and validation of HECKTOR clinical tables (CSV rows and ``ehr.json``).

Conventions (those of the 2025 release's clinical CSVs, docs/reference/conventions.md):

- Missing values are empty cells in the CSVs and absent keys in ``ehr.json``; they become ``None``.
- ``Gender``, ``Tobacco Consumption``, ``Alcohol Consumption``, ``Treatment``: 0/1, written ``0.0``/``1.0``;
  raw polarity kept (returned as ``int``).
- ``Performance Status``: ECOG 0-4 or Karnofsky 10-100 (multiples of 10; the release shows 80/90/100),
  returned raw as ``int``; :func:`performance_status_to_ecog` maps both onto ECOG.
- ``M-stage``: ``"M0"``, ``"M1"`` or ``"Mx"`` (case-insensitive on input, canonical on output);
  the sub-stages ``M1a``/``M1b``/``M1c`` are ``"M1"``.
- ``Gender``: besides 0/1, the spellings of :data:`SEX_SPELLINGS` (``Male``, ``M``, ``female``, ...) are
  read as 1 = male, 0 = female: the release's polarity is undocumented, but about 80 % of head and neck
  cancer patients are men and ``Gender`` 1 is the release's majority value.
- ``HPV Status``: 1 positive, 0 negative. ``Relapse``: 1 event, 0 censored. ``RFS``: days, >= 0.
- ``CenterID``: any integer code (an open set: schema.CENTER_CODES lists the training release's;
  never a model input). ``Age``: years, float, 0-120.

Columns are addressed by name; unknown extra columns are kept as raw strings.

Two policies use these parsers:

- **strict** (:func:`parse_clinical_row`, :func:`read_clinical_csv`, :func:`read_ehr_json`): a malformed
  value raises :class:`~nnunet_hecktor.errors.InputDataError` naming patient, file and column. For
  training tables and evaluation targets, where a wrong value must be fixed at the source.
- **inference** (:func:`parse_inference_record`, :func:`read_inference_csv`, :func:`read_inference_ehr_json`):
  clinical values are advisory. Only :data:`MODEL_INPUT_COLUMNS` are read (``CenterID``, the targets and
  unknown keys are ignored); a value that cannot be parsed or is out of range becomes missing (the
  encoder's missing indicator); every such value, and every alternative spelling that was mapped, is
  returned as a :class:`ClinicalSubstitution` naming patient, column and value. Nothing raises for a value.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from nnunet_hecktor import schema
from nnunet_hecktor.errors import InputDataError

ClinicalRecord = dict[str, Any]

logger = logging.getLogger(__name__)

#: Columns the models take as inputs (network heads, prognosis stage). ``CenterID`` never is (the test
#: phases bring centres absent from training), nor are the targets.
MODEL_INPUT_COLUMNS: tuple[str, ...] = (
    schema.COL_AGE, schema.COL_GENDER, schema.COL_TOBACCO, schema.COL_ALCOHOL, schema.COL_PERFORMANCE,
    schema.COL_TREATMENT, schema.COL_MSTAGE,
)
#: Karnofsky performance scale values accepted in ``Performance Status`` (besides ECOG 0-4).
KARNOFSKY_SCALE: tuple[int, ...] = tuple(range(10, 101, 10))
#: Plausible ages in years; outside is a typo (strict: error; inference: missing).
AGE_RANGE: tuple[float, float] = (0.0, 120.0)
#: Spelled-out sexes (lower case) -> the release's raw ``Gender`` code (1 = male, 0 = female, see above).
SEX_SPELLINGS: dict[str, int] = {"male": 1, "m": 1, "man": 1, "female": 0, "f": 0, "woman": 0}
#: M-stage sub-stages -> the release's stage.
M_SUBSTAGES: dict[str, str] = {"m1a": "M1", "m1b": "M1", "m1c": "M1", "m0": "M0", "mx": "Mx", "m1": "M1"}
#: T/N spellings that are "not assessable": missing values, not classes (schema.T_STAGES / N_STAGES).
UNASSESSABLE_STAGES: tuple[str, ...] = ("tx", "nx", "tis")
_STAGE_PATTERN = re.compile(r"^(?:[cpy]{0,2})?(?P<letter>[TN])(?P<number>[0-4])(?P<sub>[abc]?)$", re.IGNORECASE)


def parse_stage(column: str, raw: Any) -> str | None:
    """Canonical T or N stage (``schema.T_STAGES`` / ``N_STAGES``) of a raw value; None when missing.

    Accepted: the labels in any case and with spaces (``"t2"``, ``"T 2"``), sub-stages (``"T4a"`` -> ``"T4"``,
    ``"N2b"`` -> ``"N2"``), clinical/pathological prefixes (``"cT2"``), a bare ordinal code (``2`` or ``"2.0"``).
    ``Tx``/``Nx``/``Tis`` are missing. Anything else raises ValueError.
    """
    if is_missing(raw):
        return None
    stages = schema.STAGES_OF_COLUMN[column]
    letter = "T" if column == schema.COL_TSTAGE else "N"
    text = str(raw).strip().replace(" ", "")
    if text.lower() in UNASSESSABLE_STAGES:
        return None
    match = _STAGE_PATTERN.match(text)
    if match and match.group("letter").upper() == letter and int(match.group("number")) < len(stages):
        return stages[int(match.group("number"))]
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if number == number and number == int(number) and 0 <= int(number) < len(stages):
        return stages[int(number)]
    raise ValueError(f"column {column!r}: unknown stage {raw!r} (expected one of {', '.join(stages)}, "
                     f"sub-stages such as {letter}2a, or {letter}x for not assessable)")


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


def canonical_spelling(column: str, raw: Any) -> Any:
    """``raw`` with an alternative spelling of clear meaning replaced by the release's encoding.

    ``Gender``: :data:`SEX_SPELLINGS` (``"Male"`` -> 1, ``"F"`` -> 0); ``M-stage``: ``"M1a"``/``"M1b"``/``"M1c"``
    -> ``"M1"`` (case and surrounding spaces ignored). Anything else is returned unchanged.
    """
    if not isinstance(raw, str):
        return raw
    key = raw.strip().lower()
    if column == schema.COL_GENDER and key in SEX_SPELLINGS:
        return SEX_SPELLINGS[key]
    if column == schema.COL_MSTAGE and key.replace(" ", "") in M_SUBSTAGES:
        return M_SUBSTAGES[key.replace(" ", "")]
    return raw


def parse_value(column: str, raw: Any) -> Any:
    """Parse one raw clinical value of ``column``; ``None`` for missing.

    Alternative spellings of clear meaning are accepted (:func:`canonical_spelling`).

    Raises
    ------
    ValueError
        The value is malformed (non-numeric Age, unknown M-stage, negative RFS, Relapse not 0/1, ...).
    """
    if is_missing(raw):
        return None
    if column == schema.COL_PATIENT:
        return str(raw).strip()
    raw = canonical_spelling(column, raw)
    if column == schema.COL_AGE:
        age = _as_float(raw, column)
        low, high = AGE_RANGE
        if not low <= age <= high:
            raise ValueError(f"column {column!r}: age {raw!r} outside {low:g}-{high:g} years")
        return age
    if column in schema.BINARY_COLUMNS or column in (schema.COL_HPV, schema.COL_RELAPSE):
        return _as_integer(raw, column, (0, 1))
    if column == schema.COL_PERFORMANCE:
        value = _as_float(raw, column)
        if value != int(value) or int(value) not in schema.ECOG_VALUES + KARNOFSKY_SCALE:
            raise ValueError(f"column {column!r}: expected ECOG 0-4 or Karnofsky 10-100 (multiples of 10), "
                             f"got {raw!r}")
        return int(value)
    if column == schema.COL_MSTAGE:
        text = str(raw).strip()
        for stage in schema.M_STAGES:
            if text.lower() == stage.lower():
                return stage
        raise ValueError(f"column {column!r}: unknown M-stage {raw!r} (expected one of "
                         f"{', '.join(schema.M_STAGES)}, M1a, M1b, M1c)")
    if column in schema.STAGES_OF_COLUMN:
        return parse_stage(column, raw)
    if column == schema.COL_RFS:
        rfs = _as_float(raw, column)
        if rfs < 0:
            raise ValueError(f"column {column!r}: negative RFS {raw!r} (days)")
        return rfs
    if column == schema.COL_CENTER:
        # An open set: the challenge's test phases include centres absent from training.
        value = _as_float(raw, column)
        if value != int(value):
            raise ValueError(f"column {column!r}: expected an integer centre code, got {raw!r}")
        return int(value)
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


def _patient_rows(path: Path) -> Iterator[tuple[str, dict[Any, Any]]]:
    """``(PatientID, row)`` of every row of a clinical CSV (header names stripped), in file order.

    The table-level checks shared by the strict and the inference readers live here; how a row's
    values are parsed is the caller's policy.

    Raises
    ------
    InputDataError
        Unreadable or non-UTF-8 file, no ``PatientID`` column, an empty or duplicate PatientID.
    """
    seen: set[str] = set()
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in (reader.fieldnames or [])]
            if schema.COL_PATIENT not in header:
                raise InputDataError(f"no {schema.COL_PATIENT!r} column (columns: {', '.join(header) or 'none'})",
                                     None, path)
            for line_number, row in enumerate(reader, start=2):
                # Cells beyond the header come under the key None: the strict reader rejects them.
                row = {(k.strip() if isinstance(k, str) else k): v for k, v in row.items()}
                pid = (row.get(schema.COL_PATIENT) or "").strip()
                if not pid:
                    raise InputDataError(f"line {line_number}: empty {schema.COL_PATIENT}", None, path)
                if pid in seen:
                    raise InputDataError(f"duplicate PatientID (second row at line {line_number})", pid, path)
                seen.add(pid)
                yield pid, row
    except UnicodeDecodeError as exc:
        raise InputDataError(f"not a UTF-8 text CSV ({exc.reason})", None, path) from None
    except OSError as exc:
        raise InputDataError(f"cannot read clinical CSV ({exc.strerror})", None, path) from None


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
    records: dict[str, ClinicalRecord] = {}
    for pid, row in _patient_rows(Path(path)):
        records[pid] = parse_clinical_row(row, pid, path)
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


# -- inference policy -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClinicalSubstitution:
    """A clinical value that the inference policy did not use as given.

    Attributes
    ----------
    patient : str or None
    column : str
        The model input column (as the model knows it).
    raw : Any
        The value as given (``repr`` in messages).
    used : Any
        What the model received: ``None`` = missing (the encoder's missing indicator), or the
        release encoding an alternative spelling was mapped to.
    reason : str
        Why (the parser's message, or ``"alternative spelling"``).
    key : str or None
        The key as written when it differs from ``column`` (case or spaces).
    """

    patient: str | None
    column: str
    raw: Any
    used: Any
    reason: str
    key: str | None = None

    @property
    def is_missing(self) -> bool:
        """True when the value was dropped (treated as missing), False when it was mapped."""
        return self.used is None

    def describe(self) -> str:
        """One line: ``CHUP-000: Age = 121: age 121 outside 0-120 years -> missing``."""
        who = f"{self.patient}: " if self.patient else ""
        where = f"{self.column}" + (f" (key {self.key!r})" if self.key else "")
        result = "missing" if self.used is None else repr(self.used)
        return f"{who}{where} = {self.raw!r}: {self.reason} -> {result}"

    def as_row(self) -> dict[str, str]:
        """``PatientID, field, value, used, reason`` for a CSV."""
        return {schema.COL_PATIENT: self.patient or "", "field": self.column, "value": str(self.raw),
                "used": "" if self.used is None else str(self.used), "reason": self.reason}


SUBSTITUTION_COLUMNS: tuple[str, ...] = (schema.COL_PATIENT, "field", "value", "used", "reason")


def _input_key_map(row: Mapping[str, Any], columns: tuple[str, ...]) -> dict[str, str]:
    """Column -> the key of ``row`` that holds it (exact spelling first, then case/space-insensitive)."""
    def squash(text: str) -> str:
        return " ".join(str(text).split()).lower()

    wanted = {squash(c): c for c in columns}
    found: dict[str, str] = {}
    for key in row:
        if isinstance(key, str) and key in columns:
            found[key] = key
    for key in row:
        if not isinstance(key, str):
            continue
        column = wanted.get(squash(key))
        if column is not None and column not in found:
            found[column] = key
    return found


def parse_inference_record(row: Mapping[str, Any], patient: str | None = None,
                           columns: tuple[str, ...] = MODEL_INPUT_COLUMNS
                           ) -> tuple[ClinicalRecord, list[ClinicalSubstitution]]:
    """Parse a raw clinical row under the inference policy (see the module docstring).

    Parameters
    ----------
    row : mapping
        Column name -> raw value (a CSV row or the content of ``ehr.json``). Absent keys are missing.
    patient : str, optional
        PatientID for the substitutions (taken from the row when absent).
    columns : tuple of str
        Columns to read (default :data:`MODEL_INPUT_COLUMNS`: ``CenterID``, targets and unknown keys
        are not read). Other callers that must never lose a patient over a value (conversion) can
        pass every known column (e.g. ``schema.CLINICAL_COLUMNS[1:]``).

    Returns
    -------
    record : dict
        Every column of :data:`schema.CLINICAL_COLUMNS` (``None`` unless one of ``columns`` that
        parsed), plus ``PatientID``.
    substitutions : list of ClinicalSubstitution
        Values treated as missing, and alternative spellings mapped to the release encoding.
        Nothing is logged here: the caller reports them (one warning per dropped value).
    """
    if patient is None:
        pid = row.get(schema.COL_PATIENT)
        patient = None if is_missing(pid) else str(pid).strip()
    record: ClinicalRecord = {column: None for column in schema.CLINICAL_COLUMNS}
    substitutions: list[ClinicalSubstitution] = []
    for column, key in _input_key_map(row, tuple(c for c in columns if c != schema.COL_PATIENT)).items():
        raw = row[key]
        renamed = key if key != column else None
        try:
            value = parse_value(column, raw)
        except ValueError as exc:
            reason = str(exc).replace(f"column {column!r}: ", "")
            substitutions.append(ClinicalSubstitution(patient, column, raw, None, reason, renamed))
            continue
        record[column] = value
        mapped = canonical_spelling(column, raw)
        if isinstance(raw, str) and mapped is not raw and str(mapped).lower() != raw.strip().lower():
            substitutions.append(ClinicalSubstitution(patient, column, raw, value, "alternative spelling", renamed))
        elif renamed is not None:
            substitutions.append(ClinicalSubstitution(patient, column, raw, value, f"key {key!r} read as {column!r}",
                                                      renamed))
    if patient is not None:
        record[schema.COL_PATIENT] = patient
    return record, substitutions


def read_inference_csv(path: str | Path, columns: tuple[str, ...] = MODEL_INPUT_COLUMNS
                       ) -> tuple[dict[str, ClinicalRecord], list[ClinicalSubstitution]]:
    """Read a clinical CSV for prediction (inference policy: a bad value is missing, never an error).

    ``columns`` are the columns read, as in :func:`parse_inference_record` (default: the network's
    inputs; a prognosis-stage model adds its own ``clinical_columns``).

    Returns
    -------
    records : dict
        PatientID -> record (:func:`parse_inference_record`), in file order.
    substitutions : list of ClinicalSubstitution

    Raises
    ------
    InputDataError
        What makes the table itself unusable: unreadable file, no ``PatientID`` column, an empty or
        duplicate PatientID (which row is meant is ambiguous).
    """
    records: dict[str, ClinicalRecord] = {}
    substitutions: list[ClinicalSubstitution] = []
    for pid, row in _patient_rows(Path(path)):
        row = {k: v for k, v in row.items() if isinstance(k, str)}  # cells beyond the header: not read
        records[pid], found = parse_inference_record(row, pid, columns)
        substitutions += found
    return records, substitutions


def read_inference_ehr_json(path: str | Path, patient: str | None = None,
                            columns: tuple[str, ...] = MODEL_INPUT_COLUMNS
                            ) -> tuple[ClinicalRecord, list[ClinicalSubstitution]]:
    """Read the challenge container's ``ehr.json`` under the inference policy.

    ``columns`` are the keys read, as in :func:`parse_inference_record` (default: the network's
    inputs; a prognosis-stage model passes its own ``clinical_columns``, which may include
    ``HPV Status`` for survival). An unreadable file or one that is not a JSON object gives a record
    with every value missing and one substitution (column ``"ehr.json"``) saying why; nothing raises.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = f"unreadable ({exc}); every clinical value treated as missing"
        return parse_inference_record({}, patient)[0], [ClinicalSubstitution(patient, path.name, "", None, reason)]
    if not isinstance(data, dict):
        reason = f"not a JSON object ({type(data).__name__}); every clinical value treated as missing"
        return parse_inference_record({}, patient)[0], [ClinicalSubstitution(patient, path.name, data, None, reason)]
    return parse_inference_record(data, patient, columns)


def log_substitutions(substitutions: list[ClinicalSubstitution], log: logging.Logger | None = None) -> None:
    """One WARNING per value treated as missing, one INFO per mapped spelling."""
    log = log or logger
    for s in substitutions:
        log.log(logging.WARNING if s.is_missing else logging.INFO, "clinical value: %s", s.describe())


def substitutions_csv_text(substitutions: list[ClinicalSubstitution]) -> str:
    """The substitutions as CSV text (:data:`SUBSTITUTION_COLUMNS`)."""
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUBSTITUTION_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for s in substitutions:
        writer.writerow(s.as_row())
    return buffer.getvalue()
