"""``nnunet-hecktor prognosis build``: the prognosis stage of a trained model folder, fitted as deployed.

After the folds of a multi-task (or any) nnU-Net model are trained, one call

1. takes each fold's out-of-fold predicted masks (nnU-Net's ``fold_k/validation/<PID>.nii.gz`` of
   the fold's validation patients, ``splits_final.json``); a mask that is missing (or whose
   probabilities a probability-threshold rule needs) is predicted with that fold's own deployed
   checkpoint;
2. post-processes them exactly as deployment will: the model folder's post-processing
   (:func:`~nnunet_hecktor.prediction.routing.model_postprocessing_file`) or the one given;
3. measures the features with deployment's own code
   (:func:`~nnunet_hecktor.prognosis.deployment.deployed_feature_row`) on the converted CT and PET
   (``imagesTr``, the grid the network sees);
4. fits every patient-level target the edition scores and the dataset labels (the registry of
   :mod:`nnunet_hecktor.prognosis.targets`: risk, HPV for 2025; T/N when registered), with only the
   clinical inputs the edition supplies at test time (``editions.get_edition(...).test_inputs``: a
   2025 risk model never takes HPV status, which the Task 2 test input does not carry), using the
   stage's cross-validation;
5. reports each target's cross-validated figures with 95 % bootstrap intervals
   (:mod:`nnunet_hecktor.metrics.bootstrap`);
6. stages the models in ``<model>/prognosis/`` with ``stage.json`` (edition, inputs, post-processing,
   figures, fallbacks), replacing any earlier stage as a whole.

The working files (features, the stage's out-of-fold predictions and figures per target, masks that
had to be predicted) stay in ``<model>/prognosis_build/``.

Conventions: risk higher = earlier relapse; HPV 1 = positive; labels 0 background, 1 GTVp, 2 GTVn.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from nnunet_hecktor import __version__, schema
from nnunet_hecktor.errors import HecktorError, InputDataError

logger = logging.getLogger(__name__)

#: Working folder of a build inside the model folder.
BUILD_FOLDER = "prognosis_build"
MANIFEST_FORMAT = "nnunet-hecktor-prognosis-stage"
MANIFEST_VERSION = 1


@dataclass
class BuildResult:
    """What :func:`build_stage` did.

    Attributes
    ----------
    model_dir : Path
    edition : str
    stage_files : dict
        Target -> staged model file.
    figures : dict
        Target -> cross-validated figures with 95 % intervals.
    not_fitted : dict
        Target -> why it was not fitted (no labels in the dataset, too few events ...).
    n_patients : int
        Patients with an out-of-fold mask and features.
    predicted_masks : list of str
        Patients whose out-of-fold mask had to be predicted.
    manifest : dict
        ``prognosis/stage.json``.
    """

    model_dir: Path
    edition: str
    stage_files: dict[str, Path] = field(default_factory=dict)
    figures: dict[str, dict] = field(default_factory=dict)
    not_fitted: dict[str, str] = field(default_factory=dict)
    n_patients: int = 0
    predicted_masks: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        lines = [f"prognosis stage of {self.model_dir} (HECKTOR {self.edition}), fitted on the out-of-fold "
                 f"predicted masks of {self.n_patients} patients, post-processed as deployed"]
        if self.predicted_masks:
            lines.append(f"  {len(self.predicted_masks)} out-of-fold masks predicted with their fold's checkpoint")
        for name, figures in self.figures.items():
            lines.append(f"  {name}: {_figure_line(figures)}")
            inputs = self.manifest.get("targets", {}).get(name, {}).get("clinical_columns", [])
            lines.append(f"    clinical inputs: {', '.join(inputs) or 'none'}")
        for name, reason in self.not_fitted.items():
            lines.append(f"  {name}: not fitted ({reason})")
        for name, path in self.stage_files.items():
            lines.append(f"  staged {name} -> {path}")
        lines.append("  'nnunet-hecktor predict -m MODEL' and the challenge container now use it")
        return "\n".join(lines)


def _figure_line(figures: dict) -> str:
    parts = []
    for key, value in figures.items():
        if key.endswith("_ci95") or not isinstance(value, float):
            continue
        ci = figures.get(f"{key}_ci95")
        parts.append(f"{key.replace('_', ' ')} {value:.3f}" + (f" (95 % CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else ""))
    counts = [f"{k.replace('n_', '')} {v}" for k, v in figures.items() if k.startswith("n_")]
    return "cross-validated " + ", ".join(parts) + (f"; {', '.join(counts)}" if counts else "")


@dataclass(frozen=True)
class _Sources:
    """Where the build reads from."""

    images: Path
    clinical: Path
    splits: Path | None
    postprocessing: Path | None


def _dataset_folder(variable: str, dataset: str) -> Path | None:
    root = os.environ.get(variable)
    return Path(root) / dataset if root else None


def build_sources(model_dir: str | os.PathLike, raw_dir=None, clinical_csv=None, splits_json=None,
                  postprocessing=None) -> "_Sources":
    """Where a build of ``model_dir`` reads its images, clinical table, splits and post-processing from.

    Raises
    ------
    HecktorError
        A needed file or folder is missing (with the option that gives it).
    """
    from nnunet_hecktor.prediction.routing import model_postprocessing_file

    model_dir = Path(model_dir)
    dataset = model_dir.parent.name
    raw = Path(raw_dir).expanduser() if raw_dir is not None else _dataset_folder("nnUNet_raw", dataset)
    if raw is None or not (raw / "imagesTr").is_dir():
        raise HecktorError(f"cannot find the training images of {dataset}: "
                           + (f"{raw}/imagesTr does not exist" if raw is not None else "nnUNet_raw is not set")
                           + "; give the converted dataset folder with --raw")
    clinical = Path(clinical_csv).expanduser() if clinical_csv is not None else raw / "clinical.csv"
    if not clinical.is_file():
        raise HecktorError(f"no clinical table {clinical} (the converter's clinical.csv); give one with --clinical")
    splits: Path | None
    if splits_json is not None:
        splits = Path(splits_json).expanduser()
        if not splits.is_file():
            raise HecktorError(f"splits file {splits} does not exist")
    else:
        preprocessed = _dataset_folder("nnUNet_preprocessed", dataset)
        candidates = [p for p in ((preprocessed / "splits_final.json") if preprocessed else None,
                                  raw / "splits_final.json") if p is not None and p.is_file()]
        splits = candidates[0] if candidates else None
    pp = Path(postprocessing).expanduser() if postprocessing is not None else model_postprocessing_file(model_dir)
    return _Sources(raw / "imagesTr", clinical, splits, pp)


def _validation_patients(model_dir: Path, folds: Sequence, splits: Path | None) -> dict[Any, list[str]]:
    """Fold -> its validation patients: ``splits_final.json``, else the masks in ``fold_k/validation``."""
    if splits is not None:
        try:
            data = json.loads(splits.read_text(encoding="utf-8"))
            return {f: list(data[int(f)]["val"]) for f in folds}
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise HecktorError(f"{splits}: cannot read the validation patients of folds {list(folds)} ({exc})") from None
    out = {}
    for fold in folds:
        folder = model_dir / f"fold_{fold}" / "validation"
        masks = sorted(p.name[: -len(schema.FILE_ENDING)] for p in folder.glob(f"*{schema.FILE_ENDING}"))
        if not masks:
            raise HecktorError(f"{folder} holds no predicted mask and no splits_final.json says which patients fold "
                               f"{fold} validates; give it with --splits")
        out[fold] = masks
    return out


def _masks_to_predict(model_dir: Path, patients: dict, pp_config) -> dict[Any, list[str]]:
    """Fold -> patients whose validation mask (or the probabilities a threshold rule needs) is missing."""
    needs_probabilities = bool(pp_config is not None and pp_config.probability_threshold)
    out = {}
    for fold, pids in patients.items():
        folder = model_dir / f"fold_{fold}" / "validation"
        missing = [p for p in pids if not (folder / f"{p}{schema.FILE_ENDING}").is_file()
                   or (needs_probabilities and not (folder / f"{p}.npz").is_file())]
        if missing:
            out[fold] = missing
    return out


def _predict_missing(model_dir: Path, sources: _Sources, missing: dict, checkpoint, device: str, work: Path,
                     progress: bool, use_mirroring: bool = True) -> dict[str, Path]:
    """Predict the missing out-of-fold masks, each with its own fold's checkpoint, post-processed as deployed."""
    from nnunet_hecktor.prediction.api import predict

    masks = {}
    for fold, pids in missing.items():
        out = work / f"fold_{fold}_predicted"
        if out.exists():
            shutil.rmtree(out)
        logger.info("fold %s: predicting %d out-of-fold masks missing from fold_%s/validation", fold, len(pids), fold)
        predict(sources.images, out, model_dir, folds=[fold], checkpoint=checkpoint, device=device,
                postprocessing=sources.postprocessing, segmentation_only=True, patients=pids, progress=progress,
                warn_missing_stage=False, use_mirroring=use_mirroring)
        masks.update({p: out / f"{p}{schema.FILE_ENDING}" for p in pids})
    return masks


