"""HECKTOR data conventions shared by every part of the plugin (see docs/reference/conventions.md).

Label values: 0 background, 1 GTVp (primary tumour), 2 GTVn (all involved nodes).
Risk scores: higher = earlier relapse. HPV: 1 = positive (the positive class).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import overload

LABELS: dict[str, int] = {"background": 0, "GTVp": 1, "GTVn": 2}
GTVP: int = 1
GTVN: int = 2

#: nnU-Net channel order used by the converter and by prediction.
CHANNEL_NAMES: dict[str, str] = {"0": "CT", "1": "PET"}
FILE_ENDING: str = ".nii.gz"

#: Modality suffixes in the release (``<PID>__CT.nii.gz``); label is ``<PID>.nii.gz``.
MODALITY_SUFFIXES: dict[str, str] = {
    "CT": "__CT",
    "PET": "__PT",
    "CT_PLANNING": "__CTPlanning",
    "RTDOSE": "__RTDOSE",
}

#: CenterID codes of the clinical tables.
CENTER_CODES: dict[str, int] = {
    "CHUM": 1, "CHUP": 2, "CHUS": 3, "CHUV": 4, "MDA": 5, "HGJ": 6, "HMR": 7, "USZ": 8,
}

PATIENT_ID_PATTERN = re.compile(r"^(?P<centre>[A-Z]+)-(?P<number>\d{3})$")

#: Clinical columns, exact spelling of the release CSVs / ehr.json keys.
COL_PATIENT = "PatientID"
COL_CENTER = "CenterID"
COL_AGE = "Age"
COL_GENDER = "Gender"
COL_TOBACCO = "Tobacco Consumption"
COL_ALCOHOL = "Alcohol Consumption"
COL_PERFORMANCE = "Performance Status"
COL_TREATMENT = "Treatment"
COL_MSTAGE = "M-stage"
COL_HPV = "HPV Status"
COL_RELAPSE = "Relapse"
COL_RFS = "RFS"
#: HECKTOR 2026 staging targets (AJCC/UICC 7th edition), see :data:`T_STAGES` / :data:`N_STAGES`.
COL_TSTAGE = "T-stage"
COL_NSTAGE = "N-stage"

CLINICAL_COLUMNS: tuple[str, ...] = (
    COL_PATIENT, COL_CENTER, COL_AGE, COL_GENDER, COL_TOBACCO, COL_ALCOHOL,
    COL_PERFORMANCE, COL_TREATMENT, COL_MSTAGE, COL_HPV, COL_RELAPSE, COL_RFS, COL_TSTAGE, COL_NSTAGE,
)
BINARY_COLUMNS: tuple[str, ...] = (COL_GENDER, COL_TOBACCO, COL_ALCOHOL, COL_TREATMENT)
M_STAGES: tuple[str, ...] = ("M0", "M1", "Mx")
ECOG_VALUES: tuple[int, ...] = (0, 1, 2, 3, 4)
KARNOFSKY_VALUES: tuple[int, ...] = (80, 90, 100)
#: Every column that is a target in some edition (2025: HPV, Relapse, RFS; 2026: Relapse, RFS, T, N).
#: Which of them an edition scores, and which it supplies as a test-time input, is in
#: :mod:`nnunet_hecktor.editions`.
TARGET_COLUMNS: tuple[str, ...] = (COL_HPV, COL_RELAPSE, COL_RFS, COL_TSTAGE, COL_NSTAGE)

#: The one stage coding of the plugin (AJCC/UICC 7th edition, as HECKTOR 2026 releases it). Stages are
#: stored as these canonical labels (``clinical.csv``, container outputs); the **ordinal code** of a
#: stage is its index here (T0 = 0 ... T4 = 4, N0 = 0 ... N3 = 3), used by every model and metric.
#: Sub-stages merge into their stage (T4a/T4b -> T4, N2a/N2b/N2c -> N2, N3a/N3b -> N3); ``Tx``/``Nx``
#: (not assessable) and ``Tis`` are missing values, not classes.
T_STAGES: tuple[str, ...] = ("T0", "T1", "T2", "T3", "T4")
N_STAGES: tuple[str, ...] = ("N0", "N1", "N2", "N3")
STAGES_OF_COLUMN: dict[str, tuple[str, ...]] = {COL_TSTAGE: T_STAGES, COL_NSTAGE: N_STAGES}


# Overloads tell the type checker that a label gives a code and None stays None (and vice versa).
@overload
def stage_code(column: str, stage: str) -> int: ...
@overload
def stage_code(column: str, stage: None) -> None: ...
@overload
def stage_code(column: str, stage: str | None) -> int | None: ...
def stage_code(column: str, stage: str | None) -> int | None:
    """Ordinal code of a canonical stage label (``stage_code("T-stage", "T3") == 3``); None stays None."""
    if stage is None:
        return None
    return STAGES_OF_COLUMN[column].index(stage)


@overload
def stage_label(column: str, code: int) -> str: ...
@overload
def stage_label(column: str, code: None) -> None: ...
@overload
def stage_label(column: str, code: int | None) -> str | None: ...
def stage_label(column: str, code: int | None) -> str | None:
    """Canonical stage label of an ordinal code (``stage_label("N-stage", 2) == "N2"``); None stays None."""
    if code is None:
        return None
    return STAGES_OF_COLUMN[column][int(code)]

#: Task folder names of the 2025 release and their CSV file names.
TASK_FOLDERS: dict[int, str] = {1: "Task 1", 2: "Task 2", 3: "Task 3"}
TASK_CSV_NAMES: dict[int, str] = {t: f"HECKTOR_2025_Training_Task_{t}.csv" for t in (1, 2, 3)}


def centre_of(patient_id: str) -> str:
    """Return the centre prefix of a PatientID (``"CHUP-000"`` -> ``"CHUP"``; HECKTOR 2021's ``"CHGJ007"`` -> ``"CHGJ"``)."""
    if "-" not in patient_id:
        # 2021 IDs carry no dash: the centre is the letters before the number.
        match = re.match(r"^([A-Za-z]+)\d+$", patient_id)
        if match:
            return match.group(1)
    return patient_id.split("-", 1)[0]


# The challenge container's output layout (HECKTOR 2025 template), per case folder: written by the
# container, read back by the evaluation of challenge outputs.
#: Task 1: uint8 {0, 1, 2} label image on the original CT grid.
SEGMENTATION_OUTPUT = Path("images") / "tumor-lymph-node-segmentation" / "output.mha"
#: Task 2: one JSON number, the risk score (higher = earlier relapse).
RFS_OUTPUT = Path("rfs.json")
#: Task 3: one JSON boolean, true = HPV positive.
HPV_OUTPUT = Path("hpv-status.json")
