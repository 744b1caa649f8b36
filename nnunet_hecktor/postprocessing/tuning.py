"""Tune the post-processing rules on nnU-Net cross-validation predictions.

Inputs: a trained model folder (``.../TrainerName__PlansName__configuration``) whose
``fold_k/validation/<PID>.nii.gz`` hold the cross-validation predictions (and ``<PID>.npz``
probabilities when training ran with ``--npz``), and the training labels.

Search: a greedy coordinate search in the order the rules are applied. Each *coordinate*
(e.g. ``min_size:GTVn``) is tried at every value of its grid with the rules chosen so far and
the later rules off; the best value is kept when it raises the objective by more than
``min_improvement`` over the rule being off (among equal candidates the first listed wins).
That first sweep judges each rule with the later rules off, so an early rule may be chosen for a
gain that a later rule gives better (demo seed 1: a GTVp probability threshold of 0.3, which
lowers the GTVp Dice, chosen because it also removed false nodes that the border and keep-K rules
removed afterwards). Further sweeps (``max_sweeps``, default 3) therefore revisit every
coordinate, trying each value, off included, with all the other chosen rules on, until a sweep
changes nothing.
Between the first and the later sweeps, each *prior* rule (:data:`DEFAULT_PRIOR`, rules that
HECKTOR's own definitions imply) that the first sweep left off is switched on unless that lowers
the objective: a validation set of 20 patients may hold no case the rule acts on, and then a tie
would otherwise leave it off (demo seed 3).
The objective is a stated combination of the Task 1 figures, by default the **mean of GTVp
Dice, GTVn aggregated Dice and GTVn aggregated F1**
(:data:`nnunet_hecktor.metrics.segmentation.OBJECTIVES`).

Speed: each case is read once and cropped to the box holding every voxel any candidate can
label (GT, prediction, probability candidates, grown by the largest closing radius); rules and
metrics on the crops give exactly the full-volume results. Only cases a rule changes are
re-scored.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nnunet_hecktor.dataset_conversion.geometry import check_same_geometry
from nnunet_hecktor.errors import HecktorError, InputDataError
from nnunet_hecktor.label_files import list_cases, read_label_image
from nnunet_hecktor.metrics.components import union_bounding_box
from nnunet_hecktor.metrics.segmentation import (
    OBJECTIVES,
    PatientSegmentationStats,
    SegmentationMetricOptions,
    aggregate_task1,
    patient_segmentation_stats,
)
from nnunet_hecktor.parallel import parallel_map
from nnunet_hecktor.postprocessing.apply import array_spacing, cranial_face, load_probabilities
from nnunet_hecktor.postprocessing.config import PostprocessingConfig, parse_label_list, save_config
from nnunet_hecktor.postprocessing.rules import (
    READER_ORDER_CRANIAL_FACE,
    VolumeFace,
    apply_probability_threshold,
    pad_for,
    postprocess_segmentation,
    rule_steps,
)
from nnunet_hecktor.schema import FILE_ENDING, GTVN, GTVP
from nnunet_hecktor.strict_json import json_safe

#: Coordinates in the order the rules are applied, with their default grids (None / 0 = off, the baseline).
DEFAULT_GRID: dict[str, list] = {
    "probability_threshold:GTVp": [None, 0.3, 0.4, 0.5, 0.6, 0.7],
    "probability_threshold:GTVn": [None, 0.3, 0.4, 0.5, 0.6, 0.7],
    "closing:GTVp": [0.0, 2.0, 4.0],
    "closing:GTVn": [0.0, 2.0, 4.0],
    "min_size:GTVp": [0.0, 100.0, 250.0, 500.0, 1000.0, 2000.0],
    "min_size:GTVn": [0.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0],
    "cranial_border": [None, ["GTVn"], ["GTVp", "GTVn"]],
    "caudal_border": [None, ["GTVp"]],
    "gtvp_single_lesion": [None, "remove", "to_gtvn"],
    "gtvn_touching_gtvp": [None, "remove", "to_gtvp"],
    "max_components:GTVp": [None],
    "max_components:GTVn": [None, 2, 3, 4, 6, 8],
    "gtvn_distance": [None, 30.0, 50.0, 75.0, 100.0, 150.0],
}
COORDINATES: tuple[str, ...] = tuple(DEFAULT_GRID)
#: Rules kept on unless the validation patients score them lower (ties keep them). HECKTOR's GTVp is
#: the one primary tumour, so a prediction's extra GTVp components are relabelled GTVn (the largest
#: stays GTVp). Why a prior: on demo seed 3 the rule changed none of fold 0's 20 validation patients,
#: the search left it off, and 16 of the 110 new patients had 2-4 GTVp components, several of them on
#: true lymph nodes; with the rule the cohort's GTVp mean Dice rose from 0.883 to 0.903.
DEFAULT_PRIOR: dict[str, Any] = {"gtvp_single_lesion": "to_gtvn"}
_LABELS = {"GTVp": GTVP, "GTVn": GTVN}


def set_coordinate(config: PostprocessingConfig, name: str, value: Any) -> PostprocessingConfig:
    """Return ``config`` with one coordinate set (``None``/0 = rule off for that label)."""
    if name not in DEFAULT_GRID:
        raise HecktorError(f"unknown tuning coordinate {name!r}; known: {', '.join(COORDINATES)}")
    rule, _, label_name = name.partition(":")
    label = _LABELS.get(label_name)

    def with_label(mapping: dict, keep: bool, v):
        out = {k: x for k, x in mapping.items() if k != label}
        if keep:
            out[label] = v
        return out

    if rule == "probability_threshold":
        return replace(config, probability_threshold=with_label(config.probability_threshold, value is not None, value))
    if rule == "closing":
        return replace(config, closing_radius_mm=with_label(config.closing_radius_mm, bool(value), float(value or 0)))
    if rule == "min_size":
        return replace(config, min_component_size=with_label(config.min_component_size, bool(value), float(value or 0)))
    if rule == "max_components":
        return replace(config, max_components=with_label(config.max_components, value is not None,
                                                         None if value is None else int(value)))
    if rule == "cranial_border":
        return replace(config, cranial_border_components=parse_label_list(value, "cranial_border"))
    if rule == "caudal_border":
        return replace(config, caudal_border_components=parse_label_list(value, "caudal_border"))
    if rule == "gtvp_single_lesion":
        return replace(config, gtvp_single_lesion=value)
    if rule == "gtvn_touching_gtvp":
        return replace(config, gtvn_touching_gtvp=value)
    return replace(config, gtvn_max_distance_mm=None if value is None else float(value))


def load_grid(path: str | os.PathLike | None) -> dict[str, list]:
    """The default grid, updated with a JSON file ``{coordinate: [values...]}`` (``[]`` = do not tune it)."""
    grid = {k: list(v) for k, v in DEFAULT_GRID.items()}
    if path is None:
        return grid
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise HecktorError(f"cannot read the tuning grid {path} ({exc})") from None
    if not isinstance(data, dict):
        raise HecktorError(f"{path}: the grid must be a JSON object {{coordinate: [values]}}")
    for name, values in data.items():
        if name not in grid:
            raise HecktorError(f"{path}: unknown coordinate {name!r}; known: {', '.join(COORDINATES)}")
        if not isinstance(values, list):
            raise HecktorError(f"{path}: {name} needs a list of values")
        for value in values:  # validates each value through the config
            set_coordinate(PostprocessingConfig(), name, value)
        grid[name] = values
    return grid


# --------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class ValidationCase:
    patient: str
    fold: int
    prediction: Path
    ground_truth: Path
    probabilities: Path | None


_FOLD = re.compile(r"^fold_(\d+)$")


def find_validation_cases(results_dir: str | os.PathLike, gt_dir: str | os.PathLike,
                          folds: Sequence[int] | None = None, file_ending: str = FILE_ENDING) -> list[ValidationCase]:
    """Cross-validation predictions of ``results_dir/fold_k/validation`` paired with ``gt_dir`` labels.

    ``folds=None`` takes every ``fold_k`` folder that has a ``validation`` folder.

    Raises
    ------
    HecktorError
        Missing folders, no predictions, a patient predicted in two folds, or a prediction
        without a label (all named).
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise HecktorError(f"results folder does not exist: {results_dir}")
    if folds is None:
        folds = sorted(int(m.group(1)) for p in results_dir.iterdir() if (m := _FOLD.match(p.name))
                       and (p / "validation").is_dir())
        if not folds:
            raise HecktorError(f"no fold_k/validation folders in {results_dir}")
    labels = list_cases(gt_dir, file_ending, "ground-truth")
    cases: dict[str, ValidationCase] = {}
    for fold in folds:
        folder = results_dir / f"fold_{fold}" / "validation"
        if not folder.is_dir():
            raise HecktorError(f"fold {fold}: no validation folder {folder} (did training of fold {fold} finish?)")
        for pid, path in list_cases(folder, file_ending, f"fold {fold} validation").items():
            if pid in cases:
                raise InputDataError(f"predicted in fold {cases[pid].fold} and fold {fold}", pid, path)
            if pid not in labels:
                raise InputDataError(f"no ground-truth label {pid}{file_ending} in {gt_dir}", pid, path)
            npz = folder / f"{pid}.npz"
            cases[pid] = ValidationCase(pid, fold, path, labels[pid], npz if npz.is_file() else None)
    if not cases:
        raise HecktorError(f"no validation predictions in folds {list(folds)} of {results_dir}")
    return [cases[p] for p in sorted(cases)]


