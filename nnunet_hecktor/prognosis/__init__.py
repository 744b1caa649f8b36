"""Prognosis stage: image-derived features and patient-level survival and HPV models.

Modules, in data-flow order:

- :mod:`~nnunet_hecktor.prognosis.lesion_measures`, :mod:`~nnunet_hecktor.prognosis.feature_catalogue`,
  :mod:`~nnunet_hecktor.prognosis.patient_features`: feature definitions on arrays (mL, mm, SUV, HU);
- :mod:`~nnunet_hecktor.prognosis.patient_images`, :mod:`~nnunet_hecktor.prognosis.features`: finding and
  reading images, PET onto the CT grid, the cohort's feature table (``nnunet-hecktor features``);
- :mod:`~nnunet_hecktor.prognosis.stage_data`, :mod:`~nnunet_hecktor.prognosis.preprocessing`: model inputs
  and the per-fold preprocessing;
- :mod:`~nnunet_hecktor.prognosis.icare`, :mod:`~nnunet_hecktor.prognosis.survival_models`,
  :mod:`~nnunet_hecktor.prognosis.hpv_models`: estimators, prevalence adjustment;
- :mod:`~nnunet_hecktor.prognosis.cross_validation`: folds and out-of-fold predictions;
- :mod:`~nnunet_hecktor.prognosis.survival_stage`, :mod:`~nnunet_hecktor.prognosis.hpv_stage`: fit/predict
  (``nnunet-hecktor prognosis``, ``nnunet-hecktor hpv``), with :mod:`~nnunet_hecktor.prognosis.model_store`
  (figures: :mod:`nnunet_hecktor.plots`, the package's one plotting module).

Conventions: risk higher = earlier relapse; HPV 1 = positive; labels 0 background, 1 GTVp, 2 GTVn.
"""
