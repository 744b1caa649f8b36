"""Reading the challenge container's outputs for evaluation (``nnunet-hecktor evaluate --challenge-outputs``).

Layout: one folder per case, as the container writes it (the HECKTOR 2025 template;
see docs/how-to/challenge-container.md)::

    OUTPUTS/<case>/images/tumor-lymph-node-segmentation/output.mha   Task 1, uint8 0/1/2 on the CT grid
    OUTPUTS/<case>/rfs.json                                          Task 2, one JSON float (risk)
    OUTPUTS/<case>/hpv-status.json                                   Task 3, one JSON boolean (true = HPV+)

The container's files carry no PatientID (inputs are UUIDs): the folder name is the PatientID, or a
case map (CSV with the columns ``case`` and ``PatientID``) names the patient of each case folder.
A task is evaluated when at least one case has its output; then every case must have it.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from nnunet_hecktor import schema
from nnunet_hecktor.schema import HPV_OUTPUT, RFS_OUTPUT, SEGMENTATION_OUTPUT
from nnunet_hecktor.errors import HecktorError, InputDataError

from .outcome import COL_HPV_STATUS, COL_RISK, PredictionTable

CASE_COLUMN = "case"


@dataclass(frozen=True)
class ChallengeOutputs:
    """What the case folders hold, by PatientID.

    Attributes
    ----------
    segmentations : dict
        PatientID -> ``output.mha`` (cases with a Task 1 output).
    predictions : PredictionTable
        ``risk`` (Task 2) and ``hpv_status`` (Task 3, 1 = positive) columns, those present.
    folder : Path
    """

    segmentations: dict[str, Path]
    predictions: PredictionTable
    folder: Path


def read_case_map(path: str | os.PathLike) -> dict[str, str]:
    """Case folder name -> PatientID from a CSV with the columns ``case`` and ``PatientID``.

    Raises
    ------
    InputDataError
        Unreadable file, missing column, empty cell, a case or a PatientID listed twice.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in (reader.fieldnames or [])]
            if CASE_COLUMN not in header or schema.COL_PATIENT not in header:
                raise InputDataError(f"case map needs the columns {CASE_COLUMN!r} and {schema.COL_PATIENT!r} "
                                     f"(columns: {', '.join(header) or 'none'})", None, path)
            mapping: dict[str, str] = {}
            for line, row in enumerate(reader, start=2):
                row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
                case, pid = row.get(CASE_COLUMN, ""), row.get(schema.COL_PATIENT, "")
                if not case or not pid:
                    raise InputDataError(f"line {line}: empty {CASE_COLUMN!r} or {schema.COL_PATIENT!r}", None, path)
                if case in mapping:
                    raise InputDataError(f"line {line}: case {case!r} listed twice", None, path)
                if pid in mapping.values():
                    raise InputDataError(f"line {line}: PatientID {pid!r} listed for two cases", pid, path)
                mapping[case] = pid
    except (OSError, UnicodeDecodeError) as exc:
        raise InputDataError(f"cannot read the case map ({exc})", None, path) from None
    return mapping


def _read_json(path: Path, case: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputDataError(f"case {case}: not a JSON file ({exc})", None, path) from None


def _risk(path: Path, case: str) -> float:
    value = _read_json(path, case)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputDataError(f"case {case}: expected one finite JSON number (risk), got {value!r}", None, path)
    return float(value)


def _hpv(path: Path, case: str) -> int:
    value = _read_json(path, case)
    if not isinstance(value, bool):
        raise InputDataError(f"case {case}: expected one JSON boolean (true = HPV positive), got {value!r}", None, path)
    return int(value)


def read_challenge_outputs(folder: str | os.PathLike, case_map: str | os.PathLike | None = None) -> ChallengeOutputs:
    """Read the container outputs of every case folder in ``folder`` (see the module docstring).

    Raises
    ------
    HecktorError
        No folder, no case folder, a case folder missing from the case map.
    InputDataError
        A malformed ``rfs.json``/``hpv-status.json``, or a task output present for some cases only
        (the others are listed).
    """
    root = Path(folder)
    if not root.is_dir():
        raise HecktorError(f"challenge output folder does not exist: {root}")
    cases = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not cases:
        raise HecktorError(f"{root}: no case folder (expected <case>/{SEGMENTATION_OUTPUT.as_posix()}, "
                           f"<case>/{RFS_OUTPUT}, <case>/{HPV_OUTPUT})")
    mapping = read_case_map(case_map) if case_map is not None else {c.name: c.name for c in cases}
    unmapped = [c.name for c in cases if c.name not in mapping]
    if unmapped:
        raise HecktorError(f"{case_map}: no PatientID for the case folders {', '.join(unmapped[:20])}"
                           + (f" ... ({len(unmapped)} in all)" if len(unmapped) > 20 else ""))
    segmentations: dict[str, Path] = {}
    values: dict[str, dict[str, float | int]] = {}
    for case in cases:
        pid = mapping[case.name]
        row: dict[str, float | int] = {}
        if (case / SEGMENTATION_OUTPUT).is_file():
            segmentations[pid] = case / SEGMENTATION_OUTPUT
        if (case / RFS_OUTPUT).is_file():
            row[COL_RISK] = _risk(case / RFS_OUTPUT, case.name)
        if (case / HPV_OUTPUT).is_file():
            row[COL_HPV_STATUS] = _hpv(case / HPV_OUTPUT, case.name)
        values[pid] = row
    columns = []
    by_pid = {mapping[c.name]: c.name for c in cases}
    for column, file in ((COL_HPV_STATUS, HPV_OUTPUT), (COL_RISK, RFS_OUTPUT)):
        without = [by_pid[p] for p, row in values.items() if column not in row]
        if len(without) == len(values):
            continue
        if without:
            raise InputDataError(f"{file} missing for {len(without)} of {len(values)} cases: {', '.join(without[:20])}",
                                 None, root)
        columns.append(column)
    rows = {pid: {c: row[c] for c in columns} for pid, row in values.items()}
    return ChallengeOutputs(segmentations, PredictionTable(rows, tuple(columns), str(root)), root)
