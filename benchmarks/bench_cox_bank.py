"""How close does Cox training with a batch of 2 get to the full-data fit?

A linear Cox model ``risk = X @ beta`` is trained on a synthetic cohort with tied RFS
times (rounded to whole months) and a HECKTOR-like event rate, with nnU-Net's batch of
2, under four survival losses:

- ``pooled``: one Cox loss over a bank of recent detached risks ∪ the batch (the plugin's
  :class:`nnunet_hecktor.heads.RiskBank`, default mode);
- ``risk_set_only``: the bank only enlarges the risk sets of the current events;
- ``no_bank``: the Cox loss over the batch of 2 alone;
- ``batch64``: the Cox loss over batches of 64 (what a large-batch trainer would do),
  given as many optimiser steps as the batch-of-2 runs (i.e. 32x the epochs).

Each is compared with the full-data maximum partial likelihood fit (Breslow ties,
scikit-survival's ``CoxPHSurvivalAnalysis``): max |beta - beta_full|, cosine similarity
and the Harrell C-index on the cohort. Several seeds, median and range printed.

Run::

    python benchmarks/bench_cox_bank.py            # ~1-2 min on 2 CPU cores
    python benchmarks/bench_cox_bank.py --quick    # fewer seeds/epochs
"""

from __future__ import annotations

import argparse
import math
import time as wallclock
from dataclasses import dataclass

import numpy as np
import torch

from nnunet_hecktor.heads import RiskBank, cox_partial_likelihood_loss
from nnunet_hecktor.metrics.survival import harrell_c_index

VARIANTS = ("pooled", "risk_set_only", "no_bank", "batch64")


@dataclass
class Cohort:
    x: np.ndarray       # [n, p] standardised covariates
    time: np.ndarray    # [n] RFS in days (whole months: ties)
    event: np.ndarray   # [n] 1 = relapse
    beta_true: np.ndarray


def make_cohort(n: int = 400, p: int = 5, event_rate: float = 0.25, seed: int = 0) -> Cohort:
    """Exponential event times with log-hazard ``X @ beta``, uniform censoring, times rounded to 30 days."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    beta = np.linspace(1.0, -0.6, p)
    t_event = rng.exponential(scale=1000.0 * np.exp(-x @ beta))
    # Censoring scale tuned so that roughly `event_rate` of the patients relapse.
    lo, hi = 1.0, 1e7
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        rate = np.mean(t_event <= np.random.default_rng(seed + 1).uniform(0, mid, size=n))
        lo, hi = (mid, hi) if rate < event_rate else (lo, mid)
    t_censor = np.random.default_rng(seed + 1).uniform(0, math.sqrt(lo * hi), size=n)
    event = (t_event <= t_censor).astype(float)
    obs = np.minimum(t_event, t_censor)
    obs = np.maximum(30.0, np.ceil(obs / 30.0) * 30.0)
    return Cohort(x, obs, event, beta)


def full_data_fit(c: Cohort) -> np.ndarray:
    """Maximum Breslow partial likelihood (scikit-survival reference)."""
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    y = np.empty(len(c.time), dtype=[("event", bool), ("time", float)])
    y["event"], y["time"] = c.event.astype(bool), c.time
    model = CoxPHSurvivalAnalysis(ties="breslow", alpha=0.0, n_iter=200, tol=1e-12).fit(c.x, y)
    return np.asarray(model.coef_, dtype=float)


def train_linear(c: Cohort, variant: str, epochs: int = 30, lr: float = 0.02, bank_size: int = 128,
                 seed: int = 0) -> np.ndarray:
    """Adam on a linear Cox model with mini-batches (2, or 64 for ``batch64``); lr decays linearly to 0.

    The batch index (``idx``) doubles as the patient id for the bank.
    """
    if variant not in VARIANTS:
        raise ValueError(variant)
    gen = torch.Generator().manual_seed(seed)
    x = torch.tensor(c.x, dtype=torch.float64)
    t = torch.tensor(c.time, dtype=torch.float64)
    e = torch.tensor(c.event, dtype=torch.float64)
    n = len(t)
    beta = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([beta], lr=lr)
    batch = 64 if variant == "batch64" else 2
    if variant == "batch64":
        # Same number of optimiser steps as the batch-of-2 variants: a fair convergence budget.
        epochs = epochs * (n // 2) // max(1, n // 64)
    steps_per_epoch = n // batch
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / total)
    bank = None
    if variant in ("pooled", "risk_set_only"):
        bank = RiskBank(bank_size, mode=variant)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for s in range(steps_per_epoch):
            idx = perm[s * batch:(s + 1) * batch]
            risk = x[idx] @ beta
            if bank is None:
                loss = cox_partial_likelihood_loss(risk, t[idx], e[idx])
            else:
                loss = bank.pooled_loss(risk, t[idx], e[idx], idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return beta.detach().numpy()


def compare(beta: np.ndarray, beta_ref: np.ndarray, c: Cohort) -> dict[str, float]:
    cos = float(beta @ beta_ref / (np.linalg.norm(beta) * np.linalg.norm(beta_ref) + 1e-12))
    c_model = harrell_c_index(c.time, c.event, c.x @ beta)
    c_ref = harrell_c_index(c.time, c.event, c.x @ beta_ref)
    return {"max_abs_diff": float(np.max(np.abs(beta - beta_ref))), "cosine": cos, "c_index_diff": c_model - c_ref}


def run(seeds: int, epochs: int, n: int, bank_size: int) -> dict[str, list[dict[str, float]]]:
    results: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for seed in range(seeds):
        cohort = make_cohort(n=n, seed=seed)
        ref = full_data_fit(cohort)
        for variant in VARIANTS:
            beta = train_linear(cohort, variant, epochs=epochs, bank_size=bank_size, seed=seed)
            results[variant].append(compare(beta, ref, cohort))
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--n", type=int, default=400, help="patients per cohort")
    parser.add_argument("--bank-size", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 10 epochs")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs = 2, 10
    torch.set_num_threads(1)
    start = wallclock.perf_counter()
    results = run(args.seeds, args.epochs, args.n, args.bank_size)
    cohort = make_cohort(n=args.n, seed=0)
    print(f"cohort: n={args.n}, event rate {cohort.event.mean():.2f}, distinct times {len(np.unique(cohort.time))}; "
          f"batch 2, bank {args.bank_size}, {args.epochs} epochs, Adam lr 0.02 -> 0, {args.seeds} seeds")
    print(f"{'variant':<15}{'max|dbeta| med [min,max]':>30}{'cosine med [min]':>22}{'dC-index med [min,max]':>30}")
    for variant, rows in results.items():
        d = np.array([r["max_abs_diff"] for r in rows])
        cs = np.array([r["cosine"] for r in rows])
        dc = np.array([r["c_index_diff"] for r in rows])
        print(f"{variant:<15}{np.median(d):>12.4f} [{d.min():.4f},{d.max():.4f}]"
              f"{np.median(cs):>12.5f} [{cs.min():.5f}]"
              f"{np.median(dc):>+12.4f} [{dc.min():+.4f},{dc.max():+.4f}]")
    print(f"total {wallclock.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
