"""Tune a model folder's post-processing on one fold's validation patients, as deployment applies it.

nnU-Net chooses its post-processing on the cross-validation predictions; a model trained on one
fold only (the demo, the learning benchmark) has one fold's validation patients, which the network
never trained on. :func:`tune_on_fold_validation` predicts them with the fold's deployed checkpoint
(exactly as ``predict`` predicts a new patient, without post-processing), stores the masks where
nnU-Net puts validation predictions (``fold_k/validation/<PID>.nii.gz``, replacing the masks of
nnU-Net's own validation, which may have used other settings such as mirroring), runs
``tune-postprocessing``'s search on them and writes the result as the model folder's own
``postprocessing.json``, which ``predict``, ``prognosis build`` and the containers then apply.

Labels: 0 background, 1 GTVp, 2 GTVn.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from nnunet_hecktor import schema
from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.postprocessing.tuning import TuningResult
from nnunet_hecktor.prediction.routing import POSTPROCESSING_FILE


def fold_validation_patients(splits_json: str | os.PathLike, fold: int) -> list[str]:
    """Validation patients of ``fold`` in nnU-Net's ``splits_final.json``."""
    try:
        return list(json.loads(Path(splits_json).read_text(encoding="utf-8"))[fold]["val"])
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise HecktorError(f"{splits_json}: cannot read the validation patients of fold {fold} ({exc})") from None


def tune_on_fold_validation(model_dir: str | os.PathLike, raw_dataset: str | os.PathLike,
                            splits_json: str | os.PathLike, fold: int = 0, device: str = "cpu",
                            use_mirroring: bool = False, objective: str = "mean",
                            progress: bool = True) -> TuningResult:
    """Predict fold ``fold``'s validation patients, tune the post-processing on them, stage it.

    Parameters
    ----------
    model_dir : path-like
        Trained model folder (``fold_<fold>`` with the deployed checkpoint).
    raw_dataset : path-like
        The converted training dataset (``imagesTr``, ``labelsTr``).
    splits_json : path-like
        nnU-Net's ``splits_final.json`` (which patients fold ``fold`` validates).
    fold : int
        The fold whose validation patients are used.
    device : str
        For predicting.
    use_mirroring : bool
        Test-time mirroring (use what deployment will use).
    objective : str
        Task 1 figure the search maximises (default: mean of GTVp Dice, GTVn DSCagg and F1agg).
    progress : bool
        Progress bars.

    Returns
    -------
    TuningResult
        The chosen rules and the validation figures before and after them. The rules are written
        to ``<model_dir>/postprocessing.json`` (with nnU-Net's ``postprocessing.pkl`` beside it).
    """
    from nnunet_hecktor.postprocessing.tuning import tune_postprocessing
    from nnunet_hecktor.prediction.api import predict

    model_dir, raw_dataset = Path(model_dir), Path(raw_dataset)
    patients = fold_validation_patients(splits_json, fold)
    if not patients:
        raise HecktorError(f"{splits_json}: fold {fold} validates no patient")
    staged = model_dir / POSTPROCESSING_FILE
    # The rules are chosen on raw network masks: an earlier choice must not be applied to them.
    staged.unlink(missing_ok=True)
    validation = model_dir / f"fold_{fold}" / "validation"
    scratch = model_dir / f"fold_{fold}" / "validation_predicting"
    if scratch.exists():
        shutil.rmtree(scratch)
    # With the softmax saved beside each mask, the search also tries probability thresholds (a
    # network whose lesion boundaries lie outside the true ones is corrected by a GTVp threshold
    # above 0.5); deployment computes the same softmax in memory (HecktorPredictor.predict).
    predict(raw_dataset / "imagesTr", scratch, model_dir, folds=[fold], device=device, use_mirroring=use_mirroring,
            segmentation_only=True, patients=patients, progress=progress, warn_missing_stage=False,
            save_probabilities=True)
    validation.mkdir(parents=True, exist_ok=True)
    for pid in patients:
        for name in (f"{pid}.npz", f"{pid}{schema.FILE_ENDING}"):  # the mask last: it marks the case complete
            os.replace(scratch / name, validation / name)
    shutil.rmtree(scratch)
    return tune_postprocessing(model_dir, raw_dataset / "labelsTr", staged, folds=[fold], objective=objective,
                               progress=progress)
