"""``make_cohort``: write a synthetic HECKTOR 2025 or 2026 training release (images, CSVs, ground truth)."""

from __future__ import annotations

import logging
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_hecktor import schema
from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.fileio import write_image_atomic, write_json_atomic
from nnunet_hecktor.strict_json import json_safe
from nnunet_hecktor.synthetic import anatomy, writer
from nnunet_hecktor.synthetic.geometry import draw_grids, size_preset
from nnunet_hecktor.synthetic.image_factors import (
    CYSTIC_NODE_PROBABILITY,
    RICH_RISK_CENTRE,
    RICH_RISK_COEFFICIENTS,
    check_world,
)
from nnunet_hecktor.synthetic.patients import (
    CENTRE_PROFILES,
    COVARIATE_ENRICHMENT,
    ENRICHMENT_ACCEPTANCE,
    GENERATOR_VERSION,
    HPV_COEFFICIENTS,
    RISK_COEFFICIENTS,
    WEIBULL_SCALE_DAYS,
    WEIBULL_SHAPE,
    SyntheticPatient,
    draw_patients,
    patient_rng,
)

logger = logging.getLogger(__name__)


@dataclass
class CohortSummary:
    """What :func:`make_cohort` wrote.

    ``patient_ids[t]`` lists the patients of task ``t`` written in this layout (for ``flat``:
    which patients have a label (1), outcomes (2), HPV status (3)). Rates are over the
    patients whose target is in the CSVs: ``event_rate`` = share of relapses among Task 2
    patients with known outcome, ``hpv_positive_rate`` among Task 3 patients with known HPV.
    ``best_c_index``/``best_balanced_accuracy`` are those of the true risk / true HPV
    probability on the same patients (see the ground-truth file for definitions). Edition 2026:
    ``patient_ids[0]`` lists every patient (one cohort), rates are over the patients whose RFS /
    HPV Status the CSV shows.
    """

    out_dir: Path
    layout: str
    size: str
    seed: int
    n_patients: int
    patient_ids: dict[int, list[str]]
    all_patient_ids: list[str]
    csv_paths: dict[int, Path]
    ground_truth_path: Path
    planning_patient_ids: list[str]
    event_rate: float
    hpv_positive_rate: float
    best_c_index: float
    best_balanced_accuracy: float
    seconds: float = 0.0
    centres: dict[str, int] = field(default_factory=dict)
    enriched: bool = False
    edition: str = "2025"
    world: str = "default"

    def summary_line(self) -> str:
        def fmt(value: float, spec: str) -> str:
            return "n/a" if value != value else format(value, spec)

        per_task = ", ".join(f"Task {t}: {len(ids)}" for t, ids in sorted(self.patient_ids.items()))
        if self.edition != "2025":
            per_task = f"edition {self.edition}"
        return (f"synthetic cohort: {self.n_patients} patients ({per_task}) from {len(self.centres)} centres, "
                f"layout {self.layout}, size {self.size}, seed {self.seed}{', enriched' if self.enriched else ''}"
                f"{'' if self.world == 'default' else f', world {self.world}'}; "
                f"relapse rate {fmt(self.event_rate, '.0%')}, "
                f"HPV+ {fmt(self.hpv_positive_rate, '.0%')}; best C-index {fmt(self.best_c_index, '.3f')}, "
                f"best HPV balanced accuracy {fmt(self.best_balanced_accuracy, '.3f')}; {self.seconds:.1f} s "
                f"-> {self.out_dir}")


