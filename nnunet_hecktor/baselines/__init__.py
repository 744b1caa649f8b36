"""Simple alternatives the plugin's models must beat, computed on new patients.

- :mod:`.pet_rules`: PET-threshold segmentations (GTVp at 40 % of SUVmax with the brain masked;
  SUV > 2.5 with the hottest component = GTVp and the other components = GTVn).
- :mod:`.clinical_models`: clinical-only Cox model (risk) and logistic regression (HPV) fitted on the
  training cohort's clinical table.
- :mod:`.image_rule`: one image number as risk (log GTVp volume of a segmentation).
- :mod:`.staging`: T/N stage (2026) from the AJCC 7 geometry rule on a segmentation, and a
  clinical-only T/N model.
- :mod:`.ceilings`: the synthetic generator's true risk and HPV probability (synthetic cohorts only).
- :mod:`.tables`: the ``predictions.csv`` files that ``nnunet-hecktor evaluate`` scores.

Every baseline writes what a model writes (segmentation folders, ``predictions.csv``), so it is
scored by the same code (:func:`nnunet_hecktor.evaluation.evaluate.evaluate`).
"""

from nnunet_hecktor.baselines.ceilings import ceiling_predictions
from nnunet_hecktor.baselines.clinical_models import clinical_only_predictions
from nnunet_hecktor.baselines.image_rule import log_gtvp_volume_risk
from nnunet_hecktor.baselines.pet_rules import (
    PET_RULES,
    brain_mask,
    gtvp_fraction_of_suvmax,
    segment_folder,
    suv_threshold_components,
)
from nnunet_hecktor.baselines.staging import ajcc7_rule_stages, clinical_only_stages
from nnunet_hecktor.baselines.tables import write_predictions_csv

__all__ = [
    "PET_RULES", "brain_mask", "gtvp_fraction_of_suvmax", "suv_threshold_components", "segment_folder",
    "clinical_only_predictions", "ajcc7_rule_stages", "clinical_only_stages",
    "log_gtvp_volume_risk", "ceiling_predictions", "write_predictions_csv",
]
