"""Paired comparisons of prediction sets scored on the same patients (``nnunet-hecktor evaluate --compare``).

Each set is evaluated as usual (its own ``metrics.json``, ``per_patient.csv`` and figures under
``OUTPUT/<name>/``); then the first set is compared with every other one on the patients both
scored, figure by figure, with :mod:`nnunet_hecktor.metrics.paired`: both sets' figures are computed
on the same bootstrap resamples of patients and the percentile interval of the difference gives the
verdict, ``better`` / ``worse`` (interval above / below 0) or ``undecided`` (it contains 0). Figures:
GTVp mean Dice, GTVn DSCagg, GTVn F1agg (from the per-patient statistics with one set of resampling
weights), C-index, HPV balanced accuracy and AUC, T and N balanced accuracy and, for an edition
with a single score (2026), the weighted score (Dice rule ``hecktor2025``: GTVp mean per patient,
GTVn aggregated; all components from one resample of the union of the components' common
patients). A figure that is
undefined on the common patients (one HPV class, one stage, no relapse) is not compared; the reason
is listed.

The comparison reads only per-patient rows (:mod:`.per_patient`), so it works the same on rows
of a fresh evaluation and on ``per_patient.csv`` files written earlier (the demo report does so).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.fileio import write_json_atomic
from nnunet_hecktor.metrics.paired import (
    DEFAULT_PAIRED_BOOTSTRAP,
    PairedComparison,
    paired_binary,
    paired_c_index,
    paired_multiclass_balanced_accuracy,
    paired_task1,
)
from nnunet_hecktor.metrics.segmentation import Task1Arrays
from nnunet_hecktor.strict_json import json_safe

from .outcome import COL_N_STAGE, COL_T_STAGE
from .per_patient import hpv_arrays, stage_arrays, survival_arrays, task1_arrays

COMPARISONS_FILE = "comparisons.json"


def _subset_task1(arrays: Task1Arrays, patients: Sequence[str]) -> Task1Arrays:
    where = {p: i for i, p in enumerate(arrays.patients)}
    idx = np.array([where[p] for p in patients], dtype=int)
    return Task1Arrays(tuple(patients), arrays.gtvp_dice[idx], arrays.gtvn_intersection_mm3[idx],
                       arrays.gtvn_volume_sum_mm3[idx], arrays.gtvn_tp[idx], arrays.gtvn_fp[idx], arrays.gtvn_fn[idx])


def _common(a: Sequence[str], b: Sequence[str]) -> list[str]:
    other = set(b)
    return [p for p in a if p in other]


def _take(patients: Sequence[str], wanted: Sequence[str], *columns):
    where = {p: i for i, p in enumerate(patients)}
    idx = np.array([where[p] for p in wanted], dtype=int)
    return [None if c is None else np.asarray(c)[idx] for c in columns]


def _patients_of(arrays: Task1Arrays | tuple) -> Sequence[str]:
    """The patients of :func:`task1_arrays`' result, or of a ``(patients, ...)`` tuple."""
    return arrays.patients if isinstance(arrays, Task1Arrays) else arrays[0]


def _score_parts(rows: Sequence[Mapping], keep: Mapping[str, Sequence[str]]):
    """Per component, the arrays of ``rows`` restricted (in order) to the patients ``keep[component]``."""
    seg = task1_arrays(rows)
    t, n = stage_arrays(rows, COL_T_STAGE), stage_arrays(rows, COL_N_STAGE)
    surv = survival_arrays(rows)
    # paired_score checked that both sets have every component.
    assert seg is not None and t is not None and n is not None and surv is not None
    return {"dice": _subset_task1(seg, keep["dice"]),
            "t": _take(t[0], keep["t"], t[1], t[2]), "n": _take(n[0], keep["n"], n[1], n[2]),
            "c": _take(surv[0], keep["c"], surv[1], surv[2], surv[3])}


def _score_replicates(parts, keep, where, weights: np.ndarray, score_weights) -> np.ndarray:
    from nnunet_hecktor.metrics.bootstrap import bootstrap_c_index, bootstrap_task1
    from nnunet_hecktor.metrics.challenge_score import bootstrap_weighted_score
    from nnunet_hecktor.metrics.paired import bootstrap_multiclass_balanced_accuracy

    def sub(component):
        return weights[:, [where[p] for p in keep[component]]]

    seg = bootstrap_task1(parts["dice"], sub("dice"))
    t = bootstrap_multiclass_balanced_accuracy(parts["t"][0], parts["t"][1], sub("t"))
    n = bootstrap_multiclass_balanced_accuracy(parts["n"][0], parts["n"][1], sub("n"))
    time, event, risk = parts["c"]
    c = bootstrap_c_index(time, event, risk, sub("c"))
    return bootstrap_weighted_score({"dice": (seg["gtvp_dice_mean"] + seg["gtvn_dice_agg"]) / 2,
                                     "stage_balanced_accuracy": (t + n) / 2, "c_index": c}, score_weights)


