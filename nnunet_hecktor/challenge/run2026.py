"""``nnunet-hecktor challenge --edition 2026``: one container run writes the four HECKTOR 2026 outputs.

Outputs (paths from ``nnunet_hecktor.editions``, edition ``"2026"``, under ``/output``):

``images/head-neck-tumor-segmentation/output.mha``
    uint8 {0 background, 1 GTVp, 2 GTVn} on the original CT grid.
``t-stage.json`` / ``n-stage.json``
    one JSON string, ``"T0"``..``"T4"`` / ``"N0"``..``"N3"`` (:mod:`.staging`).
``rfs.json``
    one JSON float; by default ``-risk`` (``rfs_convention="time"``: anti-concordant with the risk, as
    the organisers' README describes the value), or the risk (``"risk"``). :mod:`.outputs`.

Order of work, so that a case never ends without its outputs, even when killed:

1. the output folder is proven writable (:func:`.outputs.check_output_folder`);
2. **the fallback outputs are written first** (unless ``strict``): an empty mask on the CT grid read
   from the CT file's header, the training cohort's most frequent T and N stage, and the cohort's
   median risk on the model's own scale (written with the chosen convention). Once the staged
   prognosis stage is loaded, the fallbacks of the outputs it answers are rewritten with its own
   (:meth:`~nnunet_hecktor.prognosis.deployment.StageModels.fallback`, on the stage's scale). A kill
   for memory or time later leaves these valid files;
3. the model is loaded, the input read (``ehr.json`` tolerantly, :mod:`.ehr`; every model input
   without a value is named in one warning);
4. a CT too long or too large is cropped to the head and neck (:func:`.guards.long_ct_crop`);
5. the time guard chooses folds and mirroring to fit the budget (:func:`.guards.plan_sliding_window`);
6. segmentation, then the patient-level outputs by the one routing of ``nnunet-hecktor predict``
   (:func:`~nnunet_hecktor.prediction.routing.route_outputs`): the staged prognosis stage
   (``<model>/prognosis/``, :func:`~nnunet_hecktor.prognosis.deployment.resolve_stage_models`) answers
   ``risk`` / ``t_stage`` / ``n_stage`` when it has a model for them, by one call of
   :meth:`~nnunet_hecktor.prognosis.deployment.StageModels.predict_patient` on the predicted
   segmentation, the CT/PET the network saw and the ``ehr.json`` record (HPV status included);
   the risk otherwise comes from the network's risk head (with
   :func:`~nnunet_hecktor.prediction.routing.missing_stage_warning` for a multi-task model without
   a stage), T/N from the geometry rule, then the prevalence (:mod:`.staging`). Each output
   replaces its fallback only after it was written and checked (:mod:`.outputs`); its source is
   recorded (:attr:`Challenge2026Result.sources`) and logged.

A failing step is logged with its reason and its outputs keep the fallback (exit code 0);
``strict=True`` raises instead. Problems that are not the case's (an unwritable or full output
folder, a model folder that cannot be loaded) raise :class:`~nnunet_hecktor.errors.HecktorError`.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from nnunet_hecktor import schema

from .guards import DEFAULT_TIME_BUDGET_S, LONG_CT_MM, MAX_CT_VOXELS, TimeBudget
from .outputs import DEFAULT_RFS_CONVENTION, check_output_folder, rfs_value, write_image_output, write_json_output
from .run import _CaseSteps, _info, caches_in_temporary_folder, read_model_defaults

logger = logging.getLogger(__name__)

EDITION = "2026"
OUTPUT_NAMES: tuple[str, ...] = ("segmentation", "t_stage", "n_stage", "rfs")
#: Patient-level outputs routed by :func:`~nnunet_hecktor.prediction.routing.route_outputs` (``risk`` -> rfs.json).
PATIENT_OUTPUTS: tuple[str, ...] = ("risk", "t_stage", "n_stage")


@dataclass
class Challenge2026Result:
    """What one 2026 container run produced.

    Attributes
    ----------
    outputs : dict
        Output name (``segmentation``, ``t_stage``, ``n_stage``, ``rfs``) -> file written.
    t_stage, n_stage : str or None
    risk : float or None
        Higher = earlier relapse (the model's scale).
    rfs_value : float or None
        The number in ``rfs.json`` (``-risk`` under the ``"time"`` convention).
    rfs_convention : str
    fallback : dict
        Output name -> what was written instead of a prediction.
    errors : list of str
        Failed steps, with the reason.
    notes : list of str
    substitutions : list of ClinicalSubstitution
    missing_inputs : tuple of str
        Model inputs without a value in ``ehr.json``.
    plan : InferencePlan or None
        The time guard's choice.
    crop : CropRecord or None
        The head-and-neck crop of a long CT.
    stage_sources : dict
        ``T-stage`` / ``N-stage`` -> where the value comes from.
    sources : dict
        Output name -> where the written value comes from: ``"network"`` (segmentation), ``"stage: <prognosis
        stage folder>"`` / ``"clinical-only: ..."`` / ``"heads: ..."`` (routing), the geometry rule, or
        ``"fallback"``.
    routing : dict
        :meth:`Routing.to_json` of the run (source of ``risk``, ``t_stage``, ``n_stage`` and its warnings).
    model_dir : Path
    seconds : float
    """

    outputs: dict[str, Path] = field(default_factory=dict)
    t_stage: str | None = None
    n_stage: str | None = None
    risk: float | None = None
    rfs_value: float | None = None
    rfs_convention: str = DEFAULT_RFS_CONVENTION
    fallback: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    substitutions: list = field(default_factory=list)
    missing_inputs: tuple[str, ...] = ()
    plan: object = None
    crop: Any = None  # the long-CT crop record (dataset_conversion.cropping.CropRecord), None when uncropped
    stage_sources: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    routing: dict = field(default_factory=dict)
    model_dir: Path | None = None
    seconds: float = 0.0


def output_paths(output_dir: str | os.PathLike) -> dict[str, Path]:
    """Output name -> absolute path, from the 2026 edition contract."""
    from nnunet_hecktor.editions import get_edition

    return {name: Path(output_dir) / rel for name, rel in get_edition(EDITION).container_outputs.items()}


def model_input_columns(stage=None) -> tuple[str, ...]:
    """``ehr.json`` keys read: the 2026 test inputs, the network heads' inputs, the stage's columns."""
    from nnunet_hecktor.clinical import MODEL_INPUT_COLUMNS
    from nnunet_hecktor.editions import get_edition

    columns = dict.fromkeys(get_edition(EDITION).test_inputs)
    columns.update(dict.fromkeys(MODEL_INPUT_COLUMNS))
    if stage is not None:
        columns.update(dict.fromkeys(stage.clinical_columns))
    columns.pop(schema.COL_CENTER, None)
    return tuple(columns)


def run_challenge_2026(input_dir: str | os.PathLike, output_dir: str | os.PathLike, model_dir: str | os.PathLike,
                       folds: Sequence | None = None, checkpoint: str | None = None, device: str = "auto",
                       postprocessing: str | os.PathLike | None = None, use_mirroring: bool = True,
                       tile_step_size: float = 0.5, verbose: bool = True, strict: bool = False,
                       rfs_convention: str = DEFAULT_RFS_CONVENTION, time_budget_s: float = DEFAULT_TIME_BUDGET_S,
                       stage_rule: str = "geometry", long_ct_mm: float | None = LONG_CT_MM,
                       max_ct_voxels: int | None = MAX_CT_VOXELS,
                       budget_start: float | None = None) -> Challenge2026Result:
    """Run the 2026 container's job (module docstring): ``input_dir`` -> the four outputs in ``output_dir``.

    Parameters
    ----------
    input_dir, output_dir : path-like
        ``/input`` (``images/ct/*.mha``, ``images/pet/*.mha``, ``ehr.json``) and ``/output``.
    model_dir : path-like
        Model folder (see :func:`.model_location.resolve_model_dir` for the container's choice).
    folds, checkpoint, postprocessing, device, use_mirroring, tile_step_size
        As for :func:`nnunet_hecktor.challenge.run.run_challenge` (defaults from ``challenge_model.json``).
    verbose : bool
    strict : bool
        Raise on the first failure of the case; no fallback written.
    rfs_convention : {"time", "risk"}
        ``rfs.json`` holds ``-risk`` (default, anti-concordant with risk) or the risk.
    time_budget_s : float
        Seconds for the whole case, counted from ``budget_start`` (``time.monotonic()``; default: now).
    stage_rule : {"geometry", "prevalence"}
        T/N fallback when no staging model answers.
    long_ct_mm, max_ct_voxels : float, int or None
        Crop CTs longer / larger than this to the head and neck (None: never on that criterion).

    Raises
    ------
    HecktorError
        Unwritable or full output folder, a model folder that cannot be loaded, a bad option; with
        ``strict``, any failure of the case.
    """
    from nnunet_hecktor.errors import HecktorError

    from .outputs import RFS_CONVENTIONS
    from .staging import STAGE_FALLBACK_RULES

    if rfs_convention not in RFS_CONVENTIONS:
        raise HecktorError(f"rfs convention {rfs_convention!r}: expected one of {', '.join(RFS_CONVENTIONS)}")
    if stage_rule not in STAGE_FALLBACK_RULES:
        raise HecktorError(f"stage fallback {stage_rule!r}: expected one of {', '.join(STAGE_FALLBACK_RULES)}")
    budget = TimeBudget(time_budget_s, budget_start)
    with caches_in_temporary_folder():
        return _run(input_dir, output_dir, Path(model_dir).expanduser(), folds, checkpoint, device, postprocessing,
                    use_mirroring, tile_step_size, verbose, strict, rfs_convention, budget, stage_rule, long_ct_mm,
                    max_ct_voxels)


def _fallback_risk(model_dir: Path, folds, defaults: dict, stage=None, routing=None) -> tuple[float, str]:
    """The rfs fallback (risk, where it comes from) on the scale of the risk's source: the staged survival
    model's own (:meth:`StageModels.fallback`) when the routing sends the risk to the stage, else the
    network heads' out-of-fold median recorded in (or computed for) the model folder."""
    from nnunet_hecktor.prediction.model import available_folds
    from nnunet_hecktor.prediction.routing import CLINICAL_ONLY, STAGE

    from .run import _model_fallback

    if stage is not None and routing is not None and routing.kind("risk") in (STAGE, CLINICAL_ONLY):
        return float(stage.fallback()["risk"]), f"training median risk of the staged survival model, {stage.source}"
    if not folds:
        folds = sorted(available_folds(model_dir), key=str) if model_dir.is_dir() else [0]
    values = _model_fallback(model_dir, folds, defaults)
    return values.risk, f"training cohort median risk ({values.risk_source})"


def _write_fallbacks(names, paths: dict[str, Path], input_dir, model_dir: Path, folds, defaults: dict,
                     convention: str, result: Challenge2026Result, stage=None, routing=None) -> None:
    """Write the fallback output of each of ``names`` (raises OutputWriteError when that fails).

    ``stage`` / ``routing``: the staged prognosis stage and the routing of the run; the fallback of an
    output the stage answers is the stage's own (:meth:`StageModels.fallback`, on its scale).
    """
    from .fallback import empty_segmentation_for
    from .io import find_ct_file
    from .staging import stage_fallback

    stages = stage_fallback(stage, defaults.get("fallback"))
    for name in names:
        if name == "segmentation":
            mask, grid = empty_segmentation_for(find_ct_file(input_dir))
            write_image_output(mask, paths[name])
            del mask
            result.fallback[name] = f"empty mask on {grid}"
        elif name in ("t_stage", "n_stage"):
            value = stages.t_stage if name == "t_stage" else stages.n_stage
            write_json_output(value, paths[name])
            result.fallback[name] = f"{value} (most frequent training stage: {stages.source})"
        else:
            risk, why = _fallback_risk(model_dir, folds, defaults, stage, routing)
            written = rfs_value(risk, convention)
            write_json_output(written, paths[name])
            result.fallback[name] = f"{written:.6g} = {why} {risk:.6g}, convention {convention}"
        result.outputs[name] = paths[name]
        result.sources[name] = "fallback"


def _routing(model_dir: Path, stage, heads_available: bool, multitask: bool | None):
    """:func:`~nnunet_hecktor.prediction.routing.route_outputs` of the container's patient-level outputs, with
    :func:`~nnunet_hecktor.prediction.routing.missing_stage_warning` when ``multitask`` is known."""
    from nnunet_hecktor.prediction.routing import missing_stage_warning, route_outputs

    routing = route_outputs(heads_available, stage, PATIENT_OUTPUTS)
    if multitask is not None:
        message = missing_stage_warning(model_dir, multitask, stage)
        if message is not None:
            routing.warnings.append(message)
    return routing


def _describe_routing(routing, stage_rule: str) -> str:
    """``Routing.describe`` with the container's own fallbacks named (T/N are always written)."""
    rule = "the geometry rule, else " if stage_rule == "geometry" else ""
    parts = []
    for name in PATIENT_OUTPUTS:
        route = routing.routes[name]
        if route.kind is not None:
            parts.append(f"{name} from {route.kind}" + (f" ({route.detail})" if route.kind != "heads" else ""))
        elif name in ("t_stage", "n_stage"):
            parts.append(f"{name} from {rule}the training prevalence (no staged T/N model)")
        else:
            parts.append(f"{name}: the fallback ({route.detail})")
    return "; ".join(parts)


def _stage_answers(routing) -> tuple[str, ...]:
    from nnunet_hecktor.prediction.routing import CLINICAL_ONLY, STAGE

    return tuple(name for name in PATIENT_OUTPUTS if routing.kind(name) in (STAGE, CLINICAL_ONLY))


def _run(input_dir, output_dir, model_dir: Path, folds, checkpoint, device, postprocessing, use_mirroring,
         tile_step_size, verbose, strict, convention, budget: TimeBudget, stage_rule, long_ct_mm,
         max_ct_voxels) -> Challenge2026Result:
    from nnunet_hecktor.errors import HecktorError
    from nnunet_hecktor.prediction.routing import HEADS

    from .io import find_ct_file, image_stem, read_challenge_input
    from .run import _postprocessing_mismatch

    start = time.perf_counter()
    output = check_output_folder(output_dir)
    paths = output_paths(output)
    result = Challenge2026Result(rfs_convention=convention, model_dir=model_dir)
    defaults = read_model_defaults(model_dir)
    folds = folds if folds else defaults.get("folds")
    checkpoint = checkpoint or defaults.get("checkpoint")
    if postprocessing is None and defaults.get("postprocessing"):
        postprocessing = model_dir / defaults["postprocessing"]
    ct_file = find_ct_file(input_dir)
    case_id = image_stem(ct_file) if ct_file is not None else Path(input_dir).name
    if not strict:
        _write_fallbacks(OUTPUT_NAMES, paths, input_dir, model_dir, folds, defaults, convention, result)
        _info(verbose, "case %s: fallback outputs written first (replaced by each prediction as it is checked)",
              case_id)

    from nnunet_hecktor.prediction.predictor import HecktorPredictor
    from nnunet_hecktor.prognosis.deployment import resolve_stage_models

    stage = resolve_stage_models(model_dir)
    routing = _routing(model_dir, stage, False, None)
    stage_outputs = _stage_answers(routing)
    if stage_outputs and not strict:  # the fallbacks of the stage's outputs on the stage's own scale
        _write_fallbacks([n for n in OUTPUT_NAMES if n in stage_outputs or (n == "rfs" and "risk" in stage_outputs)],
                         paths, input_dir, model_dir, folds, defaults, convention, result, stage, routing)
    pp_config = None
    if postprocessing is not None:
        from nnunet_hecktor.postprocessing.config import load_config

        pp_config = load_config(postprocessing)
    model = HecktorPredictor(model_dir, folds, checkpoint, device, use_mirroring, tile_step_size,
                             heads_if_present=True)
    if stage is not None:
        stage.check_inputs(model.predict_heads)
    routing = _routing(model_dir, stage, model.predict_heads, model.info.multitask)
    mismatch = _postprocessing_mismatch(stage, pp_config)
    if mismatch is not None:
        routing.warnings.append(mismatch)
    result.routing = routing.to_json()
    _info(verbose, "%s", model.info.describe())
    if stage is not None:
        _info(verbose, "%s", stage.describe())
    _info(verbose, "patient-level outputs: %s", _describe_routing(routing, stage_rule))
    for message in routing.warnings:
        logger.warning("%s", message)
    if routing.kind("risk") is None:
        logger.error("model %s has no risk head and no prognosis-stage survival model: rfs.json keeps the "
                     "fallback for every case", model_dir)
    steps = _CaseSteps(result, strict)  # type: ignore[arg-type]
    case = None
    with steps.step("reading the input", case_id):
        case = read_challenge_input(input_dir, read_ehr=True, columns=model_input_columns(stage))
        case_id = case.case_id
        result.notes += case.notes
        result.substitutions = list(case.substitutions)
        result.missing_inputs = case.missing_inputs
        _log_input(case, verbose)
    prediction = None
    if case is not None:
        with steps.step("segmentation", case_id):
            prediction = _segment(model, case, result, budget, use_mirroring, long_ct_mm, max_ct_voxels, verbose)
    segmentation = None  # on the grid the network saw around (the long-CT crop's grid, else the CT's)
    if prediction is not None:
        with steps.step("segmentation export", case_id):
            segmentation = _export(model, prediction, pp_config, case)
            full = segmentation
            if result.crop is not None:
                from nnunet_hecktor.dataset_conversion import uncrop_to_original

                full = uncrop_to_original(segmentation, result.crop)
            write_image_output(full, paths["segmentation"])
            del full
            _predicted(result, "segmentation", paths, "network")
    heads = None
    if prediction is not None and model.predict_heads:
        with steps.step("risk head", case_id):
            heads = _heads(model, prediction, case)
    stage_values = None
    if prediction is not None and stage_outputs:
        with steps.step("prognosis stage", case_id):
            if segmentation is None or stage is None:
                raise HecktorError("no segmentation to measure for the prognosis stage")
            # The call of 'nnunet-hecktor predict': features on the grid the network saw (the converted CT
            # and the PET resampled onto it), the clinical record with the edition's inputs (HPV included).
            prepared = prediction[0].prepared
            stage_values = stage.predict_patient(case.case_id, prepared.ct, prepared.pet, segmentation,
                                                 case.clinical, heads)
    risk, risk_source = None, None
    if "risk" in stage_outputs and stage_values is not None and stage is not None:
        risk, risk_source = stage_values["risk"], f"{routing.kind('risk')}: {stage.source}"
    elif routing.kind("risk") == HEADS and heads is not None:
        risk, risk_source = heads["risk"], "heads: network risk head"
    if risk is not None and risk_source is not None:
        with steps.step("risk", case_id):
            result.risk = float(risk)
            result.rfs_value = rfs_value(risk, convention)
            write_json_output(result.rfs_value, paths["rfs"])
            _predicted(result, "rfs", paths, risk_source)
    with steps.step("T/N stage", case_id):
        tn_values = None
        if stage_values is not None and ("t_stage" in stage_outputs or "n_stage" in stage_outputs):
            tn_values = {name: stage_values.get(name) for name in ("t_stage", "n_stage") if name in stage_outputs}
        _stages(segmentation, case, tn_values, stage if stage_outputs else None, routing, defaults, stage_rule,
                paths, result)
    missing = [name for name in OUTPUT_NAMES if name not in result.outputs]
    if missing:  # strict mode without a risk source: the rfs fallback, as the other modes write it
        _write_fallbacks(missing, paths, input_dir, model_dir, model.info.folds, defaults, convention, result,
                         stage, routing)
    result.seconds = time.perf_counter() - start
    _log_summary(result, case_id, verbose, budget)
    return result


def _predicted(result: Challenge2026Result, name: str, paths: dict[str, Path], source: str) -> None:
    result.outputs[name] = paths[name]
    result.fallback.pop(name, None)
    result.sources[name] = source


def _log_input(case, verbose: bool) -> None:
    _info(verbose, "case %s: CT %s (size %s), PET %s, ehr.json %s", case.case_id, case.ct_path.name,
          "x".join(map(str, case.ct.GetSize())), case.pet_path.name, "present" if case.ehr_path else "absent")
    for note in case.notes:
        logger.log(logging.WARNING if "not strict JSON" in note or "nested" in note or "top-level" in note
                   else logging.INFO, "case %s: %s", case.case_id, note)
    for s in case.substitutions:
        logger.log(logging.WARNING if s.is_missing else logging.INFO, "case %s: ehr.json %s", case.case_id,
                   s.describe())
    from nnunet_hecktor.editions import get_edition

    supplied = get_edition(EDITION).test_inputs
    expected = [c for c in case.missing_inputs if c in supplied]
    if expected:
        logger.warning("case %s: no value for model input(s) %s (treated as missing)", case.case_id,
                       ", ".join(expected))
    others = [c for c in case.missing_inputs if c not in supplied]
    if others and verbose:
        logger.info("case %s: model input(s) %s are not part of the 2026 input (missing, as expected)",
                    case.case_id, ", ".join(others))


def _segment(model, case, result: Challenge2026Result, budget: TimeBudget, use_mirroring: bool,
             long_ct_mm, max_ct_voxels, verbose: bool):
    from nnunet_hecktor.dataset_conversion import apply_crop
    from nnunet_hecktor.prediction.preparation import prepare_images

    from .guards import apply_plan, long_ct_crop, plan_sliding_window

    ct = case.ct
    record = long_ct_crop(case.case_id, ct, case.pet, long_ct_mm, max_ct_voxels)
    if record is not None:
        ct = apply_crop(ct, record, "CT")
        result.crop = record
        message = (f"{record.details['why']}: index {tuple(record.index_start)}-{tuple(record.index_stop)} "
                   f"({record.details.get('rule', '')})")
        result.notes.append(message)
        logger.warning("case %s: %s", case.case_id, message)
        case.ct = ct  # the full CT is no longer needed (its grid is in the record): free its memory
    prepared = prepare_images(case.case_id, ct, case.pet, model.info.conversion, ct_path=case.ct_path,
                              pet_path=case.pet_path)
    del ct
    result.notes += list(prepared.warnings)
    for note in prepared.warnings:
        logger.warning("case %s: %s", case.case_id, note)
    preprocessed = model.preprocess(prepared)
    plan = plan_sliding_window(model, tuple(preprocessed.data.shape), budget, use_mirroring)
    apply_plan(model, plan)
    result.plan = plan
    logger.log(logging.WARNING if plan.reduced else logging.INFO, "case %s: time guard: %s", case.case_id, plan.note)
    return preprocessed, model.segmentation_logits(preprocessed)


def _export(model, prediction, pp_config, case):
    """Segmentation on the grid of the (possibly long-CT-cropped) CT the network was given."""
    from .run import _export as export_2025

    return export_2025(model, prediction, pp_config, case)


def _heads(model, prediction, case) -> dict:
    from nnunet_hecktor.errors import HecktorError
    from nnunet_hecktor.prediction.ensemble import ensemble_heads

    preprocessed, logits = prediction
    try:
        heads = ensemble_heads(model.head_outputs(preprocessed, logits, case.clinical))
    except FloatingPointError as exc:
        raise HecktorError(str(exc)) from None
    return {"hpv_probability": heads.hpv_probability, "risk": heads.risk}


def _stages(segmentation, case, stage_values, stage, routing, defaults: dict, rule: str, paths: dict[str, Path],
            result: Challenge2026Result) -> None:
    """T and N (:func:`.staging.predict_tn_stages`): the stage's values, else the geometry rule, else prevalence."""
    from .staging import STAGE_OUTPUTS, predict_tn_stages, stage_fallback

    source = "prognosis stage"
    if stage is not None:  # "stage: ..." (or "clinical-only: ..." for a T/N model without image features)
        source = f"{routing.kind('t_stage') or routing.kind('n_stage') or 'stage'}: {stage.source}"
    tn = predict_tn_stages(segmentation, stage_values, None if case is None else case.ct,
                           stage_fallback(stage, defaults.get("fallback")), rule, source)
    result.notes += tn.notes
    result.stage_sources = dict(tn.sources)
    for column, name in STAGE_OUTPUTS.items():
        value = tn.t_stage if name == "t_stage" else tn.n_stage
        write_json_output(value, paths[name])
        if tn.from_prevalence(column):
            result.outputs[name] = paths[name]
            result.fallback[name] = f"{value} ({tn.sources[column]})"
            result.sources[name] = "fallback"
        else:
            _predicted(result, name, paths, tn.sources[column])
    result.t_stage, result.n_stage = tn.t_stage, tn.n_stage


def _log_summary(result: Challenge2026Result, case_id: str, verbose: bool, budget: TimeBudget) -> None:
    values = {"segmentation": "uint8 0/1/2 on the original CT grid", "t_stage": result.t_stage,
              "n_stage": result.n_stage,
              "rfs": None if result.rfs_value is None else
              f"{result.rfs_value:.6g} (risk {result.risk:.6g}, convention {result.rfs_convention})"}
    for name in OUTPUT_NAMES:
        path = result.outputs.get(name)
        if name in result.fallback:
            logger.warning("case %s: %s: FALLBACK %s -> %s", case_id, name, result.fallback[name], path)
        else:
            _info(verbose, "%s: %s [source: %s] -> %s", name, values[name], result.sources.get(name), path)
    _info(verbose, "done in %.1f s (%.0f s of the %.0f s budget used)%s", result.seconds, budget.elapsed(),
          budget.total_s, f" with {len(result.errors)} failed step(s)" if result.errors else "")
