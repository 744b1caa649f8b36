"""Reading the challenge container's outputs for evaluation (``nnunet-hecktor evaluate --challenge-outputs``).

Layout: one folder per case, as the container writes it; the file names are the edition's
(``editions.get_edition(...).container_outputs``; see docs/how-to/challenge-container.md). 2025::

    OUTPUTS/<case>/images/tumor-lymph-node-segmentation/output.mha   Task 1, uint8 0/1/2 on the CT grid
    OUTPUTS/<case>/rfs.json                                          Task 2, one JSON float (risk)
    OUTPUTS/<case>/hpv-status.json                                   Task 3, one JSON boolean (true = HPV+)

2026::

    OUTPUTS/<case>/images/head-neck-tumor-segmentation/output.mha    uint8 0/1/2 on the CT grid
    OUTPUTS/<case>/t-stage.json, n-stage.json                        one JSON string each ("T2", "N1")
    OUTPUTS/<case>/rfs.json                                          one JSON float

**rfs.json convention** (:data:`RFS_CONVENTIONS`): ``risk`` = higher is earlier relapse (the 2025
template); ``time`` = a time-like value, anti-concordant with risk (the 2026 organisers' README: "RFS
time ... anti-concordant with the predicted risk"), scored as ``risk = -value``. Default: ``time``
for 2026 (the README), ``risk`` otherwise; ``--rfs-convention`` overrides it, and the container's
option of the same name must agree.

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
from nnunet_hecktor.editions import get_edition
from nnunet_hecktor.errors import HecktorError, InputDataError

from .outcome import COL_HPV_STATUS, COL_N_STAGE, COL_RISK, COL_T_STAGE, STAGE_PREDICTIONS, PredictionTable

CASE_COLUMN = "case"
#: What ``rfs.json`` holds: ``risk`` (higher = earlier relapse) or ``time`` (anti-concordant with risk).
RFS_CONVENTIONS: tuple[str, ...] = ("risk", "time")


def default_rfs_convention(edition: str | None) -> str:
    """``time`` for 2026 (the organisers' README), ``risk`` for the other editions."""
    return "time" if get_edition(edition).name == "2026" else "risk"


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


def _stage(path: Path, case: str, column: str) -> str:
    from nnunet_hecktor.clinical import parse_stage

    value = _read_json(path, case)
    target = STAGE_PREDICTIONS[column]
    try:
        stage = parse_stage(target, value) if isinstance(value, str) else None
    except ValueError:
        stage = None
    if stage is None:
        raise InputDataError(f"case {case}: expected one JSON string naming a stage "
                             f"({', '.join(schema.STAGES_OF_COLUMN[target])}), got {value!r}", None, path)
    return stage


def _hpv(path: Path, case: str) -> int:
    value = _read_json(path, case)
    if not isinstance(value, bool):
        raise InputDataError(f"case {case}: expected one JSON boolean (true = HPV positive), got {value!r}", None, path)
    return int(value)


def read_challenge_outputs(folder: str | os.PathLike, case_map: str | os.PathLike | None = None,
                           edition: str | None = None, rfs_convention: str | None = None) -> ChallengeOutputs:
    """Read the container outputs of every case folder in ``folder`` (see the module docstring).

    Parameters
    ----------
    folder : path-like
    case_map : path-like, optional
        CSV ``case,PatientID`` (default: folder name = PatientID).
    edition : str, optional
        Whose output layout (default ``editions.DEFAULT_EDITION``).
    rfs_convention : {"risk", "time"}, optional
        What ``rfs.json`` holds (default :func:`default_rfs_convention`); ``time`` is negated into a risk.

    Raises
    ------
    HecktorError
        No folder, no case folder, a case folder missing from the case map.
    InputDataError
        A malformed ``rfs.json``/``hpv-status.json``, or a task output present for some cases only
        (the others are listed).
    """
    ed = get_edition(edition)
    rfs_convention = rfs_convention or default_rfs_convention(ed.name)
    if rfs_convention not in RFS_CONVENTIONS:
        raise HecktorError(f"rfs convention must be one of {', '.join(RFS_CONVENTIONS)}, not {rfs_convention!r}")
    outputs = ed.container_outputs
    if not outputs:
        raise HecktorError(f"HECKTOR {ed.name} has no challenge container output layout to read")
    segmentation_output = outputs["segmentation"]
    named = {COL_RISK: outputs.get("rfs"), COL_HPV_STATUS: outputs.get("hpv"), COL_T_STAGE: outputs.get("t_stage"),
             COL_N_STAGE: outputs.get("n_stage")}
    files = {column: file for column, file in named.items() if file is not None}
    root = Path(folder)
    if not root.is_dir():
        raise HecktorError(f"challenge output folder does not exist: {root}")
    cases = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not cases:
        raise HecktorError(f"{root}: no case folder (expected <case>/{segmentation_output.as_posix()}, "
                           + ", ".join(f"<case>/{f}" for f in files.values()) + ")")
    _check_layout(root, cases, ed.name, segmentation_output)
    mapping = read_case_map(case_map) if case_map is not None else {c.name: c.name for c in cases}
    unmapped = [c.name for c in cases if c.name not in mapping]
    if unmapped:
        raise HecktorError(f"{case_map}: no PatientID for the case folders {', '.join(unmapped[:20])}"
                           + (f" ... ({len(unmapped)} in all)" if len(unmapped) > 20 else ""))
    segmentations: dict[str, Path] = {}
    values: dict[str, dict[str, float | int | str]] = {}
    for case in cases:
        pid = mapping[case.name]
        row: dict[str, float | int | str] = {}
        if (case / segmentation_output).is_file():
            segmentations[pid] = case / segmentation_output
        for column, file in files.items():
            if not (case / file).is_file():
                continue
            if column == COL_RISK:
                value = _risk(case / file, case.name)
                row[column] = -value if rfs_convention == "time" else value
            elif column == COL_HPV_STATUS:
                row[column] = _hpv(case / file, case.name)
            else:
                row[column] = _stage(case / file, case.name, column)
        values[pid] = row
    columns = []
    by_pid = {mapping[c.name]: c.name for c in cases}
    for column, file in files.items():
        without = [by_pid[p] for p, row in values.items() if column not in row]
        if len(without) == len(values):
            continue
        if without:
            raise InputDataError(f"{file} missing for {len(without)} of {len(values)} cases: {', '.join(without[:20])}",
                                 None, root)
        columns.append(column)
    rows = {pid: {c: row[c] for c in columns} for pid, row in values.items()}
    return ChallengeOutputs(segmentations, PredictionTable(rows, tuple(columns), str(root)), root)


def _check_layout(root: Path, cases: list[Path], edition: str, segmentation_output: Path) -> None:
    """A clear error when the case folders hold another edition's layout (nothing would be scored)."""
    if any((c / segmentation_output).is_file() for c in cases):
        return
    others = {name: get_edition(name).container_outputs.get("segmentation") for name in ("2025", "2026")
              if name != edition}
    for name, other in others.items():
        if other is not None and other != segmentation_output and any((c / other).is_file() for c in cases):
            raise HecktorError(f"{root}: the case folders hold HECKTOR {name} outputs (<case>/{other.as_posix()}), "
                               f"not {edition} ones: give --edition {name}")
