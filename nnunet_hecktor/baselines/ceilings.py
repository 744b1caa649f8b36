"""Synthetic ceilings: the generator's own true risk and HPV probability, and the feasible ceiling.

On a synthetic cohort nothing can rank relapses better than the linear predictor that drew
them, nor HPV status better than the probability it was drawn from (up to noise): the *true*
ceiling (:func:`ceiling_predictions`). It uses what no permitted model sees (the centre, true
values of missing clinical entries, HPV status for 2025 risk). The *feasible* ceiling
(:func:`feasible_ceiling_predictions`, :func:`population_ceilings`) is a model on the inputs a
deployed model is given, with the image quantities read perfectly, fitted on a large draw of the
same generator: what a model that learned everything learnable would reach.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def _truth(path: str | os.PathLike) -> dict:
    from nnunet_hecktor.errors import InputDataError

    if isinstance(path, dict):
        return path
    path = Path(path)
    if not path.is_file():
        raise InputDataError("synthetic ground truth (synthetic_ground_truth.json) is missing", None, path)
    return json.loads(path.read_text())["patients"]


def _true_hpv_probability(patient: dict) -> float:
    """The generator's HPV probability given everything it drew (rich world: after the cystic nodes)."""
    factors = patient.get("image_factors")
    return float(factors["hpv_posterior"] if factors else patient["hpv_probability"])


def ceiling_predictions(new_ground_truth: str | os.PathLike,
                        train_ground_truth: str | os.PathLike) -> tuple[dict[str, dict[str, float | int]], float]:
    """``({PatientID: {"risk", "hpv_probability", "hpv_status"}}, threshold)`` for the new patients.

    ``risk`` is the true linear predictor (higher = earlier relapse), ``hpv_probability`` the true
    probability of HPV positivity (in the rich world: the posterior given the cystic nodes).
    ``hpv_status`` thresholds it where balanced accuracy is best on the *training* patients' drawn
    statuses (chosen without the new patients' labels; in an
    enriched cohort the true probability is not calibrated, so the prevalence rule would not do).
    """
    import numpy as np

    from nnunet_hecktor.metrics.classification import best_balanced_accuracy_threshold

    train = _truth(train_ground_truth)
    y = np.array([p["hpv"] for p in train.values()], dtype=int)
    probability = np.array([_true_hpv_probability(p) for p in train.values()], dtype=float)
    threshold = best_balanced_accuracy_threshold(y, probability) if 0 < y.sum() < y.size else 0.5
    rows = {pid: {"risk": float(p["true_risk"]), "hpv_probability": _true_hpv_probability(p),
                  "hpv_status": int(_true_hpv_probability(p) >= threshold)}
            for pid, p in _truth(new_ground_truth).items()}
    return rows, float(threshold)


# --------------------------------------------------------------------------------------------------
# The feasible ceiling: the best a model can reach from the inputs a deployed model is given.
# --------------------------------------------------------------------------------------------------

#: Image quantities of the feasible models, by name: what a perfect reading of the images gives.
#: ``log_volume`` = ln(max(primary volume, 0.5 mL) / 15 mL), ``suvmax`` (SUV), ``node_count``; the rich
#: world adds its factors (``necrosis``, ``heterogeneity``, ``extranodal_extension``, ``cystic_nodes``).
IMAGE_QUANTITIES: tuple[str, ...] = ("log_volume", "suvmax", "node_count")
RICH_QUANTITIES: tuple[str, ...] = ("necrosis", "heterogeneity", "extranodal_extension", "cystic_nodes")
#: Karnofsky values the synthetic release uses, as ECOG grades (100 -> 0, 90 -> 1, 80 -> 2).
_KARNOFSKY_AS_ECOG = {100: 0, 90: 1, 80: 2}


def permitted_inputs(edition: str, target: str) -> tuple[str, ...]:
    """Clinical columns a deployed model of ``edition`` may use for ``target`` (``"risk"`` or ``"hpv"``):
    the edition's test-time inputs (never CenterID), without the target itself."""
    from nnunet_hecktor import schema
    from nnunet_hecktor.editions import get_edition

    inputs = get_edition(edition).test_inputs
    if target == "hpv":
        inputs = tuple(c for c in inputs if c != schema.COL_HPV)
    return inputs


