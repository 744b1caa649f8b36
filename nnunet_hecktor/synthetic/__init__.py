"""Synthetic HECKTOR 2025 and 2026 training cohorts (images, clinical CSVs, ground truth) for tests,
demos and benchmarks (docs/explanations/synthetic-data.md): T/N stages from lesion geometry (:mod:`.staging`), a
rich world whose outcomes also depend on what only the images show (:mod:`.image_factors`).

>>> from nnunet_hecktor.synthetic import make_cohort          # doctest: +SKIP
>>> summary = make_cohort("/tmp/hecktor_synth", n_patients=12, seed=0)   # doctest: +SKIP

:func:`draw_patients` draws the same patients (clinical values, outcomes, true risk and HPV
probability) without rendering images.
"""

from nnunet_hecktor.synthetic.cohort import CohortSummary, make_cohort
from nnunet_hecktor.synthetic.patients import SyntheticPatient, draw_patients, first_free_id_number, patients_table
from nnunet_hecktor.synthetic.writer import FLAT_CSV_NAME, GROUND_TRUTH_NAME, LAYOUTS, TASK_COLUMNS

__all__ = [
    "CohortSummary", "make_cohort", "SyntheticPatient", "draw_patients", "first_free_id_number", "patients_table",
    "FLAT_CSV_NAME", "GROUND_TRUTH_NAME", "LAYOUTS", "TASK_COLUMNS",
]
