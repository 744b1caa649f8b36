"""Task 1 evaluation of a prediction folder against a label folder (``<PID>.nii.gz`` in both).

Every ground-truth case needs a prediction on the same voxel grid, with label values in
{0, 1, 2}; anything else is an :class:`~nnunet_hecktor.errors.InputDataError` naming the
patient and file. Predictions without a ground truth are ignored and counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


from nnunet_hecktor.errors import HecktorError, InputDataError
from nnunet_hecktor.dataset_conversion.geometry import GeometryTolerance, check_same_geometry
from nnunet_hecktor.label_files import list_cases, read_label_image
from nnunet_hecktor.parallel import parallel_map
from nnunet_hecktor.metrics.segmentation import (
    PatientSegmentationStats,
    SegmentationMetricOptions,
    patient_segmentation_stats,
)
from nnunet_hecktor.schema import FILE_ENDING

def pair_cases(gt_dir: str | os.PathLike, pred_dir: str | os.PathLike,
               file_ending: str = FILE_ENDING) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """Pair ground-truth and prediction files by PatientID.

    Returns
    -------
    pairs : list of (patient, gt_path, pred_path)
        In PatientID order.
    extra : list of str
        PatientIDs predicted but without ground truth (ignored by the evaluation).

    Raises
    ------
    HecktorError
        No ground truth at all, or predictions missing for some patients (all listed).
    """
    gt = list_cases(gt_dir, file_ending, "ground-truth")
    pred = list_cases(pred_dir, file_ending, "prediction")
    if not gt:
        raise HecktorError(f"no ground-truth files *{file_ending} in {gt_dir}")
    missing = [pid for pid in gt if pid not in pred]
    if missing:
        shown = ", ".join(missing[:20]) + (f" ... ({len(missing)} in all)" if len(missing) > 20 else "")
        raise InputDataError(f"prediction missing for {len(missing)} of {len(gt)} patients with ground truth: {shown}",
                             None, pred_dir)
    return [(pid, gt[pid], pred[pid]) for pid in gt], [pid for pid in pred if pid not in gt]


@dataclass(frozen=True)
class SegmentationCase:
    """One patient to evaluate (picklable, for worker processes)."""

    patient: str
    gt_path: Path
    pred_path: Path
    options: SegmentationMetricOptions = field(default_factory=SegmentationMetricOptions)
    tolerance: GeometryTolerance = field(default_factory=GeometryTolerance)


def evaluate_case(case: SegmentationCase) -> PatientSegmentationStats:
    """Read one ground truth / prediction pair, check it, and return its Task 1 statistics."""
    gt_image, gt = read_label_image(case.gt_path, case.patient, "ground-truth label")
    pred_image, pred = read_label_image(case.pred_path, case.patient, "prediction")
    check_same_geometry(gt_image, pred_image, case.patient, case.pred_path, tolerance=case.tolerance)
    spacing = gt_image.GetSpacing()[::-1]  # array axis order (z, y, x)
    return patient_segmentation_stats(gt, pred, spacing, case.patient, case.options)


@dataclass(frozen=True)
class SegmentationFolderResult:
    """Per-patient statistics of a folder evaluation and the predictions that had no ground truth."""

    stats: list[PatientSegmentationStats]
    extra_predictions: list[str]


def evaluate_segmentation_folders(gt_dir: str | os.PathLike, pred_dir: str | os.PathLike,
                                  options: SegmentationMetricOptions = SegmentationMetricOptions(),
                                  num_processes: int = 1, progress: bool = True, file_ending: str = FILE_ENDING,
                                  tolerance: GeometryTolerance = GeometryTolerance()) -> SegmentationFolderResult:
    """Per-patient Task 1 statistics of every ground-truth case in ``gt_dir`` against ``pred_dir``.

    Parameters
    ----------
    gt_dir, pred_dir : path-like
        Folders of ``<PID><file_ending>`` label images (values 0 background, 1 GTVp, 2 GTVn).
    options : SegmentationMetricOptions
        Connectivity, IoU threshold, empty-case rules.
    num_processes : int
        Worker processes (one patient per task).
    progress : bool
        Show a tqdm progress bar.
    file_ending : str
        Image file ending (default ``.nii.gz``).
    tolerance : GeometryTolerance
        Round-off accepted between prediction and ground-truth grids.

    Returns
    -------
    SegmentationFolderResult
        Aggregate with :func:`nnunet_hecktor.metrics.segmentation.aggregate_task1`.
    """
    pairs, extra = pair_cases(gt_dir, pred_dir, file_ending)
    cases = [SegmentationCase(pid, gt, pred, options, tolerance) for pid, gt, pred in pairs]
    stats = parallel_map(evaluate_case, cases, num_processes, "evaluate Task 1", progress)
    return SegmentationFolderResult(stats, extra)