def _read(path: Path, patient: str):
    import SimpleITK as sitk

    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputDataError(f"unreadable image ({str(exc).strip().splitlines()[-1]})", patient, path) from None


def _feature_table(model_dir: Path, sources: _Sources, patients: dict, predicted: dict[str, Path], pp_config,
                   progress: bool):
    """The out-of-fold feature table (seg_source ``predicted``), masks post-processed as deployed."""
    import sys

    import pandas as pd
    import SimpleITK as sitk
    from tqdm import tqdm

    from nnunet_hecktor.postprocessing.apply import load_probabilities, postprocess_image
    from nnunet_hecktor.prognosis.deployment import deployed_feature_row
    from nnunet_hecktor.prognosis.feature_catalogue import PATIENT_COLUMN, SEG_SOURCE_COLUMN

    rows, pids = [], []
    jobs = [(fold, pid) for fold, fold_pids in patients.items() for pid in fold_pids]
    for fold, pid in tqdm(jobs, desc="features", unit="patient", disable=not progress, file=sys.stdout):
        ct_path, pet_path = (sources.images / f"{pid}_{channel}{schema.FILE_ENDING}" for channel in ("0000", "0001"))
        if not ct_path.is_file() or not pet_path.is_file():
            raise InputDataError(f"fold {fold} validates it but its images are not in {sources.images}", pid, ct_path)
        if pid in predicted:  # already post-processed by predict, on the original CT grid
            mask = _read(predicted[pid], pid)
        else:
            mask_path = model_dir / f"fold_{fold}" / "validation" / f"{pid}{schema.FILE_ENDING}"
            mask = _read(mask_path, pid)
            if pp_config is not None:
                probabilities = None
                if pp_config.probability_threshold:
                    shape = tuple(sitk.GetArrayViewFromImage(mask).shape)
                    probabilities = load_probabilities(mask_path.with_name(f"{pid}.npz"), shape, pid)
                mask = postprocess_image(mask, pp_config, probabilities, pid)
        rows.append(deployed_feature_row(_read(ct_path, pid), _read(pet_path, pid), mask, pid))
        pids.append(pid)
    table = pd.DataFrame(rows, index=pd.Index(pids, name=PATIENT_COLUMN))
    table.insert(0, SEG_SOURCE_COLUMN, "predicted")
    return table