def _render_and_write(patient: SyntheticPatient, seed: int, size: str,
                      destinations: dict[str, list[Path]]) -> dict[str, Any]:
    """Render the images of one patient and write them to every destination (worker function).

    Uses only the patient's own generators, so the bytes do not depend on the process count.
    """
    preset = size_preset(size)
    grids = draw_grids(patient_rng(seed, patient.index, 2), preset, with_planning="CT_PLANNING" in destinations)
    profile = CENTRE_PROFILES[patient.centre]
    frame = anatomy.body_frame(patient, preset, grids.ct)
    info: dict[str, Any] = {"patient_id": patient.patient_id, "grids": grids.to_json()}

    def ct():
        rng = patient_rng(seed, patient.index, 3)
        return grids.ct.image(anatomy.render_ct(patient, frame, grids.ct, rng, profile.ct_noise_hu, preset.z_chunk))

    def pet():
        rng = patient_rng(seed, patient.index, 4)
        return grids.pet.image(anatomy.render_pet(patient, frame, grids.pet, rng,
                                                  profile.pet_fwhm_mm * preset.pet_fwhm_scale,
                                                  profile.pet_calibration, preset.z_chunk))

    def label():
        array = anatomy.render_label(patient, frame, grids.ct)
        voxel_ml = float(np.prod(grids.ct.spacing)) / 1000.0
        info["label_volume_ml"] = {"GTVp": float((array == schema.GTVP).sum() * voxel_ml),
                                   "GTVn": float((array == schema.GTVN).sum() * voxel_ml)}
        return grids.ct.image(array)

    # Each image has its own generator stream, so what one layout writes never changes
    # the bytes of another image (a Task 1 CT is the same whether or not Task 2 is written).
    images = {"CT": ct, "PET": pet, "label": label}
    if grids.planning is not None:
        planning, dose = grids.planning, grids.dose
        assert dose is not None  # drawn together with the planning grid
        rng = patient_rng(seed, patient.index, 5)
        shift = tuple(float(v) for v in rng.normal(0.0, 3.0, size=3))
        info["planning_shift_mm"] = list(shift)
        images["CT_PLANNING"] = lambda: planning.image(anatomy.render_ct(
            patient, frame, planning, rng, profile.ct_noise_hu, preset.z_chunk, shift))
        images["RTDOSE"] = lambda: dose.image(anatomy.render_dose(patient, frame, dose, shift))

    for kind, render in images.items():
        targets = destinations.get(kind)
        if not targets and kind != "label":  # the label is rendered anyway for its volumes
            continue
        image = render()
        if targets:
            first, *others = targets
            write_image_atomic(image, first)
            for other in others:
                writer.copy_atomic(first, other)
    return info


def _with_targets(patients: list[SyntheticPatient], layout: str, task: int | None, target_task: int,
                  column: str, edition: str = "2025") -> list[SyntheticPatient]:
    """Patients whose target (``column``, carried by ``target_task`` in 2025) is in the written CSVs."""
    if edition == "2026":
        return [p for p in patients if p.released_values("2026")[column] is not None]
    if layout == "task" and task != target_task:
        return []
    return [p for p in patients if target_task in p.tasks and p.clinical_recorded[column] is not None]


def _best_achievable(surv: list[SyntheticPatient], hpv: list[SyntheticPatient]) -> dict[str, Any]:
    from nnunet_hecktor.metrics.classification import balanced_accuracy, best_balanced_accuracy_threshold, roc_auc
    from nnunet_hecktor.metrics.survival import harrell_c_index

    nan = float("nan")
    # Every key is always present (NaN -> null in the file) so readers need no special cases.
    result: dict[str, Any] = {
        "task2_patients_with_outcome": len(surv), "task2_relapses": sum(p.relapse for p in surv),
        "c_index_true_risk": nan,
        "task3_patients_with_hpv": len(hpv), "hpv_prevalence": nan, "auc_true_probability": nan,
        "balanced_accuracy_at_prevalence": nan, "balanced_accuracy_at_0.5": nan,
        "balanced_accuracy_oracle_threshold": nan, "oracle_threshold": nan,
    }
    if surv and any(p.relapse for p in surv):
        result["c_index_true_risk"] = harrell_c_index([p.rfs_days for p in surv], [p.relapse for p in surv],
                                                      [p.true_risk for p in surv])
    if hpv:
        result["hpv_prevalence"] = float(np.mean([p.hpv for p in hpv]))
    if hpv and 0 < result["hpv_prevalence"] < 1:
        y = np.array([p.hpv for p in hpv])
        prob = np.array([p.hpv_probability for p in hpv])
        prevalence = result["hpv_prevalence"]
        oracle_threshold = best_balanced_accuracy_threshold(y, prob)
        result.update({
            "auc_true_probability": roc_auc(y, prob),
            # Bayes rule for balanced accuracy: threshold the true probability at the prevalence.
            "balanced_accuracy_at_prevalence": balanced_accuracy(y, (prob >= prevalence).astype(int)),
            "balanced_accuracy_at_0.5": balanced_accuracy(y, (prob >= 0.5).astype(int)),
            "balanced_accuracy_oracle_threshold": balanced_accuracy(y, (prob >= oracle_threshold).astype(int)),
            "oracle_threshold": oracle_threshold,
        })
    return result


