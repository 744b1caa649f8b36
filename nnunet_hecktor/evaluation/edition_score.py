"""An edition's single ranking score (HECKTOR 2026) from the evaluation's per-patient statistics.

2026 ranks by ``0.25 x mean Dice (GTVp, GTVn) + 0.35 x mean balanced accuracy (T, N) + 0.40 x C-index``
(weights: ``editions.get_edition("2026").score_weights``).

**Which Dice** (:data:`DICE_RULES`). The organisers say Dice "is computed separately for GTVp and
GTVn, and the final segmentation score is obtained by averaging both", and that GTVn "may include
zero, one, or multiple lesions per patient", without saying whether each Dice is a mean over
patients or aggregated over the cohort. **Default** ``"hecktor2025"``: GTVp = mean over patients of
the per-patient Dice (both empty = 1.0, as Task 1), GTVn = aggregated Dice (DSCagg), the 2025
definitions, which handle patients without nodes. ``"aggregated"``: both aggregated;
``"per-patient"``: both means of per-patient Dice (both empty = 1.0). All three are reported; the
rule in force is recorded with the score.

The interval of the score resamples the union of scored patients once per replicate: each
component uses the replicate's weights of its own patients, so a patient drawn twice counts twice
in every component it belongs to.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from nnunet_hecktor.editions import get_edition
from nnunet_hecktor.metrics.bootstrap import bootstrap_c_index, percentile_interval, resampling_weights
from nnunet_hecktor.metrics.challenge_score import bootstrap_weighted_score, score_components, weighted_score
from nnunet_hecktor.metrics.paired import bootstrap_multiclass_balanced_accuracy
from nnunet_hecktor.metrics.segmentation import PatientSegmentationStats, SegmentationMetricOptions

#: Dice rules of the 2026 score (see the module docstring); the first is the default.
DICE_RULES: tuple[str, ...] = ("hecktor2025", "aggregated", "per-patient")


def _ratio(num, den, empty):
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    out = np.full(num.shape, float(empty))
    np.divide(num, den, out=out, where=den > 0)
    return out


def dice_columns(stats: Sequence[PatientSegmentationStats], options: SegmentationMetricOptions) -> dict[str, np.ndarray]:
    """Per-patient columns of every Dice variant (mm³ for volumes; per-patient Dice NaN = left out)."""
    def col(f):
        return np.array([f(s) for s in stats], dtype=float)

    gtvn_each = col(lambda s: s.gtvn_dice())
    gtvn_empty = 1.0 if options.gtvp_both_empty is None else float(options.gtvp_both_empty)
    return {
        "gtvp_per_patient": col(lambda s: s.gtvp_dice(options)),
        "gtvn_per_patient": np.where(np.isnan(gtvn_each), gtvn_empty, gtvn_each),
        "gtvp_intersection": col(lambda s: s.mm3(s.gtvp_intersection_voxels)),
        "gtvp_volume_sum": col(lambda s: s.mm3(s.gtvp_gt_voxels + s.gtvp_pred_voxels)),
        "gtvn_intersection": col(lambda s: s.mm3(s.gtvn_intersection_voxels)),
        "gtvn_volume_sum": col(lambda s: s.mm3(s.gtvn_gt_voxels + s.gtvn_pred_voxels)),
    }


def dice_variants(columns: Mapping[str, np.ndarray], weights: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Rule -> {"gtvp", "gtvn"} -> value per row of ``weights`` (shape (b, n); ones for the point value)."""
    w = np.asarray(weights, dtype=float)

    def mean(values):
        valid = ~np.isnan(values)
        return _ratio(w[:, valid] @ values[valid], w[:, valid].sum(axis=1), math.nan)

    def aggregated(inter, total):
        return _ratio(2.0 * (w @ inter), w @ total, 1.0)

    gtvp_agg = aggregated(columns["gtvp_intersection"], columns["gtvp_volume_sum"])
    gtvn_agg = aggregated(columns["gtvn_intersection"], columns["gtvn_volume_sum"])
    gtvp_mean, gtvn_mean = mean(columns["gtvp_per_patient"]), mean(columns["gtvn_per_patient"])
    return {"hecktor2025": {"gtvp": gtvp_mean, "gtvn": gtvn_agg},
            "aggregated": {"gtvp": gtvp_agg, "gtvn": gtvn_agg},
            "per-patient": {"gtvp": gtvp_mean, "gtvn": gtvn_mean}}


