"""HECKTOR Task 1 segmentation metrics (docs/explanations/hecktor-metrics.md).

Labels: 0 background, 1 GTVp (primary tumour), 2 GTVn (lymph nodes). Volumes are in mm³
(voxel count x voxel volume). The metrics:

- **GTVp Dice**: per-patient Dice of label 1, averaged over patients. Default: GT and
  prediction both empty -> 1.0; GT empty but prediction not -> 0.0 (both configurable, and
  counted).
- **GTVn aggregated Dice**: ``2 Σ|A_i ∩ B_i| / Σ(|A_i| + |B_i|)`` over all patients in mm³;
  1.0 when the total denominator is 0.
- **GTVn aggregated F1**: lesions are the connected components of label 2 (default
  26-connectivity), found separately in prediction and GT; a pair matches when IoU > 0.3
  (strictly), one-to-one, greedily in descending IoU; TP/FP/FN are summed over patients and
  ``F1 = 2TP / (2TP + FP + FN)``, 1.0 when the denominator is 0.

The per-patient step (:func:`patient_segmentation_stats`) returns only sufficient statistics
(voxel counts, voxel volume, lesion counts) so that aggregation and bootstrap resampling
never touch an image again.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Iterable, Sequence

import numpy as np

from nnunet_hecktor.metrics.components import check_connectivity, component_sizes, label_components, union_bounding_box
from nnunet_hecktor.schema import GTVN, GTVP

#: HECKTOR lesion-matching threshold: IoU must be strictly greater.
DEFAULT_IOU_THRESHOLD = 0.3
DEFAULT_CONNECTIVITY = 26


@dataclass(frozen=True)
class SegmentationMetricOptions:
    """The open choices of the Task 1 metrics (defaults: the organisers' choices, docs/explanations/hecktor-metrics.md).

    Attributes
    ----------
    connectivity : {6, 18, 26}
        Neighbourhood for GTVn lesions (default 26).
    iou_threshold : float
        Lesions match when IoU is strictly greater (default 0.3). Compared exactly as a decimal
        fraction, so IoU = 3/10 does not match.
    gtvp_both_empty : float or None
        GTVp Dice of a patient with label 1 absent from both GT and prediction (default 1.0);
        ``None`` leaves such patients out of the GTVp mean.
    gtvp_gt_empty_pred_nonempty : float or None
        GTVp Dice of a patient without GTVp in the GT but with some in the prediction
        (default 0.0); ``None`` leaves such patients out of the GTVp mean.
    """

    connectivity: int = DEFAULT_CONNECTIVITY
    iou_threshold: float = DEFAULT_IOU_THRESHOLD
    gtvp_both_empty: float | None = 1.0
    gtvp_gt_empty_pred_nonempty: float | None = 0.0

    def __post_init__(self):
        check_connectivity(self.connectivity)
        if not 0.0 <= float(self.iou_threshold) < 1.0:
            raise ValueError(f"iou_threshold must be in [0, 1), got {self.iou_threshold!r}")


@dataclass(frozen=True)
class LesionMatching:
    """Result of matching GTVn lesions of one patient.

    ``tp`` matched pairs, ``fp = n_pred - tp``, ``fn = n_gt - tp``; ``matched_iou`` holds the IoU
    of each match in the order they were made (descending).
    """

    n_gt: int
    n_pred: int
    tp: int
    matched_iou: tuple[float, ...] = ()

    @property
    def fp(self) -> int:
        return self.n_pred - self.tp

    @property
    def fn(self) -> int:
        return self.n_gt - self.tp


def _exact_fraction(threshold: float) -> Fraction:
    # Fraction(0.3) is the binary double just below 3/10, which would let IoU = 3/10 match.
    # The decimal text of the threshold is what the user means.
    return Fraction(repr(float(threshold)))


def match_lesions(gt_mask: np.ndarray, pred_mask: np.ndarray, connectivity: int = DEFAULT_CONNECTIVITY,
                  iou_threshold: float = DEFAULT_IOU_THRESHOLD) -> LesionMatching:
    """Match the connected components of two 3D masks (HECKTOR GTVn F1 rule).

    Parameters
    ----------
    gt_mask, pred_mask : ndarray of bool, 3D, same shape
        Ground-truth and predicted lesion masks (e.g. ``label == 2``).
    connectivity : {6, 18, 26}
        Component neighbourhood.
    iou_threshold : float
        A pair matches when its IoU is strictly greater than this (compared exactly).

    Returns
    -------
    LesionMatching

    Notes
    -----
    Pair overlaps come from one ``np.unique`` over the (gt label, prediction label) codes of the
    overlapping voxels, not from a loop over pairs; IoU is unit-free, so it is computed in
    voxels. Matching is one-to-one and greedy in descending IoU; equal IoUs are taken in
    order of GT label, then prediction label (raster order of the components).
    """
    if gt_mask.shape != pred_mask.shape:
        raise ValueError(f"masks differ in shape: {gt_mask.shape} vs {pred_mask.shape}")
    box = union_bounding_box(gt_mask, pred_mask)
    if box is None:
        return LesionMatching(0, 0, 0)
    gt_labels, n_gt = label_components(gt_mask[box], connectivity)
    pred_labels, n_pred = label_components(pred_mask[box], connectivity)
    if n_gt == 0 or n_pred == 0:
        return LesionMatching(n_gt, n_pred, 0)

    overlap = (gt_labels > 0) & (pred_labels > 0)
    codes = gt_labels[overlap].astype(np.int64) * (n_pred + 1) + pred_labels[overlap]
    pair_codes, intersections = np.unique(codes, return_counts=True)
    if pair_codes.size == 0:
        return LesionMatching(n_gt, n_pred, 0)
    gt_ids, pred_ids = np.divmod(pair_codes, n_pred + 1)
    gt_sizes = component_sizes(gt_labels, n_gt)
    pred_sizes = component_sizes(pred_labels, n_pred)
    unions = gt_sizes[gt_ids] + pred_sizes[pred_ids] - intersections
    iou = intersections / unions

    threshold = _exact_fraction(iou_threshold)
    order = np.lexsort((pred_ids, gt_ids, -iou))
    used_gt: set[int] = set()
    used_pred: set[int] = set()
    matched: list[float] = []
    for k in order:
        inter, union = int(intersections[k]), int(unions[k])
        if inter * threshold.denominator <= threshold.numerator * union:
            break  # sorted by IoU: nothing further can pass (exact integer comparison)
        g, p = int(gt_ids[k]), int(pred_ids[k])
        if g in used_gt or p in used_pred:
            continue
        used_gt.add(g)
        used_pred.add(p)
        matched.append(float(iou[k]))
    return LesionMatching(n_gt, n_pred, len(matched), tuple(matched))


def dice(intersection: float, size_a: float, size_b: float, empty: float = 1.0) -> float:
    """``2 |A ∩ B| / (|A| + |B|)``, or ``empty`` when both sets are empty."""
    denominator = size_a + size_b
    return float(2.0 * intersection / denominator) if denominator > 0 else float(empty)


@dataclass(frozen=True)
class PatientSegmentationStats:
    """Sufficient statistics of one patient for the Task 1 metrics.

    Voxel counts are exact integers; ``voxel_volume_mm3`` turns them into mm³. GTVn lesion
    counts come from :func:`match_lesions`.
    """

    patient: str
    voxel_volume_mm3: float
    gtvp_gt_voxels: int
    gtvp_pred_voxels: int
    gtvp_intersection_voxels: int
    gtvn_gt_voxels: int
    gtvn_pred_voxels: int
    gtvn_intersection_voxels: int
    gtvn_gt_lesions: int
    gtvn_pred_lesions: int
    gtvn_tp: int

    @property
    def gtvn_fp(self) -> int:
        return self.gtvn_pred_lesions - self.gtvn_tp

    @property
    def gtvn_fn(self) -> int:
        return self.gtvn_gt_lesions - self.gtvn_tp

    def mm3(self, voxels: int) -> float:
        """Volume in mm³ of ``voxels`` voxels of this patient."""
        return float(voxels) * self.voxel_volume_mm3

    def gtvp_case(self) -> str:
        """``"both_empty"``, ``"gt_empty"`` (prediction not), ``"pred_empty"`` (GT not) or ``"both_present"``."""
        gt, pred = self.gtvp_gt_voxels > 0, self.gtvp_pred_voxels > 0
        if not gt and not pred:
            return "both_empty"
        if not gt:
            return "gt_empty"
        if not pred:
            return "pred_empty"
        return "both_present"

    def gtvp_dice(self, options: SegmentationMetricOptions = SegmentationMetricOptions()) -> float:
        """Per-patient GTVp Dice under ``options``; NaN when the patient is left out of the mean."""
        case = self.gtvp_case()
        if case == "both_empty":
            return math.nan if options.gtvp_both_empty is None else float(options.gtvp_both_empty)
        if case == "gt_empty":
            return math.nan if options.gtvp_gt_empty_pred_nonempty is None else float(options.gtvp_gt_empty_pred_nonempty)
        return dice(self.gtvp_intersection_voxels, self.gtvp_gt_voxels, self.gtvp_pred_voxels)

    def gtvn_dice(self) -> float:
        """Per-patient GTVn Dice (for plots and tables only; NaN when label 2 is absent from both)."""
        return dice(self.gtvn_intersection_voxels, self.gtvn_gt_voxels, self.gtvn_pred_voxels, empty=math.nan)

    def as_row(self, options: SegmentationMetricOptions = SegmentationMetricOptions()) -> dict:
        """Flat dict for the per-patient CSV (volumes in mm³)."""
        return {
            "PatientID": self.patient,
            "gtvp_dice": self.gtvp_dice(options),
            "gtvp_case": self.gtvp_case(),
            "gtvp_gt_mm3": self.mm3(self.gtvp_gt_voxels),
            "gtvp_pred_mm3": self.mm3(self.gtvp_pred_voxels),
            "gtvp_intersection_mm3": self.mm3(self.gtvp_intersection_voxels),
            "gtvn_dice": self.gtvn_dice(),
            "gtvn_gt_mm3": self.mm3(self.gtvn_gt_voxels),
            "gtvn_pred_mm3": self.mm3(self.gtvn_pred_voxels),
            "gtvn_intersection_mm3": self.mm3(self.gtvn_intersection_voxels),
            "gtvn_gt_lesions": self.gtvn_gt_lesions,
            "gtvn_pred_lesions": self.gtvn_pred_lesions,
            "gtvn_tp": self.gtvn_tp,
            "gtvn_fp": self.gtvn_fp,
            "gtvn_fn": self.gtvn_fn,
            "voxel_volume_mm3": self.voxel_volume_mm3,
        }

    def to_dict(self) -> dict:
        return asdict(self)


def _label_counts(gt: np.ndarray, pred: np.ndarray, label: int) -> tuple[int, int, int]:
    gt_l = gt == label
    pred_l = pred == label
    return int(np.count_nonzero(gt_l)), int(np.count_nonzero(pred_l)), int(np.count_nonzero(gt_l & pred_l))


def patient_segmentation_stats(gt: np.ndarray, pred: np.ndarray, spacing: Sequence[float], patient: str = "",
                               options: SegmentationMetricOptions = SegmentationMetricOptions()) -> PatientSegmentationStats:
    """Sufficient statistics of one patient's prediction against its ground truth.

    Parameters
    ----------
    gt, pred : ndarray of int, 3D, same shape
        Label arrays with values in {0, 1, 2} (checked by the caller, e.g. the folder evaluation).
    spacing : sequence of 3 float
        Voxel spacing in mm (any axis order; only the product is used here).
    patient : str
        PatientID, stored in the result.
    options : SegmentationMetricOptions
        Connectivity and IoU threshold for the GTVn lesions.

    Returns
    -------
    PatientSegmentationStats
    """
    if gt.shape != pred.shape:
        raise ValueError(f"{patient}: ground truth and prediction differ in shape: {gt.shape} vs {pred.shape}")
    if gt.ndim != 3 or len(spacing) != 3:
        raise ValueError(f"{patient}: 3D volumes with 3 spacings expected, got shape {gt.shape}, spacing {tuple(spacing)}")
    voxel_volume = float(np.prod(np.asarray(spacing, dtype=float)))
    box = union_bounding_box(gt, pred)
    if box is None:
        return PatientSegmentationStats(patient, voxel_volume, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    gt_c, pred_c = gt[box], pred[box]
    p_gt, p_pred, p_inter = _label_counts(gt_c, pred_c, GTVP)
    gt_n, pred_n = gt_c == GTVN, pred_c == GTVN
    n_gt, n_pred, n_inter = int(np.count_nonzero(gt_n)), int(np.count_nonzero(pred_n)), int(np.count_nonzero(gt_n & pred_n))
    lesions = match_lesions(gt_n, pred_n, options.connectivity, options.iou_threshold)
    return PatientSegmentationStats(patient, voxel_volume, p_gt, p_pred, p_inter, n_gt, n_pred, n_inter,
                                    lesions.n_gt, lesions.n_pred, lesions.tp)


@dataclass(frozen=True)
class Task1Arrays:
    """Per-patient columns the Task 1 aggregates are computed from (for aggregation and bootstrap).

    ``gtvp_dice`` is NaN for patients left out of the GTVp mean; GTVn volumes are in mm³.
    """

    patients: tuple[str, ...]
    gtvp_dice: np.ndarray
    gtvn_intersection_mm3: np.ndarray
    gtvn_volume_sum_mm3: np.ndarray
    gtvn_tp: np.ndarray
    gtvn_fp: np.ndarray
    gtvn_fn: np.ndarray

    @classmethod
    def from_stats(cls, stats: Iterable[PatientSegmentationStats],
                   options: SegmentationMetricOptions = SegmentationMetricOptions()) -> "Task1Arrays":
        stats = list(stats)
        return cls(
            patients=tuple(s.patient for s in stats),
            gtvp_dice=np.array([s.gtvp_dice(options) for s in stats], dtype=float),
            gtvn_intersection_mm3=np.array([s.mm3(s.gtvn_intersection_voxels) for s in stats], dtype=float),
            gtvn_volume_sum_mm3=np.array([s.mm3(s.gtvn_gt_voxels + s.gtvn_pred_voxels) for s in stats], dtype=float),
            gtvn_tp=np.array([s.gtvn_tp for s in stats], dtype=np.int64),
            gtvn_fp=np.array([s.gtvn_fp for s in stats], dtype=np.int64),
            gtvn_fn=np.array([s.gtvn_fn for s in stats], dtype=np.int64),
        )


def gtvn_aggregated_f1(tp: float, fp: float, fn: float) -> float:
    """``2TP / (2TP + FP + FN)``; 1.0 when the denominator is 0 (no lesion anywhere)."""
    denominator = 2 * tp + fp + fn
    return float(2 * tp / denominator) if denominator > 0 else 1.0


@dataclass(frozen=True)
class Task1Result:
    """HECKTOR Task 1 figures over a cohort (see the module docstring for the definitions).

    Counts: ``gtvp_both_empty`` (label 1 absent from GT and prediction), ``gtvp_gt_empty_pred_nonempty``
    (false-positive primary in a patient without one), ``gtvp_pred_empty`` (GT has GTVp, prediction
    none), ``gtvp_excluded`` (patients left out of the GTVp mean by the options),
    ``gtvn_gt_empty`` (patients without GTVn in the GT).
    """

    gtvp_dice_mean: float
    gtvn_dice_agg: float
    gtvn_f1_agg: float
    gtvn_tp: int
    gtvn_fp: int
    gtvn_fn: int
    gtvn_intersection_mm3: float
    gtvn_volume_sum_mm3: float
    n_patients: int
    gtvp_n_in_mean: int
    gtvp_both_empty: int
    gtvp_gt_empty_pred_nonempty: int
    gtvp_pred_empty: int
    gtvp_excluded: int
    gtvn_gt_empty: int
    gtvn_both_empty: int
    options: SegmentationMetricOptions = field(default_factory=SegmentationMetricOptions)

    def objective(self, name: str = "mean") -> float:
        """A combination of the three headline figures (see :data:`OBJECTIVES`)."""
        return task1_objective(self.gtvp_dice_mean, self.gtvn_dice_agg, self.gtvn_f1_agg, name)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["options"] = asdict(self.options)
        return out


#: Names of the Task 1 objectives (used by post-processing tuning).
OBJECTIVES: dict[str, str] = {
    "mean": "mean of GTVp Dice, GTVn aggregated Dice and GTVn aggregated F1",
    "gtvp_dice": "GTVp mean Dice",
    "gtvn_dice": "GTVn aggregated Dice",
    "gtvn_f1": "GTVn aggregated F1",
    "gtvn": "mean of GTVn aggregated Dice and GTVn aggregated F1",
}


def task1_objective(gtvp_dice_mean: float, gtvn_dice_agg: float, gtvn_f1_agg: float, name: str = "mean") -> float:
    """Combine the Task 1 figures into one number to maximise (names in :data:`OBJECTIVES`)."""
    values = {
        "mean": (gtvp_dice_mean, gtvn_dice_agg, gtvn_f1_agg),
        "gtvp_dice": (gtvp_dice_mean,),
        "gtvn_dice": (gtvn_dice_agg,),
        "gtvn_f1": (gtvn_f1_agg,),
        "gtvn": (gtvn_dice_agg, gtvn_f1_agg),
    }
    if name not in values:
        raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
    return float(np.mean(values[name]))


def aggregate_task1(stats: Sequence[PatientSegmentationStats],
                    options: SegmentationMetricOptions = SegmentationMetricOptions()) -> Task1Result:
    """Aggregate per-patient statistics into the HECKTOR Task 1 figures.

    Parameters
    ----------
    stats : sequence of PatientSegmentationStats
        One per patient (from :func:`patient_segmentation_stats`).
    options : SegmentationMetricOptions
        Empty-case rules for the GTVp Dice (connectivity/IoU were used when computing ``stats``).

    Returns
    -------
    Task1Result
        ``gtvp_dice_mean`` is NaN when no patient is left in the mean.
    """
    stats = list(stats)
    arrays = Task1Arrays.from_stats(stats, options)
    cases = [s.gtvp_case() for s in stats]
    valid = ~np.isnan(arrays.gtvp_dice)
    inter, denominator = float(arrays.gtvn_intersection_mm3.sum()), float(arrays.gtvn_volume_sum_mm3.sum())
    tp, fp, fn = int(arrays.gtvn_tp.sum()), int(arrays.gtvn_fp.sum()), int(arrays.gtvn_fn.sum())
    return Task1Result(
        gtvp_dice_mean=float(arrays.gtvp_dice[valid].mean()) if valid.any() else math.nan,
        gtvn_dice_agg=2.0 * inter / denominator if denominator > 0 else 1.0,
        gtvn_f1_agg=gtvn_aggregated_f1(tp, fp, fn),
        gtvn_tp=tp, gtvn_fp=fp, gtvn_fn=fn,
        gtvn_intersection_mm3=inter, gtvn_volume_sum_mm3=denominator,
        n_patients=len(stats),
        gtvp_n_in_mean=int(valid.sum()),
        gtvp_both_empty=cases.count("both_empty"),
        gtvp_gt_empty_pred_nonempty=cases.count("gt_empty"),
        gtvp_pred_empty=cases.count("pred_empty"),
        gtvp_excluded=int((~valid).sum()),
        gtvn_gt_empty=sum(1 for s in stats if s.gtvn_gt_voxels == 0),
        gtvn_both_empty=sum(1 for s in stats if s.gtvn_gt_voxels == 0 and s.gtvn_pred_voxels == 0),
        options=options,
    )
