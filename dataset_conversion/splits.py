"""Patient-level cross-validation splits in nnU-Net's ``splits_final.json`` format.

``splits_final.json`` is a list of folds, each ``{"train": [...], "val": [...]}`` of case identifiers
(here the PatientIDs). Only labelled training cases are split: they are what nnU-Net trains on.
nnU-Net's planner copies the file from the raw dataset folder into the preprocessed folder.

Folds are stable (:func:`make_stable_splits`): when the dataset folder already holds a split made the same
way (same number of folds and seed), every patient still present keeps its validation fold and only new
patients are placed, so correcting one clinical value or adding a patient moves nobody. When a split does
change (another seed or number of folds, a given split file before), the converter warns with the number of
patients that changed fold.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from nnunet_hecktor import schema
from nnunet_hecktor.errors import HecktorError

Splits = list[dict[str, list[str]]]
MISSING = "NA"


def stratum_of(patient_id: str, clinical: Mapping[str, Any] | None) -> tuple[str, str, str]:
    """Stratification key of a patient: (centre, HPV status, Relapse), ``"NA"`` for unknown targets."""
    clinical = clinical or {}

    def text(value: Any) -> str:
        return MISSING if value is None else str(value)

    return (schema.centre_of(patient_id), text(clinical.get(schema.COL_HPV)), text(clinical.get(schema.COL_RELAPSE)))


#: Weights of the balance objective: centre, HPV, Relapse, fold size (see :func:`make_stratified_splits`).
_WEIGHTS = (3.0, 1.0, 1.0)
_SIZE_WEIGHT = 3.0
#: Local-search proposals per patient (~0.1 s per 100 patients).
_PROPOSALS_PER_PATIENT = 50
#: ``source`` of a split this module made (recorded in the conversion report; a previous split with it is kept).
STRATIFIED_SOURCE = "stratified by centre, HPV Status and Relapse"


def make_stratified_splits(strata: Mapping[str, tuple[str, ...]], num_folds: int = 5, seed: int = 0) -> Splits:
    """Deterministic patient-level folds stratified by centre and the known targets.

    Parameters
    ----------
    strata : mapping
        PatientID -> stratification key ``(centre, HPV, Relapse)`` (see :func:`stratum_of`).
    num_folds : int
        Number of folds (nnU-Net's default is 5).
    seed : int
        Seed of the shuffling. The result depends only on the set of patients, their keys, ``num_folds``
        and ``seed`` (not on the order of ``strata``).

    Returns
    -------
    list of dict
        ``num_folds`` folds ``{"train": sorted ids, "val": sorted ids}``; every patient is in exactly one
        ``val`` list.

    Notes
    -----
    Two steps. (1) Greedy: the joint strata (centre x HPV x Relapse), largest first, are shuffled and
    dealt one patient at a time to the fold with the fewest patients of that centre (so every centre is
    split within one patient), then the fewest of the same HPV and Relapse values, then the smallest fold.
    (2) Local search: random moves and swaps of patients between folds are kept when they lower
    ``sum_w w * (count - expected)**2`` over every centre, HPV and Relapse value and the fold sizes
    (centre and size weighted 3, targets 1). Unknown targets ("NA") are a value of their own. On simulated
    cohorts of 20-680 patients this keeps every centre and fold size within one patient across folds and
    each target value within one or two.
    """
    if num_folds < 2:
        raise HecktorError(f"num_folds must be at least 2, got {num_folds}")
    if len(strata) < num_folds:
        raise HecktorError(f"cannot make {num_folds} folds from {len(strata)} labelled patients")
    return _assign(strata, num_folds, seed, {})


def _assign(strata: Mapping[str, tuple[str, ...]], num_folds: int, seed: int, fixed: Mapping[str, int]) -> Splits:
    """:func:`make_stratified_splits` with the patients of ``fixed`` held in their folds (only the others
    are dealt and moved). With ``fixed`` empty the result is exactly :func:`make_stratified_splits`'s."""
    rng = np.random.default_rng(seed)
    patients = sorted(strata)
    free = [p for p in patients if p not in fixed]
    keys = {pid: tuple(strata[pid])[:3] for pid in patients}
    dims = range(len(_WEIGHTS))
    counts: list[list[Counter[str]]] = [[Counter() for _ in range(num_folds)] for _ in dims]
    sizes = [0] * num_folds
    fold_of: dict[str, int] = {}

    def move(pid: str, source: int | None, target: int) -> None:
        for d in dims:
            if source is not None:
                counts[d][source][keys[pid][d]] -= 1
            counts[d][target][keys[pid][d]] += 1
        if source is not None:
            sizes[source] -= 1
        sizes[target] += 1
        fold_of[pid] = target

    for pid in patients:
        if pid in fixed:
            move(pid, None, fixed[pid])
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for pid in free:
        groups[keys[pid]].append(pid)
    for key in sorted(groups, key=lambda k: (-len(groups[k]), k)):
        members = groups[key]
        for index in rng.permutation(len(members)):
            pid = members[int(index)]
            fold = min(range(num_folds), key=lambda f: (counts[0][f][key[0]],
                                                        counts[1][f][key[1]] + counts[2][f][key[2]], sizes[f], f))
            move(pid, None, fold)

    expected = [{v: c / num_folds for v, c in Counter(keys[p][d] for p in patients).items()} for d in dims]
    expected_size = len(patients) / num_folds

    def gain_of_move(pid: str, source: int, target: int) -> float:
        """Change of the objective if ``pid`` moved from ``source`` to ``target``."""
        def change(a: float, b: float, e: float) -> float:
            return (a - 1 - e) ** 2 + (b + 1 - e) ** 2 - (a - e) ** 2 - (b - e) ** 2

        total = _SIZE_WEIGHT * change(sizes[source], sizes[target], expected_size)
        for d in dims:
            value = keys[pid][d]
            total += _WEIGHTS[d] * change(counts[d][source][value], counts[d][target][value], expected[d][value])
        return total

    n = len(free)
    for _ in range(_PROPOSALS_PER_PATIENT * n if n >= 2 else 0):
        i, j = rng.integers(n, size=2)
        p, q = free[int(i)], free[int(j)]
        a, b = fold_of[p], fold_of[q]
        if a == b:
            continue
        first = gain_of_move(p, a, b)
        move(p, a, b)
        if first < -1e-9:
            continue  # moving p alone already helps
        if first + gain_of_move(q, b, a) < -1e-9:
            move(q, b, a)  # swapping p and q helps
        else:
            move(p, b, a)  # undo

    splits = []
    for fold in range(num_folds):
        val = [p for p in patients if fold_of[p] == fold]
        held_out = set(val)
        splits.append({"train": [p for p in patients if p not in held_out], "val": val})
    if any(not s["val"] for s in splits):  # cannot happen with the size term, but never hand nnU-Net an empty fold
        raise HecktorError("internal error: an empty validation fold")
    return splits


@dataclass(frozen=True)
class PreviousSplits:
    """The split a dataset folder held before this conversion.

    Attributes
    ----------
    folds : dict
        PatientID -> index of its validation fold (the first, should a hand-edited file list it twice).
    num_folds : int
    seed : int or None
        Seed recorded in the conversion report (``None``: no report, or not recorded).
    source : str or None
        How it was made, as recorded in the report (:data:`STRATIFIED_SOURCE`, or a given split file).
    """

    folds: dict[str, int]
    num_folds: int
    seed: int | None = None
    source: str | None = None


def read_previous_splits(splits_path: str | Path, report_path: str | Path | None = None) -> PreviousSplits | None:
    """The split of an earlier conversion: ``splits_final.json`` and its seed and source from the report.

    Returns ``None`` when there is no split file or it is not a valid split (then new folds are made and
    nobody can be said to have moved).
    """
    splits_path = Path(splits_path)
    if not splits_path.is_file():
        return None
    try:
        splits = load_splits_file(splits_path)
    except HecktorError:
        return None
    folds: dict[str, int] = {}
    for index, fold in enumerate(splits):
        for pid in fold["val"]:
            folds.setdefault(pid, index)
    seed = source = None
    if report_path is not None and Path(report_path).is_file():
        try:
            info = json.loads(Path(report_path).read_text(encoding="utf-8")).get("splits") or {}
            seed = info.get("seed") if isinstance(info.get("seed"), int) else None
            source = info.get("source") if isinstance(info.get("source"), str) else None
        except (OSError, ValueError, AttributeError):
            pass
    return PreviousSplits(folds, len(splits), seed, source)


def make_stable_splits(strata: Mapping[str, tuple[str, ...]], num_folds: int = 5, seed: int = 0,
                       previous: PreviousSplits | None = None) -> tuple[Splits, dict[str, Any]]:
    """Stratified folds (:func:`make_stratified_splits`) in which the patients of a previous split keep theirs.

    Parameters
    ----------
    strata : mapping
        PatientID -> stratification key (see :func:`stratum_of`) of the labelled training cases.
    num_folds, seed : int
    previous : PreviousSplits, optional
        The dataset's earlier split (:func:`read_previous_splits`). It is kept when it has ``num_folds``
        folds, was made by this function (or its source is unknown) and with ``seed`` (or an unknown seed):
        every patient of it still in ``strata`` keeps its validation fold, whatever its key now; patients
        not in it are dealt and balanced as in :func:`make_stratified_splits` around the fixed ones.
        Otherwise (or should a fold end up empty) new folds are made for everyone.

    Returns
    -------
    splits, info
        The folds, and ``source``, ``num_folds``, ``seed``, ``kept`` (patients held in their previous fold),
        ``new`` (patients placed), ``left`` (previous patients no longer training cases), ``changed_fold``
        (previous patients now in another validation fold), ``changed_examples`` (up to 20) and, when someone
        changed fold, ``warning`` (one line naming how many and why).
    """
    if num_folds < 2:
        raise HecktorError(f"num_folds must be at least 2, got {num_folds}")
    if len(strata) < num_folds:
        raise HecktorError(f"cannot make {num_folds} folds from {len(strata)} labelled patients")
    info: dict[str, Any] = {"source": STRATIFIED_SOURCE, "num_folds": num_folds, "seed": seed}
    splits = None
    reason = None
    if previous is not None:
        if previous.num_folds != num_folds:
            reason = f"{previous.num_folds} -> {num_folds} folds"
        elif previous.source is not None and previous.source != STRATIFIED_SOURCE:
            reason = f"the previous folds came from {previous.source}"
        elif previous.seed is not None and previous.seed != seed:
            reason = f"seed {previous.seed} -> {seed}"
        else:
            fixed = {p: f for p, f in previous.folds.items() if p in strata}
            try:
                splits = _assign(strata, num_folds, seed, fixed)
            except HecktorError:
                reason = "keeping the previous folds would leave a validation fold empty"
    if splits is None:
        splits = make_stratified_splits(strata, num_folds, seed)
    fold_of = {p: i for i, fold in enumerate(splits) for p in fold["val"]}
    before = previous.folds if previous is not None else {}
    changed = sorted(p for p in strata if p in before and before[p] != fold_of[p])
    info.update(kept=sum(1 for p in strata if p in before and before[p] == fold_of[p]),
                new=sum(1 for p in strata if p not in before), left=sum(1 for p in before if p not in strata),
                changed_fold=len(changed), changed_examples=changed[:20])
    if changed:
        info["warning"] = (f"splits_final.json: {len(changed)} of the {sum(1 for p in strata if p in before)} "
                           f"training cases of the previous split changed validation fold ({reason}): models "
                           "trained on the previous folds cannot be compared fold by fold with new ones")
    return splits, info


def load_splits_file(path: str | Path) -> Splits:
    """Read an nnU-Net split file, checking its format.

    Raises
    ------
    HecktorError
        Unreadable file or not a list of ``{"train": [...], "val": [...]}`` objects.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise HecktorError(f"{path}: cannot read split file ({exc.strerror})") from None
    except ValueError as exc:
        raise HecktorError(f"{path}: split file is not valid JSON ({exc})") from None
    if not isinstance(data, list) or not data:
        raise HecktorError(f"{path}: a split file must be a non-empty JSON list of folds")
    for i, fold in enumerate(data):
        if not isinstance(fold, dict) or not all(isinstance(fold.get(k), list) for k in ("train", "val")):
            raise HecktorError(f"{path}: fold {i} must be an object with 'train' and 'val' lists")
        if not all(isinstance(v, str) for k in ("train", "val") for v in fold[k]):
            raise HecktorError(f"{path}: fold {i}: case identifiers must be strings")
    return data


def filter_splits(splits: Splits, present: Iterable[str], source: str = "split file") -> tuple[Splits, dict[str, Any]]:
    """Restrict given folds to the patients present.

    Parameters
    ----------
    splits : list of dict
        Folds as read by :func:`load_splits_file` (e.g. the organisers' file listing 883 IDs).
    present : iterable of str
        PatientIDs of the converted labelled training cases.

    Returns
    -------
    splits, info
        The filtered folds (order kept), and ``ids_in_file``, ``ids_dropped`` (IDs of the file not present),
        ``dropped_examples``, ``patients_not_in_any_val`` (present patients never validated).

    Raises
    ------
    HecktorError
        A fold ends up with an empty ``train`` or ``val`` list.
    """
    present = set(present)
    in_file = {pid for fold in splits for key in ("train", "val") for pid in fold[key]}
    filtered = [{"train": [p for p in fold["train"] if p in present], "val": [p for p in fold["val"] if p in present]}
                for fold in splits]
    empty = [f"fold {i} has an empty {key} list" for i, fold in enumerate(filtered) for key in ("train", "val")
             if not fold[key]]
    if empty:
        raise HecktorError(f"{source}: after keeping only the {len(present)} patients present, "
                           + "; ".join(empty))
    dropped = sorted(in_file - present)
    validated = {pid for fold in filtered for pid in fold["val"]}
    info = {"source": source, "num_folds": len(filtered), "ids_in_file": len(in_file), "ids_dropped": len(dropped),
            "dropped_examples": dropped[:20], "patients_not_in_any_val": sorted(present - validated)}
    return filtered, info


def split_balance(splits: Splits, strata: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    """Per fold: number of validation patients, and counts per centre / HPV / Relapse (for the report)."""
    names = ("centre", "HPV Status", "Relapse")
    summary = []
    for fold in splits:
        row: dict[str, Any] = {"val": len(fold["val"])}
        for d, name in enumerate(names):
            row[name] = dict(sorted(Counter(strata[p][d] for p in fold["val"] if p in strata).items()))
        summary.append(row)
    return {"folds": summary}
