"""T and N stage of one container case: the staged prognosis stage when it answers, else a fallback.

The container has no staging model format of its own. T and N come, in this order, from:

1. **the staged prognosis stage** (``<model>/prognosis/stage.joblib``, put there by
   ``nnunet-hecktor prognosis build`` / ``prognosis stage --tn-stage``), when
   :func:`~nnunet_hecktor.prediction.routing.route_outputs` routes ``t_stage`` / ``n_stage`` to it:
   the values of :meth:`~nnunet_hecktor.prognosis.deployment.StageModels.predict_patient` on the
   predicted segmentation (the same call that gives the risk, :mod:`.run2026`), passed in here as
   ``stage_values``;
2. ``"geometry"`` (default, when a segmentation was predicted): the AJCC/UICC 7th-edition size,
   count and laterality rule :func:`~nnunet_hecktor.prognosis.staging_rules.ajcc7_rule_stage` on
   :func:`~nnunet_hecktor.prognosis.stage_geometry.stage_geometry_features` of the predicted mask
   (the rule the staging model is compared with in ``staging fit``). A mask without GTVp gives no T
   here (the rule would say T0, which a missed primary far more often is than a true T0 in a
   HECKTOR cohort): T then comes from 3;
3. ``"prevalence"`` (always the last step): the most frequent training stage, from the stage's
   own :meth:`~nnunet_hecktor.prognosis.deployment.StageModels.fallback` when a T/N model is
   staged, else recorded by :mod:`.packaging` in ``challenge_model.json`` (``fallback.t_stage`` /
   ``n_stage``), else :data:`DEFAULT_T_STAGE` / :data:`DEFAULT_N_STAGE`.

Stages are the canonical labels of :data:`nnunet_hecktor.schema.T_STAGES` / ``N_STAGES``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping

from nnunet_hecktor import schema

logger = logging.getLogger(__name__)

#: Most frequent stages assumed when neither the stage nor the model folder records any: T2 and N2 are
#: the modal classes of oropharyngeal cancer cohorts such as HECKTOR's (AJCC 7th).
DEFAULT_T_STAGE = "T2"
DEFAULT_N_STAGE = "N2"
STAGE_FALLBACK_RULES: tuple[str, ...] = ("geometry", "prevalence")
#: Source named for a value of the geometry rule.
GEOMETRY_SOURCE = "geometry rule (AJCC 7th ajcc7_rule_stage on the predicted mask)"
#: Output name of each stage column (``t-stage.json`` / ``n-stage.json``; the stage target's outputs).
STAGE_OUTPUTS: dict[str, str] = {schema.COL_TSTAGE: "t_stage", schema.COL_NSTAGE: "n_stage"}


@dataclass(frozen=True)
class StageFallback:
    """Most frequent T and N stage of the training cohort, and where they come from."""

    t_stage: str = DEFAULT_T_STAGE
    n_stage: str = DEFAULT_N_STAGE
    source: str = "default (T2/N2, the modal stages of oropharyngeal cohorts)"

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> "StageFallback":
        """From ``challenge_model.json``'s ``fallback`` entry (keys ``t_stage``, ``n_stage``, ``stage_source``)."""
        from nnunet_hecktor.clinical import parse_stage

        if not data or not (data.get("t_stage") or data.get("n_stage")):
            return cls()
        t = parse_stage(schema.COL_TSTAGE, data.get("t_stage")) or DEFAULT_T_STAGE
        n = parse_stage(schema.COL_NSTAGE, data.get("n_stage")) or DEFAULT_N_STAGE
        return cls(t, n, str(data.get("stage_source", "challenge_model.json")))


def stage_fallback(stage=None, recorded: Mapping[str, Any] | None = None) -> StageFallback:
    """The prevalence fallback of a run: the staged T/N model's own (``StageModels.fallback()``, its most
    frequent training stages) when ``stage`` has a T/N model that recorded them, else ``recorded``
    (``challenge_model.json``'s ``fallback``), else T2/N2."""
    from nnunet_hecktor.clinical import parse_stage

    staged = stage.models.get("stage") if stage is not None else None
    # A T/N model saved before models recorded their fallback has none (its default would be T0/N0).
    if staged is not None and all(o in (staged.fallback or {}) for o in STAGE_OUTPUTS.values()):
        values = stage.fallback()
        t = parse_stage(schema.COL_TSTAGE, values.get("t_stage")) or DEFAULT_T_STAGE
        n = parse_stage(schema.COL_NSTAGE, values.get("n_stage")) or DEFAULT_N_STAGE
        return StageFallback(t, n, f"the staged T/N model's training prevalence ({stage.source})")
    return StageFallback.from_json(recorded)


def most_frequent_stages(records: Mapping[str, Mapping[str, Any]]) -> StageFallback:
    """The modal T and N stage of typed clinical records (the stage target's rule,
    :func:`nnunet_hecktor.prognosis.stage_target.most_frequent_stages`); T2/N2 when a column has none."""
    from nnunet_hecktor.prognosis.stage_target import most_frequent_stages as modal

    labels = {column: [r.get(column) for r in records.values()] for column in STAGE_OUTPUTS}
    counts = {column: sum(isinstance(v, str) and bool(v) for v in values) for column, values in labels.items()}
    found = modal(labels)
    t = found["t_stage"] if counts[schema.COL_TSTAGE] else DEFAULT_T_STAGE
    n = found["n_stage"] if counts[schema.COL_NSTAGE] else DEFAULT_N_STAGE
    return StageFallback(t, n, f"most frequent stage of the training table ({counts[schema.COL_TSTAGE]} T, "
                               f"{counts[schema.COL_NSTAGE]} N stages)")