def paired_score(rows_a: Sequence[Mapping], rows_b: Sequence[Mapping], score_weights: Mapping[str, float],
                 name_a: str = "A", name_b: str = "B", n_bootstrap: int = DEFAULT_PAIRED_BOOTSTRAP, seed: int = 0,
                 level: float = 0.95) -> PairedComparison | None:
    """Paired comparison of an edition's weighted score (2026); None unless both sets have every component.

    Each component uses the patients both sets scored for it; one resample of the union of those
    patients drives every component of both sets (Dice rule ``hecktor2025``).
    """
    from nnunet_hecktor.metrics.bootstrap import resampling_weights
    from nnunet_hecktor.metrics.paired import compare_replicates

    found = {}
    for key, get in (("dice", lambda r: task1_arrays(r)), ("t", lambda r: stage_arrays(r, COL_T_STAGE)),
                     ("n", lambda r: stage_arrays(r, COL_N_STAGE)), ("c", lambda r: survival_arrays(r))):
        a, b = get(rows_a), get(rows_b)
        if a is None or b is None or not score_weights:
            return None
        found[key] = _common(_patients_of(a), _patients_of(b))
    union = sorted({p for patients in found.values() for p in patients})
    where = {p: i for i, p in enumerate(union)}
    parts_a, parts_b = _score_parts(rows_a, found), _score_parts(rows_b, found)
    weights = resampling_weights(len(union), n_bootstrap, seed)
    whole = np.ones((1, len(union)))
    point_a = float(_score_replicates(parts_a, found, where, whole, score_weights)[0])
    point_b = float(_score_replicates(parts_b, found, where, whole, score_weights)[0])
    return compare_replicates("weighted score", name_a, name_b, point_a, point_b,
                              _score_replicates(parts_a, found, where, weights, score_weights),
                              _score_replicates(parts_b, found, where, weights, score_weights), len(union), level)


