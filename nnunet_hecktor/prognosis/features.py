"""Feature table of a cohort: one row per patient, computed in parallel, written with a sidecar JSON.

The table's ``seg_source`` column says whether the features were measured on ground-truth
(``ground_truth``) or model-predicted (``predicted``) segmentations; the model-fitting commands
read it to make sure training and deployment see the same kind of input.
"""

from __future__ import annotations

import os
import sys
import warnings as py_warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnunet_hecktor import __version__, schema
from nnunet_hecktor.errors import HecktorError, InputDataError
from nnunet_hecktor.fileio import atomic_path, write_json_atomic
from nnunet_hecktor.prognosis.feature_catalogue import (
    FEATURE_NAMES,
    HEAD_COLUMNS,
    PATIENT_COLUMN,
    SEG_SOURCE_COLUMN,
    SEG_SOURCES,
    catalogue_json,
)
from nnunet_hecktor.prognosis.lesion_measures import SUV_PEAK_RADIUS_MM
from nnunet_hecktor.prognosis.patient_features import compute_features
from nnunet_hecktor.prognosis.patient_images import (
    PatientFiles,
    infer_seg_source,
    load_patient,
    match_patients,
    prepare_feature_images,
)
from nnunet_hecktor.prognosis.radiomics import (
    DEFAULT_RADIOMICS_LEVEL,
    check_level,
    radiomics_feature_names,
    radiomics_features,
)
from nnunet_hecktor.prognosis.radiomics import SETTINGS as RADIOMICS_SETTINGS


@dataclass
class FeatureTable:
    """A cohort's features (``table``: DataFrame indexed by PatientID) and their provenance."""

    table: Any  # pandas.DataFrame
    metadata: dict[str, Any] = field(default_factory=dict)


def sidecar_path(table_path: str | Path) -> Path:
    """The JSON written next to a feature table: ``features.csv`` -> ``features.json``."""
    table_path = Path(table_path)
    return table_path.with_suffix(".json") if table_path.suffix else table_path.with_name(table_path.name + ".json")


def patient_feature_row(files: PatientFiles, radiomics: str = DEFAULT_RADIOMICS_LEVEL,
                        ) -> tuple[dict[str, float], list[str]]:
    """Features of one patient and the warnings raised while reading it.

    ``radiomics`` (``none``, ``shape``, ``all``) adds the MIRP columns of
    :func:`nnunet_hecktor.prognosis.radiomics.radiomics_features`.
    """
    loaded = load_patient(files)
    row = compute_features(loaded.ct, loaded.pet, loaded.seg, loaded.spacing_zyx, loaded.origin_xyz, loaded.direction)
    if radiomics != "none":
        try:
            row.update(radiomics_features(loaded.ct, loaded.pet, loaded.seg, loaded.spacing_zyx, radiomics))
        except InputDataError:
            raise
        except HecktorError as exc:
            raise InputDataError(str(exc), files.patient_id, files.seg) from None
    return row, loaded.warnings


def features_from_images(ct_image, pet_image, seg_image, patient: str | None = None) -> dict[str, float]:
    """Features of one patient from SimpleITK images in memory (CT in HU, PET in SUV on any grid,
    segmentation 0/1/2 on the CT grid), e.g. inside a challenge container.

    Raises
    ------
    InputDataError
        See :func:`nnunet_hecktor.prognosis.patient_images.prepare_feature_images`.
    """
    loaded = prepare_feature_images(ct_image, pet_image, seg_image, patient)
    for message in loaded.warnings:
        py_warnings.warn(message, stacklevel=2)
    return compute_features(loaded.ct, loaded.pet, loaded.seg, loaded.spacing_zyx, loaded.origin_xyz,
                            loaded.direction)


def _worker_init() -> None:
    # One ITK thread per worker process: the processes are the parallelism.
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)


def _run_all(files: list[PatientFiles], num_processes: int, progress: bool,
             radiomics: str = DEFAULT_RADIOMICS_LEVEL):
    from tqdm import tqdm

    results: dict[str, tuple[dict[str, float], list[str]]] = {}
    failures: dict[str, str] = {}
    bar = tqdm(total=len(files), desc="features", unit="patient", disable=not progress, file=sys.stderr)
    if num_processes <= 1:
        for f in files:
            try:
                results[f.patient_id] = patient_feature_row(f, radiomics)
            except InputDataError as exc:
                failures[f.patient_id] = str(exc)
            bar.update()
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # Imported once here rather than in every forked worker.
        import scipy.ndimage  # noqa: F401
        import scipy.signal  # noqa: F401

        context = multiprocessing.get_context("spawn" if sys.platform == "darwin" else "fork")
        with ProcessPoolExecutor(num_processes, mp_context=context, initializer=_worker_init) as pool:
            futures = {pool.submit(patient_feature_row, f, radiomics): f.patient_id for f in files}
            for future in as_completed(futures):
                pid = futures[future]
                try:
                    results[pid] = future.result()
                except InputDataError as exc:
                    failures[pid] = str(exc)
                bar.update()
    bar.close()
    if failures:
        lines = "\n".join(f"  {failures[pid]}" for pid in sorted(failures))
        raise HecktorError(f"feature extraction failed for {len(failures)} of {len(files)} patients:\n{lines}")
    return results


