"""Figures per centre: the same metrics as the whole cohort, on each centre's patients.

The centre of a patient is the PatientID prefix (``CHUP-000`` -> ``CHUP``), else its ``CenterID``
(:func:`.per_patient.centre`). No intervals: centres are often small, and a figure on a handful of
patients is shown with its patient count so it is read as such. Undefined figures (a centre
without relapses, with one HPV class, with one stage) are NaN.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from nnunet_hecktor.metrics.bootstrap import bootstrap_task1
from nnunet_hecktor.metrics.classification import binary_metrics, multiclass_balanced_accuracy
from nnunet_hecktor.metrics.survival import harrell_c_index

from .outcome import COL_N_STAGE, COL_T_STAGE
from .per_patient import centre, hpv_arrays, stage_arrays, survival_arrays, task1_arrays

#: Columns of per_centre.csv after ``centre`` and ``n_patients``.
CENTRE_COLUMNS: tuple[str, ...] = (
    "n_task1", "gtvp_dice_mean", "gtvn_dice_agg", "gtvn_f1_agg", "n_task2", "n_events", "c_index",
    "n_task3", "n_hpv_positive", "hpv_balanced_accuracy", "hpv_auc", "n_t_stage", "t_balanced_accuracy",
    "n_n_stage", "n_balanced_accuracy",
)


def centre_figures(rows: Sequence[Mapping]) -> dict:
    """The headline figures of one group of per-patient rows (NaN / 0 where a task has no patient)."""
    out: dict = {"n_patients": len(rows)}
    arrays = task1_arrays(rows)
    out["n_task1"] = 0 if arrays is None else len(arrays.patients)
    figures = bootstrap_task1(arrays, np.ones((1, len(arrays.patients)))) if arrays is not None else {}
    for key in ("gtvp_dice_mean", "gtvn_dice_agg", "gtvn_f1_agg"):
        out[key] = float(figures[key][0]) if figures else math.nan
    survival = survival_arrays(rows)
    out["n_task2"] = 0 if survival is None else len(survival[0])
    out["n_events"] = 0 if survival is None else int(survival[2].sum())
    out["c_index"] = harrell_c_index(*survival[1:]) if survival is not None else math.nan
    hpv = hpv_arrays(rows)
    out["n_task3"] = 0 if hpv is None else len(hpv[0])
    out["n_hpv_positive"] = 0 if hpv is None else int(hpv[1].sum())
    if hpv is not None:
        metrics = binary_metrics(hpv[1], hpv[2], hpv[3])
        out["hpv_balanced_accuracy"] = metrics.balanced_accuracy if np.unique(hpv[1]).size > 1 else math.nan
        out["hpv_auc"] = metrics.auc
    else:
        out["hpv_balanced_accuracy"] = out["hpv_auc"] = math.nan
    for column, prefix in ((COL_T_STAGE, "t"), (COL_N_STAGE, "n")):
        stage = stage_arrays(rows, column)
        out[f"n_{prefix}_stage"] = 0 if stage is None else len(stage[0])
        out[f"{prefix}_balanced_accuracy"] = (multiclass_balanced_accuracy(stage[1], stage[2])
                                              if stage is not None else math.nan)
    return out


def per_centre(rows: Sequence[Mapping]) -> list[dict]:
    """One dict per centre (sorted by centre), then ``all``: ``{"centre", "n_patients", <CENTRE_COLUMNS>}``."""
    groups: dict[str, list[Mapping]] = {}
    for row in rows:
        groups.setdefault(centre(row), []).append(row)
    out = [{"centre": name, **centre_figures(members)} for name, members in sorted(groups.items())]
    out.append({"centre": "all", **centre_figures(list(rows))})
    return out