def compare_rows(rows_a: Sequence[Mapping], rows_b: Sequence[Mapping], name_a: str = "A", name_b: str = "B",
                 n_bootstrap: int = DEFAULT_PAIRED_BOOTSTRAP, seed: int = 0, level: float = 0.95,
                 score_weights: Mapping[str, float] | None = None
                 ) -> tuple[list[tuple[str, PairedComparison]], list[str]]:
    """Paired comparisons of two sets' per-patient rows on the patients both scored.

    ``score_weights`` (an edition's ``score_weights``, e.g. 2026's) adds the weighted score when
    both sets have every component (:func:`paired_score`).

    Returns
    -------
    comparisons : list of (task, PairedComparison)
        ``task`` in ``task1``, ``task2``, ``task3``, ``t_stage``, ``n_stage``; each comparison is
        ``name_a - name_b`` with its interval and verdict.
    skipped : list of str
        Figures not compared, and why (not predicted by both, undefined on the common patients).
    """
    out: list[tuple[str, PairedComparison]] = []
    skipped: list[str] = []
    seg_a, seg_b = task1_arrays(rows_a), task1_arrays(rows_b)
    if seg_a is not None and seg_b is not None:
        common = _common(seg_a.patients, seg_b.patients)
        if common:
            found = paired_task1(_subset_task1(seg_a, common), _subset_task1(seg_b, common), name_a, name_b,
                                 n_bootstrap, seed, level)
            out += [("task1", c) for c in found.values()]
    elif seg_a is not None or seg_b is not None:
        skipped.append("Task 1: segmented by one set only")
    surv_a, surv_b = survival_arrays(rows_a), survival_arrays(rows_b)
    if surv_a is not None and surv_b is not None:
        common = _common(surv_a[0], surv_b[0])
        time, event, risk_a = _take(surv_a[0], common, surv_a[1], surv_a[2], surv_a[3])
        (risk_b,) = _take(surv_b[0], common, surv_b[3])
        if common and event.any():
            out.append(("task2", paired_c_index(time, event, risk_a, risk_b, name_a, name_b, n_bootstrap, seed, level)))
        else:
            skipped.append("C-index: no relapse among the common patients")
    elif surv_a is not None or surv_b is not None:
        skipped.append("C-index: risk predicted by one set only")
    hpv_a, hpv_b = hpv_arrays(rows_a), hpv_arrays(rows_b)
    if hpv_a is not None and hpv_b is not None:
        common = _common(hpv_a[0], hpv_b[0])
        y, pred_a, score_a = _take(hpv_a[0], common, hpv_a[1], hpv_a[2], hpv_a[3])
        pred_b, score_b = _take(hpv_b[0], common, hpv_b[2], hpv_b[3])
        if len(common) and np.unique(y).size > 1:
            out.append(("task3", paired_binary(y, "balanced_accuracy", name_a, name_b, pred_a=pred_a, pred_b=pred_b,
                                               n_bootstrap=n_bootstrap, seed=seed, level=level)))
            if score_a is not None and score_b is not None:
                out.append(("task3", paired_binary(y, "auc", name_a, name_b, score_a=score_a, score_b=score_b,
                                                   n_bootstrap=n_bootstrap, seed=seed, level=level)))
        else:
            skipped.append("HPV: one class only among the common patients (balanced accuracy and AUC undefined)")
    elif hpv_a is not None or hpv_b is not None:
        skipped.append("HPV: predicted by one set only")
    for column, task, label in ((COL_T_STAGE, "t_stage", "T stage"), (COL_N_STAGE, "n_stage", "N stage")):
        st_a, st_b = stage_arrays(rows_a, column), stage_arrays(rows_b, column)
        if st_a is None or st_b is None:
            if st_a is not None or st_b is not None:
                skipped.append(f"{label}: predicted by one set only")
            continue
        common = _common(st_a[0], st_b[0])
        y, pred_a = _take(st_a[0], common, st_a[1], st_a[2])
        (pred_b,) = _take(st_b[0], common, st_b[2])
        if len(common) and np.unique(y).size > 1:
            out.append((task, paired_multiclass_balanced_accuracy(y, pred_a, pred_b, name_a, name_b,
                                                                  f"{label} balanced accuracy", n_bootstrap, seed,
                                                                  level)))
        else:
            skipped.append(f"{label}: one true stage only among the common patients (balanced accuracy undefined)")
    if score_weights:
        score = paired_score(rows_a, rows_b, score_weights, name_a, name_b, n_bootstrap, seed, level)
        if score is not None:
            out.append(("edition_score", score))
        else:
            skipped.append("weighted score: a component (segmentation, T, N or risk) is missing from a set")
    return out, skipped


def comparison_records(comparisons: Sequence[tuple[str, PairedComparison]]) -> list[dict[str, Any]]:
    """JSON-ready records: ``{"task", "metric", "name_a", "name_b", "value_a", "value_b", "difference",
    "interval": [low, high], "verdict", "n_patients", "text"}``."""
    records = []
    for task, c in comparisons:
        records.append({"task": task, "metric": c.metric, "name_a": c.name_a, "name_b": c.name_b,
                        "value_a": c.value_a, "value_b": c.value_b, "difference": c.difference,
                        "interval": [c.interval.low, c.interval.high], "level": c.interval.level,
                        "n_bootstrap": c.interval.n_bootstrap, "n_valid": c.interval.n_valid,
                        "verdict": c.verdict, "n_patients": c.n_patients, "text": c.describe()})
    return records


@dataclass
class CompareResult:
    """What :func:`compare_prediction_sets` wrote: each set's metrics and the paired comparisons."""

    metrics: dict[str, dict]
    comparisons: list[dict]
    skipped: dict[str, list[str]] = field(default_factory=dict)
    path: Path | None = None