@dataclass
class CroppedCase:
    """One case cropped to every voxel the search can label (see the module docstring)."""

    patient: str
    spacing: tuple[float, ...]
    gt: np.ndarray
    pred: np.ndarray
    probabilities: np.ndarray | None = None
    #: The volume's cranial and caudal faces within the crop (absent when the crop does not reach them).
    cranial_face: VolumeFace = READER_ORDER_CRANIAL_FACE
    caudal_face: VolumeFace = READER_ORDER_CRANIAL_FACE.opposite()


@dataclass(frozen=True)
class _LoadJob:
    case: ValidationCase
    use_probabilities: bool
    min_thresholds: tuple[float | None, float | None]
    max_closing_mm: float


def _probabilities(case: CroppedCase) -> np.ndarray:
    """The case's cropped probabilities (every case has them when probability thresholds are searched)."""
    assert case.probabilities is not None
    return case.probabilities


def _load_case(job: _LoadJob) -> CroppedCase:
    case = job.case
    gt_image, gt = read_label_image(case.ground_truth, case.patient, "ground-truth label")
    pred_image, pred = read_label_image(case.prediction, case.patient, "validation prediction")
    check_same_geometry(gt_image, pred_image, case.patient, case.prediction)
    spacing = array_spacing(gt_image)
    probabilities = None
    extra = []
    if job.use_probabilities:
        assert case.probabilities is not None  # use_probabilities: every case has its probabilities
        probabilities = load_probabilities(case.probabilities, pred.shape, case.patient)
        for label, t in zip((GTVP, GTVN), job.min_thresholds):
            if t is not None:
                extra.append(probabilities[label] >= t)
    pad = pad_for(PostprocessingConfig(closing_radius_mm={GTVP: job.max_closing_mm}), spacing)
    box = union_bounding_box(gt, pred, *extra, pad=pad)
    if box is None:
        box = tuple(slice(0, 1) for _ in gt.shape)
    cropped_prob = None
    if probabilities is not None:
        cropped_prob = np.ascontiguousarray(probabilities[(slice(0, 3),) + box], dtype=np.float16)
    cranial = cranial_face(gt_image)
    # Copies, always: gt and pred are views of the SimpleITK images' buffers, which are freed when
    # this function returns. (np.ascontiguousarray returned the view itself when the box spanned
    # whole rows and planes, and the search then read freed memory.)
    return CroppedCase(case.patient, spacing, np.array(gt[box]), np.array(pred[box]),
                       cropped_prob, cranial.within(box, gt.shape), cranial.opposite().within(box, gt.shape))


