"""Patient-level prediction with a trained model (``nnunet-hecktor predict``).

- :func:`predict`: a folder of patients -> ``<PID>.nii.gz`` on the original CT grids and
  ``predictions.csv`` (``PatientID,hpv_probability,hpv_status,risk``).
- :class:`HecktorPredictor`: one case at a time (also used by the challenge container).
- :func:`prepare_images` / :func:`prepare_case`: the converter's preprocessing of a new case.
- :func:`ensemble_heads`: how folds are combined (rules in :mod:`.ensemble`).

Heavy modules (torch, nnU-Net) are imported lazily.
"""

from __future__ import annotations

from nnunet_hecktor.lazy_exports import lazy_exports

_EXPORTS = {
    "predict": "api", "PredictionSummary": "api", "load_clinical": "api",
    "HecktorPredictor": "predictor", "CasePrediction": "predictor", "PreprocessedCase": "predictor",
    "prepare_images": "preparation", "prepare_case": "preparation", "PreparedCase": "preparation",
    "CaseInput": "inputs", "InputCases": "inputs", "find_input_cases": "inputs",
    "ensemble_heads": "ensemble", "FoldHeadOutput": "ensemble", "EnsembleHeadOutput": "ensemble",
    "ENSEMBLE_RULES": "ensemble",
    "ModelInfo": "model", "load_predictor": "model", "check_model_folder": "model",
    "ConversionSettings": "settings",
    "write_segmentation": "outputs", "write_prediction_tables": "outputs",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())
