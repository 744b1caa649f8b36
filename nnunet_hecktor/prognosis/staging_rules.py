"""The AJCC/UICC 7th-edition T and N rules applied to the geometry of a segmentation.

A plain rule, no learning: it is the baseline a learned staging model must beat, and it states
what the staging features mean. Oropharynx, AJCC 7 (the edition HECKTOR 2026 releases):

- T0: no primary visible (empty GTVp); T1: greatest dimension <= 20 mm; T2: > 20 mm and
  <= 40 mm; T3: > 40 mm. T4 means invasion of the larynx, muscles or bone, which a size does not
  show: the rule never says T4 (it is a class only a model with more information can reach).
- N0: no node; N3: a node > 60 mm; N2 (N2a/b/c merged, as HECKTOR 2026 does): a contralateral
  or bilateral node (N2c), several ipsilateral nodes (N2b), or one ipsilateral node > 30 mm
  (N2a); N1: one ipsilateral node <= 30 mm.

Features are those of :func:`nnunet_hecktor.prognosis.stage_geometry.stage_geometry_features`
(``gtvp_max_diameter_mm``, ``gtvn_ipsilateral_count`` + ``gtvn_contralateral_count`` = the node
count, ``gtvn_largest_node_diameter_mm``, ``gtvn_contralateral``, ``gtvn_bilateral``), so
``ajcc7_rule_stage(stage_geometry_features(seg, spacing))`` stages a mask; stages are the
canonical labels of :data:`nnunet_hecktor.schema.T_STAGES` / :data:`~nnunet_hecktor.schema.N_STAGES`.
"""

from __future__ import annotations

from typing import Any, Mapping

from nnunet_hecktor import schema

#: AJCC 7 greatest-dimension cut-offs of the primary (mm): T1 <= 20 < T2 <= 40 < T3.
T_CUTOFFS_MM: tuple[float, float] = (20.0, 40.0)
#: AJCC 7 node-size cut-offs (mm): one ipsilateral node <= 30 is N1, > 30 N2a; any node > 60 is N3.
N_CUTOFFS_MM: tuple[float, float] = (30.0, 60.0)
#: Features the rule reads.
RULE_FEATURES: tuple[str, ...] = ("gtvp_max_diameter_mm", "gtvn_ipsilateral_count", "gtvn_contralateral_count",
                                  "gtvn_largest_node_diameter_mm", "gtvn_contralateral", "gtvn_bilateral")


def ajcc7_t_stage(max_diameter_mm: float, t_cutoffs_mm: tuple[float, float] = T_CUTOFFS_MM) -> str:
    """T stage of a primary of greatest dimension ``max_diameter_mm`` (0 = no primary -> ``"T0"``)."""
    if not max_diameter_mm > 0:
        return "T0"
    if max_diameter_mm <= t_cutoffs_mm[0]:
        return "T1"
    return "T2" if max_diameter_mm <= t_cutoffs_mm[1] else "T3"


def ajcc7_n_stage(node_count: float, largest_node_mm: float, contralateral: bool, bilateral: bool,
                  n_cutoffs_mm: tuple[float, float] = N_CUTOFFS_MM) -> str:
    """N stage from the nodes: count, largest diameter (mm) and whether any lies on the other side."""
    if not node_count > 0:
        return "N0"
    if largest_node_mm > n_cutoffs_mm[1]:
        return "N3"
    if contralateral or bilateral or node_count >= 2 or largest_node_mm > n_cutoffs_mm[0]:
        return "N2"
    return "N1"


def ajcc7_rule_stage(features: Mapping[str, Any], t_cutoffs_mm: tuple[float, float] = T_CUTOFFS_MM,
                     n_cutoffs_mm: tuple[float, float] = N_CUTOFFS_MM) -> tuple[str, str]:
    """``(T, N)`` canonical labels of one patient from its staging features (see the module docstring).

    Raises
    ------
    KeyError
        A feature of :data:`RULE_FEATURES` is missing (names it).
    """
    missing = [name for name in RULE_FEATURES if name not in features]
    if missing:
        raise KeyError(f"the AJCC 7 rule needs the feature(s) {', '.join(missing)}")
    t = ajcc7_t_stage(float(features["gtvp_max_diameter_mm"]), t_cutoffs_mm)
    count = float(features["gtvn_ipsilateral_count"]) + float(features["gtvn_contralateral_count"])
    n = ajcc7_n_stage(count, float(features["gtvn_largest_node_diameter_mm"]),
                      bool(features["gtvn_contralateral"]), bool(features["gtvn_bilateral"]), n_cutoffs_mm)
    return t, n


def ajcc7_rule_table(feature_table, t_cutoffs_mm: tuple[float, float] = T_CUTOFFS_MM,
                     n_cutoffs_mm: tuple[float, float] = N_CUTOFFS_MM):
    """The rule on every row of a feature table: DataFrame with ``T-stage`` and ``N-stage`` (labels)."""
    import pandas as pd

    rows = [ajcc7_rule_stage(row, t_cutoffs_mm, n_cutoffs_mm) for _, row in feature_table.iterrows()]
    return pd.DataFrame(rows, index=feature_table.index, columns=[schema.COL_TSTAGE, schema.COL_NSTAGE])


__all__ = ["N_CUTOFFS_MM", "RULE_FEATURES", "T_CUTOFFS_MM", "ajcc7_n_stage", "ajcc7_rule_stage", "ajcc7_rule_table",
           "ajcc7_t_stage"]