# --------------------------------------------------------------------------- search
@dataclass
class TuningResult:
    """Chosen configuration, figures before/after and every evaluated candidate."""

    config: PostprocessingConfig
    objective: str
    before: dict
    after: dict
    search: list[dict] = field(default_factory=list)
    n_cases: int = 0
    used_probabilities: bool = False
    after_pkl: dict | None = None
    pkl_spacing: list[float] | None = None
    sweeps: int = 1
    prior: dict = field(default_factory=dict)

    def report(self) -> dict:
        out = {
            "objective": self.objective,
            "objective_definition": OBJECTIVES[self.objective],
            "n_cases": self.n_cases,
            "sweeps": self.sweeps,
            "prior": self.prior,
            "used_probabilities": self.used_probabilities,
            "rules": self.config.describe(),
            "before": self.before,
            "after": self.after,
            "search": self.search,
        }
        if self.after_pkl is not None:
            out["after_with_pkl_spacing"] = self.after_pkl
            out["pkl_spacing_mm"] = self.pkl_spacing
        return out


def _figures(stats: list[PatientSegmentationStats], options: SegmentationMetricOptions, objective: str) -> dict:
    result = aggregate_task1(stats, options)
    figures = {"gtvp_dice_mean": result.gtvp_dice_mean, "gtvn_dice_agg": result.gtvn_dice_agg,
               "gtvn_f1_agg": result.gtvn_f1_agg, "gtvn_tp": result.gtvn_tp, "gtvn_fp": result.gtvn_fp,
               "gtvn_fn": result.gtvn_fn}
    figures["objective"] = result.objective(objective)
    return figures


