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
- Words of clear meaning in the 0/1 columns whose 0/1 is a yes/no answer (:data:`BINARY_SPELLINGS`):
  ``Positive``/``Negative``, ``pos``/``neg``, ``Yes``/``No``, ``True``/``False`` in ``HPV Status``;
  ``Yes``/``No``, ``True``/``False`` in ``Relapse``, ``Tobacco Consumption``, ``Alcohol Consumption``.
  ``Treatment`` and ``Gender`` have no yes/no reading; ``+``/``-`` none anywhere (``-`` often means missing).
- Numbers may be written with a decimal comma (``"61,5"``); with exactly three digits after the comma
  (``"1,234"``) the value is ambiguous (thousands separator?) and refused.
- Other column names of clear meaning (:data:`COLUMN_ALIASES`: ``Sex``, ``HPV``, ``ECOG``, ``KPS``, ...)
  are read as their column by the inference reader and the converter (with a message).
- CSV files are UTF-8 (BOM or not), UTF-16/32 with a byte-order mark, or else Windows-1252
  (:func:`decode_csv_bytes`).
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
  A model input absent from a whole CSV is one warning naming it (:func:`absent_column_messages`), and
  :func:`log_substitutions` logs one line per column once a column has more than a few substitutions.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import math
import os
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
#: Unambiguous words for the 0/1 columns whose 0/1 is a yes/no answer (lower case) -> the release's code.
#: ``Gender`` has :data:`SEX_SPELLINGS`; ``Treatment`` (1 = chemoradiotherapy, 0 = radiotherapy alone) has
#: no yes/no reading, so it gets none.
_YES_NO: dict[str, int] = {"yes": 1, "y": 1, "true": 1, "no": 0, "n": 0, "false": 0}
BINARY_SPELLINGS: dict[str, dict[str, int]] = {
    schema.COL_HPV: {**_YES_NO, "positive": 1, "pos": 1, "hpv+": 1, "hpv positive": 1,
                     "negative": 0, "neg": 0, "hpv-": 0, "hpv negative": 0},
    schema.COL_RELAPSE: dict(_YES_NO),
    schema.COL_TOBACCO: dict(_YES_NO),
    schema.COL_ALCOHOL: dict(_YES_NO),
}
#: Other names of known columns whose meaning is unambiguous (compared after case folding and collapsing
#: white space) -> the known column. Read as that column with a message naming both.
COLUMN_ALIASES: dict[str, str] = {
    "sex": schema.COL_GENDER,
    "hpv": schema.COL_HPV,
    "ecog": schema.COL_PERFORMANCE, "ecog performance status": schema.COL_PERFORMANCE,
    "karnofsky": schema.COL_PERFORMANCE, "kps": schema.COL_PERFORMANCE,
}
#: A number with a decimal comma (``"595,0"``). With exactly three digits after the comma (``"1,234"``) it
#: could as well be a thousands separator: such a value is refused as ambiguous, never guessed.
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,(?P<fraction>\d+)$")
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
    if isinstance(raw, str):
        try:
            point = decimal_comma_to_point(raw)
        except ValueError as exc:
            raise ValueError(f"column {column!r}: {exc}") from None
        raw = raw if point is None else point
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"column {column!r}: expected a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"column {column!r}: expected a finite number, got {raw!r}")
    return value


def decimal_comma_to_point(raw: str) -> str | None:
    """``"595,0"`` -> ``"595.0"``; ``None`` when ``raw`` is not a number with a decimal comma.

    Raises
    ------
    ValueError
        Exactly three digits after the comma (``"1,234"``): a thousands separator or a decimal comma,
        which one cannot be told from the value.
    """
    match = _DECIMAL_COMMA.match(raw.strip())
    if match is None:
        return None
    if len(match.group("fraction")) == 3:
        raise ValueError(f"{raw.strip()!r} is ambiguous (decimal comma or thousands separator?); "
                         "write it with a decimal point")
    return raw.strip().replace(",", ".")


def _as_integer(raw: Any, column: str, allowed: tuple[int, ...]) -> int:
    value = _as_float(raw, column)
    if value != int(value) or int(value) not in allowed:
        allowed_text = ", ".join(str(a) for a in allowed)
        raise ValueError(f"column {column!r}: expected one of {{{allowed_text}}}, got {raw!r}")
    return int(value)


