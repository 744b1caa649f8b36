"""Reading the container's ``ehr.json`` as the organisers and other hospitals actually write it.

The organisers' 2026 sample ``ehr.json`` is not strict JSON (a trailing comma after the last value),
and files edited by hand or exported by other tools carry a UTF-8 byte-order mark, comments, or the
values one level down (``{"PatientID": ..., "clinical": {...}}``). A strict parser turns each of those
into "every clinical value missing", silently. :func:`read_tolerant_json` accepts them:

- a UTF-8 byte-order mark is skipped;
- ``// line`` and ``/* block */`` comments outside strings are removed;
- a comma directly before ``}`` or ``]`` (whitespace between) is removed;
- ``NaN``/``Infinity`` literals are read as Python's ``json`` module reads them (missing values later).

:func:`flatten_record` lifts the entries of nested objects one level up (a key already at the top
level wins; a conflict is reported). The result then goes through the inference policy of
:mod:`nnunet_hecktor.clinical` (unknown keys ignored, ``CenterID`` never an input, bad values missing
with one warning each). :func:`read_ehr` returns the typed record, the substitutions, and notes
that name what was repaired and every model input that is missing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from nnunet_hecktor.errors import InputDataError


def _strip_comments_and_trailing_commas(text: str) -> tuple[str, list[str]]:
    """``text`` with comments and trailing commas outside strings removed, and what was removed."""
    out: list[str] = []
    repairs: set[str] = set()
    i, n = 0, len(text)
    in_string = False
    pending_comma: int | None = None  # index in ``out`` of a comma not yet followed by a value
    while i < n:
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                in_string = False
            i += 1
            continue
        if c == '"':
            in_string = True
            pending_comma = None
            out.append(c)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            repairs.add("comments")
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            repairs.add("comments")
            continue
        elif c == ",":
            pending_comma = len(out)
            out.append(c)
        elif c in "}]":
            if pending_comma is not None:
                out[pending_comma] = ""
                repairs.add("a trailing comma")
            pending_comma = None
            out.append(c)
        else:
            if not c.isspace():
                pending_comma = None
            out.append(c)
        i += 1
    return "".join(out), sorted(repairs)


def read_tolerant_json(path: str | os.PathLike) -> tuple[Any, list[str]]:
    """Parse a JSON file that may carry a byte-order mark, comments or trailing commas.

    Returns
    -------
    value : Any
        The parsed JSON value.
    repairs : list of str
        What was tolerated (``"a UTF-8 byte-order mark"``, ``"comments"``, ``"a trailing comma"``);
        empty for strict JSON.

    Raises
    ------
    InputDataError
        The file cannot be read, is not UTF-8, or is not JSON even after the repairs.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputDataError(f"unreadable ({exc.strerror or exc})", None, path) from None
    repairs: list[str] = []
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
        repairs.append("a UTF-8 byte-order mark")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputDataError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", None, path) from None
    try:
        return json.loads(text), repairs
    except json.JSONDecodeError:
        pass
    cleaned, more = _strip_comments_and_trailing_commas(text)
    try:
        return json.loads(cleaned), repairs + more
    except json.JSONDecodeError as exc:
        raise InputDataError(f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})", None, path) from None


def flatten_record(data: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Lift the entries of nested objects one level up (``{"clinical": {"Age": 60}}`` -> ``{"Age": 60}``).

    A key present at the top level keeps its top-level value. Returns the flat mapping and notes
    (which nested objects were lifted, which keys conflicted).
    """
    flat = {k: v for k, v in data.items() if not isinstance(v, Mapping)}
    notes: list[str] = []
    for key, value in data.items():
        if not isinstance(value, Mapping):
            continue
        lifted = []
        for inner, inner_value in value.items():
            if isinstance(inner_value, Mapping):
                continue  # two levels down: not a clinical record
            if inner in flat:
                if flat[inner] != inner_value:
                    notes.append(f"key {inner!r} given at the top level ({flat[inner]!r}) and under {key!r} "
                                 f"({inner_value!r}): the top-level value is used")
                continue
            flat[inner] = inner_value
            lifted.append(str(inner))
        if lifted:
            notes.append(f"values read from the nested object {key!r}: {', '.join(lifted)}")
    return flat, notes


@dataclass
class EhrReading:
    """What :func:`read_ehr` made of an ``ehr.json``.

    Attributes
    ----------
    record : dict
        Typed clinical record (inference policy; missing = None).
    substitutions : list of ClinicalSubstitution
        Values treated as missing or mapped, and (column ``"ehr.json"``) a file that could not be read.
    notes : list of str
        Repairs made to the file, nested objects lifted, key conflicts.
    missing_inputs : tuple of str
        Model input columns without a usable value (absent, or treated as missing).
    """

    record: dict
    substitutions: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing_inputs: tuple[str, ...] = ()


def read_ehr(path: str | os.PathLike | None, columns: tuple[str, ...], patient: str | None = None) -> EhrReading:
    """Read ``ehr.json`` tolerantly under the inference policy; never raises for the file's content.

    Parameters
    ----------
    path : path-like or None
        None (no file) = every value missing (``record`` is ``{}``).
    columns : tuple of str
        Model input columns read (:mod:`nnunet_hecktor.clinical` column names).
    patient : str, optional
        Name for messages.
    """
    from nnunet_hecktor.clinical import ClinicalSubstitution, parse_inference_record

    notes: list[str] = []
    substitutions: list = []
    data: Any = {}
    if path is None:
        return EhrReading({}, [], ["no ehr.json: every clinical value is treated as missing"], tuple(columns))
    else:
        path = Path(path)
        try:
            data, repairs = read_tolerant_json(path)
        except InputDataError as exc:
            reason = f"{exc.problem}; every clinical value treated as missing"
            substitutions.append(ClinicalSubstitution(patient, path.name, "", None, reason))
            data, repairs = {}, []
        if repairs:
            notes.append(f"{path.name} is not strict JSON ({', '.join(repairs)}): read anyway")
        if not isinstance(data, Mapping):
            reason = f"not a JSON object ({type(data).__name__}); every clinical value treated as missing"
            substitutions.append(ClinicalSubstitution(patient, path.name, data, None, reason))
            data = {}
        data, lifted = flatten_record(data)
        notes += lifted
    record, found = parse_inference_record(data, patient, columns)
    substitutions += found
    missing = tuple(c for c in columns if record.get(c) is None)
    return EhrReading(record, substitutions, notes, missing)