def _image_value(patient: dict, name: str) -> float:
    import math

    if name == "log_volume":
        return math.log(max(float(patient["primary_volume_ml"]), 0.5) / 15.0)
    if name in ("suvmax", "node_count"):
        return float(patient[name])
    factors = patient.get("image_factors")
    if not factors:
        raise ValueError(f"image quantity {name!r} exists in the rich synthetic world only")
    return float(factors[name])


def feasible_design(patients: list[dict], columns: tuple[str, ...], image: tuple[str, ...] = ()):
    """Design matrix (:class:`pandas.DataFrame`) of recorded clinical ``columns`` and ``image`` quantities.

    ``patients`` are ground-truth records (``synthetic_ground_truth.json`` ``patients`` values, or
    :meth:`SyntheticPatient.to_json`). Clinical values are the *recorded* ones (missing stays missing):
    each column becomes its value (missing -> 0) plus a missing indicator; Performance Status becomes
    an ECOG grade and a Karnofsky-scale indicator; M-stage becomes M1 / Mx indicators. CenterID is
    never used.
    """
    import pandas as pd

    from nnunet_hecktor import schema

    data: dict[str, list[float]] = {}

    def add(name: str, values: list[float]) -> None:
        data[name] = values

    for column in columns:
        raw = [p["clinical_recorded"].get(column) for p in patients]
        missing = [float(v is None) for v in raw]
        if column == schema.COL_PERFORMANCE:
            add("performance_ecog", [0.0 if v is None else float(_KARNOFSKY_AS_ECOG.get(int(v), v)) for v in raw])
            add("performance_karnofsky", [float(v is not None and int(v) > 4) for v in raw])
        elif column == schema.COL_MSTAGE:
            add("m1", [float(v == "M1") for v in raw])
            add("mx", [float(v == "Mx") for v in raw])
        elif column == schema.COL_AGE:
            add("age_per_10y", [0.0 if v is None else (float(v) - 60.0) / 10.0 for v in raw])
        else:
            add(column, [0.0 if v is None else float(v) for v in raw])
        add(f"{column} missing", missing)
    for name in image:
        add(name, [_image_value(p, name) for p in patients])
    frame = pd.DataFrame(data)
    return frame


def _drop_constant(train, *others):
    keep = [c for c in train.columns if train[c].nunique() > 1]
    return (train[keep], *(o[keep] for o in others))


def fit_feasible_risk(train: list[dict], columns: tuple[str, ...], image: tuple[str, ...] = ()):
    """A Cox model (lifelines, tiny ridge penalty for separable indicators) on ``feasible_design`` of
    ``train`` with its drawn RFS/Relapse; returns ``predict(patients) -> risk`` (higher = earlier)."""
    import numpy as np
    from lifelines import CoxPHFitter

    x = feasible_design(train, columns, image)
    (x,) = _drop_constant(x)
    keep = list(x.columns)
    frame = x.assign(_time=[float(p["rfs_days"]) for p in train], _event=[int(p["relapse"]) for p in train])
    model = CoxPHFitter(penalizer=1e-4).fit(frame, "_time", "_event")

    def predict(patients: list[dict]) -> np.ndarray:
        design = feasible_design(patients, columns, image)[keep]
        return np.asarray(design.to_numpy() @ model.params_[keep].to_numpy(), dtype=float)

    return predict


