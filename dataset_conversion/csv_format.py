"""How a clinical CSV is written: its delimiter, decimal mark and column headers.

Delimiter
    ``,`` (the release), ``;`` (spreadsheets in locales with a decimal comma) or a tab, chosen from the
    header line: among the candidates that split it into fields one of which is ``PatientID`` (or a
    near miss of it, see below), the one giving the most fields; failing that, the one giving the most
    fields; ``,`` on a tie. In a ``;`` or tab file a number written
    with a decimal comma (``61,5``) is read as ``61.5``.

Headers: match, near miss, or other column
    A header *matches* a known column (``schema.CLINICAL_COLUMNS``) when the two are equal after
    case folding and collapsing runs of white space (``"HPV status"``, ``" relapse "``,
    ``"Performance  Status"``): it is read as that column, with a warning. A header is a *near miss*
    when it is not a match but equals a known column once brackets (units) and every character other
    than letters and digits are removed (``"RFS (days)"``, ``"HPV_Status"``, ``"Patient ID"``), or when
    that key is within a small edit distance of one (``difflib`` ratio >= :data:`NEAR_MISS_RATIO`, e.g.
    ``"Relapses"``): an error, because reading it as the known column may be wrong (other units,
    another definition) and ignoring it would leave a target empty for everyone. Anything else is an
    extra column, kept as written.

Headers: other names of clear meaning
    A header that is one of ``nnunet_hecktor.clinical.COLUMN_ALIASES`` (``"Sex"`` -> ``Gender``,
    ``"HPV"`` -> ``HPV Status``, ``"ECOG"``/``"KPS"`` -> ``Performance Status``), compared like a
    match, is read as that column with a warning naming both; when the file also has the column
    itself, the other name is kept as an extra column (with a warning).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from nnunet_hecktor import schema
from nnunet_hecktor.clinical import column_alias

DELIMITERS: tuple[str, ...] = (",", ";", "\t")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
#: difflib similarity of two letters-and-digits keys above which a header is a near miss of a known column.
NEAR_MISS_RATIO = 0.85
_DECIMAL_COMMA = re.compile(r"^\s*[+-]?\d+,\d+\s*$")


def _squash(text: str) -> str:
    return " ".join(text.split()).casefold()


def _key(text: str) -> str:
    without_units = re.sub(r"[(\[{].*?[)\]}]", "", text)
    return re.sub(r"[^0-9a-z]", "", without_units.casefold())


_SQUASHED = {_squash(c): c for c in schema.CLINICAL_COLUMNS}
_KEYS = {_key(c): c for c in schema.CLINICAL_COLUMNS}


def delimiter_name(delimiter: str) -> str:
    """``"semicolon"`` for ``";"`` etc."""
    return _DELIMITER_NAMES.get(delimiter, repr(delimiter))


def detect_delimiter(header_line: str) -> str:
    """The delimiter of a CSV from its header line (see the module docstring)."""
    def names_patient(text: str) -> bool:
        text = text.strip().strip('"')
        return _squash(text) == _squash(schema.COL_PATIENT) or near_miss_of(text) == schema.COL_PATIENT

    fields = {d: header_line.split(d) for d in DELIMITERS}
    with_patient = [d for d in DELIMITERS if any(names_patient(f) for f in fields[d])]
    return max(with_patient or DELIMITERS, key=lambda d: len(fields[d]))  # max keeps the first on ties


def decimal_comma_to_point(value: str) -> str | None:
    """``"61,5"`` -> ``"61.5"``; ``None`` when ``value`` is not a number with a decimal comma."""
    return value.strip().replace(",", ".") if _DECIMAL_COMMA.match(value) else None


@dataclass
class HeaderMapping:
    """What each header of a CSV is read as.

    Attributes
    ----------
    columns : list of str
        Per header position, the column name used (the known spelling for a match, else as written).
    renamed : list of (str, str)
        ``(as written, known column)`` for every case/white-space match (a warning each).
    aliased : list of (str, str)
        ``(as written, known column)`` for every other name of clear meaning read as the column.
    alias_kept : list of (str, str)
        ``(as written, known column)``: an other name kept as an extra column, the file having the column.
    near_misses : list of (str, str)
        ``(as written, known column it resembles)``: errors.
    duplicates : list of str
        Known columns given by two headers of one file: errors.
    """

    columns: list[str]
    renamed: list[tuple[str, str]] = field(default_factory=list)
    aliased: list[tuple[str, str]] = field(default_factory=list)
    alias_kept: list[tuple[str, str]] = field(default_factory=list)
    near_misses: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


def near_miss_of(header: str) -> str | None:
    """The known column that ``header`` resembles without matching it, or ``None``."""
    key = _key(header)
    if not key:
        return None
    if key in _KEYS:
        return _KEYS[key]
    close = difflib.get_close_matches(key, list(_KEYS), n=1, cutoff=NEAR_MISS_RATIO)
    return _KEYS[close[0]] if close else None


def map_headers(header: list[str]) -> HeaderMapping:
    """Read a CSV header against the known columns (see the module docstring for the rules)."""
    mapping = HeaderMapping(columns=[])
    seen: dict[str, str] = {}
    present = {_SQUASHED[_squash(h)] for h in header if _squash(h) in _SQUASHED}
    for raw in header:
        text = raw.strip()
        known = _SQUASHED.get(_squash(text))
        alias = column_alias(text) if known is None else None
        if alias is not None and alias in present:
            mapping.alias_kept.append((raw, alias))
            mapping.columns.append(text)
            continue
        if alias is not None:
            mapping.aliased.append((raw, alias))
            known = alias
        if known is not None:
            if text != known and alias is None:
                mapping.renamed.append((raw, known))
            if known in seen:
                mapping.duplicates.append(f"{known!r} (headers {seen[known]!r} and {raw!r})")
            seen[known] = raw
            mapping.columns.append(known)
            continue
        resembles = near_miss_of(text)
        if resembles is not None:
            mapping.near_misses.append((raw, resembles))
        mapping.columns.append(text)
    return mapping
