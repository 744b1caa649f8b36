"""Soft lesion statistics of the network's own segmentation: a head input that sees whole lesions.

The stock head input (average/max pooling of the bottleneck cells under the GTVp mask) is an
*intensive* description of the tumour: a mean over cells does not grow with the tumour, and a
24x32x32 patch has a 3x2x2 bottleneck, so a primary covers one or two cells. Yet the strongest
image predictors of recurrence in HECKTOR (and in the synthetic generator) are *extensive*:
tumour volume, node burden, SUVmax. These statistics are read off the segmentation softmax and
the PET channel instead, so they are defined at any resolution and need nothing learned:

=====================  ==============================================================
``log_gtvp_voxels``    ``log(1 + sum_v p_GTVp(v))``: soft primary volume in voxels
``log_gtvn_voxels``    ``log(1 + sum_v p_GTVn(v))``: soft nodal volume in voxels
``pet_max_gtvp``       ``max_v p_GTVp(v) * PET(v)`` (soft SUVmax, input units)
``pet_mean_gtvp``      ``sum_v p_GTVp PET / sum_v p_GTVp`` (soft SUVmean)
``pet_max_gtvn``       ``max_v p_GTVn(v) * PET(v)``
``gtvn_fraction``      ``sum p_GTVn / (sum p_GTVp + sum p_GTVn + 1)``
=====================  ==============================================================

Voxel counts, not mL: nnU-Net resamples every case to the plan's spacing, so the count is the
volume times a constant of the plan (and the heads need no spacing at inference). PET values
are in the network's input units (nnU-Net's normalisation of the PET channel). By default the
probabilities are detached: the heads read the segmentation but cannot pull it towards what
helps them (the heads must not cost segmentation).
"""

from __future__ import annotations

import torch

#: Names of the columns of :func:`soft_lesion_statistics`, in order.
LESION_STATISTIC_NAMES: tuple[str, ...] = ("log_gtvp_voxels", "log_gtvn_voxels", "pet_max_gtvp", "pet_mean_gtvp",
                                           "pet_max_gtvn", "gtvn_fraction")
#: Width of the statistics vector.
N_LESION_STATISTICS: int = len(LESION_STATISTIC_NAMES)


def soft_lesion_statistics(seg_logits: torch.Tensor, image: torch.Tensor, pet_channel: int = 1,
                           gtvp_class: int = 1, gtvn_class: int = 2, detach: bool = True) -> torch.Tensor:
    """Soft volume and PET uptake of the predicted GTVp and GTVn of each sample.

    Parameters
    ----------
    seg_logits : torch.Tensor, shape [B, K, *spatial]
        Segmentation logits at full resolution (K classes, softmax over dim 1; class 0 =
        background). Region-based (sigmoid) outputs are not supported.
    image : torch.Tensor, shape [B, C, *spatial]
        The network input; channel ``pet_channel`` is the PET.
    pet_channel, gtvp_class, gtvn_class : int
    detach : bool
        Stop gradients into the segmentation (default).

    Returns
    -------
    torch.Tensor, shape [B, N_LESION_STATISTICS], float32
        Columns as :data:`LESION_STATISTIC_NAMES`.
    """
    if seg_logits.shape[0] != image.shape[0] or seg_logits.shape[2:] != image.shape[2:]:
        raise ValueError(f"segmentation {tuple(seg_logits.shape)} and image {tuple(image.shape)} do not match")
    logits = seg_logits.detach() if detach else seg_logits
    p = torch.softmax(logits.float(), dim=1)
    pet = image[:, pet_channel].float()
    if detach:
        pet = pet.detach()
    pp, pn = p[:, gtvp_class].flatten(1), p[:, gtvn_class].flatten(1)
    pet = pet.flatten(1)
    vp, vn = pp.sum(1), pn.sum(1)
    columns = [
        torch.log1p(vp),
        torch.log1p(vn),
        (pp * pet).amax(1),
        (pp * pet).sum(1) / (vp + 1e-3),
        (pn * pet).amax(1),
        vn / (vp + vn + 1.0),
    ]
    return torch.stack(columns, dim=1)