def fit_feasible_hpv(train: list[dict], columns: tuple[str, ...], image: tuple[str, ...] = ()):
    """A logistic regression (scikit-learn, standardised, nearly unpenalised) of the drawn HPV status on
    ``feasible_design`` of ``train``; returns ``predict(patients) -> P(HPV positive)``."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = feasible_design(train, columns, image)
    (x,) = _drop_constant(x)
    keep = list(x.columns)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1e3, max_iter=2000))
    model.fit(x.to_numpy(), np.array([int(p["hpv"]) for p in train]))

    def predict(patients: list[dict]) -> np.ndarray:
        return model.predict_proba(feasible_design(patients, columns, image)[keep].to_numpy())[:, 1]

    return predict


def _rich(patients: list[dict]) -> bool:
    return all(p.get("image_factors") for p in patients)


def feasible_ceiling_predictions(new_ground_truth: str | os.PathLike, reference: str | os.PathLike | list[dict],
                                 edition: str = "2025", rich_factors: bool = True
                                 ) -> tuple[dict[str, dict[str, float | int]], float]:
    """Feasible-ceiling predictions for the new patients: ``({PatientID: {"risk", "hpv_probability",
    "hpv_status"}}, threshold)``.

    The models of :func:`fit_feasible_risk` / :func:`fit_feasible_hpv` on every input a deployed model
    of ``edition`` may use (recorded clinical values, no CenterID, no HPV status for 2025 risk) plus
    the image quantities read perfectly (:data:`IMAGE_QUANTITIES`, and :data:`RICH_QUANTITIES` in
    the rich world), fitted on ``reference``: ground-truth patients of a large draw of the same
    generator (a path to a ``synthetic_ground_truth.json`` or a list of records, e.g.
    ``[p.to_json() for p in nnunet_hecktor.synthetic.draw_patients(5000, seed)]``). The HPV threshold
    maximises balanced accuracy on the reference patients. ``rich_factors=False`` leaves the rich
    world's image factors out: the best a model reading only volume, SUVmax and node count can do.
    """
    import numpy as np

    from nnunet_hecktor.metrics.classification import best_balanced_accuracy_threshold

    reference_patients = list(_truth(reference).values()) if not isinstance(reference, list) else reference
    new = _truth(new_ground_truth)
    rich = rich_factors and _rich(reference_patients) and _rich(list(new.values()))
    image = IMAGE_QUANTITIES + (RICH_QUANTITIES if rich else ())
    risk = fit_feasible_risk(reference_patients, permitted_inputs(edition, "risk"), image)
    rows: dict[str, dict[str, float | int]] = {}
    patients = list(new.values())
    risks = risk(patients)
    if edition == "2025":
        hpv = fit_feasible_hpv(reference_patients, permitted_inputs(edition, "hpv"), image)
        y = np.array([int(p["hpv"]) for p in reference_patients])
        threshold = best_balanced_accuracy_threshold(y, hpv(reference_patients))
        probabilities = hpv(patients)
    else:  # 2026: HPV status is an input, not a target
        threshold, probabilities = float("nan"), np.full(len(patients), np.nan)
    for pid, r, prob in zip(new, risks, probabilities):
        rows[pid] = {"risk": float(r), "hpv_probability": float(prob),
                     "hpv_status": int(prob >= threshold) if prob == prob else 0}
    return rows, float(threshold)


def population_ceilings(fit: list[dict], evaluate: list[dict], edition: str = "2025") -> list[dict]:
    """The ceiling table of one population: C-index (risk) and AUC (HPV, 2025 only) on ``evaluate`` of
    models fitted on ``fit`` (ground-truth records of two independent draws of the same generator).

    Rows, each with ``row``, ``c_index`` and ``auc``: clinical only (permitted inputs), + log volume
    and SUVmax, + node count, + the rich world's factors (rich world only), ``feasible ceiling`` (all
    permitted inputs: the last of these), and ``true`` (the generator's true risk; HPV: its
    probability, the posterior given the cystic nodes in the rich world). Harrell's C-index on the
    drawn RFS/Relapse (scikit-survival); AUC on the drawn HPV status.
    """
    import numpy as np
    from sksurv.metrics import concordance_index_censored

    from nnunet_hecktor.metrics.classification import roc_auc

    time = np.array([float(p["rfs_days"]) for p in evaluate])
    event = np.array([bool(p["relapse"]) for p in evaluate])
    hpv = np.array([int(p["hpv"]) for p in evaluate])

    def c_index(risk) -> float:
        return float(concordance_index_censored(event, time, np.asarray(risk, dtype=float))[0])

    rich = _rich(fit) and _rich(evaluate)
    steps = [("clinical only", ()), ("+ log volume, SUVmax", ("log_volume", "suvmax")),
             ("+ node count", IMAGE_QUANTITIES)]
    if rich:
        steps.append(("+ rich-world image factors", IMAGE_QUANTITIES + RICH_QUANTITIES))
    rows = []
    for name, image in steps:
        risk = fit_feasible_risk(fit, permitted_inputs(edition, "risk"), image)(evaluate)
        row = {"row": name, "c_index": c_index(risk), "auc": float("nan")}
        if edition == "2025":
            row["auc"] = roc_auc(hpv, fit_feasible_hpv(fit, permitted_inputs(edition, "hpv"), image)(evaluate))
        rows.append(row)
    rows.append({**rows[-1], "row": "feasible ceiling (all permitted inputs)"})
    true_probability = [p["image_factors"]["hpv_posterior"] if rich else p["hpv_probability"] for p in evaluate]
    rows.append({"row": "true (generator)", "c_index": c_index([p["true_risk"] for p in evaluate]),
                 "auc": roc_auc(hpv, true_probability) if edition == "2025" else float("nan")})
    return rows