def canonical_spelling(column: str, raw: Any) -> Any:
    """``raw`` with an alternative spelling of clear meaning replaced by the release's encoding.

    ``Gender``: :data:`SEX_SPELLINGS` (``"Male"`` -> 1, ``"F"`` -> 0); ``HPV Status``, ``Relapse``,
    ``Tobacco Consumption``, ``Alcohol Consumption``: :data:`BINARY_SPELLINGS` (``"Positive"``/``"Negative"``,
    ``"Yes"``/``"No"``, ``"True"``/``"False"`` -> 1/0); ``M-stage``: ``"M1a"``/``"M1b"``/``"M1c"`` -> ``"M1"``
    (case and surrounding spaces ignored). Anything else is returned unchanged.
    """
    if not isinstance(raw, str):
        return raw
    key = raw.strip().lower()
    if column == schema.COL_GENDER and key in SEX_SPELLINGS:
        return SEX_SPELLINGS[key]
    if column in BINARY_SPELLINGS and " ".join(key.split()) in BINARY_SPELLINGS[column]:
        return BINARY_SPELLINGS[column][" ".join(key.split())]
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
                       source: str | os.PathLike | None = None) -> ClinicalRecord:
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


def column_alias(header: str) -> str | None:
    """The known column that ``header`` is an unambiguous other name of (:data:`COLUMN_ALIASES`), or None."""
    return COLUMN_ALIASES.get(" ".join(str(header).split()).casefold())