def _score(cases: list[CroppedCase], preds: list[np.ndarray], options: SegmentationMetricOptions,
           cache: dict[int, tuple[np.ndarray, PatientSegmentationStats]] | None = None) -> list[PatientSegmentationStats]:
    # Rules return their input object when they change nothing, so "same object as last time"
    # means "same statistics". The cache holds the array itself (not its id) so it stays alive.
    stats = []
    for i, (case, pred) in enumerate(zip(cases, preds)):
        hit = cache.get(i) if cache is not None else None
        if hit is not None and hit[0] is pred:
            stats.append(hit[1])
            continue
        s = patient_segmentation_stats(case.gt, pred, case.spacing, case.patient, options)
        if cache is not None:
            cache[i] = (pred, s)
        stats.append(s)
    return stats


def is_off(name: str, value: Any) -> bool:
    """True when ``value`` turns the coordinate's rule off (``None``, or 0 for radii and sizes)."""
    return value is None or (name.split(":")[0] in ("closing", "min_size") and float(value) == 0.0) \
        or (name in ("cranial_border", "caudal_border") and not value)


def search_postprocessing(cases: list[CroppedCase], grid: dict[str, list] | None = None, objective: str = "mean",
                          options: SegmentationMetricOptions = SegmentationMetricOptions(),
                          min_improvement: float = 0.0, progress: bool = True, max_sweeps: int = 3,
                          prior: dict[str, Any] | None = None) -> TuningResult:
    """Greedy coordinate search of the post-processing rules on cropped cases (see module docstring).

    Parameters
    ----------
    cases : list of CroppedCase
        From :func:`load_cases` (probability coordinates are skipped unless every case has probabilities).
    grid : dict, optional
        Coordinate -> candidate values; default :data:`DEFAULT_GRID`. "Off" (``None``, or 0 for
        radii and sizes) is always the baseline and need not be listed.
    objective : str
        One of :data:`~nnunet_hecktor.metrics.segmentation.OBJECTIVES` (default ``"mean"``).
    options : SegmentationMetricOptions
        Metric choices; its connectivity is also the post-processing connectivity.
    min_improvement : float
        A value replaces the current one only when the objective rises by more than this.
    max_sweeps : int
        Sweeps over the coordinates at most (1 = the greedy first sweep only); the search stops
        earlier when a sweep changes nothing.
    prior : dict, optional
        Coordinate -> value switched on after the first sweep unless it lowers the objective
        (default :data:`DEFAULT_PRIOR`; ``{}`` for none). Only coordinates searched with that value
        in their grid, and left off by the first sweep, are tried.
    """
    from tqdm import tqdm

    if objective not in OBJECTIVES:
        raise HecktorError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    grid = grid or DEFAULT_GRID
    prior = DEFAULT_PRIOR if prior is None else prior
    use_probabilities = bool(cases) and all(c.probabilities is not None for c in cases)
    originals = [c.pred for c in cases]
    current = list(originals)
    stats_cache: dict[int, tuple[np.ndarray, PatientSegmentationStats]] = {}
    before = _figures(_score(cases, current, options, stats_cache), options, objective)
    current_score = before["objective"]
    config = PostprocessingConfig(connectivity=options.connectivity)
    search: list[dict] = []
    candidates = {name: [v for v in grid[name] if not is_off(name, v)] for name in COORDINATES if name in grid
                  and (use_probabilities or not name.startswith("probability_threshold"))}
    bar = tqdm(total=sum(len(v) for v in candidates.values()), desc="tune post-processing", disable=not progress,
               unit="candidate")
    for name, values in candidates.items():
        best = None  # (objective, value, predictions); the first of equal candidates wins
        for value in values:
            candidate = set_coordinate(config, name, value)
            if name.startswith("probability_threshold"):
                # Thresholds act jointly on nnU-Net's argmax, so they start from the original prediction.
                preds = [apply_probability_threshold(o, _probabilities(c), candidate.probability_threshold)
                         for o, c in zip(originals, cases)]
            else:
                only = set_coordinate(PostprocessingConfig(connectivity=config.connectivity,
                                                           min_component_size_unit=config.min_component_size_unit),
                                      name, value)
                preds = []
                for pred, case in zip(current, cases):
                    for _, step in rule_steps(only, case.spacing, cranial_face=case.cranial_face,
                                              caudal_face=case.caudal_face):
                        pred = step(pred)
                    preds.append(pred)
            figures = _figures(_score(cases, preds, options, stats_cache), options, objective)
            search.append({"sweep": 1, "coordinate": name, "value": value, **figures})
            if best is None or figures["objective"] > best[0]:
                best = (figures["objective"], value, preds)
            bar.update()
        if best is not None and best[0] > current_score + min_improvement:
            current_score, current = best[0], best[2]
            config = set_coordinate(config, name, best[1])
    bar.close()

    def from_scratch(candidate: PostprocessingConfig) -> dict:
        preds = [postprocess_segmentation(c.pred, c.spacing, candidate, c.probabilities if use_probabilities else None,
                                          c.cranial_face, c.caudal_face) for c in cases]
        return _figures(_score(cases, preds, options), options, objective)

    # The first sweep reused intermediate results; later sweeps run the whole pipeline per candidate.
    after = from_scratch(config)
    current_score = after["objective"]
    for name, value in prior.items():
        left_off = set_coordinate(config, name, None) == config
        if name not in candidates or value not in candidates[name] or not left_off:
            continue
        candidate = set_coordinate(config, name, value)
        figures = from_scratch(candidate)
        search.append({"sweep": 1, "coordinate": name, "value": value, "prior": True, **figures})
        if figures["objective"] >= current_score:  # a tie keeps the prior rule on
            after, config, current_score = figures, candidate, figures["objective"]
    sweeps = 1
    for sweep in range(2, max_sweeps + 1):
        sweeps, changed = sweep, False
        bar = tqdm(total=sum(len(v) + 1 for v in candidates.values()), desc=f"tune post-processing (sweep {sweep})",
                   disable=not progress, unit="candidate")
        for name, values in candidates.items():
            best_config: tuple[dict, PostprocessingConfig] | None = None  # the first of equal candidates wins
            for value in [None, *values]:  # None: the rule off
                candidate = set_coordinate(config, name, value)
                figures = from_scratch(candidate)
                search.append({"sweep": sweep, "coordinate": name, "value": value, **figures})
                if best_config is None or figures["objective"] > best_config[0]["objective"]:
                    best_config = (figures, candidate)
                bar.update()
            if (best_config is not None and best_config[1] != config
                    and best_config[0]["objective"] > current_score + min_improvement):
                after, config, changed = best_config[0], best_config[1], True
                current_score = after["objective"]
        bar.close()
        if not changed:
            break
    return TuningResult(config, objective, before, after, search, len(cases), use_probabilities, sweeps=sweeps,
                        prior=dict(prior))


