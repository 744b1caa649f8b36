"""Finding the cases to predict in an input folder.

Two kinds of input folder are accepted:

``hecktor``
    Any layout the converter reads (:func:`~nnunet_hecktor.dataset_conversion.discover_layout`: the
    release root with ``Task 1``/``Task 2``/``Task 3`` folders, one task folder, or a flat folder of
    ``<PID>__CT.nii.gz`` / ``<PID>__PT.nii.gz``). CT and PET are on their own grids; prediction
    repeats the converter's preprocessing (PET resampled onto the CT grid, crop) and writes the
    segmentation on the original CT grid. Labels in the folder are ignored. Clinical CSVs found
    there are used when no clinical table is given.
``nnunet``
    An nnU-Net ``imagesTs``-style folder: ``<PID>_0000.nii.gz`` (CT) and ``<PID>_0001.nii.gz`` (PET,
    already on the CT grid), e.g. the converter's ``imagesTs``. When the converter's crop records
    (``crops/<PID>.json`` next to the folder, or ``crops_dir``) exist, the segmentation is put back
    onto the original CT grid; otherwise it is written on the grid of ``_0000``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_hecktor.errors import HecktorError, InputDataError

NNUNET_ENDINGS: tuple[str, ...] = (".nii.gz", ".nii", ".mha", ".nrrd")
_CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})(?P<ending>\.nii\.gz|\.nii|\.mha|\.nrrd)$")


@dataclass(frozen=True)
class CaseInput:
    """The files of one case to predict.

    Attributes
    ----------
    patient_id : str
    ct, pet : Path
        CT and PET files.
    pet_on_ct_grid : bool
        True for nnU-Net-style input (the PET was already resampled onto the CT grid).
    crop_record : Path or None
        Converter crop record mapping the (cropped) CT grid of ``ct`` back onto the original CT grid
        (nnU-Net-style input only).
    """

    patient_id: str
    ct: Path
    pet: Path
    pet_on_ct_grid: bool = False
    crop_record: Path | None = None


@dataclass
class InputCases:
    """What :func:`find_input_cases` found."""

    folder: Path
    kind: str                                   # "hecktor" or "nnunet"
    cases: list[CaseInput]
    clinical_sources: list = field(default_factory=list)   # ClinicalSource of a HECKTOR layout
    notes: list[str] = field(default_factory=list)
    edition: str | None = None                  # the HECKTOR edition of the layout (its CSVs' column names)

    def describe(self) -> str:
        what = {"hecktor": "HECKTOR layout (CT and PET on their own grids)",
                "nnunet": "nnU-Net imagesTs layout (<PID>_0000 CT, <PID>_0001 PET on the CT grid)"}[self.kind]
        lines = [f"{self.folder}: {what}, {len(self.cases)} cases"]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _nnunet_channel_files(folder: Path) -> dict[str, dict[int, Path]]:
    found: dict[str, dict[int, Path]] = {}
    for path in sorted(folder.iterdir()):
        match = _CHANNEL_FILE.match(path.name)
        if path.is_file() and match:
            found.setdefault(match.group("case"), {})[int(match.group("channel"))] = path
    return found


def find_input_cases(folder: str | os.PathLike, crops_dir: str | os.PathLike | None = None,
                     patients: list[str] | None = None) -> InputCases:
    """List the cases of an input folder (see the module docstring for the two layouts).

    Parameters
    ----------
    folder : path-like
        Input folder.
    crops_dir : path-like, optional
        Converter crop records for nnU-Net-style input (default: ``<folder>/../crops`` when it exists).
    patients : list of str, optional
        Predict only these PatientIDs (each must be present).

    Raises
    ------
    HecktorError
        Nothing to predict, a case without CT or PET, a channel other than 0000/0001, or a requested
        patient that is not in the folder.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise HecktorError(f"input folder {root} does not exist or is not a folder")
    root = root.resolve()
    channel_files = _nnunet_channel_files(root)
    if channel_files:
        result = _nnunet_cases(root, channel_files, crops_dir)
    else:
        result = _hecktor_cases(root)
    if patients:
        wanted = list(dict.fromkeys(patients))
        present = {c.patient_id: c for c in result.cases}
        missing = [p for p in wanted if p not in present]
        if missing:
            raise HecktorError(f"{root}: patients not found: {', '.join(missing)}")
        result.cases = [present[p] for p in wanted]
    if not result.cases:
        raise HecktorError(f"{root}: no case to predict")
    return result


def _nnunet_cases(root: Path, channel_files: dict[str, dict[int, Path]], crops_dir) -> InputCases:
    problems = []
    crops = Path(crops_dir).expanduser() if crops_dir is not None else root.parent / "crops"
    if crops_dir is not None and not crops.is_dir():
        raise HecktorError(f"crop record folder {crops} does not exist")
    cases = []
    for pid, channels in sorted(channel_files.items()):
        extra = sorted(set(channels) - {0, 1})
        if extra:
            problems.append(f"{pid}: unexpected channel file(s) {', '.join(channels[c].name for c in extra)} "
                            "(HECKTOR models take 2 channels: _0000 CT, _0001 PET)")
        if 0 not in channels or 1 not in channels:
            absent = " and ".join(name for ch, name in ((0, "CT (_0000)"), (1, "PET (_0001)")) if ch not in channels)
            problems.append(f"{pid}: {absent} missing")
            continue
        record = crops / f"{pid}.json"
        cases.append(CaseInput(pid, channels[0], channels[1], True, record if record.is_file() else None))
    if problems:
        raise HecktorError(f"{root}: problems in the nnU-Net-style input folder:\n  " + "\n  ".join(problems))
    with_record = sum(c.crop_record is not None for c in cases)
    notes = []
    if with_record == len(cases):
        notes.append(f"converter crop records in {crops}: segmentations go back onto the original CT grids")
    elif with_record:
        missing = [c.patient_id for c in cases if c.crop_record is None]
        raise HecktorError(f"{crops}: crop records exist for some cases but not for {', '.join(missing[:20])}")
    else:
        notes.append("no converter crop records: segmentations are written on the grid of each <PID>_0000 image")
    return InputCases(root, "nnunet", cases, [], notes)


def _hecktor_cases(root: Path) -> InputCases:
    from nnunet_hecktor.dataset_conversion import discover_layout

    layout = discover_layout(root)
    problems = list(layout.unreadable.values())  # unreadable patient folders: never skipped silently
    cases = []
    for pid, sources in layout.patients.items():
        if sources.ct is None or sources.pet is None:
            absent = " and ".join(what for what, path in (("CT (__CT)", sources.ct), ("PET (__PT)", sources.pet))
                                  if path is None)
            folders = ", ".join(str(c.folder) for c in sources.copies)
            problems.append(f"{pid}: {absent} missing in {folders}")
            continue
        cases.append(CaseInput(pid, sources.ct, sources.pet, False, None))
    if problems:
        raise InputDataError("cases without CT or PET (nothing is skipped silently; remove them or add the files):\n  "
                             + "\n  ".join(problems), None, root)
    notes = list(layout.warnings)
    return InputCases(root, "hecktor", cases, list(layout.csv_files), notes, edition=layout.edition)