def _stage_agreement(patients: list[SyntheticPatient]) -> dict[str, Any]:
    """Balanced accuracy of the geometry-derived stage as a prediction of the recorded clinical stage
    (patients with a recorded stage): what a perfect reading of the lesion geometry reaches."""
    from sklearn.metrics import balanced_accuracy_score

    result: dict[str, Any] = {}
    for column in (schema.COL_TSTAGE, schema.COL_NSTAGE):
        known = [p for p in patients if p.staging["recorded"][column] is not None]
        key = f"{column}_balanced_accuracy_geometry"
        if not known:
            result[key] = float("nan")
            continue
        truth = [schema.stage_code(column, p.staging["recorded"][column]) for p in known]
        guess = [schema.stage_code(column, p.staging[f"{column} (geometry)"]) for p in known]
        # Multi-class balanced accuracy: mean recall over the stages present (the 2026 metric). A tiny
        # cohort may hold one stage only; sklearn then warns, which says nothing here.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            result[key] = float(balanced_accuracy_score(truth, guess))
    return result


def _enrichment_description(enriched: bool, enrichment: str) -> dict[str, Any] | None:
    if not enriched:
        return None
    if enrichment == "outcome":
        return {f"hpv={h},relapse={r}": a for (h, r), a in ENRICHMENT_ACCEPTANCE.items()}
    return {"scheme": "covariate", **COVARIATE_ENRICHMENT,
            "rule": "keep with probability a(HPV) * sigmoid(slope * (r0 - centre)), a(HPV-) = 1, "
                    "a(HPV+) = hpv_positive, r0 = true_risk without its HPV term"}


def _ground_truth(patients, seed, size, layout, task, best, rendered, enriched=False,
                  edition: str = "2025", world: str = "default", id_offset: int = 0,
                  enrichment: str = "covariate") -> dict[str, Any]:
    with_staging = edition == "2026"
    # Keys that did not exist before editions and worlds appear only when they are not the default,
    # so the default ground truth of a seed is unchanged.
    extra: dict[str, Any] = {"edition": edition} if edition != "2025" else {}
    if id_offset:
        extra["id_offset"] = id_offset
    if world != "default":
        extra["world"] = world
        extra["rich_world"] = {"risk_coefficients": RICH_RISK_COEFFICIENTS, "risk_centre": RICH_RISK_CENTRE,
                               "cystic_node_probability": CYSTIC_NODE_PROBABILITY}
    return {
        "description": ("Synthetic HECKTOR cohort ground truth. Never read by the pipeline. true_risk is the "
                        "linear predictor of the Weibull proportional-hazards model that drew RFS/Relapse "
                        "(higher = earlier relapse); hpv_probability is the probability HPV Status was drawn "
                        "from. best_achievable: C-index of true_risk on the drawn outcomes of Task 2 patients "
                        "with known outcome; balanced accuracy of hpv_probability on Task 3 patients with "
                        "known HPV, thresholded at the prevalence (Bayes rule for balanced accuracy, the "
                        "headline value), at 0.5, and at the threshold that is best on these labels (oracle)."),
        "generator_version": GENERATOR_VERSION,
        **extra,
        "seed": seed, "size": size, "layout": layout, "task": task,
        "enriched": bool(enriched),
        "enrichment_acceptance": _enrichment_description(enriched, enrichment),
        "models": {
            "risk_coefficients": RISK_COEFFICIENTS, "weibull_shape": WEIBULL_SHAPE,
            "weibull_scale_days": WEIBULL_SCALE_DAYS, "hpv_coefficients": HPV_COEFFICIENTS,
            "centre_profiles": {c: vars(p) for c, p in CENTRE_PROFILES.items()},
        },
        "best_achievable": best,
        "patients": {p.patient_id: {**p.to_json(with_staging=with_staging), "images": rendered.get(p.patient_id)}
                     for p in patients},
    }


