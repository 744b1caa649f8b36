"""T and N stage of one container case: the staged model when the model folder has one, else a fallback.

One function, :func:`predict_tn_stages`, is all the container calls; it takes the segmentation on
the CT grid (numpy ``z, y, x``, labels 0/1/2), its spacing and the clinical record, so the model
behind it can change without touching the container.

Staged model (``<model>/prognosis/staging.joblib``, :data:`STAGING_FILE`), either of:

- an object with ``predict_stages(segmentation, spacing, clinical) -> {"T-stage": ..., "N-stage": ...}``
  (the prognosis stage's own deployment object: it measures its own features);
- a dict ``{"features": [names], "T-stage": estimator, "N-stage": estimator}`` whose scikit-learn
  estimators take one row of :func:`stage_features` (plus clinical columns named in ``features``; a
  missing clinical value is NaN) and predict a stage label (``"T2"``) or its ordinal code (2).

Either may answer one stage only; the other then falls back. Returned values are parsed with
:func:`nnunet_hecktor.clinical.parse_stage` (``"T4a"`` -> ``"T4"``, codes -> labels).

Fallbacks (:class:`StageFallback`), when there is no staged model, it fails, or it answers nothing:

``"geometry"`` (default, when the segmentation was predicted)
    The size and count criteria of AJCC/UICC 7th edition on the predicted mask. T: greatest extent
    of the largest GTVp component <= 20 mm T1, <= 40 mm T2, else T3 (T4 is defined by invasion of
    neighbouring structures, which a mask cannot show). N: no GTVn N0; one node <= 30 mm N1; several
    nodes, or one of 30-60 mm, N2; any node > 60 mm N3. Greatest extent = the largest side of the
    component's bounding box in mm (a lower bound of its true diameter).
``"prevalence"`` (always used when there is no segmentation, or the mask has no GTVp for T)
    The most frequent stage of the training cohort: recorded in ``challenge_model.json``
    (``fallback.t_stage`` / ``n_stage``, by :mod:`.packaging` from a training table), else
    :data:`DEFAULT_T_STAGE` / :data:`DEFAULT_N_STAGE`.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from nnunet_hecktor import schema

logger = logging.getLogger(__name__)

#: File of a staged T/N model inside the model folder's prognosis-stage folder.
STAGING_FILE = "staging.joblib"
STAGING_FOLDER = "prognosis"
#: Most frequent stages assumed when the model folder records none: T2 and N2 are the modal classes
#: of oropharyngeal cancer cohorts such as HECKTOR's (AJCC 7th); a packaged model records its own.
DEFAULT_T_STAGE = "T2"
DEFAULT_N_STAGE = "N2"
STAGE_FALLBACK_RULES: tuple[str, ...] = ("geometry", "prevalence")
#: AJCC 7th edition size limits (mm) used by the geometry rule.
T_LIMITS_MM: tuple[float, float] = (20.0, 40.0)
N_LIMITS_MM: tuple[float, float] = (30.0, 60.0)

FEATURE_NAMES: tuple[str, ...] = ("gtvp_volume_ml", "gtvp_extent_mm", "gtvn_volume_ml", "gtvn_count",
                                  "gtvn_extent_mm")


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


def most_frequent_stages(records: Mapping[str, Mapping[str, Any]]) -> StageFallback:
    """The modal T and N stage of typed clinical records (ties: the lower stage); defaults when none."""
    def mode(column: str, default: str) -> tuple[str, int]:
        counts: dict[str, int] = {}
        for record in records.values():
            value = record.get(column)
            if value is not None:
                counts[value] = counts.get(value, 0) + 1
        if not counts:
            return default, 0
        stages = schema.STAGES_OF_COLUMN[column]
        return max(counts, key=lambda s: (counts[s], -stages.index(s))), sum(counts.values())

    t, n_t = mode(schema.COL_TSTAGE, DEFAULT_T_STAGE)
    n, n_n = mode(schema.COL_NSTAGE, DEFAULT_N_STAGE)
    return StageFallback(t, n, f"most frequent stage of the training table ({n_t} T, {n_n} N stages)")


@dataclass
class TNPrediction:
    """T and N stage of one case.

    Attributes
    ----------
    t_stage, n_stage : str
        Canonical labels (``schema.T_STAGES`` / ``N_STAGES``).
    sources : dict
        ``"T-stage"`` / ``"N-stage"`` -> where the value comes from (model file, rule, prevalence).
    features : dict
        :func:`stage_features` of the segmentation (empty without one).
    notes : list of str
        Why a fallback was used.
    """

    t_stage: str
    n_stage: str
    sources: dict[str, str] = field(default_factory=dict)
    features: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    import cc3d

    labels, count = cc3d.connected_components(mask.astype(np.uint8, copy=False), connectivity=26,
                                              return_N=True)
    return labels, int(count)


def _largest_extents_mm(mask: np.ndarray, spacing_zyx: np.ndarray) -> list[tuple[float, float]]:
    """(volume mL, greatest bounding-box side mm) of each 26-connected component, largest volume first."""
    from scipy import ndimage

    labels, count = _components(mask)
    if count == 0:
        return []
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    counts = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    out = []
    for index, box in enumerate(ndimage.find_objects(labels)):
        if box is None:
            continue
        sides = np.array([s.stop - s.start for s in box], dtype=float) * spacing_zyx
        out.append((float(counts[index]) * voxel_ml, float(sides.max())))
    return sorted(out, reverse=True)


def stage_features(segmentation: np.ndarray, spacing: Sequence[float]) -> dict[str, float]:
    """Geometry of a segmentation used by the fallback rule and by a dict-style staged model.

    Parameters
    ----------
    segmentation : ndarray
        Labels (numpy order z, y, x): 1 GTVp, 2 GTVn.
    spacing : sequence of float
        Voxel spacing in SimpleITK order (x, y, z), mm.

    Returns
    -------
    dict
        ``gtvp_volume_ml`` (all GTVp), ``gtvp_extent_mm`` (greatest bounding-box side of the largest
        GTVp component, 0 when none), ``gtvn_volume_ml``, ``gtvn_count`` (26-connected components),
        ``gtvn_extent_mm`` (greatest side over the nodes, 0 when none).
    """
    spacing_zyx = np.asarray(tuple(spacing)[::-1], dtype=float)
    gtvp = _largest_extents_mm(segmentation == 1, spacing_zyx)
    gtvn = _largest_extents_mm(segmentation == 2, spacing_zyx)
    return {"gtvp_volume_ml": sum(v for v, _ in gtvp), "gtvp_extent_mm": gtvp[0][1] if gtvp else 0.0,
            "gtvn_volume_ml": sum(v for v, _ in gtvn), "gtvn_count": float(len(gtvn)),
            "gtvn_extent_mm": max((e for _, e in gtvn), default=0.0)}


def geometry_rule(features: Mapping[str, float]) -> dict[str, str | None]:
    """AJCC 7th size/count criteria on :func:`stage_features` (T None when there is no GTVp)."""
    t = None
    if features["gtvp_volume_ml"] > 0:
        extent = features["gtvp_extent_mm"]
        t = "T1" if extent <= T_LIMITS_MM[0] else "T2" if extent <= T_LIMITS_MM[1] else "T3"
    count, extent = int(features["gtvn_count"]), features["gtvn_extent_mm"]
    if count == 0:
        n = "N0"
    elif extent > N_LIMITS_MM[1]:
        n = "N3"
    elif count > 1 or extent > N_LIMITS_MM[0]:
        n = "N2"
    else:
        n = "N1"
    return {schema.COL_TSTAGE: t, schema.COL_NSTAGE: n}


def staging_model_path(model_dir: str | os.PathLike | None) -> Path | None:
    """``<model>/prognosis/staging.joblib`` when it exists, else None."""
    if model_dir is None:
        return None
    path = Path(model_dir) / STAGING_FOLDER / STAGING_FILE
    return path if path.is_file() else None


def _model_row(names: Sequence[str], features: Mapping[str, float], clinical: Mapping[str, Any]) -> np.ndarray:
    row = []
    for name in names:
        value = features[name] if name in features else clinical.get(name)
        try:
            row.append(float(value) if value is not None else math.nan)
        except (TypeError, ValueError):
            row.append(math.nan)
    return np.asarray([row], dtype=float)


def _ask_model(model: Any, segmentation: np.ndarray, spacing: Sequence[float], features: Mapping[str, float],
               clinical: Mapping[str, Any]) -> dict[str, Any]:
    if hasattr(model, "predict_stages"):
        return dict(model.predict_stages(segmentation, tuple(spacing), dict(clinical)))
    if isinstance(model, Mapping) and "features" in model:
        X = _model_row(list(model["features"]), features, clinical)
        out = {}
        for column in (schema.COL_TSTAGE, schema.COL_NSTAGE):
            if model.get(column) is not None:
                out[column] = np.asarray(model[column].predict(X)).ravel()[0]
        return out
    raise TypeError(f"unsupported staging model object {type(model).__name__} (expected predict_stages() or a "
                    "dict with 'features' and per-stage estimators)")


def predict_tn_stages(segmentation: np.ndarray | None, spacing: Sequence[float] | None,
                      clinical: Mapping[str, Any] | None, model_dir: str | os.PathLike | None,
                      fallback: StageFallback | None = None, rule: str = "geometry") -> TNPrediction:
    """T and N stage of one case (see the module docstring); never raises for the case.

    Parameters
    ----------
    segmentation : ndarray or None
        Predicted labels on the CT grid (z, y, x; 1 GTVp, 2 GTVn); None when the segmentation failed.
    spacing : sequence of float or None
        CT spacing (x, y, z) in mm.
    clinical : mapping or None
        Typed clinical record (missing = None).
    model_dir : path-like or None
        Model folder that may hold ``prognosis/staging.joblib``.
    fallback : StageFallback, optional
        The training cohort's most frequent stages (default: :class:`StageFallback`).
    rule : {"geometry", "prevalence"}
        Fallback rule when the staged model gives no value and a segmentation exists.

    Returns
    -------
    TNPrediction
    """
    from nnunet_hecktor.clinical import parse_stage

    fallback = fallback or StageFallback()
    clinical = dict(clinical or {})
    values: dict[str, str | None] = {schema.COL_TSTAGE: None, schema.COL_NSTAGE: None}
    sources: dict[str, str] = {}
    notes: list[str] = []
    features: dict[str, float] = {}
    if segmentation is not None and spacing is not None:
        features = stage_features(np.asarray(segmentation), spacing)
    path = staging_model_path(model_dir)
    if path is not None and segmentation is not None:
        try:
            import joblib

            answer = _ask_model(joblib.load(path), np.asarray(segmentation), spacing, features, clinical)
            for column in values:
                if answer.get(column) is not None:
                    values[column] = parse_stage(column, answer[column])
                    sources[column] = f"staging model {path}"
        except Exception as exc:  # noqa: BLE001 - a failing model must not cost the case its stages
            notes.append(f"staging model {path} failed ({type(exc).__name__}: {exc}); fallback used")
            values = {column: None for column in values}
            sources = {}
    elif path is None:
        notes.append(f"no staging model ({STAGING_FOLDER}/{STAGING_FILE}) in the model folder; fallback used")
    else:
        notes.append("no segmentation: the staging model cannot run; fallback used")
    if rule not in STAGE_FALLBACK_RULES:
        raise ValueError(f"stage fallback rule {rule!r}: expected one of {', '.join(STAGE_FALLBACK_RULES)}")
    if rule == "geometry" and features:
        geometric = geometry_rule(features)
        for column, value in geometric.items():
            if values[column] is None and value is not None:
                values[column] = value
                sources[column] = "geometry rule (AJCC 7th size/count criteria on the predicted mask)"
    modal = {schema.COL_TSTAGE: fallback.t_stage, schema.COL_NSTAGE: fallback.n_stage}
    for column in values:
        if values[column] is None:
            values[column] = modal[column]
            sources[column] = f"most frequent training stage: {fallback.source}"
    return TNPrediction(str(values[schema.COL_TSTAGE]), str(values[schema.COL_NSTAGE]), sources, features, notes)
