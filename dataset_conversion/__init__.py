"""HECKTOR -> nnU-Net v2 dataset conversion (importable as ``nnunet_hecktor.dataset_conversion``).

Main entry points
-----------------
:func:`convert_dataset`
    A HECKTOR source folder (release root, one task folder, or a flat folder) -> ``DatasetNNN_NAME``.
:func:`discover_layout`
    What a source folder holds: layout kind, per patient its CT/PET/label/planning files, the CSVs.
:class:`OutputLock`
    The one-writer-per-dataset-folder lock ``convert`` holds.
:func:`uncrop_to_original`
    A segmentation of a (cropped) converted case -> the patient's original CT grid, padded with 0.

Conventions: label values 0 background, 1 GTVp, 2 GTVn; channel 0 CT (HU, original voxels),
channel 1 PET (SUV) resampled onto the CT grid; lengths in mm, volumes in mL, ITK (x, y, z) index order.
"""

from .clinical_merge import ClinicalTable, merge_clinical_csvs
from .converter import ConversionSummary, convert_dataset, default_output_dir
from .cropping import CropRecord, apply_crop, compute_crop, find_brain, load_crop_record, uncrop_to_original
from .geometry import GridGeometry
from .layout import ClinicalSource, PatientFiles, PatientSources, SourceLayout, discover_layout
from .lock import OutputLock
from .patient import ConversionOptions, PatientJob, convert_patient
from .resampling import resample_pet_to_ct
from .splits import filter_splits, load_splits_file, make_stratified_splits

__all__ = [
    "ClinicalSource", "ClinicalTable", "ConversionOptions", "ConversionSummary", "CropRecord", "GridGeometry",
    "OutputLock", "PatientFiles", "PatientJob", "PatientSources", "SourceLayout", "apply_crop", "compute_crop",
    "convert_dataset", "convert_patient", "default_output_dir", "discover_layout", "filter_splits", "find_brain",
    "load_crop_record", "load_splits_file", "make_stratified_splits", "merge_clinical_csvs", "resample_pet_to_ct",
    "uncrop_to_original",
]
