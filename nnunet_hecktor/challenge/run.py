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
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from nnunet_hecktor.errors import HecktorError

from .io import OUTPUT_OF_TASK, TASKS, read_challenge_input, write_hpv_output, write_rfs_output, \
    write_segmentation_output

CHALLENGE_MODEL_FILE = "challenge_model.json"


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
    seconds : float
    notes : list of str
    """

    tasks: tuple[int, ...]
    outputs: dict[int, Path] = field(default_factory=dict)
    risk: float | None = None
    hpv_positive: bool | None = None
    hpv_probability: float | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


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
                  use_mirroring: bool = True, tile_step_size: float = 0.5, verbose: bool = True) -> ChallengeResult:
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
        Print what is done (the container log).

    Returns
    -------
    ChallengeResult

    Raises
    ------
    HecktorError, InputDataError
        Bad input (no CT, two CTs, unreadable image, malformed ehr.json), bad model folder, or a
        segmentation-only model asked for Task 2 or 3.
    """
    with caches_in_temporary_folder():
        return _run(task, input_dir, output_dir, model_dir, folds, checkpoint, device, postprocessing, use_mirroring,
                    tile_step_size, verbose)


def _run(task, input_dir, output_dir, model_dir, folds, checkpoint, device, postprocessing, use_mirroring,
         tile_step_size, verbose) -> ChallengeResult:
    from nnunet_hecktor.prediction.ensemble import ensemble_heads
    from nnunet_hecktor.prediction.predictor import HecktorPredictor
    from nnunet_hecktor.prediction.preparation import prepare_images

    start = time.perf_counter()
    tasks = _tasks(task)
    defaults = read_model_defaults(model_dir)
    folds = folds if folds else defaults.get("folds")
    checkpoint = checkpoint or defaults.get("checkpoint")  # None: the deployed weights
    if postprocessing is None and defaults.get("postprocessing"):
        postprocessing = Path(model_dir) / defaults["postprocessing"]
    pp_config = None
    if postprocessing is not None and 1 in tasks:
        from nnunet_hecktor.postprocessing.config import load_config

        pp_config = load_config(postprocessing)

    case = read_challenge_input(input_dir)
    needs_heads = any(t in tasks for t in (2, 3))
    model = HecktorPredictor(model_dir, folds, checkpoint, device, use_mirroring, tile_step_size,
                             segmentation_only=not needs_heads)
    output = Path(output_dir).expanduser()
    output.mkdir(parents=True, exist_ok=True)
    if verbose:
        print(f"case {case.case_id}: CT {case.ct_path.name}, PET {case.pet_path.name}, "
              f"ehr.json {'present' if case.ehr_path else 'absent'}; tasks {', '.join(map(str, tasks))}")
        print(model.info.describe())
        for note in case.notes:
            print(f"  note: {note}")
    prepared = prepare_images(case.case_id, case.ct, case.pet, model.info.conversion,
                              ct_path=case.ct_path, pet_path=case.pet_path)
    result = ChallengeResult(tasks, notes=list(case.notes) + list(prepared.warnings))
    preprocessed = model.preprocess(prepared)
    logits = model.segmentation_logits(preprocessed)
    if 1 in tasks:
        need_probabilities = bool(pp_config is not None and pp_config.probability_threshold)
        segmentation, probabilities = model.export_segmentation(preprocessed, logits, need_probabilities)
        if pp_config is not None:
            from nnunet_hecktor.postprocessing.apply import postprocess_image

            segmentation = postprocess_image(segmentation, pp_config, probabilities, case.case_id)
        result.outputs[1] = write_segmentation_output(segmentation, output)
    if needs_heads:
        try:
            heads = ensemble_heads(model.head_outputs(preprocessed, logits, case.clinical))
        except FloatingPointError as exc:
            raise HecktorError(f"{case.case_id}: {exc}; nothing written for Tasks 2/3") from None
        result.risk, result.hpv_positive, result.hpv_probability = heads.risk, heads.hpv_positive, heads.hpv_probability
        if 2 in tasks:
            result.outputs[2] = write_rfs_output(heads.risk, output)
        if 3 in tasks:
            result.outputs[3] = write_hpv_output(heads.hpv_positive, output)
    result.seconds = time.perf_counter() - start
    if verbose:
        for t in tasks:
            if t == 1:
                value = "segmentation (uint8 0/1/2 on the original CT grid)"
            elif t == 2:
                value = f"risk {result.risk:.6g} (higher = earlier relapse)"
            else:
                value = (f"HPV {'positive' if result.hpv_positive else 'negative'} (probability "
                         f"{result.hpv_probability:.3f}, threshold {heads.hpv_threshold:.3f})")
            print(f"Task {t}: {value} -> {output / OUTPUT_OF_TASK[t]}")
        for note in prepared.warnings:
            print(f"  warning: {note}")
        print(f"done in {result.seconds:.1f} s")
    return result
