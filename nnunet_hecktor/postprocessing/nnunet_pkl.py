"""The post-processing as nnU-Net's ``postprocessing.pkl``, for stock ``nnUNetv2_apply_postprocessing``.

nnU-Net's pickle is a tuple ``(functions, kwargs)``; ``nnUNetv2_apply_postprocessing`` reads each
segmentation with the dataset's reader, calls ``seg = function(seg, **kwargs)`` in turn and
writes the result with the reader's geometry. The function must be importable (a top-level
function of an installed package) for the pickle to load in nnU-Net's worker processes.

**Limitation: spacing.** nnU-Net hands the function a bare array (in its reader's axis order,
``(z, y, x)`` for SimpleITK/NIfTI) without the voxel spacing. Rules measured in mm (closing
radius, minimum size in mm³, GTVn distance) therefore use *one* spacing stored in the pickle:
the dataset's median spacing from ``plans.json`` (``original_median_spacing_after_transp``,
put back into the reader's axis order with ``transpose_backward``). For a patient whose
spacing differs from the median, those thresholds are off by the ratio of the spacings (for
HECKTOR CTs typically a few per cent in-plane, more across slices). Rules in voxels and the
GTVp single-lesion, GTVn-touching-GTVp and keep-K rules are exact.

**Limitation: orientation.** Without the image's direction, the cranial-border rule takes the last
slice of the reader's ``(z, y, x)`` array for the cranial face (an axial scan in ITK's LPS
convention with slices numbered from the feet up, as HECKTOR's NIfTI files are).

``nnunet-hecktor postprocess`` reads each case's own spacing and direction and is exact for all
rules; prefer it. Probability thresholds cannot be applied
through the pickle (nnU-Net passes no probabilities) and are left out of it.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.fileio import atomic_path
from nnunet_hecktor.postprocessing.config import PostprocessingConfig
from nnunet_hecktor.postprocessing.rules import READER_ORDER_CRANIAL_FACE, postprocess_segmentation


def hecktor_postprocessing(segmentation: np.ndarray, config: dict[str, Any], spacing: Sequence[float]) -> np.ndarray:
    """nnU-Net post-processing function: apply the HECKTOR rules of ``config`` to one segmentation.

    Parameters
    ----------
    segmentation : ndarray, 3D
        Labels 0 background, 1 GTVp, 2 GTVn in the reader's axis order (nnU-Net passes float32).
    config : dict
        The JSON form of a :class:`PostprocessingConfig` (probability thresholds are ignored).
    spacing : sequence of 3 float
        One voxel spacing in mm, in the same axis order, used for every case (see the module
        docstring for why this is an approximation for rules in mm).

    Returns
    -------
    ndarray of uint8
    """
    parsed = PostprocessingConfig.from_dict(config).without_probability_threshold()
    seg = np.asarray(segmentation)
    if seg.dtype.kind == "f":
        seg = np.rint(seg)
    return postprocess_segmentation(seg.astype(np.uint8), spacing, parsed, cranial_face=READER_ORDER_CRANIAL_FACE)


def reader_axis_spacing(plans: dict) -> list[float]:
    """Median voxel spacing of the dataset in the reader's array axis order, from nnU-Net plans."""
    try:
        median = np.asarray(plans["original_median_spacing_after_transp"], dtype=float)
        backward = list(plans["transpose_backward"])
    except KeyError as exc:
        raise HecktorError(f"plans have no {exc.args[0]!r}: not an nnU-Net v2 plans.json") from None
    return [float(median[i]) for i in backward]


def write_postprocessing_pkl(config: PostprocessingConfig, destination: str | os.PathLike,
                             plans: dict | str | os.PathLike) -> dict:
    """Write ``config`` as nnU-Net's ``postprocessing.pkl``.

    Parameters
    ----------
    config : PostprocessingConfig
    destination : path-like
        The ``.pkl`` file.
    plans : dict or path-like
        The model's ``plans.json`` (gives the spacing for rules in mm, see the module docstring).

    Returns
    -------
    dict
        The kwargs stored (``config`` without probability thresholds, ``spacing``).
    """
    if isinstance(plans, dict):
        plans_dict = plans
    else:
        import json

        path = Path(plans)
        try:
            plans_dict = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise HecktorError(f"cannot read nnU-Net plans {path} ({exc})") from None
    kwargs = {"config": config.without_probability_threshold().to_dict(), "spacing": reader_axis_spacing(plans_dict)}
    with atomic_path(destination) as tmp:
        with open(tmp, "wb") as handle:
            pickle.dump(([hecktor_postprocessing], [kwargs]), handle)
    return kwargs
