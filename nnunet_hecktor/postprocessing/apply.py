"""Post-processing of label images and folders (``<PID>.nii.gz`` in, ``<PID>.nii.gz`` out).

Outputs keep the input's geometry exactly (size, spacing, origin, direction; written uint8)
and are written atomically. Probabilities, when a rule needs them, are nnU-Net's
``<PID>.npz`` (key ``probabilities``, shape ``(classes, z, y, x)``, written by
``nnUNetv2_predict --save_probabilities``) next to the segmentation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnunet_hecktor.errors import HecktorError, InputDataError
from nnunet_hecktor.fileio import check_output_folder, mark_plugin_output, write_image_atomic, write_json_atomic
from nnunet_hecktor.label_files import list_cases, read_label_image
from nnunet_hecktor.parallel import parallel_map
from nnunet_hecktor.postprocessing.config import PostprocessingConfig
from nnunet_hecktor.postprocessing.rules import VolumeFace, changed_voxels, postprocess_segmentation
from nnunet_hecktor.schema import FILE_ENDING

SUMMARY_FILE = "postprocessing_summary.json"


def array_spacing(image) -> tuple[float, ...]:
    """Voxel spacing in mm in numpy axis order (``(z, y, x)``) of a SimpleITK image."""
    return tuple(float(s) for s in image.GetSpacing()[::-1])


def cranial_face(image) -> VolumeFace:
    """The cranial face of a 3D SimpleITK image's array (numpy axis order).

    ITK's physical space is LPS: +z points to the head. The index axis whose direction has the
    largest z component runs cranio-caudally; its cranial face is the last index when that
    component is positive (slices numbered from the feet up, HECKTOR's NIfTI files), else index 0.
    """
    dimension = image.GetDimension()
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(dimension, dimension)
    index_axis = int(np.argmax(np.abs(direction[2])))
    return VolumeFace(axis=dimension - 1 - index_axis, at_end=bool(direction[2, index_axis] > 0))


def load_probabilities(path: str | os.PathLike, shape: tuple[int, ...], patient: str | None = None) -> np.ndarray:
    """Read nnU-Net's ``.npz`` softmax (``probabilities``, ``(classes, *shape)``), checking the shape."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError("probability file (.npz) is missing", patient, path)
    try:
        with np.load(path) as data:
            if "probabilities" not in data:
                raise InputDataError(f"no 'probabilities' array (found {', '.join(data.files)})", patient, path)
            probabilities = data["probabilities"]
    except (OSError, ValueError) as exc:
        raise InputDataError(f"unreadable probability file ({exc})", patient, path) from None
    if probabilities.ndim != len(shape) + 1 or tuple(probabilities.shape[1:]) != tuple(shape) or probabilities.shape[0] < 3:
        raise InputDataError(f"probabilities have shape {probabilities.shape}, expected (3, {', '.join(map(str, shape))}) "
                             "to match the segmentation", patient, path)
    return probabilities


def postprocess_image(image, config: PostprocessingConfig, probabilities: np.ndarray | None = None,
                      patient: str | None = None):
    """Post-process a SimpleITK label image; returns a uint8 image on exactly the same grid.

    Parameters
    ----------
    image : SimpleITK.Image
        Labels 0 background, 1 GTVp, 2 GTVn (other values are an error).
    config : PostprocessingConfig
    probabilities : ndarray, shape (classes, z, y, x), optional
        Needed when ``config`` has a probability threshold.
    patient : str, optional
        For error messages.
    """
    import SimpleITK as sitk

    from nnunet_hecktor.metrics.components import check_label_values

    array = sitk.GetArrayViewFromImage(image)
    bad = check_label_values(array)
    if bad:
        raise InputDataError(f"label values {sorted(bad)} outside {{0, 1, 2}}", patient)
    result = postprocess_segmentation(array, array_spacing(image), config, probabilities, cranial_face(image))
    out = sitk.GetImageFromArray(result)
    out.CopyInformation(image)
    return out


@dataclass(frozen=True)
class PostprocessJob:
    """One case of a folder run (picklable)."""

    patient: str
    input_path: Path
    output_path: Path
    config: PostprocessingConfig
    probabilities_path: Path | None = None


@dataclass
class CaseReport:
    patient: str
    changed_voxels: int
    used_probabilities: bool


def postprocess_file(job: PostprocessJob) -> CaseReport:
    """Read, post-process and atomically write one case."""
    image, array = read_label_image(job.input_path, job.patient, "segmentation")
    config = job.config
    probabilities = None
    if config.needs_probabilities:
        if job.probabilities_path is not None:
            probabilities = load_probabilities(job.probabilities_path, array.shape, job.patient)
        elif config.missing_probabilities == "skip":
            config = config.without_probability_threshold()
        else:
            raise InputDataError("the configuration has a probability threshold but no probability file (.npz) "
                                 "was given", job.patient, job.input_path)
    result = postprocess_segmentation(array, array_spacing(image), config, probabilities, cranial_face(image))
    import SimpleITK as sitk

    out = sitk.GetImageFromArray(result)
    out.CopyInformation(image)
    write_image_atomic(out, job.output_path)
    return CaseReport(job.patient, changed_voxels(array, result), probabilities is not None)


@dataclass
class FolderReport:
    """Summary of :func:`postprocess_folder`."""

    cases: list[CaseReport] = field(default_factory=list)
    skipped_probabilities: list[str] = field(default_factory=list)

    @property
    def n_changed(self) -> int:
        return sum(1 for c in self.cases if c.changed_voxels)


def postprocess_folder(input_dir: str | os.PathLike, output_dir: str | os.PathLike, config: PostprocessingConfig,
                       num_processes: int = 1, progress: bool = True, file_ending: str = FILE_ENDING) -> FolderReport:
    """Post-process every ``<PID>.nii.gz`` of ``input_dir`` into ``output_dir`` (must differ).

    Probabilities are read from ``input_dir/<PID>.npz`` when the configuration has a probability
    threshold; if one is missing, ``config.missing_probabilities`` decides: ``"error"`` (default,
    all such patients are listed) or ``"skip"`` (that case gets the other rules only; counted).
    A ``postprocessing_summary.json`` (configuration, changed voxels per case) is written too.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    cases = list_cases(input_dir, file_ending, "input")
    if not cases:
        raise HecktorError(f"no segmentations *{file_ending} in {input_dir}")
    if output_dir.resolve() == input_dir.resolve():
        raise HecktorError("the output folder must differ from the input folder (inputs are never overwritten)")
    jobs, skipped = [], []
    for pid, path in cases.items():
        npz = None
        if config.needs_probabilities:
            candidate = input_dir / f"{pid}.npz"
            if candidate.is_file():
                npz = candidate
            else:
                skipped.append(pid)
        jobs.append(PostprocessJob(pid, path, output_dir / path.name, config, npz))
    if skipped and config.missing_probabilities == "error":
        raise InputDataError(f"the configuration has a probability threshold but {len(skipped)} cases have no "
                             f"<PID>.npz: {', '.join(skipped[:20])} (run nnUNetv2_predict --save_probabilities, or set "
                             "\"missing_probabilities\": \"skip\")", None, input_dir)
    check_output_folder(output_dir)  # writable before any case; marked: the converter never reads it as data
    mark_plugin_output(output_dir, "postprocess")
    reports = parallel_map(postprocess_file, jobs, num_processes, "post-process", progress)
    report = FolderReport(reports, skipped)
    write_json_atomic(output_dir / SUMMARY_FILE, {
        "input": str(input_dir),
        "configuration": config.to_dict(),
        "rules": config.describe(),
        "cases": [{"PatientID": c.patient, "changed_voxels": c.changed_voxels,
                   "used_probabilities": c.used_probabilities} for c in reports],
        "cases_without_probabilities": skipped,
    })
    return report
