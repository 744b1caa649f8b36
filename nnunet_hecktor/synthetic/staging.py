"""T and N stages of a synthetic patient, from its lesion geometry as AJCC/UICC 7th edition assigns them.

Geometry-derived stage (``T-stage (geometry)``, ``N-stage (geometry)``)
-----------------------------------------------------------------------
T (largest diameter of the primary = twice its largest generating semi-axis, real mm, whatever the
size preset renders): no primary T0; <= 20 mm T1; <= 40 mm T2; > 40 mm T3; a tumour > 40 mm invades
an adjacent structure (T4) with probability :data:`T4_INVASION_PROBABILITY`, and every tumour
> :data:`T4_DIAMETER_MM` is T4 (very large).

N (nodes with their side relative to the midline; ipsilateral = the primary's side, or the largest
node's side when there is no primary): no node N0; one ipsilateral node <= 30 mm N1; one
ipsilateral node of 30-60 mm, several ipsilateral nodes, or any contralateral node, all <= 60 mm, N2
(N2a/b/c merged); any node > 60 mm N3. The generator's nodes are 9-43 mm across, so N3 arises only
from the clinical disagreement below.

Clinical stage (``T-stage``, ``N-stage``: what the 2026 release records, the target)
------------------------------------------------------------------------------------
Clinical staging (palpation, endoscopy, other imaging) disagrees with image geometry: a share
:data:`STAGE_SHIFT_RATES` of the stages is moved one stage up or down (half each, clipped to the
valid range; T0 stays T0: a primary that is not seen is not staged from geometry). The recorded
value is then missing (blank) at :data:`STAGE_MISSING_RATES`. The draws use their own random stream
of the patient, so stages never change what a seed draws otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnunet_hecktor import schema
from nnunet_hecktor.synthetic.lesions import Lesion

T1_MAX_DIAMETER_MM = 20.0
T2_MAX_DIAMETER_MM = 40.0
#: Share of primaries > 40 mm that invade an adjacent structure (T4a/b, merged into T4).
T4_INVASION_PROBABILITY = 0.35
#: Every primary larger than this is T4 (very large tumours invade).
T4_DIAMETER_MM = 60.0
N1_MAX_DIAMETER_MM = 30.0
N2_MAX_DIAMETER_MM = 60.0
#: Share of clinical stages one stage away from the geometry-derived one (half up, half down).
STAGE_SHIFT_RATES: dict[str, float] = {schema.COL_TSTAGE: 0.15, schema.COL_NSTAGE: 0.10}
#: Share of recorded stages that are missing (blank) in the 2026 release.
STAGE_MISSING_RATES: dict[str, float] = {schema.COL_TSTAGE: 0.04, schema.COL_NSTAGE: 0.03}
#: Extra share of patients without Relapse/RFS in the 2026 release (on top of the 2025 rate, so
#: ~7 % lack RFS, as 724 of 781 released patients have it).
EXTRA_OUTCOME_MISSING_2026 = 0.045


def largest_diameter_mm(lesion: Lesion | None) -> float:
    """Largest diameter of a lesion in real mm (twice its largest generating semi-axis); 0 for None."""
    return 0.0 if lesion is None else 2.0 * max(lesion.radii_mm)


def side_of(lesion: Lesion) -> int:
    """-1 or +1: the side of the midline (sign of the left-right coordinate u) the lesion sits on."""
    return -1 if lesion.position[0] < 0 else 1


def geometric_t_stage(primary: Lesion | None, invades: bool) -> str:
    """AJCC 7 T stage of the primary's geometry (see the module docstring); ``invades`` makes a
    tumour > 40 mm T4."""
    if primary is None:
        return "T0"
    diameter = largest_diameter_mm(primary)
    if diameter <= T1_MAX_DIAMETER_MM:
        return "T1"
    if diameter <= T2_MAX_DIAMETER_MM:
        return "T2"
    return "T4" if invades or diameter > T4_DIAMETER_MM else "T3"


def node_sides(primary: Lesion | None, nodes: list[Lesion]) -> list[str]:
    """``"ipsilateral"`` / ``"contralateral"`` per node, relative to the primary's side of the
    midline (the largest node's side when there is no primary)."""
    if not nodes:
        return []
    reference = primary if primary is not None else max(nodes, key=largest_diameter_mm)
    ref_side = side_of(reference)
    return ["ipsilateral" if side_of(n) == ref_side else "contralateral" for n in nodes]


def geometric_n_stage(primary: Lesion | None, nodes: list[Lesion]) -> str:
    """AJCC 7 N stage of the nodes' number, size and side (see the module docstring)."""
    if not nodes:
        return "N0"
    largest = max(largest_diameter_mm(n) for n in nodes)
    if largest > N2_MAX_DIAMETER_MM:
        return "N3"
    sides = node_sides(primary, nodes)
    if len(nodes) == 1 and sides[0] == "ipsilateral" and largest <= N1_MAX_DIAMETER_MM:
        return "N1"
    return "N2"


def _shift(rng: np.random.Generator, column: str, stage: str) -> str:
    stages = schema.STAGES_OF_COLUMN[column]
    code = schema.stage_code(column, stage)
    move = rng.random() < STAGE_SHIFT_RATES[column]
    direction = 1 if rng.random() < 0.5 else -1
    if not move or stage == "T0":
        return stage
    assert code is not None  # stage is one of the column's labels
    lowest = 1 if column == schema.COL_TSTAGE else 0  # a seen primary is never clinically T0
    return stages[int(np.clip(code + direction, lowest, len(stages) - 1))]


def draw_staging(rng: np.random.Generator, primary: Lesion | None, nodes: list[Lesion]) -> dict[str, Any]:
    """Geometry-derived and clinical T/N stages of one patient, drawn from ``rng`` (its own stream).

    Returns
    -------
    dict
        ``largest_primary_diameter_mm``, ``largest_node_diameter_mm`` (real mm), ``invasion`` (bool),
        ``node_sides`` (per node), ``T-stage (geometry)``, ``N-stage (geometry)``, the clinical
        ``T-stage`` / ``N-stage`` (canonical labels of :data:`nnunet_hecktor.schema.T_STAGES` /
        ``N_STAGES``), and ``recorded``: the clinical stages as the 2026 release shows them (None =
        missing) and ``outcome_missing_2026`` (Relapse/RFS blank in the 2026 release on top of the
        2025 missingness).
    """
    # Fixed number of draws whatever the patient, so each value has a stable meaning per seed.
    invasion_u, t_shift_rng, n_shift_rng, t_miss, n_miss, outcome_miss = (
        rng.random(), np.random.default_rng(rng.integers(2 ** 32)), np.random.default_rng(rng.integers(2 ** 32)),
        rng.random(), rng.random(), rng.random())
    invades = bool(primary is not None and largest_diameter_mm(primary) > T2_MAX_DIAMETER_MM
                   and invasion_u < T4_INVASION_PROBABILITY)
    t_geometry = geometric_t_stage(primary, invades)
    n_geometry = geometric_n_stage(primary, nodes)
    t_clinical = _shift(t_shift_rng, schema.COL_TSTAGE, t_geometry)
    n_clinical = _shift(n_shift_rng, schema.COL_NSTAGE, n_geometry)
    return {
        "largest_primary_diameter_mm": largest_diameter_mm(primary),
        "largest_node_diameter_mm": max((largest_diameter_mm(n) for n in nodes), default=0.0),
        "invasion": invades,
        "node_sides": node_sides(primary, nodes),
        "T-stage (geometry)": t_geometry,
        "N-stage (geometry)": n_geometry,
        schema.COL_TSTAGE: t_clinical,
        schema.COL_NSTAGE: n_clinical,
        "recorded": {
            schema.COL_TSTAGE: None if t_miss < STAGE_MISSING_RATES[schema.COL_TSTAGE] else t_clinical,
            schema.COL_NSTAGE: None if n_miss < STAGE_MISSING_RATES[schema.COL_NSTAGE] else n_clinical,
            "outcome_missing_2026": bool(outcome_miss < EXTRA_OUTCOME_MISSING_2026),
        },
    }
