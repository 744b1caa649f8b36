"""Where ``predict`` takes its patient-level outputs (risk, HPV) from: the network heads or a
patient-level model such as the prognosis stage.

``prediction`` never imports the prognosis stage (layer rules): the caller hands :func:`.api.predict`
an object with the :class:`PatientLevelModel` interface
(:class:`nnunet_hecktor.prognosis.deployment.StageModels`; the command line resolves it with
:func:`nnunet_hecktor.prognosis.deployment.resolve_stage_models`).
Which source answers each output is decided in :mod:`.routing`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, runtime_checkable

HEADS = "heads"
#: Columns of predictions.csv that keep the heads' outputs when another source fills the main ones.
HEAD_OUTPUT_COLUMNS: dict[str, str] = {"hpv_probability": "head_hpv_probability", "hpv_status": "head_hpv_status",
                                       "risk": "head_risk"}


@runtime_checkable
class PatientLevelModel(Protocol):
    """A model giving a patient's risk and/or HPV from its images, predicted segmentation and clinical record."""

    @property
    def source(self) -> str:
        """How the outputs are described in the settings and summary (e.g. ``prognosis stage <path>``)."""

    @property
    def outputs(self) -> tuple[str, ...]:
        """``"risk"`` and/or ``"hpv"``."""

    @property
    def clinical_columns(self) -> tuple[str, ...]:
        """Clinical columns to parse for it (besides the network's)."""

    def check_inputs(self, heads_available: bool) -> None:
        """Raise :class:`~nnunet_hecktor.errors.HecktorError` when its inputs cannot be produced."""

    def describe(self) -> str:
        """Lines for the log."""

    def kind_of(self, output: str) -> str:
        """``"stage"`` or ``"clinical-only"`` (:mod:`.routing`) for an output it provides."""

    def predict_patient(self, patient_id: str, ct, pet, segmentation, clinical: Mapping[str, Any] | None,
                        heads: Mapping[str, float] | None = None) -> dict[str, float]:
        """``risk`` and/or ``hpv_probability``, ``hpv_status`` of one patient."""


@dataclass(frozen=True)
class OutputSources:
    """Source of each patient-level output: ``"heads"``, the model's ``source``, or None (not written)."""

    risk: str | None
    hpv: str | None

    @classmethod
    def of(cls, heads: bool, model: PatientLevelModel | None) -> "OutputSources":
        provided = model.outputs if model is not None else ()

        def pick(name: str) -> str | None:
            if model is not None and name in provided:
                return model.source
            return HEADS if heads else None

        return cls(pick("risk"), pick("hpv"))

    @classmethod
    def of_routing(cls, routing) -> "OutputSources":
        """From a :class:`~nnunet_hecktor.prediction.routing.Routing`: ``"heads"``, the stage's source, or None."""
        def pick(name):
            route = routing.routes.get(name)
            return None if route is None or route.kind is None else (HEADS if route.kind == HEADS else route.detail)

        return cls(pick("risk"), pick("hpv"))

    def to_json(self) -> dict[str, str | None]:
        return {"risk": self.risk, "hpv": self.hpv}

    def describe(self) -> str:
        return f"risk from {self.risk or 'nowhere (not written)'}; HPV from {self.hpv or 'nowhere (not written)'}"
