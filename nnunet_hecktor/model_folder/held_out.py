"""Fit the prognosis stage on a held-out cohort: patients the network never trained on.

``prognosis build`` normally fits the stage on each fold's out-of-fold masks. When only fold 0 is
trained (the demo, the learning benchmark), fold 0's validation patients (~20 % of the cohort) are
too few to fit survival, HPV or T/N models. A *held-out cohort* (never seen by the network) then
stands in for the out-of-fold patients: a splits file names it fold 0's validation set, and
:func:`nnunet_hecktor.model_folder.build.build_stage` predicts its masks with the fold-0 network
exactly as ``predict`` does for new patients (same checkpoint, same post-processing), measures their
features, fits every target of the edition on the edition's test-time inputs (no HPV status for
2025 risk; HPV status as an input for 2026) and stages the models in the model folder.

Conventions: risk higher = earlier relapse; labels 0 background, 1 GTVp, 2 GTVn.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nnunet_hecktor import schema
from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.fileio import write_json_atomic

#: The splits file written into the held-out cohort's dataset: fold 0 trains on the training
#: cohort and "validates" on the held-out cohort.
HELD_OUT_SPLITS = "splits_stage_cohort.json"


def dataset_patients(dataset: str | os.PathLike) -> list[str]:
    """Patients of a converted dataset (its ``labelsTr`` masks, else the CT channel of ``imagesTr``)."""
    dataset = Path(dataset)
    labels = sorted(p.name[: -len(schema.FILE_ENDING)] for p in (dataset / "labelsTr").glob(f"*{schema.FILE_ENDING}"))
    if labels:
        return labels
    suffix = f"_0000{schema.FILE_ENDING}"
    return sorted(p.name[: -len(suffix)] for p in (dataset / "imagesTr").glob(f"*{suffix}"))


def build_stage_on_held_out_cohort(model_dir: str | os.PathLike, held_out_dataset: str | os.PathLike,
                                   train_dataset: str | os.PathLike, edition: str, device: str = "cpu",
                                   n_bootstrap: int = 200, random_state: int = 0, use_mirroring: bool = False,
                                   progress: bool = True) -> dict[str, Any]:
    """Fit and stage the prognosis stage of ``model_dir`` (fold 0) on a held-out cohort (module docstring).

    Parameters
    ----------
    model_dir : path-like
        The trained model folder (fold 0).
    held_out_dataset : path-like
        Converted held-out cohort (``imagesTr``, ``clinical.csv`` with the targets), disjoint from
        the training cohort.
    train_dataset : path-like
        Converted training cohort (only its patient ids, recorded as fold 0's training set).
    edition : str
        HECKTOR edition whose targets and test-time inputs the stage follows (``"2025"``, ``"2026"``).
    device : str
        For predicting the held-out cohort's masks.
    n_bootstrap, random_state : int
        The build's intervals and cross-validation seed.
    use_mirroring : bool
        Test-time mirroring when predicting the masks (use what deployment will use).
    progress : bool
        Progress bars.

    Returns
    -------
    dict
        JSON-able summary: patients, the cross-validated figures of each target, what was not fitted.

    Raises
    ------
    HecktorError
        The held-out cohort is empty or shares patients with the training cohort.
    """
    from nnunet_hecktor.model_folder.build import build_stage

    held_out_dataset, train_dataset = Path(held_out_dataset), Path(train_dataset)
    held_out_ids, train_ids = dataset_patients(held_out_dataset), dataset_patients(train_dataset)
    overlap = sorted(set(held_out_ids) & set(train_ids))
    if overlap:
        raise HecktorError(f"held-out cohort {held_out_dataset} shares patients with the training cohort: "
                           f"{overlap[:5]}")
    if not held_out_ids:
        raise HecktorError(f"held-out cohort {held_out_dataset} holds no patient")
    splits = held_out_dataset / HELD_OUT_SPLITS
    write_json_atomic(splits, [{"train": train_ids, "val": held_out_ids}])
    built = build_stage(model_dir, edition=edition, folds=[0], raw_dir=held_out_dataset, splits_json=splits,
                        device=device, n_bootstrap=n_bootstrap, random_state=random_state,
                        use_mirroring=use_mirroring, progress=progress)
    return json.loads(json.dumps({"patients": built.n_patients, "predicted_masks": len(built.predicted_masks),
                                  "figures": built.figures, "not_fitted": built.not_fitted,
                                  "staged": {k: str(v) for k, v in built.stage_files.items()}}, default=str))
