"""PET-threshold segmentation rules: the simplest alternative to a trained network.

Both rules work on the PET in SUV resampled onto the CT grid (an nnU-Net ``imagesTr`` case:
``<case>_0000`` CT, ``<case>_0001`` PET) and return a label map (0 background, 1 GTVp, 2 GTVn).

- ``suvmax40``: GTVp = the connected component, containing the hottest voxel, of PET >= 40 % of
  SUVmax; SUVmax taken outside the brain. No nodes. (The classic fixed-fraction rule.)
- ``suv2.5``: PET > 2.5 SUV outside the brain; the component holding the hottest voxel is GTVp,
  every other component is a node (GTVn).

The brain (physiological uptake ~7-12 SUV that would otherwise be "the tumour") is taken to be
every component of PET > 2.5 SUV that reaches the most cranial slice: with the field of view
ending at the skull base, as in HECKTOR, the brain is the hot region cut by the top of the image.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from nnunet_hecktor import schema
from nnunet_hecktor.errors import InputDataError
from nnunet_hecktor.fileio import read_image, write_image_atomic
from nnunet_hecktor.metrics.components import label_components

#: SUV threshold of the fixed-SUV rule and of the brain mask.
SUV_THRESHOLD = 2.5
#: Fraction of SUVmax of the fixed-fraction rule.
SUVMAX_FRACTION = 0.4


def brain_mask(pet: np.ndarray, cranial_index: int = -1, threshold: float = SUV_THRESHOLD) -> np.ndarray:
    """Boolean mask of the brain: components of ``pet > threshold`` touching the cranial slice.

    Parameters
    ----------
    pet : array (z, y, x)
        SUV.
    cranial_index : int
        Index along z of the most cranial slice (-1: the last, as for an identity direction).
    threshold : float
        SUV above which a voxel can belong to the brain.
    """
    labels, n = label_components(pet > threshold)
    if n == 0:
        return np.zeros(pet.shape, dtype=bool)
    touching = np.unique(labels[cranial_index])
    touching = touching[touching > 0]
    return np.isin(labels, touching)


def _hottest_component(mask: np.ndarray, pet: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(component holding the hottest voxel of ``pet`` inside ``mask``, the other components)."""
    labels, n = label_components(mask)
    if n == 0:
        empty = np.zeros(mask.shape, dtype=bool)
        return empty, empty
    hottest = labels.flat[int(np.argmax(np.where(mask, pet, -np.inf)))]
    return labels == hottest, (labels > 0) & (labels != hottest)


def gtvp_fraction_of_suvmax(pet: np.ndarray, cranial_index: int = -1, fraction: float = SUVMAX_FRACTION) -> np.ndarray:
    """Label map of the ``suvmax40`` rule (GTVp only): see the module docstring."""
    outside_brain = ~brain_mask(pet, cranial_index)
    seg = np.zeros(pet.shape, dtype=np.uint8)
    if not outside_brain.any():
        return seg
    suvmax = float(pet[outside_brain].max())
    if suvmax <= 0:
        return seg
    gtvp, _ = _hottest_component(outside_brain & (pet >= fraction * suvmax), pet)
    seg[gtvp] = schema.GTVP
    return seg


def suv_threshold_components(pet: np.ndarray, cranial_index: int = -1, threshold: float = SUV_THRESHOLD) -> np.ndarray:
    """Label map of the ``suv2.5`` rule (hottest component GTVp, others GTVn): see the module docstring."""
    gtvp, others = _hottest_component((pet > threshold) & ~brain_mask(pet, cranial_index, threshold), pet)
    seg = np.zeros(pet.shape, dtype=np.uint8)
    seg[gtvp] = schema.GTVP
    seg[others] = schema.GTVN
    return seg


#: Rule name -> function(pet, cranial_index) -> label map.
PET_RULES: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "suvmax40": gtvp_fraction_of_suvmax,
    "suv2.5": suv_threshold_components,
}
#: What each rule is, for tables.
PET_RULE_DESCRIPTIONS: dict[str, str] = {
    "suvmax40": "PET rule: 40 % of SUVmax, brain masked (GTVp only)",
    "suv2.5": "PET rule: SUV > 2.5, hottest component GTVp, others GTVn",
}


def cranial_slice_index(image) -> int:
    """Index along numpy axis 0 (ITK z) of the most cranial slice of a SimpleITK image (LPS: +z is superior)."""
    return -1 if image.GetDirection()[8] >= 0 else 0


def segment_case(pet_path: str | os.PathLike, rule: str, destination: str | os.PathLike,
                 patient: str | None = None) -> Path:
    """Apply ``rule`` to one PET image and write the label map on the PET's grid."""
    import SimpleITK as sitk

    if rule not in PET_RULES:
        raise ValueError(f"unknown PET rule {rule!r}; choose one of {', '.join(PET_RULES)}")
    image = read_image(pet_path, patient, what="PET")  # missing, truncated, NaN: a clear error
    pet = sitk.GetArrayFromImage(image).astype(np.float32)
    seg = sitk.GetImageFromArray(PET_RULES[rule](pet, cranial_slice_index(image)))
    seg.CopyInformation(image)
    write_image_atomic(seg, destination)
    return Path(destination)


def segment_folder(images_dir: str | os.PathLike, output_dir: str | os.PathLike, rule: str,
                   progress: bool = True) -> list[Path]:
    """Apply ``rule`` to every ``<case>_0001.nii.gz`` (PET on the CT grid) of an nnU-Net images folder.

    Writes ``<case>.nii.gz`` label maps into ``output_dir`` (same grid as the CT, so they can be
    scored against ``labelsTr``); a case whose output exists is not redone.

    Returns
    -------
    list of Path
        The label maps, one per case, sorted by case.
    """
    images_dir, output_dir = Path(images_dir), Path(output_dir)
    suffix = "_0001" + schema.FILE_ENDING
    cases = sorted(p.name[: -len(suffix)] for p in images_dir.glob("*" + suffix))
    if not cases:
        raise InputDataError(f"no PET images (*{suffix}) found", None, images_dir)
    written = []
    iterator = cases
    if progress:
        from tqdm import tqdm

        iterator = tqdm(cases, desc=f"PET rule {rule}", unit="patient")
    for case in iterator:
        destination = output_dir / f"{case}{schema.FILE_ENDING}"
        if not destination.exists():
            segment_case(images_dir / f"{case}{suffix}", rule, destination, case)
        written.append(destination)
    return written