def figures_with_spacing(cases: list[CroppedCase], config: PostprocessingConfig, spacing: Sequence[float],
                         objective: str, options: SegmentationMetricOptions) -> dict:
    """Figures when every case is post-processed with one fixed ``spacing`` (the pickle route)."""
    pkl_config = config.without_probability_threshold()
    preds = [postprocess_segmentation(c.pred, spacing, pkl_config, cranial_face=c.cranial_face,
                                      caudal_face=c.caudal_face) for c in cases]
    return _figures(_score(cases, preds, options), options, objective)


def load_cases(validation_cases: list[ValidationCase], grid: dict[str, list], num_processes: int = 1,
               progress: bool = True) -> list[CroppedCase]:
    """Read and crop every case once (in parallel)."""
    use_probabilities = all(c.probabilities is not None for c in validation_cases)

    def lowest_threshold(name: str) -> float | None:
        return min((v for v in grid.get(f"probability_threshold:{name}", [None]) if v is not None), default=None)

    min_thresholds = (lowest_threshold("GTVp"), lowest_threshold("GTVn"))
    max_closing = max([float(v or 0) for n in ("closing:GTVp", "closing:GTVn") for v in grid.get(n, [0])] + [0.0])
    jobs = [_LoadJob(c, use_probabilities, min_thresholds, max_closing) for c in validation_cases]
    return parallel_map(_load_case, jobs, num_processes, "read validation cases", progress)


