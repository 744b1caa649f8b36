"""T/N staging baselines (HECKTOR 2026): the AJCC 7 geometry rule on a segmentation folder, and a
clinical-only T/N model fitted on the training cohort's clinical table.

A learned staging model (``nnunet-hecktor staging fit``) has to beat both on new patients: the rule
says what the mask geometry gives without learning, the clinical-only model what the clinical
inputs (HPV status included, as 2026 supplies it) give without images. Stages are canonical labels
(``schema.T_STAGES`` / ``N_STAGES``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from nnunet_hecktor import schema
from nnunet_hecktor.errors import HecktorError


def ajcc7_rule_stages(seg_dir: str | os.PathLike, patients=None,
                      images_dir: str | os.PathLike | None = None) -> dict[str, dict[str, str]]:
    """``{PatientID: {"t_stage": ..., "n_stage": ...}}`` of the AJCC 7 rule on ``<PID>.nii.gz`` label maps.

    Parameters
    ----------
    seg_dir : path-like
        Segmentations (1 GTVp, 2 GTVn), e.g. a PET rule's output or a model's predictions.
    patients : iterable of str, optional
        Which patients (default: every ``*.nii.gz`` in the folder).
    images_dir : path-like, optional
        Folder with ``<PID>__CT.nii.gz`` (or ``<PID>_0000.nii.gz``) on the segmentation's grid: the
        body midline for the node sides comes from it; without it, the image centre.
    """
    import SimpleITK as sitk

    from nnunet_hecktor.baselines.image_rule import segmentations_of
    from nnunet_hecktor.fileio import read_image
    from nnunet_hecktor.prognosis.stage_geometry import stage_geometry_features
    from nnunet_hecktor.prognosis.staging_rules import ajcc7_rule_stage

    rows = {}
    for pid, image in segmentations_of(seg_dir, patients):
        seg = sitk.GetArrayFromImage(image)
        ct = None
        if images_dir is not None:
            for suffix in ("__CT", "_0000"):
                path = Path(images_dir) / f"{pid}{suffix}{schema.FILE_ENDING}"
                if path.is_file():
                    ct_image = read_image(path, pid, "CT")
                    if ct_image.GetSize() == image.GetSize():
                        ct = sitk.GetArrayFromImage(ct_image)
                    break
        features = stage_geometry_features(seg, image.GetSpacing()[::-1], image.GetOrigin(), image.GetDirection(),
                                           ct=ct)
        t, n = ajcc7_rule_stage(features)
        rows[pid] = {"t_stage": t, "n_stage": n}
    return rows


def clinical_only_stages(train_clinical_csv: str | os.PathLike, new_clinical_csv: str | os.PathLike,
                         random_state: int = 0, edition: str = "2026") -> dict[str, dict[str, str]]:
    """Fit the clinical-only T/N model on the training table; predict the new patients.

    Uses the staging model of the plugin (:class:`~nnunet_hecktor.prognosis.stage_models.TNStageModel`)
    on the edition's test-time clinical inputs only (2026: HPV status included; CenterID never).
    The new patients' stages are never read.

    Returns
    -------
    dict
        ``{PatientID: {"t_stage": label, "n_stage": label}}`` for every new patient.

    Raises
    ------
    HecktorError
        Fewer than 10 training patients with a stage.
    """
    from nnunet_hecktor.clinical import read_clinical_csv
    from nnunet_hecktor.prognosis.preprocessing import ColumnRoles
    from nnunet_hecktor.prognosis.stage_data import clinical_columns_in, clinical_frame, clinical_roles, stage_targets
    from nnunet_hecktor.prognosis.stage_models import TNStageModel, stage_codes
    from nnunet_hecktor.prognosis.staging_fit import default_stage_clinical_columns

    train = read_clinical_csv(train_clinical_csv)
    new = read_clinical_csv(new_clinical_csv)
    kept, labels, _ = stage_targets(train, sorted(train))
    if len(kept) < 10:
        raise HecktorError(f"{train_clinical_csv}: too few training patients with a T or N stage ({len(kept)})")
    columns = default_stage_clinical_columns(clinical_columns_in(train), edition)
    if not columns:
        raise HecktorError(f"{train_clinical_csv}: no clinical input column of edition {edition} has values")
    model = TNStageModel(ColumnRoles(**clinical_roles(columns)), random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(clinical_frame(train, kept, columns, train_clinical_csv),
                  stage_codes(labels[schema.COL_TSTAGE], schema.COL_TSTAGE),
                  stage_codes(labels[schema.COL_NSTAGE], schema.COL_NSTAGE))
    new_ids = sorted(new)
    t, n = model.predict(clinical_frame(new, new_ids, columns, new_clinical_csv))
    return {pid: {"t_stage": ti, "n_stage": ni} for pid, ti, ni in zip(new_ids, t, n)}


__all__ = ["ajcc7_rule_stages", "clinical_only_stages"]