def decode_csv_bytes(data: bytes) -> tuple[str, str | None]:
    """The text of a CSV file, and a note when it was not plain UTF-8.

    UTF-8 with or without byte-order mark is read as is; UTF-16 and UTF-32 with a byte-order mark
    (what some spreadsheet programs save as "Unicode text") are decoded, with a note; other bytes are
    read as Windows-1252 (spreadsheets in Western locales), with a note.

    Raises
    ------
    ValueError
        Text that looks like UTF-16 without a byte-order mark (NUL bytes every other byte), or bytes
        that are no text in any of these encodings; the message says what to do.
    """
    for bom, encoding in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                          (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(encoding), f"{encoding.upper()} text (byte-order mark); decoded"
            except UnicodeDecodeError as exc:
                raise ValueError(f"starts with a {encoding.upper()} byte-order mark but is not valid "
                                 f"{encoding.upper()} ({exc.reason}); save it as UTF-8 CSV") from None
    sample = data[:4096]
    if sample and sample.count(0) >= len(sample) // 4:  # (ASCII in UTF-16 is valid UTF-8, NULs included)
        raise ValueError("looks like UTF-16 text without a byte-order mark (NUL bytes between the "
                         "characters); save it as UTF-8 CSV")
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        utf8_problem = exc.reason
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        raise ValueError(f"not a UTF-8 text CSV ({utf8_problem})") from None
    return text, "not UTF-8; read as Windows-1252 (check accented text)"


def read_csv_text(path: Path) -> tuple[str, str | None]:
    """:func:`decode_csv_bytes` of a file.

    Raises
    ------
    InputDataError
        Unreadable file, or text in none of the accepted encodings (naming the file).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputDataError(f"cannot read clinical CSV ({exc.strerror})", None, path) from None
    try:
        return decode_csv_bytes(data)
    except ValueError as exc:
        raise InputDataError(str(exc), None, path) from None


def _patient_rows(path: Path, header_out: list[str] | None = None) -> Iterator[tuple[str, dict[Any, Any]]]:
    """``(PatientID, row)`` of every row of a clinical CSV (header names stripped), in file order.

    The table-level checks shared by the strict and the inference readers live here; how a row's
    values are parsed is the caller's policy. ``header_out``, when given, receives the stripped header.

    Raises
    ------
    InputDataError
        Unreadable file or text in no accepted encoding (:func:`decode_csv_bytes`), no ``PatientID``
        column, an empty or duplicate PatientID.
    """
    seen: set[str] = set()
    text, note = read_csv_text(path)
    if note is not None:
        logger.warning("%s: %s", path, note)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if header_out is not None:
        header_out[:] = header
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


def read_clinical_csv(path: str | os.PathLike) -> dict[str, ClinicalRecord]:
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
    for key in row:  # other names of clear meaning (``Sex``), when the column itself is absent
        column = column_alias(key) if isinstance(key, str) else None
        if column is not None and column in columns and column not in found:
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
        elif isinstance(raw, str) and _DECIMAL_COMMA.match(raw.strip()):
            substitutions.append(ClinicalSubstitution(patient, column, raw, value, "decimal comma read as a point",
                                                      renamed))
        elif renamed is not None:
            substitutions.append(ClinicalSubstitution(patient, column, raw, value, f"key {key!r} read as {column!r}",
                                                      renamed))
    if patient is not None:
        record[schema.COL_PATIENT] = patient
    return record, substitutions


def read_inference_csv(path: str | os.PathLike, columns: tuple[str, ...] = MODEL_INPUT_COLUMNS
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
    header: list[str] = []
    for pid, row in _patient_rows(Path(path), header):
        row = {k: v for k, v in row.items() if isinstance(k, str)}  # cells beyond the header: not read
        records[pid], found = parse_inference_record(row, pid, columns)
        substitutions += found
    for line in absent_column_messages(header, columns):
        logger.warning("%s: %s", path, line)
    return records, substitutions


def absent_column_messages(header: list[str], columns: tuple[str, ...] = MODEL_INPUT_COLUMNS) -> list[str]:
    """One line per column of ``columns`` that a table with ``header`` does not give at all.

    A header gives a column when it is spelled like it up to case and white space, or is one of its
    :data:`COLUMN_ALIASES`. The line names the column and the headers that were not read, so that a
    column written under another name is found: every patient's value of that column is missing (the
    models then use their missing indicator), which changes every prediction.
    """
    header_row = {h: "" for h in header if h}
    found = _input_key_map(header_row, tuple(c for c in columns if c != schema.COL_PATIENT))
    used = set(found.values()) | {schema.COL_PATIENT}
    others = [h for h in header_row if h not in used]
    shown = (f" (columns not read: {', '.join(repr(h) for h in others)})" if others else "")
    return [f"no column {column!r}: missing for every patient{shown}"
            for column in columns if column != schema.COL_PATIENT and column not in found]


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


#: Up to this many substitutions of one column and kind are logged one by one; more become one line.
SUBSTITUTIONS_LOGGED_EACH = 3


def log_substitutions(substitutions: list[ClinicalSubstitution], log: logging.Logger | None = None) -> None:
    """Log the substitutions at the level where they happened.

    Per column: up to :data:`SUBSTITUTIONS_LOGGED_EACH` values treated as missing get one WARNING
    each; more get one WARNING for the column (how many, of which patients, examples). Mapped values
    (alternative spellings, renamed keys) get one INFO line per column. Every substitution stays in
    the list (and the substitutions CSV of ``predict``).
    """
    log = log or logger
    dropped: dict[str, list[ClinicalSubstitution]] = {}
    mapped: dict[str, list[ClinicalSubstitution]] = {}
    for s in substitutions:
        (dropped if s.is_missing else mapped).setdefault(s.column, []).append(s)
    for column, items in dropped.items():
        if len(items) <= SUBSTITUTIONS_LOGGED_EACH:
            for s in items:
                log.warning("clinical value: %s", s.describe())
            continue
        patients = {s.patient for s in items}
        examples = "; ".join(s.describe() for s in items[:SUBSTITUTIONS_LOGGED_EACH])
        log.warning("clinical column %r: %d values of %d patients treated as missing (examples: %s; ...)",
                    column, len(items), len(patients), examples)
    for column, items in mapped.items():
        if len(items) == 1:
            log.info("clinical value: %s", items[0].describe())
            continue
        readings: dict[str, int] = {}
        for s in items:
            how = s.reason if s.reason != "alternative spelling" else f"{s.raw!r} read as {s.used!r}"
            readings[how] = readings.get(how, 0) + 1
        shown = ", ".join(f"{how} ({n})" for how, n in readings.items())
        keys = sorted({s.key for s in items if s.key})
        written = f" (written {', '.join(repr(k) for k in keys)})" if keys else ""
        log.info("clinical column %r%s: %d values mapped: %s", column, written, len(items), shown)


def substitutions_csv_text(substitutions: list[ClinicalSubstitution]) -> str:
    """The substitutions as CSV text (:data:`SUBSTITUTION_COLUMNS`)."""
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUBSTITUTION_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for s in substitutions:
        writer.writerow(s.as_row())
    return buffer.getvalue()