def read_heads_csv(path: str | Path, patient_ids) -> "Any":
    """Network-head outputs from ``nnunet-hecktor predict``'s predictions.csv, renamed with a ``net_`` prefix.

    Uses the columns ``hpv_probability`` and ``risk`` that are present (at least one must be).

    Raises
    ------
    InputDataError
        No usable column, non-numeric or missing values, or patients of the cohort absent from it.
    """
    import pandas as pd

    path = Path(path)
    try:
        heads = pd.read_csv(path, dtype={PATIENT_COLUMN: str})
    except (OSError, ValueError) as exc:
        raise InputDataError(f"cannot read network predictions CSV ({exc})", None, path) from None
    if PATIENT_COLUMN not in heads.columns:
        raise InputDataError(f"no {PATIENT_COLUMN!r} column", None, path)
    columns = [c for c in HEAD_COLUMNS if c in heads.columns]
    if not columns:
        raise InputDataError(f"none of the columns {', '.join(HEAD_COLUMNS)} present", None, path)
    if heads[PATIENT_COLUMN].duplicated().any():
        dup = heads.loc[heads[PATIENT_COLUMN].duplicated(), PATIENT_COLUMN].iloc[0]
        raise InputDataError("patient listed twice", dup, path)
    heads = heads.set_index(PATIENT_COLUMN)[columns]
    missing = sorted(set(patient_ids) - set(heads.index))
    if missing:
        raise InputDataError(f"{len(missing)} patients have no network prediction: {', '.join(missing[:10])}"
                             + (" ..." if len(missing) > 10 else ""), None, path)
    heads = heads.loc[list(patient_ids)].apply(pd.to_numeric, errors="coerce")
    bad = heads.index[heads.isna().any(axis=1)].tolist()
    if bad:
        raise InputDataError(f"missing or non-numeric network outputs for {', '.join(bad[:10])}", None, path)
    return heads.rename(columns=HEAD_COLUMNS)


def extract_features(images_dir: str | Path, seg_dirs, seg_source: str | None = None, num_processes: int = 1,
                     heads_csv: str | Path | None = None, progress: bool = True,
                     radiomics: str = DEFAULT_RADIOMICS_LEVEL) -> FeatureTable:
    """Compute the image features of every patient that has a segmentation.

    Parameters
    ----------
    images_dir : path
        Converter-style (``<PID>_0000/_0001.nii.gz``, or the dataset folder with ``imagesTr``) or
        HECKTOR-style (``<PID>__CT``/``<PID>__PT``) images; PET is resampled onto the
        segmentation (CT) grid when needed.
    seg_dirs : path or list of paths
        Folders with ``<PID>.nii.gz`` segmentations (0 background, 1 GTVp, 2 GTVn), e.g. all
        ``fold_k/validation`` folders of a cross-validation.
    seg_source : {"predicted", "ground_truth"}, optional
        What the segmentations are; inferred from the folder names when omitted, and an error
        when it cannot be inferred.
    num_processes : int
        Worker processes (1 = in this process).
    heads_csv : path, optional
        ``nnunet-hecktor predict``'s predictions.csv; its ``hpv_probability``/``risk`` become the
        ``net_hpv_probability``/``net_risk`` columns.
    progress : bool
        Show a tqdm progress bar on stderr.
    radiomics : {"none", "shape", "all"}
        IBSI features from MIRP added as ``rad_*`` columns
        (:func:`nnunet_hecktor.prognosis.radiomics.radiomics_features`): ``shape`` the
        morphology family, ``all`` also PET/CT intensity and texture. An error naming the install
        command when MIRP is missing.

    Returns
    -------
    FeatureTable
        ``table`` indexed by PatientID with ``seg_source`` and the features of
        :data:`~nnunet_hecktor.prognosis.feature_catalogue.FEATURES` (physical units, no NaN);
        ``metadata`` for the sidecar JSON.
    """
    import pandas as pd

    seg_dirs = [Path(seg_dirs)] if isinstance(seg_dirs, (str, os.PathLike)) else [Path(d) for d in seg_dirs]
    files, without = match_patients(images_dir, seg_dirs)
    inferred = infer_seg_source(seg_dirs, images_dir)
    if seg_source is None:
        if inferred is None:
            raise HecktorError("cannot tell whether the segmentations are ground truth or model predictions; "
                               "say so with --seg-source predicted|ground_truth")
        seg_source = inferred
    if seg_source not in SEG_SOURCES:
        raise HecktorError(f"seg_source must be one of {', '.join(SEG_SOURCES)}, not {seg_source!r}")
    notes: list[str] = []
    if inferred is not None and inferred != seg_source:
        message = (f"segmentations declared {seg_source!r} but the folder looks like {inferred!r} "
                   f"({', '.join(map(str, seg_dirs))}); the declared value is recorded")
        py_warnings.warn(message, stacklevel=2)
        notes.append(message)

    if without:
        message = (f"{len(without)} patients have images but no segmentation and are not in the table: "
                   f"{', '.join(without[:10])}" + (" ..." if len(without) > 10 else ""))
        py_warnings.warn(message, stacklevel=2)
        notes.append(message)
    pids = [f.patient_id for f in files]
    heads = read_heads_csv(heads_csv, pids) if heads_csv is not None else None  # fail before the long part
    # Before the workers fork: fails early without MIRP, and they inherit the cached column names.
    radiomics_names = radiomics_feature_names(check_level(radiomics))
    results = _run_all(files, max(1, int(num_processes)), progress, radiomics)
    table = pd.DataFrame([results[pid][0] for pid in pids], index=pd.Index(pids, name=PATIENT_COLUMN))
    table = table[list(FEATURE_NAMES) + list(radiomics_names)]
    table.insert(0, SEG_SOURCE_COLUMN, seg_source)
    image_warnings = [w for pid in pids for w in results[pid][1]]
    for w in image_warnings:
        py_warnings.warn(w, stacklevel=2)
    if heads is not None:
        table = table.join(heads)
    if table[table.columns[1:]].isna().any().any():  # pragma: no cover - guarded by construction
        raise RuntimeError("feature table holds NaN; this is a bug")
    metadata: dict[str, Any] = {
        "nnunet_hecktor_version": __version__,
        SEG_SOURCE_COLUMN: seg_source,
        "images": str(images_dir),
        "segmentations": [str(d) for d in seg_dirs],
        "network_predictions": None if heads_csv is None else str(heads_csv),
        "n_patients": len(pids),
        "patients_without_segmentation": without,
        "suvpeak_radius_mm": SUV_PEAK_RADIUS_MM,
        "label_values": dict(schema.LABELS),
        "warnings": notes + image_warnings,
        "features": catalogue_json(),
        "radiomics": radiomics,
    }
    if radiomics != "none":
        metadata["radiomics_settings"] = RADIOMICS_SETTINGS
        metadata["radiomics_features"] = list(radiomics_names)
    return FeatureTable(table, metadata)


