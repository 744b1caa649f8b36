"""The safest valid outputs of a container run whose prediction failed.

A case without its output file scores zero on the leaderboard, and the organisers' own smoke test
(``do_test_run.sh``) feeds every container 1x1 2-D dummy images. When a step fails, the container
writes instead (and logs why):

Task 1
    An empty mask (uint8, all background) on the CT's grid, read from the CT file's header only (so
    a CT with NaN voxels, a 2-D or a 4-D CT still gives its own grid); when even the header cannot
    be read, the smallest valid image: 1x1x1 voxel of 1 mm at the origin.
Task 2
    The training cohort's median risk: for each fold, the median of its out-of-fold risks
    (``fold_K/validation_heads.csv``, written at the end of training), averaged over the folds in
    use the way the folds' risks are averaged (:mod:`nnunet_hecktor.prediction.ensemble`). A
    patient ranked in the middle costs the C-index least. A staged container model carries the
    value in ``challenge_model.json`` (``fallback``), computed when it was staged, so no patient
    data ships in the image.
Task 3
    The majority HPV class of those patients (``hpv_true`` of ``validation_heads.csv``; a tie is
    positive).

A model trained without the end-of-training validation has no ``validation_heads.csv``: then the
risk is :data:`DEFAULT_RISK` and the class :data:`DEFAULT_HPV_POSITIVE` (about 90 % of the
HECKTOR training release is HPV positive), and the source says so.
"""

from __future__ import annotations

import csv
import math
import os
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

#: Risk written when the model folder records no cohort (the Cox head's reference log hazard).
DEFAULT_RISK: float = 0.0
#: HPV class written when the model folder records no cohort: the training release's majority class.
DEFAULT_HPV_POSITIVE: bool = True
VALIDATION_HEADS_CSV = "validation_heads.csv"


@dataclass(frozen=True)
class FallbackValues:
    """Patient-level outputs written when prediction failed.

    Attributes
    ----------
    risk : float
        Higher = earlier relapse (the cohort's median predicted risk).
    hpv_positive : bool
        True = HPV positive (the cohort's majority class).
    risk_source, hpv_source : str
        Where each value comes from, for the log.
    """

    risk: float
    hpv_positive: bool
    risk_source: str
    hpv_source: str

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "FallbackValues":
        risk = float(data["risk"])
        if not math.isfinite(risk):
            raise ValueError(f"fallback risk {risk} is not finite")
        return cls(risk, bool(data["hpv_positive"]), str(data.get("risk_source", "challenge_model.json")),
                   str(data.get("hpv_source", "challenge_model.json")))


def _read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def fallback_values(model_dir: str | os.PathLike, folds: Sequence) -> FallbackValues:
    """The fallback risk and HPV class of a trained model folder (see the module docstring).

    Parameters
    ----------
    model_dir : path-like
        Trained model folder (``fold_K/validation_heads.csv`` are read).
    folds : sequence
        Folds in use.

    Returns
    -------
    FallbackValues
    """
    model_dir = Path(model_dir)
    medians: list[float] = []
    hpv: dict[str, int] = {}
    used = []
    for fold in folds:
        path = model_dir / f"fold_{fold}" / VALIDATION_HEADS_CSV
        if not path.is_file():
            continue
        try:
            rows = _read_rows(path)
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
        risks = [r for r in (_number(row.get("risk")) for row in rows) if r is not None]
        if risks:
            medians.append(statistics.median(risks))
            used.append(str(fold))
        for row in rows:
            label = _number(row.get("hpv_true"))
            if label in (0.0, 1.0) and row.get("PatientID"):
                hpv[row["PatientID"]] = int(label)
    none = f"no {VALIDATION_HEADS_CSV} in the folds of {model_dir}: default"
    if not medians:
        return FallbackValues(DEFAULT_RISK, DEFAULT_HPV_POSITIVE, none, f"{none} (training release majority)")
    positives = sum(hpv.values())
    hpv_positive = positives * 2 >= len(hpv) if hpv else DEFAULT_HPV_POSITIVE
    return FallbackValues(
        float(sum(medians) / len(medians)), bool(hpv_positive),
        f"mean over folds {', '.join(used)} of the median out-of-fold risk in {VALIDATION_HEADS_CSV}",
        f"majority class of {len(hpv)} patients in {VALIDATION_HEADS_CSV} ({positives} positive)" if hpv
        else f"{none} (training release majority)")


def empty_segmentation_for(ct_path: str | os.PathLike | None):
    """An all-background uint8 mask on the CT file's grid, and a description of the grid used.

    Only the file's header is read. When there is no CT file or its header cannot be read (not an
    image, empty file), or its grid cannot hold a mask, the smallest valid image is returned
    (1x1x1 voxel, 1 mm spacing, origin 0).
    """
    import SimpleITK as sitk

    if ct_path is not None:
        try:
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(ct_path))
            reader.ReadImageInformation()
            size = [int(s) for s in reader.GetSize()]
            if size and min(size) >= 1:
                image = sitk.Image(size, sitk.sitkUInt8)
                image.SetSpacing(reader.GetSpacing())
                image.SetOrigin(reader.GetOrigin())
                image.SetDirection(reader.GetDirection())
                return image, f"the CT's grid ({reader.GetDimension()}-D, size {size})"
        except RuntimeError:
            pass
    image = sitk.Image([1, 1, 1], sitk.sitkUInt8)
    return image, "the smallest valid grid (1x1x1 voxel of 1 mm; the CT's grid could not be read)"
