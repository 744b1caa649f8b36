"""Where each patient-level output comes from: one routing for ``predict``, the container, the demo
and the benchmark.

Per output (``risk``, ``hpv``, and any other output a staged model answers, e.g. ``t_stage``), in
order of preference:

1. ``stage``: the model folder's prognosis stage (``nnunet-hecktor prognosis build``), a model on
   features of the predicted, post-processed segmentation plus the clinical inputs of the edition;
2. ``clinical-only``: a staged model that takes no image feature;
3. ``heads``: the multi-task network's heads (the weakest source measured, see
   ``docs/evidence/learning-benchmark.md``);
4. none: the output is not written.

A multi-task model folder without a staged stage is routed to the heads with a warning that names
the command building the stage (:func:`missing_stage_warning`): a model folder copied or exported
with nnU-Net's own tools loses its ``prognosis/`` folder without notice.

``prediction`` never imports the prognosis stage (layer rules); a stage is anything with the
:class:`~nnunet_hecktor.prediction.patient_level.PatientLevelModel` interface.

Conventions: risk higher = earlier relapse; HPV 1 = positive.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from nnunet_hecktor.errors import HecktorError

STAGE = "stage"
CLINICAL_ONLY = "clinical-only"
HEADS = "heads"
#: Source kinds from the preferred to the least preferred.
SOURCE_KINDS: tuple[str, ...] = (STAGE, CLINICAL_ONLY, HEADS)
#: Outputs the heads of a multi-task network answer.
HEAD_OUTPUTS: tuple[str, ...] = ("risk", "hpv")
#: The command that builds and stages the prognosis stage of a model folder.
BUILD_COMMAND = "nnunet-hecktor prognosis build -m"
#: Sub-folder of a model folder holding the staged stage (``prognosis.deployment.STAGE_FOLDER``).
STAGE_FOLDER = "prognosis"
#: ``challenge_model.json`` (container settings) and the post-processing file a model folder may carry.
CONTAINER_SETTINGS_FILE = "challenge_model.json"
POSTPROCESSING_FILE = "postprocessing.json"


@dataclass(frozen=True)
class Route:
    """Where one output comes from.

    Attributes
    ----------
    output : str
        ``"risk"``, ``"hpv"``, ...
    kind : str or None
        One of :data:`SOURCE_KINDS`, or None (not written).
    detail : str
        The model's description (e.g. ``prognosis stage <folder>``), ``"network heads"`` or why none.
    """

    output: str
    kind: str | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"source": self.kind, "detail": self.detail}


@dataclass
class Routing:
    """The routes of a run and the warnings that come with them."""

    routes: dict[str, Route] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def kind(self, output: str) -> str | None:
        route = self.routes.get(output)
        return None if route is None else route.kind

    def to_json(self) -> dict[str, Any]:
        return {"outputs": {name: route.to_json() for name, route in self.routes.items()},
                "warnings": list(self.warnings)}

    def describe(self) -> str:
        parts = [f"{name} from {route.kind or 'nowhere (not written)'}"
                 + (f" ({route.detail})" if route.kind not in (None, HEADS) else "")
                 for name, route in self.routes.items()]
        return "; ".join(parts)


def route_outputs(heads_available: bool, stage=None, outputs: tuple[str, ...] = HEAD_OUTPUTS) -> Routing:
    """Decide the source of each patient-level output.

    Parameters
    ----------
    heads_available : bool
        The network has heads and they are predicted in this run.
    stage : PatientLevelModel, optional
        The staged patient-level models (or another folder given explicitly).
    outputs : tuple of str
        Outputs to route (the stage's own further outputs, e.g. T/N stage, are added).

    Returns
    -------
    Routing
    """
    provided = tuple(stage.outputs) if stage is not None else ()
    names = tuple(dict.fromkeys((*outputs, *provided)))
    routes = {}
    for name in names:
        if name in provided:
            kind_of = getattr(stage, "kind_of", None)
            kind = kind_of(name) if kind_of is not None else STAGE
            routes[name] = Route(name, kind, stage.source)
        elif heads_available and name in HEAD_OUTPUTS:
            routes[name] = Route(name, HEADS, "network heads")
        else:
            routes[name] = Route(name, None, "no source: no staged model answers it and the network has no heads"
                                 if not heads_available else "no staged model answers it")
    return Routing(routes)


def missing_stage_warning(model_dir: str | os.PathLike, multitask: bool, stage=None) -> str | None:
    """The warning for a multi-task model whose patient-level outputs fall back to the heads, else None.

    Also the message the challenge container logs for Tasks 2/3 in that case.
    """
    if not multitask:
        return None
    provided = set(stage.outputs) if stage is not None else set()
    missing = [o for o in HEAD_OUTPUTS if o not in provided]
    if not missing:
        return None
    where = Path(model_dir) / STAGE_FOLDER
    why = ("it has none" if not where.is_dir() else f"{where} holds no model for {' and '.join(missing)}")
    verb = "come" if len(missing) > 1 else "comes"
    return (f"{' and '.join(missing)} {verb} from the network heads, the weakest source measured: the model folder "
            f"{model_dir} has checkpoints but no staged prognosis stage ({why}; a model folder copied with "
            f"nnU-Net's own export loses it). Build it once with: {BUILD_COMMAND} {model_dir}")


def model_postprocessing_file(model_dir: str | os.PathLike) -> Path | None:
    """The post-processing JSON deployment applies for a model folder, or None.

    ``challenge_model.json``'s ``postprocessing`` entry (a file in the model folder) when set, else
    ``<model_dir>/postprocessing.json`` when present. ``prognosis build`` fits the stage on masks
    post-processed with this file, and ``predict`` applies it by default when the stage is in use.

    Raises
    ------
    HecktorError
        ``challenge_model.json`` is unreadable or names a file that does not exist.
    """
    model_dir = Path(model_dir)
    settings = model_dir / CONTAINER_SETTINGS_FILE
    if settings.is_file():
        try:
            data = json.loads(settings.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise HecktorError(f"{settings}: unreadable ({exc})") from None
        name = data.get("postprocessing") if isinstance(data, dict) else None
        if name:
            path = model_dir / name
            if not path.is_file():
                raise HecktorError(f"{settings} names the post-processing file {name}, which {model_dir} lacks")
            return path
    default = model_dir / POSTPROCESSING_FILE
    return default if default.is_file() else None


def postprocessing_mismatch(stage_rules: Mapping[str, Any] | None, used_rules: Mapping[str, Any] | None,
                            recorded: bool) -> str | None:
    """A warning when the run post-processes otherwise than the stage was fitted (``recorded``: the
    stage says how it was fitted), else None."""
    def normal(rules):
        return json.loads(json.dumps(rules, sort_keys=True)) if rules else None

    if not recorded or normal(stage_rules) == normal(used_rules):
        return None
    return ("the prognosis stage was fitted on masks post-processed with "
            f"{json.dumps(stage_rules, sort_keys=True) if stage_rules else 'no post-processing'} but this run uses "
            f"{json.dumps(used_rules, sort_keys=True) if used_rules else 'none'}: its risk/HPV will not match its "
            "cross-validated figures")


__all__ = ["CLINICAL_ONLY", "HEADS", "HEAD_OUTPUTS", "Route", "Routing", "SOURCE_KINDS", "STAGE",
           "missing_stage_warning", "model_postprocessing_file", "postprocessing_mismatch", "route_outputs"]
