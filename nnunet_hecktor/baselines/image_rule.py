"""One image number as the risk: the log volume of the GTVp of a segmentation.

Bigger primaries relapse earlier (in HECKTOR as in the synthetic generator), so this single
number is the bar a learned risk must clear before it adds anything beyond the segmentation.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterator

from nnunet_hecktor import schema

#: Volume (mL) below which a GTVp counts as this much: the log of an empty mask stays finite and
#: ranks below every visible tumour.
MIN_VOLUME_ML = 0.01


def segmentations_of(seg_dir: str | os.PathLike, patients=None) -> Iterator[tuple[str, Any]]:
    """``(PatientID, SimpleITK image)`` of each ``<PID>.nii.gz`` label map of ``seg_dir`` (checked on reading).

    ``patients``: which ones (default: every ``*.nii.gz`` in the folder, sorted). The baselines that
    measure a segmentation folder (the one-number rule, the AJCC 7 staging rule) read it through here.
    """
    from nnunet_hecktor.fileio import read_image

    seg_dir = Path(seg_dir)
    if patients is None:
        patients = sorted(p.name[: -len(schema.FILE_ENDING)] for p in seg_dir.glob("*" + schema.FILE_ENDING))
    for pid in patients:
        yield pid, read_image(seg_dir / f"{pid}{schema.FILE_ENDING}", pid, "segmentation")


def log_gtvp_volume_risk(seg_dir: str | os.PathLike, patients=None) -> dict[str, dict[str, float]]:
    """``{PatientID: {"risk": log(GTVp volume in mL)}}`` from the label maps ``<PID>.nii.gz`` of ``seg_dir``.

    Parameters
    ----------
    seg_dir : path-like
        Segmentations (1 = GTVp), e.g. a PET rule's output or the model's predictions.
    patients : iterable of str, optional
        Which patients (default: every ``*.nii.gz`` in the folder).

    Returns
    -------
    dict
        Risk (higher = earlier relapse) per patient; an empty GTVp gives ``log(MIN_VOLUME_ML)``.
    """
    import SimpleITK as sitk

    from nnunet_hecktor.prognosis.lesion_measures import volume_ml

    rows = {}
    for pid, image in segmentations_of(seg_dir, patients):
        mask = sitk.GetArrayViewFromImage(image) == schema.GTVP
        volume = volume_ml(mask, image.GetSpacing()[::-1])
        rows[pid] = {"risk": math.log(max(volume, MIN_VOLUME_ML))}
    return rows
