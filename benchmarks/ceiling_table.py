"""Feasible and true ceilings of the synthetic generator, per world, enriched or not.

Draws a large population of synthetic patients without rendering images
(:func:`nnunet_hecktor.synthetic.draw_patients`), splits it into a fitting half and an evaluation half
(alternate patients), and prints, for the 2025 risk (no HPV input) and HPV targets and the 2026 risk
(HPV Status an input), the population C-index / AUC of:

- clinical only: the recorded (missing, noisy) clinical values a deployed model receives, never CenterID;
- + log primary volume and SUVmax; + node count (the image quantities read perfectly);
- + the rich world's image factors (``--world rich``);
- the feasible ceiling: all permitted inputs (the last of those rows);
- the true ceiling: the generator's true risk / HPV probability (which uses the centre, true values of
  missing entries and, for 2025 risk, the HPV status no 2025 risk model sees).

Enriched populations are the patients a covariate-enriched cohort keeps
(:func:`nnunet_hecktor.synthetic.patients.keep_enriched`), from the same draw; ``outcome-enriched``
those the first scheme (selection on the drawn outcome, ``--enrichment outcome``) keeps, with which the
documented demo and learning-benchmark figures were made. Models: Cox
(lifelines) and logistic regression (scikit-learn), see :mod:`nnunet_hecktor.baselines.ceilings`.

    python benchmarks/ceiling_table.py                          # 3,000 + 3,000 patients, both worlds
    python benchmarks/ceiling_table.py --patients 3000 --world rich
"""

from __future__ import annotations

import argparse
import json
import math
import time


def populations(n_patients: int, seed: int, world: str) -> dict[str, tuple[list[dict], list[dict]]]:
    """``{"plain" | "enriched" | "outcome-enriched": (fit, evaluate)}``: ground-truth records,
    ``n_patients`` in each half, from one draw of ``seed`` in ``world``."""
    from nnunet_hecktor.synthetic.patients import draw_patients, keep_enriched

    pool_size = int(math.ceil(2 * n_patients / 0.16 * 1.15))
    pool = draw_patients(pool_size, seed, world=world, progress=True)
    out = {}
    for name, patients in (("plain", pool[:2 * n_patients]),
                           ("enriched", keep_enriched(pool, seed)[:2 * n_patients]),
                           ("outcome-enriched", keep_enriched(pool, seed, "outcome")[:2 * n_patients])):
        if len(patients) < 2 * n_patients:
            raise SystemExit(f"only {len(patients)} {name} patients in a pool of {pool_size}; raise the pool")
        records = [p.to_json() for p in patients]
        out[name] = (records[0::2], records[1::2])
    return out


def variance_shares(records: list[dict]) -> dict[str, float]:
    """Share of the true log-risk variance carried by the rich-world term (rich world only)."""
    import numpy as np

    risk = np.array([p["true_risk"] for p in records])
    if not records[0].get("image_factors"):
        return {}
    rich = np.array([p["image_factors"]["risk_term"] for p in records])
    return {"rich_term_variance_share": float(rich.var() / risk.var()),
            "rich_term_variance": float(rich.var()), "true_risk_variance": float(risk.var())}


def main(argv=None) -> int:
    from nnunet_hecktor.baselines.ceilings import population_ceilings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=3000, help="patients per half (fit, evaluate); default 3000")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the draw (default 2026)")
    parser.add_argument("--world", choices=("default", "rich", "both"), default="both")
    parser.add_argument("--json", help="also write the table as JSON here")
    args = parser.parse_args(argv)
    if args.patients < 100:
        parser.error("--patients must be at least 100")

    start = time.perf_counter()
    worlds = ("default", "rich") if args.world == "both" else (args.world,)
    results = []
    for world in worlds:
        for population, (fit, evaluate) in populations(args.patients, args.seed, world).items():
            shares = variance_shares(evaluate)
            r2025 = population_ceilings(fit, evaluate, "2025")
            r2026 = population_ceilings(fit, evaluate, "2026")
            for a, b in zip(r2025, r2026):
                results.append({"world": world, "population": population, "row": a["row"],
                                "risk_2025_c_index": a["c_index"], "hpv_2025_auc": a["auc"],
                                "risk_2026_c_index": b["c_index"], **shares,
                                "events": sum(p["relapse"] for p in evaluate),
                                "hpv_negative": sum(1 - p["hpv"] for p in evaluate), "n": len(evaluate)})

    print(f"\nPopulation ceilings: {args.patients} fitting + {args.patients} evaluation patients per population, "
          f"seed {args.seed}\n")
    print("| world | population | model | 2025 risk C-index | 2025 HPV AUC | 2026 risk C-index |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['world']} | {r['population']} | {r['row']} | {r['risk_2025_c_index']:.3f} | "
              f"{r['hpv_2025_auc']:.3f} | {r['risk_2026_c_index']:.3f} |")
    print()
    seen = set()
    for r in results:
        key = (r["world"], r["population"])
        if key in seen:
            continue
        seen.add(key)
        share = (f"; rich term {r['rich_term_variance_share']:.0%} of the true log-risk variance"
                 if "rich_term_variance_share" in r else "")
        print(f"{r['world']}/{r['population']}: evaluation patients {r['n']}, relapses {r['events']}, "
              f"HPV negative {r['hpv_negative']}{share}")
    print(f"\n{time.perf_counter() - start:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
