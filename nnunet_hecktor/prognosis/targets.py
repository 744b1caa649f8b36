"""The patient-level targets of the prognosis stage, as data: what is fitted, staged and predicted.

One :class:`PatientTarget` per model the stage can hold (``survival`` -> ``risk``, ``hpv`` ->
``hpv_probability``/``hpv_status``). The one command that builds a stage
(``nnunet-hecktor prognosis build``), the staged folder (``<model>/prognosis/<name>.joblib``) and
deployment (:class:`~nnunet_hecktor.prognosis.deployment.StageModels`) iterate over this registry,
so a new target (e.g. T and N stage for HECKTOR 2026) is added by registering one more
:class:`PatientTarget` from its own module, listed in :data:`PLUGIN_MODULES`:

>>> from nnunet_hecktor.prognosis.targets import PatientTarget, register_target  # doctest: +SKIP
>>> register_target(PatientTarget(name="t_stage", outputs=("t_stage",), label_columns=("T-stage",),
...                               fit=fit_t_stage, predict=t_stage_outputs, figures=t_stage_figures,
...                               fallback=t_stage_fallback))  # doctest: +SKIP

Conventions: risk higher = earlier relapse; HPV 1 = positive.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from nnunet_hecktor import schema
from nnunet_hecktor.errors import HecktorError

#: Modules that register further targets when imported (each calls :func:`register_target`).
PLUGIN_MODULES: tuple[str, ...] = ("nnunet_hecktor.prognosis.stage_target",)


@dataclass(frozen=True)
class PatientTarget:
    """One patient-level model of the stage.

    Attributes
    ----------
    name : str
        Model task name (``PrognosisModel.task``) and stage file stem (``<name>.joblib``).
    outputs : tuple of str
        Routing outputs it answers (``"risk"``, ``"hpv"``, ...).
    label_columns : tuple of str
        Schema columns holding its labels; the target is fitted for an edition whose ``targets``
        hold all of them.
    fit : callable
        ``fit(clinical_csv, output_dir, features_csv=..., clinical_columns=..., n_splits=..., cv=...,
        random_state=..., progress=..., make_plots=...)`` -> an object with ``model``
        (:class:`~nnunet_hecktor.prognosis.model_store.PrognosisModel`), ``oof`` (DataFrame) and ``paths``.
    predict : callable
        ``predict(model, feature_table, records)`` -> DataFrame indexed by PatientID with the output
        columns (``risk``; ``hpv_probability``, ``hpv_status``; ...).
    figures : callable
        ``figures(oof, n_bootstrap, seed)`` -> cross-validated figures with 95 % bootstrap intervals.
    fallback : callable
        ``fallback(model)`` -> output columns -> value written when a patient cannot be predicted,
        on the model's own scale.
    """

    name: str
    outputs: tuple[str, ...]
    label_columns: tuple[str, ...]
    fit: Callable[..., Any]
    predict: Callable[..., Any]
    figures: Callable[..., dict]
    fallback: Callable[..., dict]

    @property
    def stage_file(self) -> str:
        return f"{self.name}.joblib"


_REGISTRY: dict[str, PatientTarget] = {}
_PLUGINS_LOADED = False


def register_target(target: PatientTarget) -> None:
    """Add ``target`` to the registry (a later registration of the same name replaces it)."""
    _REGISTRY[target.name] = target


def registered_targets() -> dict[str, PatientTarget]:
    """Name -> target, built-in ones first, then those of :data:`PLUGIN_MODULES`."""
    global _PLUGINS_LOADED
    if not _PLUGINS_LOADED:
        _PLUGINS_LOADED = True
        for module in PLUGIN_MODULES:
            importlib.import_module(module)
    return dict(_REGISTRY)


def get_target(name: str) -> PatientTarget:
    """The registered target ``name``.

    Raises
    ------
    HecktorError
        Unknown target (the known ones are named).
    """
    targets = registered_targets()
    if name not in targets:
        raise HecktorError(f"unknown patient-level target {name!r} (known: {', '.join(targets)})")
    return targets[name]


def targets_of_edition(edition_targets) -> list[PatientTarget]:
    """Registered targets whose label columns the edition scores (e.g. 2025: survival and HPV)."""
    scored = set(edition_targets)
    return [t for t in registered_targets().values() if set(t.label_columns) <= scored]


# ---- the built-in targets -------------------------------------------------------------------------


def _fit_survival(*args, **kwargs):
    from nnunet_hecktor.prognosis.survival_stage import fit_survival

    return fit_survival(*args, **kwargs)


def _predict_survival(model, feature_table, records):
    from nnunet_hecktor.prognosis.survival_stage import survival_risk

    return survival_risk(model, feature_table, records).to_frame()


def _survival_figures(oof, n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Pooled out-of-fold C-index of the final model with its bootstrap interval."""
    from nnunet_hecktor.metrics.bootstrap import bootstrap_c_index, percentile_interval, resampling_weights
    from nnunet_hecktor.metrics.survival import harrell_c_index

    time = oof[schema.COL_RFS].to_numpy(float)
    event = oof[schema.COL_RELAPSE].to_numpy(int).astype(bool)
    risk = oof["risk"].to_numpy(float)
    weights = resampling_weights(len(risk), n_bootstrap, seed)
    interval = percentile_interval(bootstrap_c_index(time, event, risk, weights))
    return {"c_index": harrell_c_index(time, event, risk), "c_index_ci95": [interval.low, interval.high],
            "n_patients": int(len(risk)), "n_events": int(event.sum())}