def edition_score(edition: str, stats: Sequence[PatientSegmentationStats] | None,
                  options: SegmentationMetricOptions, stages: Mapping[str, tuple[Sequence[str], np.ndarray, np.ndarray]],
                  survival: tuple[Sequence[str], np.ndarray, np.ndarray, np.ndarray] | None,
                  dice_rule: str = DICE_RULES[0], n_bootstrap: int = 1000, seed: int = 0,
                  level: float = 0.95) -> dict | None:
    """The ``edition_score`` block of metrics.json; None when the edition has no single score.

    Parameters
    ----------
    edition : str
    stats : sequence of PatientSegmentationStats, optional
        Task 1 statistics (None: no segmentation scored, so no score).
    options : SegmentationMetricOptions
    stages : mapping
        ``"t"``/``"n"`` -> (patients, true codes, predicted codes).
    survival : tuple, optional
        (patients, time in days, event, risk with higher = earlier relapse).
    dice_rule : str
        One of :data:`DICE_RULES`.
    n_bootstrap, seed, level :
        Joint patient-level bootstrap of the score (0 = no interval).
    """
    weights = get_edition(edition).score_weights
    if not weights:
        return None
    if dice_rule not in DICE_RULES:
        raise ValueError(f"dice rule must be one of {', '.join(DICE_RULES)}, not {dice_rule!r}")
    from nnunet_hecktor.metrics.classification import multiclass_balanced_accuracy
    from nnunet_hecktor.metrics.survival import harrell_c_index

    missing = [name for name, present in (("segmentation", stats is not None), ("T stage", "t" in stages),
                                          ("N stage", "n" in stages), ("risk", survival is not None))
               if not present]
    block: dict = {"edition": edition, "weights": dict(weights), "dice_rule": dice_rule}
    variants = {}
    if stats is not None:
        columns = dice_columns(stats, options)
        variants = {rule: {k: float(v[0]) for k, v in parts.items()}
                    for rule, parts in dice_variants(columns, np.ones((1, len(stats)))).items()}
        block["dice_variants"] = variants
    if missing:
        block.update(score=None, components=None,
                     notes=[f"no weighted score: {', '.join(missing)} not evaluated"])
        return block
    assert stats is not None and survival is not None  # not missing
    t_ba = multiclass_balanced_accuracy(stages["t"][1], stages["t"][2])
    n_ba = multiclass_balanced_accuracy(stages["n"][1], stages["n"][2])
    c = harrell_c_index(survival[1], survival[2], survival[3])
    dice = variants[dice_rule]
    components = score_components(dice["gtvp"], dice["gtvn"], t_ba, n_ba, c)
    block["components"] = components
    block["parts"] = {"gtvp_dice": dice["gtvp"], "gtvn_dice": dice["gtvn"], "t_balanced_accuracy": t_ba,
                      "n_balanced_accuracy": n_ba, "c_index": c}
    block["score"] = weighted_score(components, weights)
    block["notes"] = [] if math.isfinite(block["score"]) else ["a component is undefined: no weighted score"]
    if n_bootstrap > 0:
        union = sorted({s.patient for s in stats} | set(stages["t"][0]) | set(stages["n"][0]) | set(survival[0]))
        where = {pid: i for i, pid in enumerate(union)}
        w = resampling_weights(len(union), n_bootstrap, np.random.SeedSequence([seed, 6]))

        def sub(patients):
            return w[:, [where[p] for p in patients]]

        dice_rep = dice_variants(columns, sub([s.patient for s in stats]))[dice_rule]
        t_rep = bootstrap_multiclass_balanced_accuracy(stages["t"][1], stages["t"][2], sub(stages["t"][0]))
        n_rep = bootstrap_multiclass_balanced_accuracy(stages["n"][1], stages["n"][2], sub(stages["n"][0]))
        c_rep = bootstrap_c_index(survival[1], survival[2], survival[3], sub(survival[0]))
        replicates = {"dice": (dice_rep["gtvp"] + dice_rep["gtvn"]) / 2, "stage_balanced_accuracy": (t_rep + n_rep) / 2,
                      "c_index": c_rep}
        interval = percentile_interval(bootstrap_weighted_score(replicates, weights), level)
        block["ci95"] = {"score": [None if math.isnan(interval.low) else interval.low,
                                   None if math.isnan(interval.high) else interval.high]}
    return block
