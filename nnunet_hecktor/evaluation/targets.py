"""Reading the evaluation targets from a clinical table whatever the header spelling.

The clinical table is read with the strict parser (:func:`nnunet_hecktor.clinical.read_clinical_csv`):
a malformed target must be fixed at the source. Headers are matched the way the converter matches
them (:func:`dataset_conversion.csv_format.map_headers`), so a table that ``convert`` accepts is scored
the same way: a case or white-space variant (``HPV status``, ``relapse``) is read as the known column,
with a warning; an edition's alias (2026 ``T_stage``, 2022 ``HPV status (0=-, 1=+)``, 2021
``Progression``) is read as its column; a near miss of a target (``RFS (days)``, ``HPV_Status``) is an
error, because reading it may be wrong and ignoring it would leave the task with no patient.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

from nnunet_hecktor import schema
from nnunet_hecktor.clinical import ClinicalRecord, parse_value, read_clinical_csv
from nnunet_hecktor.dataset_conversion.csv_format import map_headers
from nnunet_hecktor.editions import get_edition
from nnunet_hecktor.errors import InputDataError

logger = logging.getLogger(__name__)


def _header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError):
        return []  # read_clinical_csv reports the problem with its own message


def read_targets(clinical_csv: str | os.PathLike, edition: str | None = None) -> dict[str, ClinicalRecord]:
    """PatientID -> typed clinical record, target headers mapped onto the schema's columns.

    Parameters
    ----------
    clinical_csv : path-like
        Clinical table (any HECKTOR edition's spelling of the target columns).
    edition : str, optional
        Edition whose header aliases apply first; the other editions' aliases follow (a 2022 table
        scored under the default edition still reads ``HPV status (0=-, 1=+)``).

    Raises
    ------
    InputDataError
        A header resembling a target without matching it, two headers giving one target, or a
        malformed value (naming patient, file and column).
    """
    path = Path(clinical_csv)
    records = read_clinical_csv(path)
    header = [h.strip() for h in _header(path)]
    aliases: dict[str, str] = {}
    first = get_edition(edition).name
    editions = [get_edition(first)] + [get_edition(e) for e in ("2026", "2022", "2021") if e != first]
    for ed in editions:
        for raw in header:
            column = ed.canonical_column(raw)
            if column != raw and column in schema.CLINICAL_COLUMNS and raw not in aliases:
                aliases[raw] = column
    mapping = map_headers([h for h in header if h not in aliases])
    renamed = dict(aliases)
    renamed.update({raw.strip(): known for raw, known in mapping.renamed})
    by_target: dict[str, list[str]] = {}
    for raw, column in renamed.items():
        by_target.setdefault(column, []).append(raw)
    for column in schema.TARGET_COLUMNS:
        sources = by_target.get(column, []) + ([column] if column in header else [])
        if len(sources) > 1:
            raise InputDataError(f"two headers give {column!r}: {', '.join(repr(s) for s in sources)}; keep one",
                                 None, path)
    problems = [f"header {raw!r} looks like {known!r} but does not match it" for raw, known in mapping.near_misses
                if known in schema.TARGET_COLUMNS and known not in header and known not in by_target]
    if problems:
        raise InputDataError("; ".join(problems) + " (rename the column to the HECKTOR spelling; "
                             "evaluate does not guess units or definitions)", None, path)
    for raw, column in renamed.items():
        if column not in schema.TARGET_COLUMNS:
            continue
        logger.warning("%s: header %r read as %r", path, raw, column)
        for pid, record in records.items():
            value = record.pop(raw, None)
            try:
                record[column] = parse_value(column, value)
            except ValueError as exc:
                raise InputDataError(f"{exc} (header {raw!r})", pid, path) from None
    return records