def parse_compare_specs(specs: Sequence[str]) -> dict[str, dict[str, str]]:
    """``["new=run2/seg", "new=run2/p.csv", "old=..."]`` -> ``{"new": {"pred": ..., "predictions": ...}, ...}``.

    A ``.csv`` file is a predictions table; a folder whose entries are all folders is a challenge
    output folder (one folder per case); any other folder is a prediction folder (label images).

    Raises
    ------
    HecktorError
        Malformed ``NAME=PATH``, a missing path, two paths of one kind for one name, fewer than two names.
    """
    sets: dict[str, dict[str, str]] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise HecktorError(f"--compare {spec!r}: expected NAME=PATH")
        p = Path(path)
        if p.is_file() and p.suffix.lower() == ".csv":
            kind = "predictions"
        elif p.is_dir():
            entries = [e for e in p.iterdir() if not e.name.startswith(".")]
            kind = "challenge_outputs" if entries and all(e.is_dir() for e in entries) else "pred"
        else:
            raise HecktorError(f"--compare {spec!r}: {path} is neither a predictions CSV nor a folder")
        entry = sets.setdefault(name, {})
        if kind in entry or (kind == "challenge_outputs" and entry) or "challenge_outputs" in entry:
            raise HecktorError(f"--compare: {name!r} is given two inputs of one kind ({entry} and {path})")
        entry[kind] = path
    if len(sets) < 2:
        raise HecktorError(f"--compare needs at least two named prediction sets (got {', '.join(sets) or 'none'})")
    return sets


def compare_prediction_sets(sets: Mapping[str, Mapping[str, str]], output_dir: str | os.PathLike,
                            gt_dir=None, clinical_csv=None, case_map=None, n_bootstrap: int = 1000, seed: int = 0,
                            level: float = 0.95, **evaluate_options) -> CompareResult:
    """Evaluate every set into ``output_dir/<name>/`` and compare the first with each other one.

    Parameters
    ----------
    sets : mapping
        Name -> ``{"pred": folder, "predictions": csv}`` or ``{"challenge_outputs": folder}``
        (:func:`parse_compare_specs`); the first name is ``A`` of every comparison.
    output_dir : path-like
        Receives one folder per set and ``comparisons.json``.
    gt_dir, clinical_csv, case_map :
        Shared by every set (as :func:`nnunet_hecktor.evaluation.evaluate.evaluate`).
    n_bootstrap, seed, level :
        Bootstrap of each set's own intervals and of the paired differences (0 replicates: the
        paired comparisons use :data:`~nnunet_hecktor.metrics.paired.DEFAULT_PAIRED_BOOTSTRAP`).
    **evaluate_options :
        Passed on to ``evaluate`` (num_processes, options, plots, score_subset, edition, ...).
    """
    from nnunet_hecktor.evaluation.evaluate import evaluate

    output = Path(output_dir)
    names = list(sets)
    metrics, rows = {}, {}
    for name in names:
        inputs = sets[name]
        if name in ("", ".", "..") or "/" in name or os.sep in name:
            raise HecktorError(f"--compare: {name!r} cannot be a folder name")
        options = dict(evaluate_options)
        if "challenge_outputs" not in inputs:
            options.pop("rfs_convention", None)  # says what a container's rfs.json holds; a CSV's risk is a risk
        has_seg = "pred" in inputs or "challenge_outputs" in inputs
        has_csv = "predictions" in inputs or "challenge_outputs" in inputs
        result = evaluate(gt_dir if has_seg else None, inputs.get("pred"), clinical_csv if has_csv else None,
                          inputs.get("predictions"), output / name, n_bootstrap=n_bootstrap, seed=seed, level=level,
                          challenge_outputs=inputs.get("challenge_outputs"),
                          case_map=case_map if "challenge_outputs" in inputs else None, **options)
        metrics[name], rows[name] = result.metrics, result.per_patient
    from nnunet_hecktor.editions import get_edition

    score_weights = get_edition(evaluate_options.get("edition")).score_weights
    paired_n = n_bootstrap if n_bootstrap > 0 else DEFAULT_PAIRED_BOOTSTRAP
    records, skipped = [], {}
    for other in names[1:]:
        found, why = compare_rows(rows[names[0]], rows[other], names[0], other, paired_n, seed, level,
                                  score_weights)
        records += comparison_records(found)
        skipped[f"{names[0]} vs {other}"] = why
    path = output / COMPARISONS_FILE
    write_json_atomic(path, json_safe({"reference": names[0], "sets": {n: dict(sets[n]) for n in names},
                                       "comparisons": records, "not_compared": skipped,
                                       "bootstrap": {"replicates": paired_n, "seed": seed, "level": level,
                                                     "method": "paired percentile, patients resampled"}}))
    return CompareResult(metrics, records, skipped, path)


def format_comparisons(result: CompareResult) -> str:
    """One line per comparison (difference, interval, verdict), then what was not compared."""
    lines = [r["text"] for r in result.comparisons]
    for pair, why in result.skipped.items():
        lines += [f"{pair}: not compared: {w}" for w in why]
    return "\n".join(lines)