def tune_postprocessing(results_dir: str | os.PathLike, gt_dir: str | os.PathLike, output_json: str | os.PathLike,
                        folds: Sequence[int] | None = None, objective: str = "mean",
                        grid: dict[str, list] | None = None, pkl_path: str | os.PathLike | None = None,
                        plans_json: str | os.PathLike | None = None,
                        options: SegmentationMetricOptions = SegmentationMetricOptions(), min_improvement: float = 0.0,
                        num_processes: int = 1, progress: bool = True, max_sweeps: int = 3,
                        prior: dict[str, Any] | None = None) -> TuningResult:
    """Tune the rules on cross-validation predictions; write the JSON configuration and ``postprocessing.pkl``.

    Parameters
    ----------
    results_dir : path-like
        nnU-Net model folder ``Trainer__Plans__configuration`` with ``fold_k/validation``.
    gt_dir : path-like
        Training labels (``labelsTr``), ``<PID>.nii.gz``.
    output_json : path-like
        The chosen configuration, with a ``tuning`` block (before/after figures, every candidate).
    folds : sequence of int, optional
        Folds to use (default: every ``fold_k`` with a ``validation`` folder).
    objective : str
        Figure to maximise (default ``"mean"``: mean of GTVp Dice, GTVn DSCagg and GTVn F1agg).
    grid : dict, optional
        Coordinate values (:func:`load_grid`).
    pkl_path : path-like, optional
        Where to write nnU-Net's ``postprocessing.pkl`` (default: next to ``output_json``).
    plans_json : path-like, optional
        nnU-Net plans for the pickle's spacing (default ``results_dir/plans.json``).
    options, min_improvement, num_processes, progress, max_sweeps, prior :
        See :func:`search_postprocessing`.
    """
    from nnunet_hecktor.postprocessing.nnunet_pkl import reader_axis_spacing, write_postprocessing_pkl

    grid = grid or load_grid(None)
    plans_json = Path(plans_json) if plans_json is not None else Path(results_dir) / "plans.json"
    if not plans_json.is_file():
        raise HecktorError(f"nnU-Net plans not found: {plans_json} (needed for postprocessing.pkl; pass --plans)")
    plans = json.loads(plans_json.read_text(encoding="utf-8"))
    validation = find_validation_cases(results_dir, gt_dir, folds)
    cases = load_cases(validation, grid, num_processes, progress)
    result = search_postprocessing(cases, grid, objective, options, min_improvement, progress, max_sweeps, prior)
    spacing = reader_axis_spacing(plans)
    result.pkl_spacing = spacing
    result.after_pkl = figures_with_spacing(cases, result.config, spacing, objective, options)
    output_json = Path(output_json)
    pkl_path = Path(pkl_path) if pkl_path is not None else output_json.parent / "postprocessing.pkl"
    write_postprocessing_pkl(result.config, pkl_path, plans)
    report = result.report()
    report.update({"results": str(results_dir), "ground_truth": str(gt_dir),
                   "folds": sorted({c.fold for c in validation}), "postprocessing_pkl": str(pkl_path),
                   "pkl_note": "nnU-Net's postprocessing.pkl applies the rules with one spacing (pkl_spacing_mm, the "
                               "dataset median) to every case and without probability thresholds; "
                               "'after_with_pkl_spacing' shows its figures. nnunet-hecktor postprocess is exact."})
    save_config(result.config, output_json, {"tuning": json_safe(report)})
    return result


__all__ = ["DEFAULT_GRID", "DEFAULT_PRIOR", "COORDINATES", "tune_postprocessing", "search_postprocessing", "load_cases",
           "find_validation_cases", "load_grid", "set_coordinate", "CroppedCase", "TuningResult"]
