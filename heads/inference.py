"""Patient-level outputs (HPV probability, recurrence risk) of a multi-task network for a whole volume.

Inference code shared by the trainer's end-of-training evaluation and by
:mod:`nnunet_hecktor.prediction` (which must not import the training package).

The heads were trained on patches centred on the primary tumour (GTVp) with their pooling
restricted to the GTVp (see :mod:`nnunet_hecktor.trainers.sampling`). On a whole volume the same
view is rebuilt from a segmentation.

3-D networks (``3d_fullres``, ``3d_lowres``, ``3d_cascade_fullres``)
---------------------------------------------------------------------
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

2-D networks (``2d``): slice outputs averaged with GTVp-area weights
---------------------------------------------------------------------
A 2-D network sees one axial slice, so a patient-level output is formed from the slices that
show the tumour, the same way in training and at inference:

- **Training** (:class:`~nnunet_hecktor.trainers.sampling.HecktorDataLoader`): a GTVp-centred
  sample is the slice of a GTVp voxel drawn at random, i.e. a GTVp-bearing slice drawn with
  probability proportional to its GTVp area, centred in-plane on that slice's GTVp; the head
  loss uses the patient's labels for it.
- **Inference** (:func:`predict_heads`): every slice of the region chosen as in step 1 above
  (largest GTVp component, else largest GTVn component, else the middle slice) gets a patch
  centred in-plane on the region's voxels in that slice, pooled over the GTVp in that patch;
  the patient's HPV logit and risk are the **means of the slice logits and risks weighted by the
  region's area in each slice**: the expectation of the training-time slice distribution, so
  the heads see at inference the same kind of slice they learnt from, weighted as often as
  they saw it. Averaging logits (not probabilities) matches the mirroring and the fold ensemble.

All coordinates are voxel indices of the *preprocessed* image (nnU-Net's training space): pass
``image`` as the preprocessed ``(C, *spatial)`` array (for the cascade including the one-hot
channels of the previous stage, exactly as the network's input) and ``segmentation`` on the
same grid (e.g. the argmax of the sliding-window logits before export).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence, cast

import numpy as np
import torch
from torch import nn

from nnunet_hecktor import schema

if TYPE_CHECKING:
    from .multitask_network import HecktorMultiTaskNetwork

CENTRE_SOURCES = ("GTVp", "GTVn", "image centre")

#: Slices per forward pass of a 2-D network (bounds memory on large tumours).
SLICE_BATCH = 32


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
        Patch centre (3-D networks) or centroid of the region whose slices were used (2-D
        networks), voxel indices of the preprocessed image.
    centre_source : str
        One of :data:`CENTRE_SOURCES`.
    n_slices : int
        Slices averaged (2-D networks); 1 for 3-D networks.
    """

    hpv_probability: float
    hpv_logit: float
    hpv_positive: bool
    threshold: float
    risk: float
    centre: tuple[int, ...]
    centre_source: str
    n_slices: int = 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _largest_component(mask: np.ndarray) -> np.ndarray | None:
    from nnunet_hecktor.metrics.components import label_components

    if not mask.any():
        return None
    labelled, n = label_components(mask, 26)
    if n > 1:
        sizes = np.bincount(labelled.ravel())
        sizes[0] = 0
        mask = labelled == int(np.argmax(sizes))
    return mask


def _centroid(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(round(c)) for c in np.argwhere(mask).mean(axis=0))


def head_region(segmentation: np.ndarray) -> tuple[np.ndarray | None, str]:
    """The region the heads look at: largest GTVp component, else largest GTVn component.

    Parameters
    ----------
    segmentation : numpy.ndarray of int, shape (*spatial)
        Labels 0 background, 1 GTVp, 2 GTVn.

    Returns
    -------
    (mask, source)
        Boolean mask of the component (None when nothing is segmented) and ``"GTVp"``,
        ``"GTVn"`` or ``"image centre"``.
    """
    seg = np.asarray(segmentation)
    for label, source in ((schema.GTVP, "GTVp"), (schema.GTVN, "GTVn")):
        region = _largest_component(seg == label)
        if region is not None:
            return region, source
    return None, "image centre"


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
        region, source = head_region(seg)
        if region is not None:
            return _centroid(region), source
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