@dataclass
class TNPrediction:
    """T and N stage of one case.

    Attributes
    ----------
    t_stage, n_stage : str
        Canonical labels (``schema.T_STAGES`` / ``N_STAGES``).
    sources : dict
        ``"T-stage"`` / ``"N-stage"`` -> where the value comes from (stage, rule, prevalence).
    features : dict
        :func:`~nnunet_hecktor.prognosis.stage_geometry.stage_geometry_features` of the mask (empty when
        the rule did not run).
    notes : list of str
        Why a fallback was used.
    """

    t_stage: str
    n_stage: str
    sources: dict[str, str] = field(default_factory=dict)
    features: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def from_prevalence(self, column: str) -> bool:
        """Whether ``column``'s value is the prevalence fallback (not a prediction for this case)."""
        return self.sources.get(column, "").startswith("most frequent")


def mask_geometry(segmentation, ct=None) -> dict[str, float]:
    """:func:`~nnunet_hecktor.prognosis.stage_geometry.stage_geometry_features` of a SimpleITK label image
    (0/1/2); ``ct`` (SimpleITK, HU) locates the body midline when it lies on the same grid."""
    import SimpleITK as sitk

    from nnunet_hecktor.dataset_conversion.geometry import same_grid
    from nnunet_hecktor.prognosis.stage_geometry import stage_geometry_features

    ct_array = sitk.GetArrayViewFromImage(ct) if ct is not None and same_grid(segmentation, ct) else None
    return stage_geometry_features(sitk.GetArrayViewFromImage(segmentation), segmentation.GetSpacing()[::-1],
                                   segmentation.GetOrigin(), segmentation.GetDirection(), ct=ct_array)


def predict_tn_stages(segmentation, stage_values: Mapping[str, Any] | None = None, ct=None,
                      fallback: StageFallback | None = None, rule: str = "geometry",
                      stage_source: str = "prognosis stage") -> TNPrediction:
    """T and N stage of one case (see the module docstring); never raises for the case.

    Parameters
    ----------
    segmentation : SimpleITK.Image or None
        Predicted labels (0 background, 1 GTVp, 2 GTVn), post-processed as deployed; None when the
        segmentation failed.
    stage_values : mapping, optional
        The staged stage's outputs for this case (``t_stage`` / ``n_stage`` of
        ``StageModels.predict_patient``) when the routing sends T/N to it; None otherwise.
    ct : SimpleITK.Image, optional
        CT (HU) on the segmentation's grid, for the body midline of the laterality features.
    fallback : StageFallback, optional
        The prevalence fallback (:func:`stage_fallback`; default T2/N2).
    rule : {"geometry", "prevalence"}
        Fallback when the stage gives no value and a segmentation exists.
    stage_source : str
        Recorded as the source of the stage's values.

    Returns
    -------
    TNPrediction
    """
    from nnunet_hecktor.clinical import parse_stage
    from nnunet_hecktor.prognosis.staging_rules import ajcc7_rule_stage

    if rule not in STAGE_FALLBACK_RULES:
        raise ValueError(f"stage fallback rule {rule!r}: expected one of {', '.join(STAGE_FALLBACK_RULES)}")
    fallback = fallback or StageFallback()
    values: dict[str, str | None] = dict.fromkeys(STAGE_OUTPUTS)
    sources: dict[str, str] = {}
    notes: list[str] = []
    for column, name in STAGE_OUTPUTS.items():
        value = parse_stage(column, (stage_values or {}).get(name))
        if value is not None:
            values[column], sources[column] = value, stage_source
    features: dict[str, float] = {}
    if any(v is None for v in values.values()):
        if stage_values is None:
            notes.append("no staged T/N model answers (prognosis/stage.joblib); fallback used")
        if segmentation is None:
            notes.append("no segmentation: the stages are the training prevalence")
        elif rule == "geometry":
            try:
                features = mask_geometry(segmentation, ct)
            except Exception as exc:  # noqa: BLE001 - a failing measurement must not cost the case its stages
                notes.append(f"geometry rule failed ({type(exc).__name__}: {exc}); prevalence used")
            if features:
                t, n = ajcc7_rule_stage(features)
                rule_values = {schema.COL_TSTAGE: t if features["gtvp_max_diameter_mm"] > 0 else None,
                               schema.COL_NSTAGE: n}
                for column, value in rule_values.items():
                    if values[column] is None and value is not None:
                        values[column], sources[column] = value, GEOMETRY_SOURCE
    modal = {schema.COL_TSTAGE: fallback.t_stage, schema.COL_NSTAGE: fallback.n_stage}
    for column in values:
        if values[column] is None:
            values[column] = modal[column]
            sources[column] = f"most frequent training stage: {fallback.source}"
    return TNPrediction(str(values[schema.COL_TSTAGE]), str(values[schema.COL_NSTAGE]), sources, features, notes)