def _survival_fallback(model) -> dict:
    # Older models: 0, the mean of the standardised training risks (about their median).
    return {"risk": float(model.fallback.get("risk", 0.0))}


def _fit_hpv(*args, **kwargs):
    from nnunet_hecktor.prognosis.hpv_stage import fit_hpv

    return fit_hpv(*args, **kwargs)


def _predict_hpv(model, feature_table, records):
    from nnunet_hecktor.prognosis.hpv_stage import hpv_prediction

    return hpv_prediction(model, feature_table, records)[0]


def _hpv_figures(oof, n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Out-of-fold AUC and balanced accuracy (each fold's own threshold) with bootstrap intervals."""
    from nnunet_hecktor.metrics.bootstrap import bootstrap_binary, percentile_interval, resampling_weights
    from nnunet_hecktor.metrics.classification import binary_metrics

    y = oof[schema.COL_HPV].to_numpy(int)
    p = oof["hpv_probability"].to_numpy(float)
    status = oof["hpv_status_fold_threshold"].to_numpy(int)
    point = binary_metrics(y, status, p)
    replicates = bootstrap_binary(y, status, resampling_weights(len(y), n_bootstrap, seed), score=p)
    auc, ba = percentile_interval(replicates["auc"]), percentile_interval(replicates["balanced_accuracy"])
    return {"auc": point.auc, "auc_ci95": [auc.low, auc.high],
            "balanced_accuracy": point.balanced_accuracy, "balanced_accuracy_ci95": [ba.low, ba.high],
            "threshold": "each fold's own (chosen on its training rows)",
            "n_patients": int(len(y)), "n_positive": int(y.sum())}


def _hpv_fallback(model) -> dict:
    prevalence = float(model.fallback.get("hpv_probability", model.training_prevalence))
    return {"hpv_probability": prevalence, "hpv_status": int(model.fallback.get("hpv_status", prevalence >= 0.5))}


register_target(PatientTarget("survival", ("risk",), (schema.COL_RELAPSE, schema.COL_RFS), _fit_survival,
                              _predict_survival, _survival_figures, _survival_fallback))
register_target(PatientTarget("hpv", ("hpv",), (schema.COL_HPV,), _fit_hpv, _predict_hpv, _hpv_figures,
                              _hpv_fallback))
#: The targets this module registers itself (plugin modules add theirs on first use of the registry).
BUILTIN_TARGETS: tuple[str, ...] = tuple(_REGISTRY)

__all__ = ["BUILTIN_TARGETS", "PLUGIN_MODULES", "PatientTarget", "get_target", "register_target", "registered_targets",
           "targets_of_edition"]
