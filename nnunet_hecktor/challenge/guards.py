"""Keeping one container case inside the platform's time and memory limits.

**Time** (:func:`plan_sliding_window`). HECKTOR 2026 gives a case 25 minutes in total on a T4. The cost
of nnU-Net's sliding window is known before it starts: windows (from the preprocessed image size,
the patch size and the step) x folds x mirrored copies (8 in 3-D) x the seconds of one forward pass,
measured here on the device with one patch. The plan keeps the most expensive setting that fits in
the time left (budget minus the time already used, less a reserve for export, stage and writing):

1. every fold, with mirroring;
2. every fold, no mirroring;
3. fewer folds (the first ones kept), no mirroring, down to one.

When even one fold without mirroring does not fit, it runs anyway (the fallback outputs are already
on disk, see :mod:`.run2026`) and the log says so.

**Memory** (:func:`long_ct_crop`). Whole-body CTs (1,330 mm long test CTs occur) make every array of the
prediction (two channels, logits, probabilities at full resolution) proportionally large: a
512x512x1000 CT needed ~15.6 GB resident. A CT longer than ``max_length_mm`` or with more than
``max_voxels`` voxels is cropped to the head and neck first, with the converter's rule
(:func:`nnunet_hecktor.dataset_conversion.compute_crop`, mode ``"headneck"``: a box hung from the brain's
centroid found on the PET, or from the top of the CT when no brain is found), with a box
(:data:`LONG_CT_BOX_MM`) larger than the converter's default so that the network keeps context around
every target; the segmentation is pasted back into the full CT grid
(:func:`~nnunet_hecktor.dataset_conversion.uncrop_to_original`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: Default total time of one case (s): the 25-minute limit less 3 minutes for the container's start,
#: model loading before the clock is read, and safety.
DEFAULT_TIME_BUDGET_S: float = 22 * 60.0
#: Share of the time left that is kept back for what follows the sliding window (export to the CT
#: grid, post-processing, heads, stage, writing).
RESERVE_FRACTION: float = 0.25
#: Safety factor on the measured cost of one window (data transfer, Gaussian weighting, accumulation).
OVERHEAD_FACTOR: float = 1.3

#: A CT longer than this (mm, along its third axis) is cropped to the head and neck.
LONG_CT_MM: float = 500.0
#: A CT with more voxels than this is cropped to the head and neck (~ 512 x 512 x 380).
MAX_CT_VOXELS: int = 100_000_000
#: Head-and-neck box for long CTs (x, y, z in mm): wider and longer than the converter's default
#: (200 x 200 x 310 mm, which a model trained on cropped data already applies on top).
LONG_CT_BOX_MM: tuple[float, float, float] = (300.0, 300.0, 400.0)


@dataclass
class InferencePlan:
    """What the time guard chose.

    Attributes
    ----------
    folds : tuple
        Folds kept (a prefix of the model's folds).
    mirroring : bool
    windows : int
        Sliding-window positions of the case.
    seconds_per_forward : float
        Measured seconds of one forward pass of one patch.
    estimated_s : float
        Estimated sliding-window time of the plan.
    available_s : float
        Time the plan had to fit into.
    reduced : bool
        True when folds or mirroring were dropped.
    note : str
    """

    folds: tuple
    mirroring: bool
    windows: int
    seconds_per_forward: float
    estimated_s: float
    available_s: float
    reduced: bool = False
    note: str = ""
    options: list[tuple[int, bool, float]] = field(default_factory=list)


class TimeBudget:
    """Seconds allowed for one case, counted from ``start`` (``time.monotonic()``)."""

    def __init__(self, total_s: float = DEFAULT_TIME_BUDGET_S, start: float | None = None):
        self.total_s = float(total_s)
        self.start = time.monotonic() if start is None else float(start)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.total_s - self.elapsed()


def count_windows(shape: tuple[int, ...], patch_size: tuple[int, ...], step: float) -> int:
    """Sliding-window positions of nnU-Net for a preprocessed image of ``shape`` (spatial)."""
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    shape = tuple(int(s) for s in shape)
    patch = tuple(int(p) for p in patch_size)
    if len(patch) < len(shape):  # 2-D network on a 3-D image: one slice at a time
        padded = [max(s, p) for s, p in zip(shape[1:], patch)]
        steps = compute_steps_for_sliding_window(padded, patch, step)
        return shape[0] * int(np.prod([len(s) for s in steps]))
    padded = [max(s, p) for s, p in zip(shape, patch)]
    steps = compute_steps_for_sliding_window(padded, patch, step)
    return int(np.prod([len(s) for s in steps]))


def seconds_per_forward(predictor, channels: int, repeats: int = 2) -> float:
    """Seconds of one forward pass of one patch on the predictor's device (best of ``repeats`` after a warm-up)."""
    import torch

    network = predictor.network
    patch = tuple(int(p) for p in predictor.configuration_manager.patch_size)
    x = torch.zeros((1, channels, *patch), dtype=torch.float32, device=predictor.device)
    network.to(predictor.device)
    network.eval()
    autocast = torch.autocast(predictor.device.type, enabled=True) if predictor.device.type == "cuda" \
        else contextlib.nullcontext()
    best = math.inf
    with torch.inference_mode(), autocast:
        for index in range(repeats + 1):
            if predictor.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            network(x)
            if predictor.device.type == "cuda":
                torch.cuda.synchronize()
            if index:  # the first pass pays for allocation and cuDNN's algorithm search
                best = min(best, time.perf_counter() - start)
    return best


def plan_sliding_window(model, data_shape: tuple[int, ...], budget: TimeBudget, use_mirroring: bool,
                        measured_forward_s: float | None = None) -> InferencePlan:
    """Choose folds and mirroring so that the sliding window fits the time left (module docstring).

    Parameters
    ----------
    model : HecktorPredictor
    data_shape : tuple of int
        Preprocessed data shape ``(C, *spatial)``.
    budget : TimeBudget
    use_mirroring : bool
        Mirroring as asked (never switched on by the plan).
    measured_forward_s : float, optional
        Seconds of one forward pass (default: measured now).
    """
    predictor = model.predictor
    folds = tuple(model.info.folds)
    windows = count_windows(tuple(data_shape[1:]), tuple(predictor.configuration_manager.patch_size),
                            predictor.tile_step_size)
    per_forward = measured_forward_s if measured_forward_s is not None else \
        seconds_per_forward(predictor, int(data_shape[0]))
    mirror_axes = predictor.allowed_mirroring_axes or ()
    copies = 2 ** len(mirror_axes)
    available = budget.left() * (1.0 - RESERVE_FRACTION)
    options: list[tuple[int, bool, float]] = []
    candidates = ([(len(folds), True)] if use_mirroring and copies > 1 else []) + \
        [(k, False) for k in range(len(folds), 0, -1)]
    for n_folds, mirror in candidates:
        estimate = windows * n_folds * (copies if mirror else 1) * per_forward * OVERHEAD_FACTOR
        options.append((n_folds, mirror, estimate))
    chosen = next((o for o in options if o[2] <= available), options[-1])
    n_folds, mirror, estimate = chosen
    wanted_mirror = use_mirroring and copies > 1
    reduced = n_folds < len(folds) or mirror != wanted_mirror
    note = (f"{windows} windows x {n_folds} fold(s) x {copies if mirror else 1} cop{'ies' if mirror else 'y'} "
            f"x {per_forward:.3g} s: ~{estimate:.0f} s of {available:.0f} s available")
    if chosen[2] > available:
        note += "; does not fit even with one fold and no mirroring: running it anyway (fallbacks are on disk)"
    elif reduced:
        note += f"; reduced from {len(folds)} fold(s){' with mirroring' if wanted_mirror else ''} to fit the time"
    return InferencePlan(folds[:n_folds], mirror, windows, per_forward, estimate, available, reduced, note, options)


def apply_plan(model, plan: InferencePlan) -> None:
    """Restrict the predictor to the plan's folds and mirroring (the folds kept are the first ones)."""
    predictor = model.predictor
    predictor.list_of_parameters = predictor.list_of_parameters[: len(plan.folds)]
    predictor.use_mirroring = plan.mirroring
    model.info.folds = tuple(plan.folds)
    model.info.hpv_thresholds = list(model.info.hpv_thresholds)[: len(plan.folds)]
    if not plan.mirroring:
        model.info.mirror_axes = None  # the heads mirror as the segmentation does


def ct_length_mm(ct: Any) -> float:
    """Physical length of the CT along its third axis (mm)."""
    return float(ct.GetSize()[2] * ct.GetSpacing()[2]) if ct.GetDimension() >= 3 else 0.0


def long_ct_crop(case_id: str, ct, pet, max_length_mm: float | None = LONG_CT_MM,
                 max_voxels: int | None = MAX_CT_VOXELS,
                 box_mm: tuple[float, float, float] = LONG_CT_BOX_MM):
    """The head-and-neck crop record of a CT too long or too large to predict whole, else None.

    ``max_length_mm`` / ``max_voxels`` None disable that trigger. The record maps the cropped grid
    back into the CT (:func:`~nnunet_hecktor.dataset_conversion.uncrop_to_original`).
    """
    from nnunet_hecktor.dataset_conversion import compute_crop

    length = ct_length_mm(ct)
    voxels = int(np.prod(ct.GetSize()))
    too_long = max_length_mm is not None and length > max_length_mm
    too_big = max_voxels is not None and voxels > max_voxels
    if not (too_long or too_big):
        return None
    record = compute_crop(case_id, ct, pet, "headneck", box_mm)
    if record.is_full:
        return None
    why = [f"{length:.0f} mm long" if too_long else "", f"{voxels / 1e6:.0f} M voxels" if too_big else ""]
    record.details["why"] = f"CT {' and '.join(w for w in why if w)}: cropped to the head and neck"
    return record
