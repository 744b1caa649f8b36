"""Task 1 evaluation of a prediction folder against a label folder.

Labels and predictions are ``<PID>`` with any of :data:`PREDICTION_ENDINGS` (``.nii.gz``,
``.nii``, ``.mha``, ``.nrrd``; labels only with ``file_ending`` when a non-default one is given);
predictions may also be an explicit PatientID -> file mapping (the challenge container's output
layout, :mod:`.challenge_outputs`). Every ground-truth case needs a
prediction on the same voxel grid, with label values in {0, 1, 2}; anything else is an
:class:`~nnunet_hecktor.errors.InputDataError` naming the patient and file. Predictions without a
ground truth are ignored and counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from nnunet_hecktor.dataset_conversion.geometry import GeometryTolerance, check_same_geometry
from nnunet_hecktor.errors import HecktorError, InputDataError
from nnunet_hecktor.label_files import list_cases, read_label_image
from nnunet_hecktor.metrics.segmentation import (
    PatientSegmentationStats,
    SegmentationMetricOptions,
    patient_segmentation_stats,
)
from nnunet_hecktor.parallel import parallel_map
from nnunet_hecktor.schema import FILE_ENDING, SEGMENTATION_OUTPUT

#: File endings accepted for predicted label images (longest first: ``.nii.gz`` before ``.nii``).
PREDICTION_ENDINGS: tuple[str, ...] = (".nii.gz", ".nii", ".mha", ".nrrd")


def list_prediction_files(folder: str | os.PathLike, endings: tuple[str, ...] = PREDICTION_ENDINGS,
                          what: str = "prediction") -> dict[str, Path]:
    """Map PatientID -> file for every ``<PID><ending>`` in ``folder``, for any of ``endings``.

    Raises
    ------
    HecktorError
        The folder does not exist.
    InputDataError
        One PatientID with several files (e.g. ``X.nii.gz`` and ``X.mha``): which one is meant is ambiguous.
    """
    found: dict[str, list[Path]] = {}
    for ending in endings:
        for pid, path in list_cases(folder, ending, what).items():
            found.setdefault(pid, []).append(path)
    clashes = {pid: paths for pid, paths in found.items() if len(paths) > 1}
    if clashes:
        shown = "; ".join(f"{pid}: {', '.join(p.name for p in paths)}" for pid, paths in list(clashes.items())[:10])
        raise InputDataError(f"several {what} files for one patient ({shown}); keep one per patient", None, folder)
    return {pid: paths[0] for pid, paths in sorted(found.items())}


def _missing_hint(pred_dir: Path, found: Mapping[str, Path], gt: Mapping[str, Path]) -> str:
    """Why predictions may not have been found: what the folder holds instead."""
    try:
        entries = sorted(p for p in pred_dir.iterdir() if not p.name.startswith("."))
    except OSError:
        return ""
    if any((p / SEGMENTATION_OUTPUT).is_file() for p in entries if p.is_dir()):
        return (f"; {pred_dir} holds challenge container outputs (<case>/{SEGMENTATION_OUTPUT.as_posix()}): "
                "give it as --challenge-outputs (with --case-map when folders are not named by PatientID)")
    unmatched = [path.name for pid, path in found.items() if pid not in gt]
    if unmatched:
        return (f"; {pred_dir} holds {len(unmatched)} prediction file(s) whose names match no ground-truth "
                f"PatientID, e.g. {', '.join(unmatched[:3])} (expected <PatientID> + one of "
                f"{', '.join(PREDICTION_ENDINGS)})")
    others = [p.name for p in entries if p.is_file() and p.name not in {f.name for f in found.values()}]
    if not others:
        return f"; {pred_dir} holds no other file"
    return (f"; predictions are read as <PatientID> + one of {', '.join(PREDICTION_ENDINGS)}, and {pred_dir} "
            f"holds {len(others)} other file(s), e.g. {', '.join(others[:3])}")


def pair_cases(gt_dir: str | os.PathLike, pred_dir: str | os.PathLike | Mapping[str, Path],
               file_ending: str = FILE_ENDING) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """Pair ground-truth and prediction files by PatientID.

    Parameters
    ----------
    gt_dir : path-like
        Labels ``<PID>`` + any of :data:`PREDICTION_ENDINGS` (only ``file_ending`` when it is not the default).
    pred_dir : path-like or mapping
        Folder of predictions (any of :data:`PREDICTION_ENDINGS`), or PatientID -> prediction file.
    file_ending : str
        Ending of the label files.

    Returns
    -------
    pairs : list of (patient, gt_path, pred_path)
        In PatientID order.
    extra : list of str
        PatientIDs predicted but without ground truth (ignored by the evaluation).

    Raises
    ------
    HecktorError
        No ground truth at all, or predictions missing for some patients (all listed, with a hint
        about what the prediction folder holds instead).
    """
    if file_ending == FILE_ENDING:
        gt = list_prediction_files(gt_dir, PREDICTION_ENDINGS, "ground-truth")
    else:
        gt = list_cases(gt_dir, file_ending, "ground-truth")
    if isinstance(pred_dir, Mapping):
        pred, hint, where = dict(pred_dir), "", None
    else:
        pred = list_prediction_files(pred_dir)
        hint, where = None, pred_dir
    if not gt:
        endings = ", ".join(PREDICTION_ENDINGS) if file_ending == FILE_ENDING else file_ending
        raise HecktorError(f"no ground-truth files (<PatientID> + {endings}) in {gt_dir}")
    missing = [pid for pid in gt if pid not in pred]
    if missing:
        shown = ", ".join(missing[:20]) + (f" ... ({len(missing)} in all)" if len(missing) > 20 else "")
        if hint is None:
            assert not isinstance(pred_dir, Mapping)  # no hint yet: predictions from a folder
            hint = _missing_hint(Path(pred_dir), pred, gt)
        raise InputDataError(f"prediction missing for {len(missing)} of {len(gt)} patients with ground truth: "
                             f"{shown}{hint}", None, where)
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


def evaluate_segmentation_folders(gt_dir: str | os.PathLike, pred_dir: str | os.PathLike | Mapping[str, Path],
                                  options: SegmentationMetricOptions = SegmentationMetricOptions(),
                                  num_processes: int = 1, progress: bool = True, file_ending: str = FILE_ENDING,
                                  tolerance: GeometryTolerance = GeometryTolerance()) -> SegmentationFolderResult:
    """Per-patient Task 1 statistics of every ground-truth case in ``gt_dir`` against ``pred_dir``.

    Parameters
    ----------
    gt_dir : path-like
        Folder of ``<PID><file_ending>`` label images (values 0 background, 1 GTVp, 2 GTVn).
    pred_dir : path-like or mapping
        Folder of predicted label images (``<PID>`` + any of :data:`PREDICTION_ENDINGS`), or
        PatientID -> file.
    options : SegmentationMetricOptions
        Connectivity, IoU threshold, empty-case rules.
    num_processes : int
        Worker processes (one patient per task).
    progress : bool
        Show a tqdm progress bar.
    file_ending : str
        Label file ending (default ``.nii.gz``).
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
