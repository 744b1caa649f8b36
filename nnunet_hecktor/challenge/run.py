"""``nnunet-hecktor challenge`` as a Python API: one container run, one patient, one task's output.

The case goes through exactly the prediction path of ``nnunet-hecktor predict``
(:mod:`nnunet_hecktor.prediction`): the converter's preprocessing recorded in the model, nnU-Net's
preprocessing and sliding window, folds ensembled, heads on the preprocessed image. Task 1 needs
only the segmentation (any nnU-Net model of this dataset works); Tasks 2 and 3 need a multi-task
model, and skip exporting the segmentation to full resolution (the heads work in nnU-Net's
preprocessed space).

Nothing is written outside the output folder (outputs are renamed into place from temporary
names in their own folder); the only other location that may be used is the system temporary
folder, for models whose plans use a non-SimpleITK image reader.

A model folder prepared by :func:`nnunet_hecktor.challenge.packaging.stage_model` carries a
``challenge_model.json`` with the folds, checkpoint and post-processing to use; explicit arguments
override it.

A case never ends without its outputs: when a step fails for this case (an unreadable or degenerate
image, such as the 1x1 2-D dummies of the organisers' ``do_test_run.sh``, or an error inside the
prediction), the error and its reason are logged and the safest valid output of each task not yet
written is written instead (:mod:`.fallback`: an empty mask on the CT grid, the training cohort's
median risk, the majority HPV class). ``strict=True`` (``--strict``) keeps fail-fast behaviour for
local testing. Problems that are not the case's (bad arguments, a model folder that cannot be
loaded, a segmentation-only model asked for Task 2 or 3, an unwritable output folder) always stop
the run: they would fail every case alike and must be fixed before submission.

A model folder with fitted prognosis-stage models in ``prognosis/`` (``nnunet-hecktor prognosis
build`` / ``prognosis stage``) gives Task 2 and/or Task 3 from the stage, exactly as ``nnunet-hecktor
predict`` does: the source of each output is decided by the one routing
(:func:`nnunet_hecktor.prediction.routing.route_outputs`; a multi-task model without a stage logs
:func:`~nnunet_hecktor.prediction.routing.missing_stage_warning`, the message ``predict`` prints), and
the stage's values are :meth:`nnunet_hecktor.prognosis.deployment.StageModels.predict_patient` on the
predicted segmentation, post-processed when configured; the heads serve the tasks the stage does not
cover. The source of each task is recorded in :attr:`ChallengeResult.sources` and the log. A failing
stage step gets the fallback output like any other step, on the stage's own scale
(:meth:`~nnunet_hecktor.prognosis.deployment.StageModels.fallback`). The 2025 clinical record holds
only the model inputs (:data:`nnunet_hecktor.clinical.MODEL_INPUT_COLUMNS` and the stage's own
columns): HPV status is never added for Task 2.

Task 1 never reads ``ehr.json``. For Tasks 2 and 3 its values are advisory (the inference policy of
:mod:`nnunet_hecktor.clinical`): unknown keys are ignored, ``CenterID`` is never an input, a value
that cannot be parsed or is out of range is missing, with one warning naming key and value.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from nnunet_hecktor.errors import HecktorError

from .fallback import FallbackValues, empty_segmentation_for, fallback_values
from .io import (
    OUTPUT_OF_TASK,
    TASKS,
    find_ct_file,
    image_stem,
    read_challenge_input,
    write_hpv_output,
    write_rfs_output,
    write_segmentation_output,
)
from .outputs import check_output_folder

CHALLENGE_MODEL_FILE = "challenge_model.json"
#: Routing output of each patient-level task (:func:`~nnunet_hecktor.prediction.routing.route_outputs`).
TASK_OUTPUTS: dict[int, str] = {2: "risk", 3: "hpv"}
logger = logging.getLogger(__name__)


@dataclass
class ChallengeResult:
    """What one container run produced.

    Attributes
    ----------
    tasks : tuple of int
    outputs : dict
        Task -> written file.
    risk : float or None
        Task 2 value (higher = earlier relapse).
    hpv_positive : bool or None
        Task 3 value (True = HPV positive).
    hpv_probability : float or None
        None when the HPV output is the fallback.
    seconds : float
    notes : list of str
    errors : list of str
        Steps that failed for this case, with the reason (empty when everything was predicted).
    fallback : dict
        Task -> what was written instead of a prediction (see :mod:`.fallback`).
    substitutions : list of ClinicalSubstitution
        ``ehr.json`` values treated as missing or mapped.
    sources : dict
        Task -> where its value comes from (``"network"`` for Task 1; ``"stage: ..."``,
        ``"clinical-only: ..."`` or ``"heads: network heads"`` from the routing).
    routing : dict
        :meth:`~nnunet_hecktor.prediction.routing.Routing.to_json` of the run.
    """

    tasks: tuple[int, ...]
    outputs: dict[int, Path] = field(default_factory=dict)
    risk: float | None = None
    hpv_positive: bool | None = None
    hpv_probability: float | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    fallback: dict[int, str] = field(default_factory=dict)
    substitutions: list = field(default_factory=list)
    sources: dict[int, str] = field(default_factory=dict)
    routing: dict = field(default_factory=dict)


def read_model_defaults(model_dir: str | os.PathLike) -> dict:
    """``challenge_model.json`` of a staged model folder ({} when absent)."""
    path = Path(model_dir) / CHALLENGE_MODEL_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise HecktorError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise HecktorError(f"{path}: expected a JSON object")
    return data


@contextlib.contextmanager
def caches_in_temporary_folder():
    """Keep library caches out of ``$HOME`` (grand-challenge allows writes only to /tmp and /output).

    nnU-Net imports matplotlib, which writes a font cache into ``~/.cache`` or ``~/.config``
    unless ``MPLCONFIGDIR`` is set; when it is unset and matplotlib not yet loaded, it points to a
    temporary folder for the duration of the run, removed afterwards.
    """
    import sys
    import tempfile

    if "MPLCONFIGDIR" in os.environ or "matplotlib" in sys.modules:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="nnunet-hecktor-mpl-") as folder:
        os.environ["MPLCONFIGDIR"] = folder
        try:
            yield
        finally:
            os.environ.pop("MPLCONFIGDIR", None)


def _tasks(task: int | Sequence[int]) -> tuple[int, ...]:
    tasks = (task,) if isinstance(task, (int, str)) else tuple(task)
    try:
        tasks = tuple(dict.fromkeys(int(t) for t in tasks))
    except ValueError:
        raise HecktorError(f"task {task!r}: expected 1, 2 or 3") from None
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise HecktorError(f"task {task!r}: expected 1 (segmentation), 2 (RFS risk) or 3 (HPV status)")
    return tasks


def run_challenge(task: int | Sequence[int], input_dir: str | os.PathLike, output_dir: str | os.PathLike,
                  model_dir: str | os.PathLike, folds: Sequence | None = None, checkpoint: str | None = None,
                  device: str = "auto", postprocessing: str | os.PathLike | None = None,
                  use_mirroring: bool = True, tile_step_size: float = 0.5, verbose: bool = True,
                  strict: bool = False) -> ChallengeResult:
    """Run the container's job: read ``input_dir``, write the official output of ``task`` into ``output_dir``.

    Parameters
    ----------
    task : {1, 2, 3} or sequence of them
        1 = segmentation (``images/tumor-lymph-node-segmentation/output.mha``), 2 = RFS risk
        (``rfs.json``, float, higher = earlier relapse), 3 = HPV status (``hpv-status.json``,
        boolean, true = HPV positive). Several tasks share one prediction.
    input_dir, output_dir : path-like
        The container's ``/input`` and ``/output``.
    model_dir : path-like
        Trained model folder (or one staged by :mod:`.packaging`).
    folds, checkpoint, postprocessing
        Default: from ``challenge_model.json`` in ``model_dir``, else all folds with the deployed
        (validated) weights and no post-processing. Post-processing applies to Task 1.
    device : {"auto", "cpu", "cuda", "cuda:N"}
    use_mirroring : bool
        nnU-Net's test-time mirroring.
    tile_step_size : float
        Sliding-window step (fraction of the patch).
    verbose : bool
        Log progress at INFO level (the container log); warnings and errors are logged either way.
    strict : bool
        Raise on the first failure of the case instead of writing the fallback outputs.

    Returns
    -------
    ChallengeResult
        ``errors`` and ``fallback`` say what failed and what was written instead.

    Raises
    ------
    HecktorError
        Bad arguments or model folder, a segmentation-only model asked for Task 2 or 3, an
        unwritable output folder; with ``strict``, also bad input (no CT, two CTs, an unreadable
        or non-3-D image) and any failure of the prediction.
    """
    with caches_in_temporary_folder():
        return _run(task, input_dir, output_dir, model_dir, folds, checkpoint, device, postprocessing, use_mirroring,
                    tile_step_size, verbose, strict)


def _info(verbose: bool, message: str, *args) -> None:
    if verbose:
        logger.info(message, *args)


def _model_fallback(model_dir: Path, folds: Sequence, defaults: dict) -> FallbackValues:
    """The staged value of ``challenge_model.json``, else computed from the model folder."""
    if defaults.get("fallback"):
        try:
            return FallbackValues.from_json(defaults["fallback"])
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("%s: unusable 'fallback' entry (%s); computed from the model folder instead",
                           model_dir / CHALLENGE_MODEL_FILE, exc)
    return fallback_values(model_dir, folds)


class _CaseSteps:
    """The steps of one case; each failure is recorded (or raised under ``strict``) and the run goes on."""

    def __init__(self, result: ChallengeResult, strict: bool):
        self.result = result
        self.strict = strict

    @contextlib.contextmanager
    def step(self, name: str, case_id: str):
        try:
            yield
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of this case must still leave its outputs
            if self.strict:
                raise
            reason = str(exc) or type(exc).__name__
            if not isinstance(exc, HecktorError):
                reason = f"{type(exc).__name__}: {reason}"
            self.result.errors.append(f"{name}: {reason}")
            logger.error("case %s: %s failed: %s", case_id, name, reason)


def _run(task, input_dir, output_dir, model_dir, folds, checkpoint, device, postprocessing, use_mirroring,
         tile_step_size, verbose, strict) -> ChallengeResult:
    from nnunet_hecktor.prediction.predictor import HecktorPredictor
    from nnunet_hecktor.prediction.routing import missing_stage_warning, route_outputs

    start = time.perf_counter()
    tasks = _tasks(task)
    defaults = read_model_defaults(model_dir)
    folds = folds if folds else defaults.get("folds")
    checkpoint = checkpoint or defaults.get("checkpoint")  # None: the deployed weights
    if postprocessing is None and defaults.get("postprocessing"):
        postprocessing = Path(model_dir) / defaults["postprocessing"]
    stage = _stage_for(model_dir, tasks)
    # The one routing of 'nnunet-hecktor predict': the stage where it answers, else the heads. Heads are
    # assumed here (they are the only other source); a segmentation-only model asked for a task the stage
    # does not answer is refused when the predictor is built.
    stage_tasks, head_tasks = _task_sources(route_outputs(True, stage), tasks)
    pp_config = None
    if postprocessing is not None and (1 in tasks or stage_tasks):
        from nnunet_hecktor.postprocessing.config import load_config

        pp_config = load_config(postprocessing)
    needs_heads = bool(head_tasks) or bool(stage_tasks and stage.needs_heads)
    needs_clinical = any(t in tasks for t in (2, 3))
    model = HecktorPredictor(model_dir, folds, checkpoint, device, use_mirroring, tile_step_size,
                             segmentation_only=not needs_heads)
    if stage is not None:
        stage.check_inputs(needs_heads)
    output = check_output_folder(output_dir)  # unwritable or full: stop before any work
    _info(verbose, "%s", model.info.describe())
    routing = route_outputs(model.predict_heads, stage, tuple(TASK_OUTPUTS[t] for t in tasks if t in TASK_OUTPUTS))
    if needs_clinical:
        for message in (missing_stage_warning(model_dir, model.info.multitask, stage),
                        _postprocessing_mismatch(stage if stage_tasks else None, pp_config)):
            if message is not None:
                logger.warning("%s", message)
                routing.warnings.append(message)
    if stage is not None:
        _info(verbose, "%s\n  Task(s) %s from the prognosis stage", stage.describe(), ", ".join(map(str, stage_tasks)))
    result = ChallengeResult(tasks, routing=routing.to_json())
    for t in tasks:
        if t in TASK_OUTPUTS:
            route = routing.routes[TASK_OUTPUTS[t]]
            result.sources[t] = f"{route.kind}: {route.detail}" if route.kind else "none (fallback)"
        else:
            result.sources[t] = "network"
    if needs_clinical:
        _info(verbose, "patient-level outputs: %s", routing.describe())
    steps = _CaseSteps(result, strict)
    ct_file = find_ct_file(input_dir)
    # Until the input is read: the CT's name (a UUID in the container), else the input folder's.
    case_id = image_stem(ct_file) if ct_file is not None else Path(input_dir).name
    case = prediction = None

    with steps.step("reading the input", case_id):
        case = read_challenge_input(input_dir, read_ehr=needs_clinical, columns=_clinical_columns(stage))
        case_id = case.case_id
        result.notes += case.notes
        result.substitutions = list(case.substitutions)
        _info(verbose, "case %s: CT %s, PET %s, ehr.json %s; tasks %s", case.case_id, case.ct_path.name,
              case.pet_path.name, "not read (Task 1 needs none)" if not needs_clinical
              else ("present" if case.ehr_path else "absent"), ", ".join(map(str, tasks)))
        for note in case.notes:
            _info(verbose, "  note: %s", note)
        for s in case.substitutions:
            logger.log(logging.WARNING if s.is_missing else logging.INFO, "case %s: ehr.json %s", case.case_id,
                       s.describe())
        if case.missing_inputs:
            logger.warning("case %s: no value for model input(s) %s (treated as missing)", case.case_id,
                           ", ".join(case.missing_inputs))
    if case is not None:
        with steps.step("segmentation", case_id):
            prediction = _segment(model, case, result)
    segmentation = heads = None
    if prediction is not None and 1 in tasks:
        with steps.step("Task 1 export", case_id):
            segmentation = _export(model, prediction, pp_config, case)
            result.outputs[1] = write_segmentation_output(segmentation, output)
    if prediction is not None and needs_heads:
        with steps.step("HPV and risk heads", case_id):
            heads = _heads(model, prediction, case, head_tasks, output, result)
    if prediction is not None and stage_tasks:
        with steps.step("prognosis stage", case_id):
            if segmentation is None:
                segmentation = _export(model, prediction, pp_config, case)
            _stage(stage, prediction, segmentation, case, heads, stage_tasks, output, result)
    _write_fallbacks(tasks, output, result, case, input_dir, model_dir, model.info.folds, defaults,
                     stage if stage_tasks else None, stage_tasks)
    result.seconds = time.perf_counter() - start
    _log_summary(result, output, verbose, case_id)
    return result


def _segment(model, case, result: ChallengeResult):
    from nnunet_hecktor.prediction.preparation import prepare_images

    prepared = prepare_images(case.case_id, case.ct, case.pet, model.info.conversion,
                              ct_path=case.ct_path, pet_path=case.pet_path)
    result.notes += list(prepared.warnings)
    for note in prepared.warnings:
        logger.warning("case %s: %s", case.case_id, note)
    preprocessed = model.preprocess(prepared)
    return preprocessed, model.segmentation_logits(preprocessed)


def _export(model, prediction, pp_config, case):
    preprocessed, logits = prediction
    need_probabilities = bool(pp_config is not None and pp_config.probability_threshold)
    segmentation, probabilities = model.export_segmentation(preprocessed, logits, need_probabilities)
    if pp_config is not None:
        from nnunet_hecktor.postprocessing.apply import postprocess_image

        segmentation = postprocess_image(segmentation, pp_config, probabilities, case.case_id)
    return segmentation


def _stage_for(model_dir, tasks: tuple[int, ...]):
    """The model folder's prognosis stage (``prognosis/``) when Task 2 or 3 is asked, else None."""
    from nnunet_hecktor.prognosis.deployment import resolve_stage_models

    if not any(t in tasks for t in (2, 3)):
        return None
    return resolve_stage_models(model_dir)


