"""Gathering patient-level outputs across DDP ranks for losses that couple patients.

nnU-Net's DDP splits the batch over ranks (1 patch per rank with the usual batch of 2),
so a Cox loss computed per rank would see a single patient. The risks are gathered
with :func:`gather_with_grad` and the loss is computed on the union on every rank.

Gradient scaling (why no extra factor is needed): the backward of
``torch.distributed.nn.functional.all_gather`` *sums* the gradients that all ranks send
to each rank's slice. Every rank computes the same loss ``L`` on the same union, so rank
``r``'s local risks receive ``W * dL/drisk_r`` (``W`` = world size). DDP then *averages*
parameter gradients over ranks::

    mean_r( W * dL/drisk_r * drisk_r/dtheta ) = sum_r dL/drisk_r * drisk_r/dtheta = dL/dtheta

which is exactly the gradient of the union loss in a single process. So the per-rank
loss is used unscaled. (A gather whose backward only routes the local rank's own
gradient would need the loss multiplied by ``W``.) ``tests/test_heads_distributed.py``
checks this with two gloo processes.
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist


def distributed_world_size() -> int:
    """World size of the default process group, 1 when torch.distributed is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def _gathered_lengths(n: int, device: torch.device) -> list[int]:
    # nnU-Net may give ranks different per-rank batch sizes (global batch not divisible
    # by the number of GPUs), and all_gather needs equal shapes: pad to the maximum.
    size = torch.tensor([n], dtype=torch.long, device=device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    return [int(s.item()) for s in sizes]


def _pad_first_dim(t: torch.Tensor, length: int) -> torch.Tensor:
    if t.shape[0] == length:
        return t
    pad = t.new_zeros((length - t.shape[0],) + tuple(t.shape[1:]))
    return torch.cat([t, pad], dim=0)


def gather_with_grad(t: torch.Tensor) -> torch.Tensor:
    """Concatenate ``t`` from all ranks along dim 0, keeping gradients to every slice.

    Identity when torch.distributed is not initialised or the world size is 1. Ranks may
    hold different numbers of rows. The result is ordered by rank, so every rank sees the
    same tensor (the risk bank relies on that to stay identical across ranks).

    Parameters
    ----------
    t : torch.Tensor, shape [B_rank, ...]

    Returns
    -------
    torch.Tensor, shape [sum_r B_r, ...]
    """
    if distributed_world_size() == 1:
        return t
    from torch.distributed.nn.functional import all_gather

    lengths = _gathered_lengths(t.shape[0], t.device)
    padded = _pad_first_dim(t, max(lengths))
    with warnings.catch_warnings():
        # Deprecated since torch 2.x in favour of the private _functional_collectives, whose
        # autograd support depends on the torch version; this one has summed gradients in
        # every version >= 1.x (checked by tests/test_heads_distributed.py).
        warnings.simplefilter("ignore", FutureWarning)
        pieces = all_gather(padded)
    return torch.cat([p[:n] for p, n in zip(pieces, lengths)], dim=0)


def gather_no_grad(t: torch.Tensor) -> torch.Tensor:
    """Concatenate a non-differentiable tensor (time, event, patient index) from all ranks.

    Same ordering as :func:`gather_with_grad`; identity without a process group.
    Non-finite values (NaN = unknown outcome) are transported unchanged.
    """
    if distributed_world_size() == 1:
        return t
    t = t.detach()
    lengths = _gathered_lengths(t.shape[0], t.device)
    padded = _pad_first_dim(t.contiguous(), max(lengths))
    pieces = [torch.empty_like(padded) for _ in lengths]
    dist.all_gather(pieces, padded)
    return torch.cat([p[:n] for p, n in zip(pieces, lengths)], dim=0)


def gather_patient_outputs(risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor,
                           patient_index: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Gather risk (with gradient) and its metadata (without) in one consistent order.

    Parameters
    ----------
    risk : torch.Tensor [B]
        Risk scores with gradient.
    time, event : torch.Tensor [B]
        RFS (days) and relapse indicator, NaN = unknown.
    patient_index : torch.Tensor [B] of int
        An integer identity per patient (strings cannot be all-gathered), e.g. the index
        of the patient in the sorted list of training identifiers.

    Returns
    -------
    tuple of torch.Tensor
        ``(risk, time, event, patient_index)`` over all ranks.
    """
    return (gather_with_grad(risk), gather_no_grad(time), gather_no_grad(event), gather_no_grad(patient_index))