def make_cohort(out_dir, n_patients: int = 12, seed: int = 0, layout: str = "release", task: int | None = 1,
                size: str = "test", num_processes: int = 1, progress: bool = True,
                overwrite: bool = False, enriched: bool = False, edition: str = "2025",
                world: str = "default", id_offset: int = 0, enrichment: str = "covariate") -> CohortSummary:
    """Write a synthetic HECKTOR 2025 (default) or 2026 training cohort.

    Parameters
    ----------
    out_dir : path-like
        Output folder (created). Must be empty unless ``overwrite``.
    n_patients : int
        Size of the whole cohort (all tasks together). Patient ``i`` is the same in every
        layout, so ``layout="task"`` writes only the members of that task.
    seed : int
        Same seed, same bytes (whatever ``num_processes``).
    layout : {"release", "release_underscore", "flat", "task"}
        See :mod:`nnunet_hecktor.synthetic.writer`.
    task : int
        With ``layout="task"``: which task folder (1, 2 or 3) to write directly into ``out_dir``.
    size : {"test", "demo", "benchmark"}
        ``test``: CT ~32x32x23 voxels at ~4.8x4.8x6 mm, PET ~7.5 mm (shrunk anatomy, nodes 2-3
        voxels across); ``demo``: real-size anatomy cropped to the neck, CT ~46x46x57 at
        ~3.5x3.5x4 mm, PET ~4.5 mm (nodes ~5 voxels across); ``benchmark``: CT 512x512x~200
        at ~1x1x3 mm (int16 HU), PET ~4 mm (float32 SUV).
    num_processes : int
        Patients rendered in parallel.
    progress : bool
        Show a tqdm progress bar and print the summary line.
    overwrite : bool
        Allow writing into a non-empty ``out_dir`` (files of the same name are replaced).
    enriched : bool
        Enrich HPV-negative patients and relapses and put every patient in all three tasks (see
        :func:`nnunet_hecktor.synthetic.draw_patients`).
    enrichment : {"covariate", "outcome"}
        With ``enriched``: keep patients on covariates (default; the generator's associations hold)
        or, as first done, on the drawn outcome (see :func:`nnunet_hecktor.synthetic.draw_patients`).
    edition : {"2025", "2026"}
        Release to write. ``2026``: layout ``release`` only; every patient's CT, PET and label in
        ``hecktor2026_training/<PID>/`` and one CSV with HPV Status as an input, no M-stage, and the
        targets Relapse, RFS, T-stage, N-stage (see :mod:`nnunet_hecktor.synthetic.writer` and
        :mod:`nnunet_hecktor.synthetic.staging`). The patients are those of the 2025 release of the
        same seed.
    world : {"default", "rich"}
        ``rich``: outcomes also depend on factors only the images show (necrotic core, uptake
        heterogeneity, extranodal extension; cystic nodes for HPV), see
        :mod:`nnunet_hecktor.synthetic.image_factors`.
    id_offset : int
        Patient numbers start here; for a cohort of new patients next to a training cohort pass
        :func:`nnunet_hecktor.synthetic.first_free_id_number` of the training ids, so no id repeats.

    Returns
    -------
    CohortSummary
        Patient ids per task, CSV paths, ground-truth path, event and HPV rates, best
        achievable C-index and balanced accuracy. Ground truth (true risk, HPV probability,
        all generating parameters) is in ``out_dir/synthetic_ground_truth.json``.
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    size_preset(size)
    tasks = writer.tasks_in_layout(layout, task)
    edition = writer.check_edition_layout(edition, layout)
    check_world(world)
    if num_processes < 1:
        raise ValueError("num_processes must be at least 1")
    if writer.is_nonempty_dir(out_dir) and not overwrite:
        raise HecktorError(f"{out_dir} is not empty; choose an empty folder or pass overwrite=True (--overwrite)")

    cohort = draw_patients(n_patients, seed, enriched=enriched, world=world, id_offset=id_offset,
                           enrichment=enrichment)
    if edition == "2026":
        written = cohort
        jobs = [(p, writer.patient_files_2026(p, out_dir)) for p in written]
    else:
        written = cohort if layout == "flat" else [p for p in cohort if set(p.tasks) & set(tasks)]
        jobs = [(p, writer.patient_files(p, out_dir, layout, task)) for p in written]

    rendered: dict[str, dict] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="synth", unit="patient")
    try:
        if num_processes == 1:
            for patient, dest in jobs:
                info = _render_and_write(patient, seed, size, dest)
                rendered[info["patient_id"]] = info
                if bar:
                    bar.update()
        else:
            # spawn: the parent may hold torch/threads; fork would be unsafe there.
            with ProcessPoolExecutor(max_workers=num_processes, mp_context=get_context("spawn")) as pool:
                futures = [pool.submit(_render_and_write, patient, seed, size, dest) for patient, dest in jobs]
                for future in as_completed(futures):
                    info = future.result()
                    rendered[info["patient_id"]] = info
                    if bar:
                        bar.update()
    finally:
        if bar:
            bar.close()

    if edition == "2026":
        csv_paths = writer.write_csv_2026(written, out_dir)
    else:
        csv_paths = writer.write_csvs(written, out_dir, layout, task)
    surv = _with_targets(written, layout, task, 2, schema.COL_RFS, edition)
    hpv = _with_targets(written, layout, task, 3, schema.COL_HPV, edition)
    best = _best_achievable(surv, hpv)
    if edition == "2026":
        best.update(_stage_agreement(written))
    gt_path = out_dir / writer.GROUND_TRUTH_NAME
    write_json_atomic(gt_path, json_safe(_ground_truth(written, seed, size, layout, task if layout == "task" else None,
                                             best, rendered, enriched, edition, world, id_offset,
                                             enrichment)))

    shown_tasks = (1, 2, 3) if layout == "flat" else tasks
    patient_ids = {t: sorted(p.patient_id for p in written if t in p.tasks) for t in shown_tasks}
    if edition == "2026":
        patient_ids = {0: sorted(p.patient_id for p in written)}
    centres: dict[str, int] = {}
    for p in written:
        centres[p.centre] = centres.get(p.centre, 0) + 1
    summary = CohortSummary(
        out_dir=out_dir, layout=layout, size=size, seed=seed, n_patients=len(written),
        patient_ids=patient_ids,
        all_patient_ids=sorted(p.patient_id for p in written), csv_paths=csv_paths, ground_truth_path=gt_path,
        planning_patient_ids=sorted(p.patient_id for p in written
                                    if p.has_planning and edition == "2025"
                                    and (layout in ("release", "release_underscore") or (layout == "task" and task == 2))),
        event_rate=float(np.mean([p.relapse for p in surv])) if surv else float("nan"),
        hpv_positive_rate=float(np.mean([p.hpv for p in hpv])) if hpv else float("nan"),
        best_c_index=float(best.get("c_index_true_risk", float("nan"))),
        best_balanced_accuracy=float(best.get("balanced_accuracy_at_prevalence", float("nan"))),
        seconds=time.perf_counter() - start, centres=dict(sorted(centres.items())), enriched=enriched,
        edition=edition, world=world,
    )
    if progress:
        logger.info("%s", summary.summary_line())
    return summary
