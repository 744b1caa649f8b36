"""Turning a patient's CT and PET into the two-channel case the model was trained on.

This repeats, in memory, what ``nnunet-hecktor convert`` did to the training data (same functions:
:func:`~nnunet_hecktor.dataset_conversion.compute_crop`,
:func:`~nnunet_hecktor.dataset_conversion.apply_crop`,
:func:`~nnunet_hecktor.dataset_conversion.resample_pet_to_ct`, with the options recorded in the
model's ``dataset.json``): the CT keeps its voxels (cropped if the dataset was cropped), the PET is
resampled onto that CT grid (outside value 0, float32). The crop record maps the result back onto
the original CT grid, where HECKTOR scores segmentations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nnunet_hecktor.errors import InputDataError

from .inputs import CaseInput
from .settings import ConversionSettings

if TYPE_CHECKING:
    # Annotations only: SimpleITK and the converter are imported where they are used.
    import SimpleITK as sitk

    from nnunet_hecktor.dataset_conversion import CropRecord

#: Below this fraction of the CT grid covered by the PET, a warning is issued (PET channel 0 elsewhere).
MIN_PET_COVERAGE = 0.5


@dataclass
class PreparedCase:
    """A case ready for nnU-Net.

    Attributes
    ----------
    patient_id : str
    ct : SimpleITK.Image
        CT on the grid the network sees (the original CT grid, cropped when the model's data were).
    pet : SimpleITK.Image
        PET resampled onto ``ct``'s grid (float32, SUV as given).
    crop_record : CropRecord
        Where ``ct``'s grid sits in the original CT grid (``uncrop_to_original`` uses it).
    warnings : list of str
    """

    patient_id: str
    ct: sitk.Image
    pet: sitk.Image
    crop_record: CropRecord
    warnings: list[str] = field(default_factory=list)


def _read_checked(path: Path, patient: str, what: str):
    from nnunet_hecktor.dataset_conversion.checks import check_scalar_3d
    from nnunet_hecktor.fileio import read_image

    image = read_image(path, patient, what)  # missing, truncated, unreadable, NaN/inf -> InputDataError
    check_scalar_3d(image, patient, path, what)
    return image


def prepare_images(patient_id: str, ct, pet, settings: ConversionSettings, pet_on_ct_grid: bool = False,
                   crop_record=None, ct_path: Path | None = None, pet_path: Path | None = None) -> PreparedCase:
    """Prepare in-memory CT and PET images (see the module docstring).

    Parameters
    ----------
    patient_id : str
    ct, pet : SimpleITK.Image
        CT (HU) and PET (SUV). PET on its own grid unless ``pet_on_ct_grid``.
    settings : ConversionSettings
        The model's conversion options.
    pet_on_ct_grid : bool
        The images are already converted (nnU-Net-style input): no resampling, no crop.
    crop_record : CropRecord, dict or path, optional
        For already converted images: the converter's record of the crop (None = ``ct`` is the
        original grid).
    ct_path, pet_path : Path, optional
        For error messages.

    Raises
    ------
    InputDataError
        PET and CT do not overlap, or (converted input) PET not on the CT grid / CT not on the
        crop record's grid.
    """
    import SimpleITK as sitk

    from nnunet_hecktor.dataset_conversion import apply_crop, compute_crop, load_crop_record, resample_pet_to_ct
    from nnunet_hecktor.dataset_conversion.checks import pet_statistics, pet_unit_warning
    from nnunet_hecktor.dataset_conversion.cropping import full_record
    from nnunet_hecktor.dataset_conversion.geometry import (
        ROUNDOFF_TOLERANCE_VOXELS,
        GridGeometry,
        covered_index_box,
        describe_grid_difference,
        grid_offset_voxels,
    )

    warnings: list[str] = []
    ct_geometry = GridGeometry.of(ct)
    if pet_on_ct_grid:
        pet_geometry = GridGeometry.of(pet)
        if grid_offset_voxels(ct_geometry, pet_geometry) > ROUNDOFF_TOLERANCE_VOXELS:
            raise InputDataError("PET (_0001) is not on the CT (_0000) grid "
                                 f"({describe_grid_difference(ct_geometry, pet_geometry)}); give the HECKTOR "
                                 "folder instead so that the PET is resampled", patient_id, pet_path)
        if crop_record is None:
            record = full_record(patient_id, ct_geometry)
            if settings.crop is not None:
                warnings.append(f"the model's training data were cropped ({settings.crop}) but there is no crop "
                                "record: the images are used as given and the segmentation is written on their grid")
        else:
            record = load_crop_record(crop_record)
            if grid_offset_voxels(record.cropped_ct, ct_geometry) > ROUNDOFF_TOLERANCE_VOXELS:
                raise InputDataError("CT is not on the grid of its crop record "
                                     f"({describe_grid_difference(record.cropped_ct, ct_geometry)})",
                                     patient_id, ct_path)
            converted_with = None if record.mode == "none" else record.mode
            if converted_with != settings.crop:
                warnings.append(f"converted with crop {converted_with or 'none'}, but the model's training data "
                                f"with crop {settings.crop or 'none'}")
        if pet.GetPixelID() != sitk.sitkFloat32:
            pet = sitk.Cast(pet, sitk.sitkFloat32)
        pet.CopyInformation(ct)  # round-off only (checked above); nnU-Net wants identical headers
        return PreparedCase(patient_id, ct, pet, record, warnings)

    stats = pet_statistics(sitk.GetArrayViewFromImage(pet))
    if (warning := pet_unit_warning(stats)) is not None:
        warnings.append(warning)
    record = compute_crop(patient_id, ct, pet, settings.crop, settings.headneck_box_mm)
    target = record.cropped_ct
    box = covered_index_box(target, GridGeometry.of(pet))
    coverage = 0.0 if box is None else float(np.prod(np.subtract(box[1], box[0])) / np.prod(target.size))
    if coverage == 0.0:
        raise InputDataError("PET and CT do not overlap physically (the PET channel would be all 0)",
                             patient_id, pet_path)
    if coverage < MIN_PET_COVERAGE:
        warnings.append(f"PET covers only {coverage:.0%} of the CT grid; the PET channel is 0 elsewhere")
    ct_out = ct if record.is_full else apply_crop(ct, record, "CT")
    pet_out = resample_pet_to_ct(pet, target, settings.interpolation)
    return PreparedCase(patient_id, ct_out, pet_out, record, warnings)


def prepare_case(case: CaseInput, settings: ConversionSettings) -> PreparedCase:
    """Read and prepare the files of one case (the converter's file checks: truncation, NaN/inf, 3-D scalar)."""
    ct = _read_checked(case.ct, case.patient_id, "CT")
    pet = _read_checked(case.pet, case.patient_id, "PET")
    return prepare_images(case.patient_id, ct, pet, settings, case.pet_on_ct_grid, case.crop_record,
                          case.ct, case.pet)
