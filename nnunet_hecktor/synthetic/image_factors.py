"""The rich synthetic world: outcome factors that only the images show.

In the default world (``world="default"``) relapse risk depends on the primary volume, SUVmax, the
node count and clinical values, and HPV status on the node count, the volume and clinical values: a
feature table of those numbers holds every sufficient statistic, and nothing learned from the image
can add to it. The rich world (``world="rich"``) adds factors that volume, SUV statistics and node
count do not measure, draws them from the patient's own random stream 8 (so nothing else a seed draws
changes, except the relapse times that the added risk moves), renders them and makes them drive the
outcomes:

``necrosis``
    Radius fraction of a necrotic (cold, hypodense) core of the primary: 0 for 60 % of primaries,
    uniform 0.25-0.60 otherwise (volume share 1.6-22 %). PET: core uptake a quarter of the peak;
    CT: core 30 HU below the tumour. Risk +:data:`RICH_RISK_COEFFICIENTS` ``["necrosis"]`` per unit.
``heterogeneity``
    Uptake heterogeneity index of the primary, uniform 0-1: amplitude of the smooth multiplicative
    texture of its PET uptake (0.04 + 0.36 x index, against 0.12 in the default world). Risk per unit.
``extranodal_extension``
    Extranodal extension (0/1) of the largest node, 30 % of patients with nodes: a spiculated rim
    up to 60 % of the node's radius beyond its outline, outside the GTVn label: uptake up to 50 % of
    the node's peak fading outwards (PET) and strands of denser tissue (CT: fat -> soft tissue, soft
    tissue +20 HU). Risk when present.
``cystic_nodes``
    Number of cystic nodes (cold, fluid-density core, radius fraction 0.4-0.7). Each node is cystic
    with probability 0.45 in HPV-positive patients and 0.10 in HPV-negative ones (cystic nodal
    metastases are typical of HPV-positive oropharyngeal cancer), so the images carry HPV evidence
    beyond node count and volume. ``hpv_posterior`` is the HPV probability given every generating
    variable, cystic nodes included: the true ceiling of HPV prediction in this world.

The risk factors are independent of volume, SUVmax, node count and the clinical values. Their share
of the true log-risk variance is printed by ``benchmarks/ceiling_table.py --world rich`` (see
docs/explanations/synthetic-data.md).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from nnunet_hecktor.synthetic.lesions import Lesion

WORLDS: tuple[str, ...] = ("default", "rich")

#: Added to the true log-risk (linear predictor) in the rich world, minus :data:`RICH_RISK_CENTRE`.
RICH_RISK_COEFFICIENTS: dict[str, float] = {
    "necrosis": 2.2,  # per unit of the core's radius fraction (a 0.45 core: ~+1.0)
    "heterogeneity": 1.2,  # per unit of the heterogeneity index above 0.5
    "extranodal_extension": 0.8,
}
#: Population mean of the uncentred rich term (6,000 drawn patients: 0.551), subtracted so the
#: relapse rate stays near that of the default world (29 % against 26 %: the added variance raises it).
RICH_RISK_CENTRE = 0.55
NECROSIS_PROBABILITY = 0.40
NECROSIS_RADIUS_FRACTION = (0.25, 0.60)
ENE_PROBABILITY = 0.30
#: Probability that a node is cystic, by HPV status (0, 1).
CYSTIC_NODE_PROBABILITY: dict[int, float] = {0: 0.10, 1: 0.45}
CYSTIC_RADIUS_FRACTION = (0.40, 0.70)
#: PET texture amplitude of the primary: base + slope x heterogeneity index (default world: 0.12).
HETEROGENEITY_TEXTURE = (0.04, 0.36)
#: ENE rim: reach beyond the node outline (fraction of its radius) and uptake (fraction of its peak).
ENE_RIM_REACH = 0.60
ENE_RIM_UPTAKE = 0.50


def check_world(world: str) -> str:
    """``world`` if known; a ValueError naming the known worlds otherwise."""
    if world not in WORLDS:
        raise ValueError(f"unknown synthetic world {world!r}; choose one of {', '.join(WORLDS)}")
    return world


def rich_risk_term(factors: dict[str, Any]) -> float:
    """The rich world's addition to the true log-risk (higher = earlier relapse)."""
    c = RICH_RISK_COEFFICIENTS
    return (c["necrosis"] * factors["necrosis"] + c["heterogeneity"] * (factors["heterogeneity"] - 0.5)
            + c["extranodal_extension"] * factors["extranodal_extension"] - RICH_RISK_CENTRE)


def hpv_posterior(hpv_probability: float, node_count: int, cystic_nodes: int) -> float:
    """P(HPV positive | every generating variable): the prior ``hpv_probability`` updated by the number
    of cystic nodes among ``node_count`` (binomial likelihood ratio, :data:`CYSTIC_NODE_PROBABILITY`)."""
    q0, q1 = CYSTIC_NODE_PROBABILITY[0], CYSTIC_NODE_PROBABILITY[1]
    log_lr = cystic_nodes * math.log(q1 / q0) + (node_count - cystic_nodes) * math.log((1 - q1) / (1 - q0))
    p = min(max(hpv_probability, 1e-12), 1 - 1e-12)
    return 1.0 / (1.0 + math.exp(-(math.log(p / (1 - p)) + log_lr)))


def draw_image_factors(rng: np.random.Generator, primary: Lesion | None, nodes: list[Lesion], hpv: int,
                       hpv_probability: float) -> tuple[Lesion | None, list[Lesion], dict[str, Any]]:
    """Draw the rich world's factors and return the lesions carrying them (necrotic / cystic cores
    set on the lesions, which the renderer shows) and the factor values.

    Draws a fixed number of values whatever the patient, so every factor keeps its meaning per seed.
    """
    has_necrosis, necrosis_u, heterogeneity, ene_u = rng.random(), rng.random(), rng.random(), rng.random()
    cyst_u = rng.random(size=8)
    cyst_size = rng.uniform(*CYSTIC_RADIUS_FRACTION, size=8)
    necrosis = 0.0
    if primary is not None and has_necrosis < NECROSIS_PROBABILITY:
        lo, hi = NECROSIS_RADIUS_FRACTION
        necrosis = lo + (hi - lo) * necrosis_u
    if primary is not None:
        primary = replace(primary, necrotic_fraction=necrosis)
    else:
        heterogeneity = 0.5  # no primary: nothing to be heterogeneous, no risk contribution
    ene = int(bool(nodes) and ene_u < ENE_PROBABILITY)
    cystic = []
    for i, node in enumerate(nodes):
        is_cystic = i < len(cyst_u) and cyst_u[i] < CYSTIC_NODE_PROBABILITY[int(hpv)]
        cystic.append(replace(node, necrotic_fraction=float(cyst_size[i]) if is_cystic else 0.0))
    n_cystic = sum(n.necrotic_fraction > 0 for n in cystic)
    largest = int(np.argmax([math.prod(n.radii_mm) for n in nodes])) if nodes else -1
    factors = {
        "necrosis": float(necrosis),
        "heterogeneity": float(heterogeneity),
        "extranodal_extension": ene,
        "ene_node": largest if ene else None,
        "cystic_nodes": int(n_cystic),
        "hpv_posterior": hpv_posterior(hpv_probability, len(nodes), int(n_cystic)),
    }
    factors["risk_term"] = rich_risk_term(factors)
    return primary, cystic, factors
