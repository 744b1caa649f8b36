"""Saving and loading fitted prognosis models with what is needed to use them safely.

A saved model (joblib) carries the fitted estimator, the exact input columns it needs, the
chosen model, the HPV threshold and training prevalence, the segmentation source it was
trained on, its cross-validation figures and the package versions it was fitted with.
"""

from __future__ import annotations

import platform
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nnunet_hecktor import __version__
from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.fileio import atomic_path

MODEL_FORMAT = 1
TASKS: tuple[str, ...] = ("survival", "hpv", "stage")


def package_versions() -> dict[str, str]:
    """Versions of the packages a fitted model depends on."""
    import numpy
    import pandas
    import scipy
    import sklearn

    versions = {"nnunet_hecktor": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
                "scipy": scipy.__version__, "pandas": pandas.__version__, "scikit-learn": sklearn.__version__}
    import sksurv

    versions["scikit-survival"] = sksurv.__version__
    return versions


@dataclass
class PrognosisModel:
    """A fitted survival, HPV or T/N staging model of the prognosis stage.

    Attributes
    ----------
    task : {"survival", "hpv", "stage"}
    estimator : fitted scikit-learn/scikit-survival estimator taking a DataFrame of ``input_columns``
        (for ``stage``: a :class:`~nnunet_hecktor.prognosis.stage_models.TNStageModel`)
    image_columns, clinical_columns : the raw inputs it needs (feature table / clinical table)
    feature_set : {"all", "image", "clinical"}
    chosen : name of the final model ("icare", "coxnet", ..., "ensemble", "logistic")
    description : one line saying what the final model is
    seg_source : segmentation source of the training features ("predicted", "ground_truth", ...);
        None without image features
    threshold : HPV decision threshold on the model probability (HPV only)
    training_prevalence : share of HPV-positive training patients (HPV only)
    cv : cross-validation figures
    fallback : output column -> value to write for a patient that cannot be predicted, on this model's
        own scale (survival: the median risk of the training patients; HPV: the training prevalence
        as probability and the majority class); empty for models saved before it existed
    versions : package versions at fitting time
    """

    task: str
    estimator: Any
    image_columns: list[str]
    clinical_columns: list[str]
    feature_set: str
    chosen: str
    description: str
    seg_source: str | None = None
    threshold: float | None = None
    training_prevalence: float | None = None
    cv: dict[str, Any] = field(default_factory=dict)
    fallback: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=package_versions)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    format: int = MODEL_FORMAT

    def __setstate__(self, state: dict) -> None:
        # Models pickled before a field existed load with its default.
        state.setdefault("fallback", {})
        self.__dict__.update(state)

    @property
    def input_columns(self) -> list[str]:
        return list(self.image_columns) + list(self.clinical_columns)


def save_model(model: PrognosisModel, path: str | Path) -> Path:
    """Write ``model`` with joblib, atomically."""
    import joblib

    path = Path(path)
    with atomic_path(path) as tmp:
        joblib.dump(model, tmp, compress=3)
    return path


def load_model(path: str | Path, task: str | None = None) -> PrognosisModel:
    """Read a model saved by :func:`save_model`.

    Warns when scikit-learn or scikit-survival versions differ from the fitting ones (pickled
    estimators are only guaranteed to load under the same versions).

    Raises
    ------
    HecktorError
        Missing or unreadable file, not a prognosis model, or a model of another task.
    """
    import joblib

    path = Path(path)
    if not path.is_file():
        raise HecktorError(f"model file not found: {path}")
    try:
        model = joblib.load(path)
    except Exception as exc:  # unpickling raises anything from EOFError to AttributeError
        raise HecktorError(f"cannot load model {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, PrognosisModel):
        raise HecktorError(f"{path} is not a model saved by nnunet-hecktor prognosis/hpv/staging fit")
    if task is not None and model.task != task:
        other = {"survival": "prognosis", "hpv": "hpv", "stage": "staging"}.get(model.task, model.task)
        raise HecktorError(f"{path} is a {model.task} model; use 'nnunet-hecktor {other} predict' with it")
    current = package_versions()
    for package in ("scikit-learn", "scikit-survival"):
        if model.versions.get(package) != current.get(package):
            warnings.warn(f"{path} was fitted with {package} {model.versions.get(package)}, this is "
                          f"{current.get(package)}: predictions may differ or fail", stacklevel=2)
    return model


def check_input_columns(model: PrognosisModel, feature_columns, clinical_columns, feature_path=None,
                        clinical_path=None) -> None:
    """Raise a clear error naming every input the model needs but the given tables lack.

    Raises
    ------
    HecktorError
        Lists the missing feature columns and/or clinical columns.
    """
    problems = []
    missing_features = [c for c in model.image_columns if c not in set(feature_columns or [])]
    if missing_features:
        where = f" {feature_path}" if feature_path else ""
        problems.append(f"the feature table{where} lacks {len(missing_features)} feature(s) the model was trained "
                        f"on: {', '.join(missing_features)}")
    missing_clinical = [c for c in model.clinical_columns if c not in set(clinical_columns or [])]
    if missing_clinical:
        where = f" {clinical_path}" if clinical_path else ""
        problems.append(f"the clinical table{where} lacks column(s) {', '.join(missing_clinical)}")
    if problems:
        raise HecktorError("cannot predict: " + "; ".join(problems))
