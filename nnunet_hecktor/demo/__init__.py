"""The end-to-end demo on built-in synthetic data (the README's main job).

Steps (each prints what it does, a progress bar and its time; a step whose done-marker exists is
skipped, so re-running the same command resumes an interrupted demo):

1. ``synth``: an enriched synthetic training cohort and a cohort of new patients (another seed) at
   the ``demo`` size (real-size neck at ~3.5 mm, nodes ~5 voxels across).
2. ``convert``: both -> nnU-Net raw datasets (PET resampled onto the CT grid).
3. ``plan_and_preprocess``: ``nnUNetv2_plan_and_preprocess``, then narrow demo plans (8-32
   features, 32^3 patches) so that CPU training takes minutes.
4. ``train``: ``nnUNetv2_train`` fold 0 with :data:`DEMO_TRAINER` (segmentation + HPV + risk heads,
   SWA), long enough to leave the all-background plateau.
5. ``predict``: ``nnunet-hecktor predict`` on the new patients' release folder.
6. ``evaluate``: the HECKTOR metrics of those predictions.
7. ``baselines``: PET-threshold rules, clinical-only models, the one-number image rule and the
   synthetic ceilings on the same new patients (:mod:`nnunet_hecktor.baselines`).
8. ``report``: ``report/report.html`` and ``report/report.md`` (:mod:`.report`).

With ``edition="2026"`` (``demo --edition 2026``) the cohorts are HECKTOR 2026 releases (T/N stages),
``synth`` also makes a *stage cohort*, a step ``prognosis`` after ``train`` fits T stage, N stage and
risk on the fold-0 masks of the stage cohort as deployed (``prognosis build --edition 2026``),
``evaluate`` scores the 2026 weighted score and ``baselines`` / ``report`` are the 2026 ones
(:mod:`.edition2026`). The 2025 default is unchanged.

All nnU-Net folders live under the demo's output folder; the caller's environment is not touched.
"""

from nnunet_hecktor.demo.pipeline import (
    CPU_FRIENDLY_VARIABLES,
    DEMO_CONFIGURATION,
    DEMO_PLANS,
    DEMO_TRAINER,
    DemoResult,
    run_demo,
)

__all__ = ["run_demo", "DemoResult", "DEMO_TRAINER", "DEMO_PLANS", "DEMO_CONFIGURATION", "CPU_FRIENDLY_VARIABLES"]