def write_feature_table(features: FeatureTable, output_csv: str | Path) -> tuple[Path, Path]:
    """Write the table (CSV, PatientID first) and its sidecar JSON atomically; return both paths."""
    output_csv = Path(output_csv)
    with atomic_path(output_csv) as tmp:
        features.table.to_csv(tmp, float_format="%.6g")
    sidecar = sidecar_path(output_csv)
    write_json_atomic(sidecar, {"table": output_csv.name, **features.metadata})
    return output_csv, sidecar


def read_feature_table(path: str | Path):
    """Read a feature table written by :func:`write_feature_table` (DataFrame indexed by PatientID).

    Raises
    ------
    InputDataError
        Missing ``PatientID``/``seg_source`` columns, an unknown seg_source, duplicate patients,
        or non-numeric / missing feature values.
    """
    import pandas as pd

    path = Path(path)
    try:
        table = pd.read_csv(path, dtype={PATIENT_COLUMN: str, SEG_SOURCE_COLUMN: str})
    except (OSError, ValueError) as exc:
        raise InputDataError(f"cannot read feature table ({exc})", None, path) from None
    for column in (PATIENT_COLUMN, SEG_SOURCE_COLUMN):
        if column not in table.columns:
            raise InputDataError(f"no {column!r} column; was it written by 'nnunet-hecktor features'?", None, path)
    if table[PATIENT_COLUMN].duplicated().any():
        duplicate = table.loc[table[PATIENT_COLUMN].duplicated(), PATIENT_COLUMN].iloc[0]
        raise InputDataError("patient listed twice", duplicate, path)
    unknown = set(table[SEG_SOURCE_COLUMN].dropna()) - set(SEG_SOURCES)
    if unknown or table[SEG_SOURCE_COLUMN].isna().any():
        raise InputDataError(f"seg_source must be one of {', '.join(SEG_SOURCES)} in every row "
                             f"(found {sorted(map(str, unknown)) or 'empty cells'})", None, path)
    table = table.set_index(PATIENT_COLUMN)
    values = table.drop(columns=[SEG_SOURCE_COLUMN])
    numeric = values.apply(pd.to_numeric, errors="coerce")
    bad = numeric.columns[numeric.isna().any()].tolist()
    if bad:
        pid = numeric.index[numeric[bad[0]].isna()][0]
        raise InputDataError(f"non-numeric or missing values in column(s) {', '.join(bad)}", pid, path)
    table[values.columns] = numeric.astype(float)
    return table


def default_num_processes() -> int:
    """Worker count when none is given: the CPU count, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


__all__ = ["FeatureTable", "extract_features", "features_from_images", "write_feature_table", "read_feature_table",
           "read_heads_csv",
           "sidecar_path", "patient_feature_row", "default_num_processes"]
