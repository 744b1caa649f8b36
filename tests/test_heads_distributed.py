"""DDP gather of risks: two CPU processes (gloo) against the same loss on the union batch."""

from __future__ import annotations

import traceback

import pytest
import torch
import torch.distributed as dist
from conftest import free_port, spawn_ranks_and_check

from nnunet_hecktor.heads import (
    HeadConfig,
    HecktorMultiTaskNetwork,
    RiskBank,
    cox_partial_likelihood_loss,
    gather_no_grad,
    gather_patient_outputs,
    gather_with_grad,
    hpv_bce_loss,
)

WORLD = 2
NAN = float("nan")


def _cohort(step: int):
    """Union batch of one step: 5 patients with tied times, rank 0 holds 3 rows, rank 1 holds 2."""
    g = torch.Generator().manual_seed(100 + step)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    time = torch.tensor([30.0, 60.0, 30.0, 90.0, 60.0]) + 30 * step
    event = torch.tensor([1.0, 0.0, 1.0, 1.0, NAN]) if step % 2 == 0 else torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0])
    ids = torch.tensor([0, 1, 2, 3, 4]) + 3 * step  # patients 3 and 4 of step 0 come back in step 1
    return x, time, event, ids


def _rows(rank: int) -> slice:
    return slice(0, 3) if rank == 0 else slice(3, 5)


def _check_cox_gather_and_ddp_scaling(rank: int) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1, bias=False).double()
    reference = torch.nn.Linear(3, 1, bias=False).double()
    reference.load_state_dict(model.state_dict())
    ddp = torch.nn.parallel.DistributedDataParallel(model)  # averages gradients over ranks
    bank, reference_bank = RiskBank(6), RiskBank(6)
    for step in range(3):
        x, time, event, ids = _cohort(step)
        rows = _rows(rank)
        risk = ddp(x[rows]).squeeze(1)
        g_risk, g_time, g_event, g_ids = gather_patient_outputs(risk, time[rows], event[rows], ids[rows])
        assert torch.equal(g_ids, ids) and torch.equal(g_time, time)
        assert torch.equal(torch.isnan(g_event), torch.isnan(event))
        loss = bank.pooled_loss(g_risk, g_time, g_event, g_ids)
        ddp.zero_grad()
        loss.backward()  # per-rank loss used UNSCALED (see heads/distributed.py)

        # Single process, whole union batch.
        reference.zero_grad()
        ref_loss = reference_bank.pooled_loss(reference(x).squeeze(1), time, event, ids)
        ref_loss.backward()
        torch.testing.assert_close(loss.detach(), ref_loss.detach(), rtol=1e-12, atol=0)
        torch.testing.assert_close(model.weight.grad, reference.weight.grad, rtol=1e-10, atol=1e-12)
        assert torch.count_nonzero(model.weight.grad) > 0
        assert bank.state_dict()["patient_ids"] == reference_bank.state_dict()["patient_ids"]
        with torch.no_grad():  # same update on both
            model.weight -= 0.1 * model.weight.grad
            reference.weight -= 0.1 * reference.weight.grad

    # Plain loss without a bank: same value on every rank, gradient of the local slice
    # is the world-size multiple of the union gradient before DDP's averaging.
    x, time, event, _ = _cohort(0)
    local = x[_rows(rank)].sum(1).requires_grad_(True)
    cox_partial_likelihood_loss(gather_with_grad(local), gather_no_grad(time[_rows(rank)]),
                                gather_no_grad(event[_rows(rank)])).backward()
    union = x.sum(1).requires_grad_(True)
    cox_partial_likelihood_loss(union, time, event).backward()
    torch.testing.assert_close(local.grad, WORLD * union.grad[_rows(rank)])


def _check_ddp_network_with_no_events_and_unknown_hpv(rank: int) -> None:
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    torch.manual_seed(0)
    unet = PlainConvUNet(2, 3, [4, 8, 16], torch.nn.Conv3d, 3, [1, 2, 2], 1, 2, 1, conv_bias=True,
                         norm_op=torch.nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
                         nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=True)
    net = HecktorMultiTaskNetwork(unet, HeadConfig(hidden_features=8, clinical_features=4))
    net.clinical_encoder.fit([{"Age": 50.0}, {"Age": 70.0}])
    # nnU-Net's DDP settings: find_unused_parameters=False raises on the next forward if a
    # parameter got no gradient in the previous backward.
    ddp = torch.nn.parallel.DistributedDataParallel(net, find_unused_parameters=False)
    bank = RiskBank(8)
    for step in range(3):
        x = torch.randn(1, 2, 16, 16, 16, generator=torch.Generator().manual_seed(10 * step + rank))
        clinical = net.clinical_encoder.encode([{"Age": 60.0 + rank}])
        seg, hpv, risk = ddp(x, with_heads=True, clinical=clinical)
        time = torch.tensor([100.0 + rank])
        event = torch.tensor([0.0])  # no event on any rank
        g_risk, g_time, g_event, g_ids = gather_patient_outputs(risk, time, event, torch.tensor([rank + 2 * step]))
        cox = bank.pooled_loss(g_risk, g_time, g_event, g_ids)
        hpv_loss = hpv_bce_loss(hpv, [NAN])
        assert cox.item() == 0.0 and hpv_loss.item() == 0.0
        ddp.zero_grad()
        # Every deep-supervision output in the loss, as nnU-Net does under DDP (it gives the
        # lowest resolution a weight of 1e-6 instead of 0 for exactly this reason).
        (sum(s.mean() for s in seg) + cox + hpv_loss).backward()
        heads = [p for n, p in net.named_parameters() if n.startswith("hecktor_heads.")]
        assert all(p.grad is not None for p in heads)
    # DDP kept the replicas' gradients identical.
    g = net.decoder.seg_layers[-1].weight.grad.clone()
    others = [torch.zeros_like(g) for _ in range(WORLD)]
    dist.all_gather(others, g)
    torch.testing.assert_close(others[0], others[1])


def _worker(rank: int, port: int, errors) -> None:
    try:
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
        try:
            _check_cox_gather_and_ddp_scaling(rank)
            _check_ddp_network_with_no_events_and_unknown_hpv(rank)
            errors.put(f"ok {rank}")
        finally:
            dist.destroy_process_group()
    except BaseException:
        errors.put(f"rank {rank}:\n{traceback.format_exc()}")
        raise


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not available")
def test_two_gloo_ranks_match_the_union_batch_in_values_and_gradients():
    spawn_ranks_and_check(_worker, (free_port(),), WORLD)


def test_gather_is_the_identity_without_a_process_group():
    t = torch.arange(3.0, requires_grad=True)
    assert gather_with_grad(t) is t and gather_no_grad(t) is t