def permitted_columns(task: str, clinical_csv: Path, test_inputs: Sequence[str]) -> list[str]:
    """Clinical predictors of ``task`` present in the table AND supplied at test time by the edition."""
    from nnunet_hecktor.clinical import read_clinical_csv
    from nnunet_hecktor.prognosis.stage_data import clinical_columns_in, default_clinical_columns

    present = clinical_columns_in(read_clinical_csv(clinical_csv))
    return [c for c in default_clinical_columns(task, present) if c in set(test_inputs)]


def build_stage(model_dir: str | os.PathLike, edition: str | None = None, folds: Sequence | None = None,
                checkpoint: str | None = None, postprocessing: str | os.PathLike | None = None,
                raw_dir: str | os.PathLike | None = None, clinical_csv: str | os.PathLike | None = None,
                splits_json: str | os.PathLike | None = None, device: str = "cpu", n_splits: int = 5,
                cv: str = "kfold", random_state: int = 0, n_bootstrap: int = 1000, targets: Sequence[str] | None = None,
                progress: bool = True, use_mirroring: bool = True) -> BuildResult:
    """Fit and stage the prognosis stage of a trained model folder as it will be deployed (module docstring).

    Parameters
    ----------
    model_dir : path-like
        ``$nnUNet_results/DatasetNNN_Name/<Trainer>__<Plans>__<configuration>`` with trained folds.
    edition : str, optional
        HECKTOR edition whose targets and test-time inputs apply (default :data:`nnunet_hecktor.editions.DEFAULT_EDITION`).
    folds : sequence, optional
        Folds whose validation patients form the cohort (default: every numbered fold with the checkpoint).
    checkpoint : str, optional
        Checkpoint used to predict missing out-of-fold masks (default: the deployed weights).
    postprocessing : path-like, optional
        Post-processing JSON (default: the model folder's own, else none).
    raw_dir : path-like, optional
        The converted dataset (default ``$nnUNet_raw/<DatasetNNN_Name>``): ``imagesTr`` and ``clinical.csv``.
    clinical_csv, splits_json : path-like, optional
        Override ``<raw>/clinical.csv`` and ``$nnUNet_preprocessed/<dataset>/splits_final.json``.
    device : str
        For predicting missing masks.
    n_splits, cv, random_state
        The stage's own cross-validation (``kfold`` stratified, or ``centre``: leave one centre out).
    n_bootstrap : int
        Replicates of the 95 % intervals.
    targets : sequence of str, optional
        Restrict to these registered targets (default: every target the edition scores).
    progress : bool
        Progress bars.
    use_mirroring : bool
        Test-time mirroring when predicting missing masks; pass False when deployment predicts
        without it (the demo), so the masks are the ones deployment will see.

    Returns
    -------
    BuildResult

    Raises
    ------
    HecktorError
        Missing model folder, images, clinical table or splits; no target could be fitted.
    InputDataError
        A patient's image or mask cannot be read (patient and file named).
    """
    from nnunet_hecktor.editions import get_edition
    from nnunet_hecktor.prediction.model import check_model_folder, resolve_checkpoint
    from nnunet_hecktor.prognosis.deployment import STAGE_FOLDER, stage_into_model
    from nnunet_hecktor.prognosis.features import FeatureTable, write_feature_table
    from nnunet_hecktor.prognosis.targets import get_target, targets_of_edition

    try:
        contract = get_edition(edition)
    except ValueError as exc:
        raise HecktorError(str(exc)) from None
    model_dir, chosen = check_model_folder(model_dir, folds, checkpoint)
    chosen = tuple(f for f in chosen if f != "all")
    if not chosen:
        raise HecktorError(f"{model_dir}: only fold_all is trained; out-of-fold masks need the cross-validation folds")
    checkpoint = resolve_checkpoint(model_dir, chosen, checkpoint)
    sources = build_sources(model_dir, raw_dir, clinical_csv, splits_json, postprocessing)
    pp_config = None
    if sources.postprocessing is not None:
        from nnunet_hecktor.postprocessing.config import load_config

        pp_config = load_config(sources.postprocessing)
    fitted_targets = ([get_target(t) for t in targets] if targets else targets_of_edition(contract.targets))
    if not fitted_targets:
        raise HecktorError(f"HECKTOR {contract.name} scores no patient-level target the stage can fit")
    work = model_dir / BUILD_FOLDER
    work.mkdir(exist_ok=True)

    patients = _validation_patients(model_dir, chosen, sources.splits)
    missing = _masks_to_predict(model_dir, patients, pp_config)
    predicted = (_predict_missing(model_dir, sources, missing, checkpoint, device, work, progress, use_mirroring)
                 if missing else {})
    table = _feature_table(model_dir, sources, patients, predicted, pp_config, progress)
    features_csv = work / "features_oof.csv"
    write_feature_table(FeatureTable(table, {
        "nnunet_hecktor_version": __version__, "seg_source": "predicted", "images": str(sources.images),
        "segmentations": f"out-of-fold masks of folds {', '.join(map(str, chosen))} ({checkpoint}), post-processed "
                         f"with {sources.postprocessing or 'nothing'}",
        "n_patients": len(table), "predicted_by_build": sorted(predicted)}), features_csv)

    result = BuildResult(model_dir, contract.name, n_patients=len(table), predicted_masks=sorted(predicted))
    fits: dict[str, Any] = {}
    entries: dict[str, dict] = {}
    for target in fitted_targets:
        columns = permitted_columns(target.name, sources.clinical, contract.test_inputs)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=FutureWarning)
                fit = target.fit(sources.clinical, work / target.name, features_csv=features_csv,
                                 clinical_columns=columns, n_splits=n_splits, cv=cv, random_state=random_state,
                                 progress=progress)
        except HecktorError as exc:
            result.not_fitted[target.name] = str(exc)
            logger.warning("%s: not fitted: %s", target.name, exc)
            continue
        fits[target.name] = fit
        figures = target.figures(fit.oof, n_bootstrap, random_state)
        result.figures[target.name] = figures
        entries[target.name] = {
            "file": target.stage_file, "outputs": list(target.outputs), "description": fit.model.description,
            "clinical_columns": list(fit.model.clinical_columns), "n_image_columns": len(fit.model.image_columns),
            "figures": figures, "fallback": target.fallback(fit.model),
        }
    if not fits:
        raise HecktorError("no patient-level model could be fitted: " + "; ".join(
            f"{k}: {v}" for k, v in result.not_fitted.items()))
    result.manifest = {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "nnunet_hecktor_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "edition": contract.name, "permitted_clinical_inputs": list(contract.test_inputs),
        "segmentations": {"folds": list(chosen), "checkpoint": checkpoint,
                          "predicted_by_build": len(predicted), "n_patients": len(table)},
        "postprocessing": None if pp_config is None else pp_config.to_dict(),
        "postprocessing_file": None if sources.postprocessing is None else str(sources.postprocessing),
        "cross_validation": {"scheme": cv, "n_splits": n_splits, "random_state": random_state,
                             "bootstrap_replicates": n_bootstrap},
        "targets": entries, "not_fitted": dict(result.not_fitted),
    }
    result.stage_files = stage_into_model(model_dir, models={n: f.paths["model"] for n, f in fits.items()},
                                          manifest=_json_ready(result.manifest), replace=True)
    logger.info("%s", result.describe())
    logger.debug("stage folder %s", model_dir / STAGE_FOLDER)
    return result


def _json_ready(data: dict) -> dict:
    from nnunet_hecktor.strict_json import json_safe

    return json_safe(data)


__all__ = ["BUILD_FOLDER", "BuildResult", "build_sources", "build_stage", "permitted_columns"]
