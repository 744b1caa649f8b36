"""The grand-challenge container interface of HECKTOR 2025 (docs/how-to/challenge-container.md).

Input (``/input``)::

    images/ct/<uuid>.mha            exactly one CT (HU)
    images/pet/<uuid>.mha           exactly one PET (SUV), on its own grid
    ehr.json                        clinical values, CSV column names as keys; absent key = missing
    images/ct-planning/, images/rt-dose/   optional (Task 2), ignored

Output (``/output``), exactly one file per task:

    Task 1  images/tumor-lymph-node-segmentation/output.mha   uint8 0/1/2 on the original CT grid
    Task 2  rfs.json                                          one JSON float, risk (higher = earlier relapse)
    Task 3  hpv-status.json                                   one JSON boolean, true = HPV positive
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnunet_hecktor.errors import HecktorError, InputDataError

# The output layout is a convention shared with the evaluation of challenge outputs.
from nnunet_hecktor.schema import HPV_OUTPUT, RFS_OUTPUT, SEGMENTATION_OUTPUT

CT_FOLDER = Path("images") / "ct"
PET_FOLDER = Path("images") / "pet"
EHR_FILE = "ehr.json"
IGNORED_FOLDERS: tuple[Path, ...] = (Path("images") / "ct-planning", Path("images") / "rt-dose")
IMAGE_ENDINGS: tuple[str, ...] = (".mha", ".mhd", ".tif", ".tiff", ".nii.gz", ".nii", ".nrrd")

TASKS: tuple[int, ...] = (1, 2, 3)
OUTPUT_OF_TASK: dict[int, Path] = {1: SEGMENTATION_OUTPUT, 2: RFS_OUTPUT, 3: HPV_OUTPUT}


@dataclass
class ChallengeCase:
    """One patient as the container receives it.

    Attributes
    ----------
    case_id : str
        Name for messages: the ehr.json PatientID if present, else the CT file's stem (a UUID).
    ct, pet : SimpleITK.Image
        CT and PET, each on its own grid.
    clinical : dict
        Typed clinical record under the inference policy
        (:func:`nnunet_hecktor.clinical.read_inference_ehr_json`); missing = None; ``{}`` when
        ``ehr.json`` was not read (Task 1 alone) or is absent.
    ct_path, pet_path : Path
    ehr_path : Path or None
        None when there is no ``ehr.json`` (every clinical value missing) or it was not read.
    notes : list of str
    substitutions : list of ClinicalSubstitution
        ``ehr.json`` values treated as missing or mapped (:mod:`nnunet_hecktor.clinical`).
    missing_inputs : tuple of str
        Model input columns without a usable value (empty when ``ehr.json`` was not read).
    """

    case_id: str
    ct: Any
    pet: Any
    clinical: dict
    ct_path: Path
    pet_path: Path
    ehr_path: Path | None
    notes: list[str] = field(default_factory=list)
    substitutions: list = field(default_factory=list)
    missing_inputs: tuple[str, ...] = ()


def image_stem(path: Path) -> str:
    """File name without its image ending (``<uuid>.mha`` -> ``<uuid>``)."""
    name = path.name
    for ending in IMAGE_ENDINGS:
        if name.lower().endswith(ending):
            return name[: -len(ending)]
    return path.stem


def find_single_image(input_dir: Path, folder: Path, what: str) -> Path:
    """The one image file in ``input_dir/folder``.

    Raises
    ------
    InputDataError
        The folder is missing, holds no image, or holds more than one.
    """
    location = input_dir / folder
    if not location.is_dir():
        raise InputDataError(f"no {what} image: folder {folder} is missing", None, location)
    images = sorted(p for p in location.iterdir()
                    if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(IMAGE_ENDINGS))
    if not images:
        others = ", ".join(sorted(p.name for p in location.iterdir())) or "nothing"
        raise InputDataError(f"no {what} image (expected one .mha file; the folder holds {others})", None, location)
    if len(images) > 1:
        raise InputDataError(f"{len(images)} {what} images ({', '.join(p.name for p in images)}); expected "
                             "exactly one per container run", None, location)
    return images[0]


def find_ct_file(input_dir: str | os.PathLike) -> Path | None:
    """The CT file of an input folder when there is exactly one candidate (for the fallback grid), else None."""
    try:
        return find_single_image(Path(input_dir).expanduser(), CT_FOLDER, "CT")
    except (HecktorError, OSError):
        return None


def read_challenge_input(input_dir: str | os.PathLike, read_ehr: bool = True,
                         columns: tuple[str, ...] | None = None) -> ChallengeCase:
    """Read the container's input folder (see the module docstring).

    Parameters
    ----------
    input_dir : path-like
    read_ehr : bool
        Read ``ehr.json`` (Tasks 2 and 3), tolerantly (:mod:`.ehr`: byte-order mark, comments,
        trailing commas, values one level down). Its values are advisory (inference policy of
        :mod:`nnunet_hecktor.clinical`): a bad value or file makes values missing, never an error.
    columns : tuple of str, optional
        ``ehr.json`` keys read (default: the network's inputs; a prognosis stage adds its own).

    Raises
    ------
    HecktorError
        The input folder does not exist.
    InputDataError
        No CT/PET, several CTs/PETs, an unreadable or non-3-D image.
    """
    from nnunet_hecktor.clinical import MODEL_INPUT_COLUMNS
    from nnunet_hecktor.dataset_conversion.checks import check_scalar_3d
    from nnunet_hecktor.fileio import read_image

    root = Path(input_dir).expanduser()
    if not root.is_dir():
        raise HecktorError(f"challenge input folder {root} does not exist")
    ct_path = find_single_image(root, CT_FOLDER, "CT")
    pet_path = find_single_image(root, PET_FOLDER, "PET")
    ehr_path: Path | None = None
    notes = []
    substitutions: list = []
    clinical: dict = {}
    missing_inputs: tuple[str, ...] = ()
    if read_ehr:
        from .ehr import read_ehr as read_ehr_file

        if (root / EHR_FILE).is_file():
            ehr_path = root / EHR_FILE
        reading = read_ehr_file(ehr_path, tuple(columns) if columns is not None else MODEL_INPUT_COLUMNS)
        clinical, substitutions, missing_inputs = reading.record, reading.substitutions, reading.missing_inputs
        notes += reading.notes
    case_id = str(clinical.get("PatientID") or image_stem(ct_path))
    ct = read_image(ct_path, case_id, "CT")
    check_scalar_3d(ct, case_id, ct_path, "CT")
    pet = read_image(pet_path, case_id, "PET")
    check_scalar_3d(pet, case_id, pet_path, "PET")
    for folder in IGNORED_FOLDERS:
        if (root / folder).exists():
            notes.append(f"{folder} present: not used")
    return ChallengeCase(case_id, ct, pet, clinical, ct_path, pet_path, ehr_path, notes, substitutions,
                         missing_inputs)


def write_segmentation_output(segmentation, output_dir: str | os.PathLike,
                              relative: Path = SEGMENTATION_OUTPUT) -> Path:
    """Task 1: ``images/tumor-lymph-node-segmentation/output.mha`` (uint8, compressed, checked by reading back).

    ``relative`` is the path under ``output_dir`` (2026: ``images/head-neck-tumor-segmentation/output.mha``).
    """
    from .outputs import write_image_output

    return write_image_output(segmentation, Path(output_dir) / relative)


def write_rfs_output(risk: float, output_dir: str | os.PathLike, convention: str = "risk") -> Path:
    """Task 2: ``rfs.json``, one JSON float.

    2025 (``convention="risk"``, the default here): the risk score, higher = earlier relapse. 2026
    writes ``-risk`` by default (``convention="time"``, :func:`.outputs.rfs_value`).
    """
    from .outputs import rfs_value, write_json_output

    return write_json_output(rfs_value(risk, convention), Path(output_dir) / RFS_OUTPUT)


def write_hpv_output(hpv_positive: bool, output_dir: str | os.PathLike) -> Path:
    """Task 3: ``hpv-status.json``, one JSON boolean (true = HPV positive)."""
    from .outputs import write_json_output

    return write_json_output(bool(hpv_positive), Path(output_dir) / HPV_OUTPUT)


def check_outputs(output_dir: str | os.PathLike, tasks, reference_ct=None) -> list[str]:
    """Problems with a container's output folder ([] = it holds exactly the official outputs of ``tasks``).

    Checks: no file other than the tasks' outputs; Task 1 a uint8 image with values in {0, 1, 2}
    (on ``reference_ct``'s grid when given: size, spacing, origin, direction); Task 2 one finite
    JSON number; Task 3 one JSON boolean.
    """
    from .outputs import output_set_problems, segmentation_output_problems

    root = Path(output_dir)
    expected = {OUTPUT_OF_TASK[int(t)] for t in tasks}
    problems, present = output_set_problems(root, expected)
    if SEGMENTATION_OUTPUT in expected & present:
        problems += segmentation_output_problems(root, SEGMENTATION_OUTPUT, reference_ct)
    for path, kind in ((RFS_OUTPUT, "number"), (HPV_OUTPUT, "boolean")):
        if path in expected & present:
            try:
                value = json.loads((root / path).read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                problems.append(f"{path}: not JSON ({exc})")
                continue
            if kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))
                                     or not math.isfinite(value)):
                problems.append(f"{path}: expected one finite JSON number, got {value!r}")
            if kind == "boolean" and not isinstance(value, bool):
                problems.append(f"{path}: expected one JSON boolean, got {value!r}")
    return problems
