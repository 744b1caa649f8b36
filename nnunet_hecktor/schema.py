"""HECKTOR data conventions shared by every part of the plugin (see docs/reference/conventions.md).

Label values: 0 background, 1 GTVp (primary tumour), 2 GTVn (all involved nodes).
Risk scores: higher = earlier relapse. HPV: 1 = positive (the positive class).
"""

from __future__ import annotations

import re
from pathlib import Path

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

CLINICAL_COLUMNS: tuple[str, ...] = (
    COL_PATIENT, COL_CENTER, COL_AGE, COL_GENDER, COL_TOBACCO, COL_ALCOHOL,
    COL_PERFORMANCE, COL_TREATMENT, COL_MSTAGE, COL_HPV, COL_RELAPSE, COL_RFS,
)
BINARY_COLUMNS: tuple[str, ...] = (COL_GENDER, COL_TOBACCO, COL_ALCOHOL, COL_TREATMENT)
M_STAGES: tuple[str, ...] = ("M0", "M1", "Mx")
ECOG_VALUES: tuple[int, ...] = (0, 1, 2, 3, 4)
KARNOFSKY_VALUES: tuple[int, ...] = (80, 90, 100)
TARGET_COLUMNS: tuple[str, ...] = (COL_HPV, COL_RELAPSE, COL_RFS)

#: Task folder names of the 2025 release and their CSV file names.
TASK_FOLDERS: dict[int, str] = {1: "Task 1", 2: "Task 2", 3: "Task 3"}
TASK_CSV_NAMES: dict[int, str] = {t: f"HECKTOR_2025_Training_Task_{t}.csv" for t in (1, 2, 3)}


def centre_of(patient_id: str) -> str:
    """Return the centre prefix of a PatientID (``"CHUP-000"`` -> ``"CHUP"``)."""
    return patient_id.split("-", 1)[0]


# The challenge container's output layout (HECKTOR 2025 template), per case folder: written by the
# container, read back by the evaluation of challenge outputs.
#: Task 1: uint8 {0, 1, 2} label image on the original CT grid.
SEGMENTATION_OUTPUT = Path("images") / "tumor-lymph-node-segmentation" / "output.mha"
#: Task 2: one JSON number, the risk score (higher = earlier relapse).
RFS_OUTPUT = Path("rfs.json")
#: Task 3: one JSON boolean, true = HPV positive.
HPV_OUTPUT = Path("hpv-status.json")
