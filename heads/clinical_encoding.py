"""Fixed-layout encoding of the HECKTOR clinical variables for the network heads.

The layout never depends on the data (a checkpoint trained on one cohort must accept
the clinical record of any patient), and every variable has an explicit "missing" slot
so that an absent value is information the heads can use rather than a silent zero.

Layout (``N_CLINICAL_FEATURES = 24`` columns, see :data:`CLINICAL_FEATURE_NAMES`)::

    Age_z, Age_missing                                   standardised years (training fold)
    Gender=0, Gender=1, Gender_missing                   raw 0/1 values, polarity undocumented
    Tobacco=0, Tobacco=1, Tobacco_missing
    Alcohol=0, Alcohol=1, Alcohol_missing
    Treatment=0, Treatment=1, Treatment_missing
    M-stage=M0, M-stage=M1, M-stage=Mx, M-stage_missing
    ECOG=0 .. ECOG=4, ECOG_missing                       Karnofsky 10-100 mapped to ECOG

Records are the typed dictionaries of :mod:`nnunet_hecktor.clinical` (keys are the
column names of :mod:`nnunet_hecktor.schema`, missing = ``None`` or absent key).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from nnunet_hecktor import schema
from nnunet_hecktor.clinical import is_missing, parse_value, performance_status_to_ecog

_BINARY_COLUMNS: tuple[tuple[str, str], ...] = (
    (schema.COL_GENDER, "Gender"),
    (schema.COL_TOBACCO, "Tobacco"),
    (schema.COL_ALCOHOL, "Alcohol"),
    (schema.COL_TREATMENT, "Treatment"),
)


def _build_feature_names() -> tuple[str, ...]:
    names = ["Age_z", "Age_missing"]
    for _, short in _BINARY_COLUMNS:
        names += [f"{short}=0", f"{short}=1", f"{short}_missing"]
    names += [f"M-stage={m}" for m in schema.M_STAGES] + ["M-stage_missing"]
    names += [f"ECOG={e}" for e in schema.ECOG_VALUES] + ["ECOG_missing"]
    return tuple(names)


#: Column names of the encoded clinical vector, in order.
CLINICAL_FEATURE_NAMES: tuple[str, ...] = _build_feature_names()
#: Width of the encoded clinical vector (fixed; independent of the data).
N_CLINICAL_FEATURES: int = len(CLINICAL_FEATURE_NAMES)

# Standardised ages are clipped: a typo such as 650 years must not dominate the heads.
_AGE_Z_CLIP = 5.0


def _patient_of(record: Mapping[str, Any], index: int) -> str:
    pid = record.get(schema.COL_PATIENT)
    return str(pid) if pid is not None else f"record #{index}"


def _value(record: Mapping[str, Any], column: str, index: int) -> Any:
    """The typed value of ``column`` (None = missing), parsed by the plugin's one clinical parser.

    Typed records pass through unchanged; raw strings (``"1.0"``, ``"m0"``) are parsed the same way
    the converter reads the CSVs, so the encoder never disagrees with the rest of the plugin.
    """
    try:
        return parse_value(column, record.get(column))
    except ValueError as err:
        raise ValueError(f"{_patient_of(record, index)}: {err}") from None


def _age_value(record: Mapping[str, Any], index: int) -> float | None:
    # Not parse_value: its plausibility range (0-120 years) would reject what the encoder clips.
    value = record.get(schema.COL_AGE)
    if value is None or is_missing(value):
        return None
    try:
        age = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{_patient_of(record, index)}: Age must be a number of years, got {value!r}") from None
    if not math.isfinite(age):
        raise ValueError(f"{_patient_of(record, index)}: Age must be finite, got {value!r}")
    return age


def _m_stage_value(record: Mapping[str, Any], index: int) -> int | None:
    stage = _value(record, schema.COL_MSTAGE, index)
    return None if stage is None else schema.M_STAGES.index(stage)


def _ecog_value(record: Mapping[str, Any], index: int) -> int | None:
    return performance_status_to_ecog(_value(record, schema.COL_PERFORMANCE, index))


def _as_record_list(records: Iterable[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]]) -> list:
    if isinstance(records, Mapping):
        values = list(records.values())
        # A single record (column -> value) versus {PatientID: record}.
        if values and all(isinstance(v, Mapping) for v in values):
            return values
        return [records]
    return list(records)


class ClinicalEncoder(nn.Module):
    """Encode clinical records into a fixed-width float vector.

    Age is standardised with the mean and standard deviation of the **training fold**
    (call :meth:`fit` on training patients only). The statistics are buffers, so they are
    saved in the network's ``state_dict`` and restored at prediction time with nothing
    but the checkpoint. Missing values get an explicit indicator; a missing age is encoded
    as the training mean (``Age_z = 0``) plus ``Age_missing = 1``.

    Parameters
    ----------
    enabled : bool
        When False the heads ignore clinical inputs (image-only ablation):
        :attr:`output_features` is 0 and :meth:`encode` returns a ``[B, 0]`` tensor.
        The statistics buffers exist either way, so checkpoints have the same keys.
    """

    feature_names: tuple[str, ...] = CLINICAL_FEATURE_NAMES
    # Buffers (registered in __init__; declared so that they type as tensors, not Tensor | Module).
    age_mean: torch.Tensor
    age_std: torch.Tensor
    is_fitted: torch.Tensor

    def __init__(self, enabled: bool = True) -> None:
        super().__init__()
        self.enabled = bool(enabled)
        self.register_buffer("age_mean", torch.tensor(0.0, dtype=torch.float64))
        self.register_buffer("age_std", torch.tensor(1.0, dtype=torch.float64))
        # A buffer rather than a python flag: "was fit() called" must survive the checkpoint.
        self.register_buffer("is_fitted", torch.tensor(False))

    @property
    def output_features(self) -> int:
        """Width of :meth:`encode`'s output (``N_CLINICAL_FEATURES`` or 0 when disabled)."""
        return N_CLINICAL_FEATURES if self.enabled else 0

    def fit(self, records: Iterable[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]]) -> "ClinicalEncoder":
        """Learn the age statistics from the training fold's records.

        Parameters
        ----------
        records : iterable of dict, or dict PatientID -> dict
            Typed clinical records of the training patients only (validation patients must
            not leak into the statistics).

        Returns
        -------
        ClinicalEncoder
            ``self``.
        """
        records = _as_record_list(records)
        ages = [a for i, r in enumerate(records) if (a := _age_value(r, i)) is not None]
        mean = sum(ages) / len(ages) if ages else 0.0
        var = sum((a - mean) ** 2 for a in ages) / (len(ages) - 1) if len(ages) > 1 else 0.0
        # Fewer than two distinct ages: keep a unit scale rather than dividing by ~0.
        std = math.sqrt(var) if var > 1e-12 else 1.0
        with torch.no_grad():
            self.age_mean.fill_(mean)
            self.age_std.fill_(std)
            self.is_fitted.fill_(True)
        return self

    def encode_as_lists(self, records: Sequence[Mapping[str, Any]]) -> list[list[float]]:
        """Encode records into python lists (the full layout, ignoring :attr:`enabled`)."""
        if not bool(self.is_fitted):
            raise RuntimeError(
                "ClinicalEncoder.encode() called before fit(): fit it on the training fold's clinical records "
                "(or load a checkpoint that contains its statistics)"
            )
        mean = float(self.age_mean)
        std = float(self.age_std)
        rows = []
        for i, record in enumerate(records):
            row = [0.0] * N_CLINICAL_FEATURES
            age = _age_value(record, i)
            if age is None:
                row[1] = 1.0
            else:
                row[0] = max(-_AGE_Z_CLIP, min(_AGE_Z_CLIP, (age - mean) / std))
            offset = 2
            for column, _ in _BINARY_COLUMNS:
                value = _value(record, column, i)
                row[offset + (2 if value is None else value)] = 1.0
                offset += 3
            m_stage = _m_stage_value(record, i)
            row[offset + (len(schema.M_STAGES) if m_stage is None else m_stage)] = 1.0
            offset += len(schema.M_STAGES) + 1
            ecog = _ecog_value(record, i)
            row[offset + (len(schema.ECOG_VALUES) if ecog is None else ecog)] = 1.0
            rows.append(row)
        return rows

    def encode(self, records: Iterable[Mapping[str, Any]] | Mapping[str, Any]) -> torch.Tensor:
        """Encode a batch of clinical records.

        Parameters
        ----------
        records : iterable of dict, or one dict
            Typed clinical records (column names of :mod:`nnunet_hecktor.schema`; missing
            values are ``None``, NaN or absent keys). A single record is treated as a batch
            of one.

        Returns
        -------
        torch.Tensor
            Float32 tensor ``[B, output_features]`` on the device of the encoder's buffers.

        Raises
        ------
        RuntimeError
            When the encoder was never fitted (and no fitted checkpoint was loaded).
        ValueError
            For a value outside the documented coding; the message names the patient.
        """
        records = _as_record_list(records)
        device = self.age_mean.device
        if not self.enabled:
            return torch.zeros((len(records), 0), dtype=torch.float32, device=device)
        rows = self.encode_as_lists(records)
        if not rows:
            return torch.zeros((0, N_CLINICAL_FEATURES), dtype=torch.float32, device=device)
        return torch.tensor(rows, dtype=torch.float32, device=device)

    def extra_repr(self) -> str:
        return f"enabled={self.enabled}, features={self.output_features}"
