"""Patient-level data for training: where the clinical table is, and the targets per case.

nnU-Net identifies training cases by their case identifier; the plugin's converter uses the
HECKTOR PatientID (``CHUP-012``) as the identifier and writes one row per patient to
``clinical.csv`` (HECKTOR column names, raw values) in the raw dataset folder.

The trainer looks for the table, in this order:

1. ``$nnUNet_preprocessed/<DatasetNNN_Name>/clinical.csv`` (copy it there to train on a machine
   that has no raw data);
2. ``$nnUNet_raw/<DatasetNNN_Name>/clinical.csv`` (written by ``nnunet-hecktor convert``).

Targets: HPV status (1 = positive), RFS (days from the end of radiotherapy), Relapse (1 = event).
Unknown values are NaN in the arrays and are masked out of the losses and the metrics.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from nnunet_hecktor import schema
from nnunet_hecktor.errors import HecktorError

CLINICAL_TABLE_NAME = "clinical.csv"


def clinical_table_candidates(dataset_name: str, preprocessed_base: str | os.PathLike | None = None,
                              raw_base: str | os.PathLike | None = None) -> list[Path]:
    """Paths where the trainer looks for ``clinical.csv``, in order of preference.

    Parameters
    ----------
    dataset_name : str
        nnU-Net dataset folder name, e.g. ``"Dataset501_HECKTOR"``.
    preprocessed_base, raw_base : path-like, optional
        ``nnUNet_preprocessed`` and ``nnUNet_raw``; default: the environment variables.
    """
    preprocessed_base = preprocessed_base if preprocessed_base is not None else os.environ.get("nnUNet_preprocessed")
    raw_base = raw_base if raw_base is not None else os.environ.get("nnUNet_raw")
    out = []
    if preprocessed_base:
        out.append(Path(preprocessed_base) / dataset_name / CLINICAL_TABLE_NAME)
    if raw_base:
        out.append(Path(raw_base) / dataset_name / CLINICAL_TABLE_NAME)
    return out


def find_clinical_table(dataset_name: str, preprocessed_base: str | os.PathLike | None = None,
                        raw_base: str | os.PathLike | None = None) -> Path:
    """The first existing ``clinical.csv`` of :func:`clinical_table_candidates`.

    Raises
    ------
    HecktorError
        When no candidate exists; the message lists where it looked and how to fix it.
    """
    candidates = clinical_table_candidates(dataset_name, preprocessed_base, raw_base)
    for path in candidates:
        if path.is_file():
            return path
    looked = "\n  ".join(str(p) for p in candidates) or "(nnUNet_raw and nnUNet_preprocessed are both unset)"
    raise HecktorError(
        f"no clinical table for {dataset_name}: the multi-task trainer needs the patients' HPV status, RFS and "
        f"Relapse. Looked for:\n  {looked}\nConvert the dataset with `nnunet-hecktor convert` (it writes "
        f"{CLINICAL_TABLE_NAME}), or copy the converter's {CLINICAL_TABLE_NAME} into the preprocessed dataset folder."
    )


def _as_nan(value: Any) -> float:
    if value is None:
        return math.nan
    value = float(value)
    return value if math.isfinite(value) else math.nan


@dataclass
class PatientTable:
    """Clinical records and targets of a set of patients, in a fixed order.

    Attributes
    ----------
    patient_ids : list of str
        Sorted PatientIDs (= nnU-Net case identifiers). The position is the patient's integer
        index, used where strings cannot travel (DDP all-gather).
    records : list of dict
        Typed clinical records (:mod:`nnunet_hecktor.clinical`); ``{}`` for a patient
        without a row (every variable missing).
    hpv : numpy.ndarray of float
        1 = HPV positive, 0 = negative, NaN = unknown.
    rfs : numpy.ndarray of float
        Recurrence-free survival in days, NaN = unknown.
    relapse : numpy.ndarray of float
        1 = relapse observed, 0 = censored, NaN = unknown.
    without_row : list of str
        Patients that have no row in the table.
    """

    patient_ids: list[str]
    records: list[dict]
    hpv: np.ndarray
    rfs: np.ndarray
    relapse: np.ndarray
    without_row: list[str]

    @classmethod
    def from_records(cls, patient_ids: Iterable[str], table: Mapping[str, Mapping[str, Any]]) -> "PatientTable":
        """Select ``patient_ids`` from ``table`` (PatientID -> typed record)."""
        ids = sorted(str(p) for p in patient_ids)
        records, without = [], []
        for pid in ids:
            if pid in table:
                records.append(dict(table[pid]))
            else:
                records.append({})
                without.append(pid)
        hpv = np.array([_as_nan(r.get(schema.COL_HPV)) for r in records], dtype=float)
        rfs = np.array([_as_nan(r.get(schema.COL_RFS)) for r in records], dtype=float)
        relapse = np.array([_as_nan(r.get(schema.COL_RELAPSE)) for r in records], dtype=float)
        # A survival outcome needs both parts; half-known outcomes are unknown.
        unknown = np.isnan(rfs) | np.isnan(relapse)
        rfs[unknown] = np.nan
        relapse[unknown] = np.nan
        return cls(ids, records, hpv, rfs, relapse, without)

    def __len__(self) -> int:
        return len(self.patient_ids)

    def index_of(self, keys: Sequence[str]) -> np.ndarray:
        """Integer index of each case identifier in ``keys``.

        Raises
        ------
        KeyError
            For an identifier that is not in the table's patient list.
        """
        lookup = self._lookup()
        try:
            return np.array([lookup[str(k)] for k in keys], dtype=np.int64)
        except KeyError as exc:
            raise KeyError(f"case {exc.args[0]!r} is not one of the {len(self)} patients of this table") from None

    def _lookup(self) -> dict[str, int]:
        cached = getattr(self, "_lookup_cache", None)
        if cached is None:
            cached = {pid: i for i, pid in enumerate(self.patient_ids)}
            self._lookup_cache = cached
        return cached

    def summary(self) -> str:
        """One line: counts of patients, known HPV (positives) and known outcomes (events)."""
        known_hpv = ~np.isnan(self.hpv)
        known_os = ~np.isnan(self.rfs)
        return (f"{len(self)} patients; HPV known for {int(known_hpv.sum())} "
                f"({int(np.nansum(self.hpv))} positive); RFS/Relapse known for {int(known_os.sum())} "
                f"({int(np.nansum(self.relapse))} relapses); {len(self.without_row)} without a clinical row")


def load_patient_table(dataset_name: str, patient_ids: Iterable[str],
                       preprocessed_base: str | os.PathLike | None = None,
                       raw_base: str | os.PathLike | None = None) -> tuple[PatientTable, Path]:
    """Find and read the clinical table and select ``patient_ids`` from it.

    Returns
    -------
    (PatientTable, Path)
        The table and the CSV it was read from.

    Raises
    ------
    HecktorError
        No table found, or the table is malformed (:class:`~nnunet_hecktor.errors.InputDataError`,
        naming the patient and the file).
    """
    from nnunet_hecktor.clinical import read_clinical_csv

    path = find_clinical_table(dataset_name, preprocessed_base, raw_base)
    return PatientTable.from_records(patient_ids, read_clinical_csv(path)), path


def hpv_sampling_weights(hpv: np.ndarray, power: float) -> np.ndarray:
    """Per-patient sampling weights that balance HPV classes (mean weight about 1).

    Parameters
    ----------
    hpv : numpy.ndarray
        1 = positive, 0 = negative, NaN = unknown.
    power : float
        0 = uniform sampling (nnU-Net's default); 1 = both HPV classes drawn equally
        often; in between, ``weight = (n_known / (2 n_class)) ** power``. Patients with
        unknown HPV keep weight 1. With a single known class the weights are uniform.

    Returns
    -------
    numpy.ndarray
        Non-negative weights, one per patient (not normalised).
    """
    if not 0.0 <= power <= 1.0:
        raise ValueError(f"HPV sampling power must be in [0, 1], got {power}")
    weights = np.ones(len(hpv), dtype=float)
    known = ~np.isnan(hpv)
    n_pos = int(np.sum(hpv[known] == 1))
    n_neg = int(np.sum(hpv[known] == 0))
    if power == 0 or n_pos == 0 or n_neg == 0:
        return weights
    n_known = n_pos + n_neg
    weights[known & (hpv == 1)] = (n_known / (2.0 * n_pos)) ** power
    weights[known & (hpv == 0)] = (n_known / (2.0 * n_neg)) ** power
    return weights


def effective_hpv_prevalence(hpv: np.ndarray, weights: np.ndarray) -> float | None:
    """Fraction of HPV-positive draws among draws with known HPV, under sampling ``weights``.

    The HPV loss weighting uses this prevalence, so that sampling and loss weighting together
    give both classes equal total weight whatever the sampling power.
    """
    known = ~np.isnan(hpv)
    total = float(weights[known].sum())
    if total <= 0:
        return None
    return float(weights[known & (hpv == 1)].sum() / total)
