"""Patient-level outputs (HPV probability, recurrence risk) of a multi-task network for a whole volume.

The heads were trained on patches centred on the primary tumour (GTVp) with their pooling
restricted to the GTVp (see :mod:`nnunet_hecktor.trainers.sampling`). On a whole volume the same
view is rebuilt from a segmentation:

1. **Patch centre** (:func:`head_patch_centre`), first that applies:

   - ``"GTVp"``: centroid of the largest connected component of label 1 (the primary tumour
     is one lesion; small false-positive blobs elsewhere must not move the patch);
   - ``"GTVn"``: centroid of the largest component of label 2 (nodes lie next to the primary);
   - ``"image centre"``: nothing segmented. The PET maximum is deliberately *not* used: in
     FDG-PET the brain usually has the highest uptake in a head-and-neck field of view.

2. **Patch**: the training patch size around that centre (zero padding outside the image, as
   nnU-Net's training crops), with the segmentation's GTVp inside the patch as pooling mask
   (global pooling when the patch has no GTVp).
3. **Test-time mirroring** (optional): HPV logits and risks are averaged over the mirrored
   patches, as nnU-Net averages segmentation logits.

All coordinates are voxel indices of the *preprocessed* image (nnU-Net's training space): pass
``image`` as the preprocessed ``(C, *spatial)`` array and ``segmentation`` on the same grid
(e.g. the argmax of the sliding-window logits before export).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from nnunet_hecktor import schema

CENTRE_SOURCES = ("GTVp", "GTVn", "image centre", "ground-truth GTVp")


@dataclass(frozen=True)
class HeadPrediction:
    """Patient-level outputs of the heads for one volume.

    Attributes
    ----------
    hpv_probability : float
        Probability of HPV positive (sigmoid of the logit).
    hpv_logit : float
    hpv_positive : bool
        ``hpv_probability >= threshold``.
    threshold : float
        HPV threshold stored in the network (chosen on the training fold).
    risk : float
        Recurrence risk score, higher = earlier relapse (arbitrary scale).
    centre : tuple of int
        Patch centre, voxel indices of the preprocessed image.
    centre_source : str
        One of :data:`CENTRE_SOURCES`.
    """

    hpv_probability: float
    hpv_logit: float
    hpv_positive: bool
    threshold: float
    risk: float
    centre: tuple[int, ...]
    centre_source: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _largest_component_centroid(mask: np.ndarray) -> tuple[int, ...] | None:
    from scipy import ndimage

    if not mask.any():
        return None
    labelled, n = ndimage.label(mask, structure=np.ones((3,) * mask.ndim, dtype=bool))
    if n > 1:
        sizes = np.bincount(labelled.ravel())
        sizes[0] = 0
        mask = labelled == int(np.argmax(sizes))
    coords = np.argwhere(mask)
    return tuple(int(round(c)) for c in coords.mean(axis=0))


def head_patch_centre(segmentation: np.ndarray | None, shape: Sequence[int] | None = None) -> tuple[tuple[int, ...], str]:
    """Centre of the head patch and where it came from (see the module docstring).

    Parameters
    ----------
    segmentation : numpy.ndarray of int, shape (*spatial) or (1, *spatial), or None
        Labels 0 background, 1 GTVp, 2 GTVn.
    shape : sequence of int, optional
        Spatial shape, needed when ``segmentation`` is None.

    Returns
    -------
    (centre, source)
    """
    if segmentation is not None:
        seg = np.asarray(segmentation)
        if seg.ndim == (len(shape) + 1 if shape is not None else 4):
            seg = seg[0]
        for label, source in ((schema.GTVP, "GTVp"), (schema.GTVN, "GTVn")):
            centre = _largest_component_centroid(seg == label)
            if centre is not None:
                return centre, source
        shape = seg.shape
    if shape is None:
        raise ValueError("shape is required when there is no segmentation")
    return tuple(int(s) // 2 for s in shape), "image centre"


def crop_patch(array: np.ndarray, centre: Sequence[int], patch_size: Sequence[int], pad_value: float = 0) -> np.ndarray:
    """Crop ``patch_size`` around ``centre`` from ``array`` (``(C, *spatial)``), padding outside."""
    from acvl_utils.cropping_and_padding.bounding_boxes import crop_and_pad_nd

    lower = [int(c) - int(p) // 2 for c, p in zip(centre, patch_size)]
    bbox = [[lo, lo + int(p)] for lo, p in zip(lower, patch_size)]
    return crop_and_pad_nd(np.asarray(array), bbox, pad_value)


def _unwrap(network: nn.Module) -> nn.Module:
    from torch._dynamo import OptimizedModule
    from torch.nn.parallel import DistributedDataParallel

    if isinstance(network, DistributedDataParallel):
        network = network.module
    if isinstance(network, OptimizedModule):
        network = network._orig_mod
    return network


@torch.no_grad()
def predict_heads(network: nn.Module, image, segmentation, clinical: Mapping[str, Any] | torch.Tensor | None,
                  patch_size: Sequence[int], mirror_axes: Sequence[int] | None = None,
                  centre: Sequence[int] | None = None, centre_source: str | None = None) -> HeadPrediction:
    """HPV probability and risk of one patient from a whole preprocessed volume.

    Parameters
    ----------
    network : HecktorMultiTaskNetwork (or a DDP / compiled wrapper)
        Trained multi-task network; its ``hecktor_heads.hpv_threshold`` buffer gives the
        HPV decision threshold.
    image : numpy.ndarray or torch.Tensor, shape (C, *spatial)
        Preprocessed image (nnU-Net's normalised channels: CT, PET).
    segmentation : numpy.ndarray of int, shape (*spatial) or (1, *spatial), or None
        Segmentation on the same grid (predicted at inference; labels 1 GTVp, 2 GTVn).
    clinical : dict, torch.Tensor or None
        One typed clinical record (:mod:`nnunet_hecktor.clinical`), an encoded ``[1, N]``
        vector, or None (every variable missing).
    patch_size : sequence of int
        The training patch size (``configuration_manager.patch_size``).
    mirror_axes : sequence of int, optional
        Spatial axes for test-time mirroring (nnU-Net's ``inference_allowed_mirroring_axes``);
        None = no mirroring.
    centre, centre_source : optional
        Override the patch centre (e.g. the ground-truth GTVp during training-fold evaluation).

    Returns
    -------
    HeadPrediction
    """
    net = _unwrap(network)
    device = next(net.parameters()).device
    image = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    spatial = image.shape[1:]
    seg = None
    if segmentation is not None:
        seg = np.asarray(segmentation)
        seg = seg[0] if seg.ndim == len(spatial) + 1 else seg
        if seg.shape != tuple(spatial):
            raise ValueError(f"segmentation shape {seg.shape} differs from the image's {tuple(spatial)}")
    if centre is None:
        centre, centre_source = head_patch_centre(seg, spatial)
    patch = torch.from_numpy(np.ascontiguousarray(crop_patch(image, centre, patch_size), dtype=np.float32))[None]
    pool_mask = None
    if seg is not None:
        gtvp = crop_patch((seg == schema.GTVP)[None].astype(np.float32), centre, patch_size)
        if gtvp.any():
            pool_mask = torch.from_numpy(np.ascontiguousarray(gtvp))[None].to(device)
    patch = patch.to(device)
    if isinstance(clinical, torch.Tensor):
        clinical_in = clinical.reshape(1, -1).to(device)
    else:
        clinical_in = [dict(clinical or {})]

    flips = [()]
    if mirror_axes:
        axes = [int(a) + 2 for a in mirror_axes]
        flips = [c for r in range(len(axes) + 1) for c in itertools.combinations(axes, r)]
    was_training = net.training
    net.eval()
    try:
        logits, risks = [], []
        for dims in flips:
            x = torch.flip(patch, dims) if dims else patch
            m = (torch.flip(pool_mask, dims) if dims else pool_mask) if pool_mask is not None else None
            _, hpv_logit, risk = net.forward_with_heads(x, clinical_in, pool_mask=m)
            logits.append(float(hpv_logit.float().reshape(-1)[0]))
            risks.append(float(risk.float().reshape(-1)[0]))
    finally:
        net.train(was_training)
    logit = float(np.mean(logits))
    probability = float(1.0 / (1.0 + np.exp(-logit)))
    threshold = float(net.hecktor_heads.hpv_threshold)
    return HeadPrediction(probability, logit, probability >= threshold, threshold, float(np.mean(risks)),
                          tuple(int(c) for c in centre), str(centre_source))