def head_slices(segmentation: np.ndarray | None, shape: Sequence[int]
                ) -> tuple[list[tuple[int, tuple[int, int]]], np.ndarray, tuple[int, ...], str]:
    """Slices a 2-D network's heads are run on, with their weights (see the module docstring).

    Parameters
    ----------
    segmentation : numpy.ndarray of int, shape (z, y, x), or None
    shape : sequence of int
        Spatial shape ``(z, y, x)`` of the image.

    Returns
    -------
    (slices, weights, centre, source)
        ``slices``: ``(z, (y, x))`` slice index and in-plane patch centre per slice;
        ``weights``: the region's voxel count per slice (normalised to sum 1);
        ``centre``: the region's 3-D centroid; ``source`` as :func:`head_region`.
    """
    region, source = head_region(segmentation) if segmentation is not None else (None, "image centre")
    if region is None:
        centre = tuple(int(s) // 2 for s in shape)
        return [(centre[0], (centre[1], centre[2]))], np.ones(1), centre, source
    zs = np.flatnonzero(region.reshape(region.shape[0], -1).any(axis=1))
    slices, areas = [], []
    for z in zs:
        in_plane = region[z]
        y, x = _centroid(in_plane)
        slices.append((int(z), (y, x)))
        areas.append(float(in_plane.sum()))
    weights = np.asarray(areas) / float(np.sum(areas))
    return slices, weights, _centroid(region), source


def _unwrap(network: nn.Module) -> HecktorMultiTaskNetwork:
    """The multi-task network inside DDP / torch.compile wrappers."""
    from torch._dynamo import OptimizedModule
    from torch.nn.parallel import DistributedDataParallel

    if isinstance(network, DistributedDataParallel):
        network = network.module
    if isinstance(network, OptimizedModule):
        network = network._orig_mod
    return cast("HecktorMultiTaskNetwork", network)


def _flips(mirror_axes: Sequence[int] | None) -> list[tuple[int, ...]]:
    if not mirror_axes:
        return [()]
    axes = [int(a) + 2 for a in mirror_axes]
    return [c for r in range(len(axes) + 1) for c in itertools.combinations(axes, r)]


def _run_heads(net: HecktorMultiTaskNetwork, patches: torch.Tensor, pool_mask: torch.Tensor | None, clinical,
               mirror_axes: Sequence[int] | None) -> tuple[np.ndarray, np.ndarray]:
    """Mirroring-averaged HPV logits and risks ``([B], [B])`` of a batch of patches."""
    logits, risks = [], []
    for dims in _flips(mirror_axes):
        x = torch.flip(patches, dims) if dims else patches
        m = (torch.flip(pool_mask, dims) if dims else pool_mask) if pool_mask is not None else None
        _, hpv_logit, risk = net.forward_with_heads(x, clinical, pool_mask=m)
        logits.append(hpv_logit.float().reshape(-1).cpu().numpy())
        risks.append(risk.float().reshape(-1).cpu().numpy())
    return np.mean(logits, axis=0), np.mean(risks, axis=0)


def _clinical_batch(clinical, n: int, device: torch.device):
    if isinstance(clinical, torch.Tensor):
        return clinical.reshape(1, -1).to(device).expand(n, -1)
    return [dict(clinical or {})] * n


@torch.no_grad()
def predict_heads(network: nn.Module, image, segmentation, clinical: Mapping[str, Any] | torch.Tensor | None,
                  patch_size: Sequence[int], mirror_axes: Sequence[int] | None = None) -> HeadPrediction:
    """HPV probability and risk of one patient from a whole preprocessed volume.

    Parameters
    ----------
    network : HecktorMultiTaskNetwork (or a DDP / compiled wrapper)
        Trained multi-task network, 3-D or 2-D; its ``hecktor_heads.hpv_threshold`` buffer
        gives the HPV decision threshold.
    image : numpy.ndarray or torch.Tensor, shape (C, z, y, x)
        Preprocessed image: nnU-Net's normalised channels (CT, PET), plus the one-hot
        previous-stage channels for a cascade network.
    segmentation : numpy.ndarray of int, shape (z, y, x) or (1, z, y, x), or None
        Segmentation on the same grid (predicted at inference; labels 1 GTVp, 2 GTVn).
    clinical : dict, torch.Tensor or None
        One typed clinical record (:mod:`nnunet_hecktor.clinical`), an encoded ``[1, N]``
        vector, or None (every variable missing).
    patch_size : sequence of int
        The training patch size (``configuration_manager.patch_size``): 3 values for a 3-D
        network, 2 for a 2-D network (slice-wise, see the module docstring).
    mirror_axes : sequence of int, optional
        Axes of the patch for test-time mirroring (nnU-Net's ``inference_allowed_mirroring_axes``);
        None = no mirroring.

    Returns
    -------
    HeadPrediction
    """
    image = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    spatial = image.shape[1:]
    if len(spatial) != 3 or len(patch_size) not in (2, 3):
        raise ValueError(f"expected a (C, z, y, x) image and a 2-D or 3-D patch size, got image shape "
                         f"{image.shape} and patch size {tuple(patch_size)}")
    net = _unwrap(network)
    device = next(net.parameters()).device
    seg = None
    if segmentation is not None:
        seg = np.asarray(segmentation)
        seg = seg[0] if seg.ndim == len(spatial) + 1 else seg
        if seg.shape != tuple(spatial):
            raise ValueError(f"segmentation shape {seg.shape} differs from the image's {tuple(spatial)}")

    if len(patch_size) == 3:
        centre, source = head_patch_centre(seg, spatial)
        items = [(image, seg, centre)]
        weights = np.ones(1)
    else:
        slices, weights, centre, source = head_slices(seg, spatial)
        items = [(image[:, z], None if seg is None else seg[z], in_plane) for z, in_plane in slices]

    was_training = net.training
    net.eval()
    logits, risks = [], []
    try:
        for start in range(0, len(items), SLICE_BATCH):
            chunk = items[start:start + SLICE_BATCH]
            patches = np.stack([crop_patch(img, c, patch_size) for img, _, c in chunk]).astype(np.float32)
            pool_mask = None
            if seg is not None:
                # Per-sample fall-back to global pooling where a patch holds no GTVp (pool_bottleneck).
                # Every item has its segmentation (or slice of it) when seg is not None.
                masks = np.stack([crop_patch((cast(np.ndarray, s) == schema.GTVP)[None].astype(np.float32), c,
                                             patch_size) for _, s, c in chunk])
                if masks.any():
                    pool_mask = torch.from_numpy(np.ascontiguousarray(masks)).to(device)
            x = torch.from_numpy(np.ascontiguousarray(patches)).to(device)
            lg, rk = _run_heads(net, x, pool_mask, _clinical_batch(clinical, len(chunk), device), mirror_axes)
            logits.append(lg)
            risks.append(rk)
    finally:
        net.train(was_training)
    logit = float(np.sum(weights * np.concatenate(logits)))
    risk = float(np.sum(weights * np.concatenate(risks)))
    probability = float(1.0 / (1.0 + np.exp(-logit)))
    threshold = float(net.hecktor_heads.hpv_threshold)
    return HeadPrediction(probability, logit, probability >= threshold, threshold, risk,
                          tuple(int(c) for c in centre), str(source), len(items))