def _postprocessing_mismatch(stage, pp_config) -> str | None:
    """:func:`~nnunet_hecktor.prediction.routing.postprocessing_mismatch` of the stage and this run (as ``predict``)."""
    from nnunet_hecktor.prediction.routing import postprocessing_mismatch

    if stage is None:
        return None
    manifest = stage.manifest or {}
    return postprocessing_mismatch(manifest.get("postprocessing"), None if pp_config is None else pp_config.to_dict(),
                                   recorded="postprocessing" in manifest)


def _task_sources(routing, tasks: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(tasks answered by the stage, tasks answered by the heads) of a routing (Tasks 2/3 only)."""
    from nnunet_hecktor.prediction.routing import CLINICAL_ONLY, HEADS, STAGE

    stage = tuple(t for t in tasks if t in TASK_OUTPUTS and routing.kind(TASK_OUTPUTS[t]) in (STAGE, CLINICAL_ONLY))
    heads = tuple(t for t in tasks if t in TASK_OUTPUTS and routing.kind(TASK_OUTPUTS[t]) == HEADS)
    return stage, heads


def _clinical_columns(stage) -> tuple[str, ...] | None:
    from nnunet_hecktor.clinical import MODEL_INPUT_COLUMNS

    return None if stage is None else tuple(dict.fromkeys(MODEL_INPUT_COLUMNS + tuple(stage.clinical_columns)))


def _stage(stage, prediction, segmentation, case, heads, tasks, output: Path, result: ChallengeResult) -> None:
    """Task 2/3 from the prognosis stage: the same per-patient function as ``nnunet-hecktor predict``."""
    preprocessed, _ = prediction
    prepared = preprocessed.prepared
    head_values = None if heads is None else {"hpv_probability": heads.hpv_probability, "risk": heads.risk}
    values = stage.predict_patient(case.case_id, prepared.ct, prepared.pet, segmentation, case.clinical, head_values)
    result.notes.append(f"Task(s) {', '.join(map(str, tasks))} from {stage.source}")
    if 2 in tasks:
        result.risk = values["risk"]
        result.outputs[2] = write_rfs_output(values["risk"], output)
    if 3 in tasks:
        result.hpv_positive, result.hpv_probability = bool(values["hpv_status"]), values["hpv_probability"]
        result.outputs[3] = write_hpv_output(result.hpv_positive, output)


def _heads(model, prediction, case, tasks, output: Path, result: ChallengeResult):
    from nnunet_hecktor.prediction.ensemble import ensemble_heads

    preprocessed, logits = prediction
    try:
        heads = ensemble_heads(model.head_outputs(preprocessed, logits, case.clinical))
    except FloatingPointError as exc:
        raise HecktorError(str(exc)) from None
    result.risk, result.hpv_positive, result.hpv_probability = heads.risk, heads.hpv_positive, heads.hpv_probability
    result.notes.append(f"HPV threshold {heads.hpv_threshold:.3f}")
    if 2 in tasks:
        result.outputs[2] = write_rfs_output(heads.risk, output)
    if 3 in tasks:
        result.outputs[3] = write_hpv_output(heads.hpv_positive, output)
    return heads


def _write_fallbacks(tasks, output: Path, result: ChallengeResult, case, input_dir, model_dir, folds,
                     defaults: dict, stage=None, stage_tasks: tuple[int, ...] = ()) -> None:
    """Write the fallback output of every task that has none yet (nothing when all were predicted).

    A task the prognosis stage answers (``stage_tasks``) falls back to the stage's own value
    (:meth:`~nnunet_hecktor.prognosis.deployment.StageModels.fallback`: its training median risk,
    majority HPV class), on the scale of the stage's predictions; the others to the model folder's.
    """
    missing = [t for t in tasks if t not in result.outputs]
    if not missing:
        return
    for t in missing:
        result.sources[t] = "fallback"
    if 1 in missing:
        ct_path = case.ct_path if case is not None else find_ct_file(input_dir)
        mask, grid = empty_segmentation_for(ct_path)
        result.outputs[1] = write_segmentation_output(mask, output)
        result.fallback[1] = f"empty mask on {grid}"
    staged = stage.fallback() if stage is not None else {}
    for t in [t for t in missing if t in stage_tasks]:
        if t == 2:
            result.risk = float(staged["risk"])
            result.outputs[2] = write_rfs_output(result.risk, output)
            result.fallback[2] = f"risk {result.risk:.6g} (training median risk of {stage.source})"
        else:
            result.hpv_positive, result.hpv_probability = bool(staged["hpv_status"]), None
            result.outputs[3] = write_hpv_output(result.hpv_positive, output)
            result.fallback[3] = (f"HPV {'positive' if result.hpv_positive else 'negative'} "
                                  f"(training majority of {stage.source})")
    missing = [t for t in missing if t not in stage_tasks]
    if 2 in missing or 3 in missing:
        values = _model_fallback(Path(model_dir), folds, defaults)
        if 2 in missing:
            result.risk = values.risk
            result.outputs[2] = write_rfs_output(values.risk, output)
            result.fallback[2] = f"risk {values.risk:.6g} (training cohort median: {values.risk_source})"
        if 3 in missing:
            result.hpv_positive, result.hpv_probability = values.hpv_positive, None
            result.outputs[3] = write_hpv_output(values.hpv_positive, output)
            result.fallback[3] = (f"HPV {'positive' if values.hpv_positive else 'negative'} "
                                  f"(training cohort majority: {values.hpv_source})")


def _log_summary(result: ChallengeResult, output: Path, verbose: bool, case_id: str) -> None:
    for t in result.tasks:
        if t in result.fallback:
            logger.warning("case %s: Task %d: FALLBACK %s -> %s", case_id, t, result.fallback[t],
                           output / OUTPUT_OF_TASK[t])
            continue
        if t == 1:
            value = "segmentation (uint8 0/1/2 on the original CT grid)"
        elif t == 2:
            value = f"risk {result.risk:.6g} (higher = earlier relapse)"
        else:
            value = (f"HPV {'positive' if result.hpv_positive else 'negative'} (probability "
                     f"{result.hpv_probability:.3f})")
        _info(verbose, "Task %d: %s [source: %s] -> %s", t, value, result.sources.get(t), output / OUTPUT_OF_TASK[t])
    _info(verbose, "done in %.1f s%s", result.seconds,
          f" with {len(result.errors)} failed step(s); fallback outputs written" if result.errors else "")
