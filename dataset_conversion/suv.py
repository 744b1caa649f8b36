"""PET activity concentration (Bq/mL, DICOM units ``BQML``) -> SUV (body weight), at conversion.

The HECKTOR 2026 organisers ship, for the cases released in Bq/mL, a table with one row per patient
(their repository HECKTOR2026: ``suv_conversion_tags.csv`` and the script ``convert_nifti_Bq_SUV.py``):
``pid, units, patient_weight_kg, ..., decay_corrected_dose_at_scan_bq, dose_for_suv_bq,
bqml_to_suvbw_factor``. The factor is ``weight (kg) x 1000 / decay-corrected dose (Bq)`` (g/Bq), and
``SUV = value (Bq/mL) x factor`` (1 mL of tissue taken as 1 g). Their 51 factors lie in 2.15e-4 to 6.57e-4.

:func:`read_suv_factors` reads such a table (or any CSV with a patient column and either a factor or a
weight and a dose) with the same checks as the organisers' script, plus a plausibility range:

- ``units``, when the column exists, must be ``BQML`` (anything else is refused: the factor only
  converts Bq/mL);
- with a weight and a dose, the factor is recomputed; a given factor differing from it by more than
  :data:`FACTOR_RELATIVE_TOLERANCE` is refused (the table is inconsistent);
- a factor outside :data:`PLAUSIBLE_FACTOR_RANGE` is refused: it means a unit mix-up (dose in MBq, weight
  in g, an inverted factor), which would scale the PET by orders of magnitude.

Every refused row is listed in one error naming the patient and the reason; nothing is converted then.
:func:`apply_suv_factor` scales one PET (a new float32 image; the source file is never modified) and
refuses a PET that already looks like SUV (99th percentile at most ``checks.PET_SUV_P99_LIMIT``): applying
the factor twice would make it ~2000 times too small.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nnunet_hecktor.errors import HecktorError, InputDataError

from .checks import PET_SUV_P99_LIMIT

#: Factors (g/Bq) accepted: 40-250 kg over 50-1000 MBq at scan time spans 4e-5 to 5e-3. The organisers'
#: 51 factors are 2.15e-4 to 6.57e-4; a unit mix-up lands 1000 times off.
PLAUSIBLE_FACTOR_RANGE: tuple[float, float] = (4e-5, 5e-3)
#: Relative difference allowed between a given factor and weight x 1000 / dose (the table's factors are
#: rounded to 6 significant digits).
FACTOR_RELATIVE_TOLERANCE: float = 1e-3
#: Accepted spellings (lower case) of each column of the factor table, first match wins.
COLUMNS: dict[str, tuple[str, ...]] = {
    "patient": ("patientid", "pid", "patient_id", "patient"),
    "units": ("units",),
    "factor": ("bqml_to_suvbw_factor", "suv_factor", "factor"),
    "weight_kg": ("patient_weight_kg", "weight_kg"),
    "dose_bq": ("dose_for_suv_bq", "decay_corrected_dose_at_scan_bq", "decay_corrected_dose_bq"),
}
#: File of the dataset folder recording the factor applied to each patient.
SUV_FACTORS_NAME = "suv_factors.csv"


@dataclass(frozen=True)
class SuvFactor:
    """The Bq/mL -> SUVbw factor of one patient.

    Attributes
    ----------
    patient_id : str
    factor : float
        g/Bq; ``SUV = Bq/mL x factor``.
    weight_kg, dose_bq : float or None
        Body weight (kg) and decay-corrected dose at scan time (Bq), when the table gives them.
    origin : str
        ``"weight and dose"`` (recomputed, checked against a given factor) or ``"factor column"``.
    table : str
        The factor table it comes from.
    """

    patient_id: str
    factor: float
    weight_kg: float | None
    dose_bq: float | None
    origin: str
    table: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _column(header: list[str], role: str) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for spelling in COLUMNS[role]:
        if spelling in lowered:
            return lowered.index(spelling)
    return None


def _number(text: str) -> float | None:
    text = text.strip()
    if not text or text.lower() in ("nan", "na", "none"):
        return None
    value = float(text)  # ValueError handled by the caller, naming the patient
    return value if math.isfinite(value) else None


def _row_factor(cells: dict[str, str], pid: str, table: Path) -> SuvFactor:
    """One row's factor, or ValueError with the reason (see the module docstring for the checks)."""
    units = cells.get("units", "").strip()
    if "units" in cells and units.upper() != "BQML":
        raise ValueError(f"units are {units or 'empty'!r}, not BQML: this factor only converts Bq/mL")
    try:
        given = _number(cells.get("factor", ""))
        weight = _number(cells.get("weight_kg", ""))
        dose = _number(cells.get("dose_bq", ""))
    except ValueError as exc:
        raise ValueError(f"not a number ({exc})") from None
    low, high = PLAUSIBLE_FACTOR_RANGE
    if weight is not None and dose is not None and weight > 0 and dose > 0:
        computed = weight * 1000.0 / dose
        if given is not None and abs(given - computed) > FACTOR_RELATIVE_TOLERANCE * computed:
            raise ValueError(f"factor {given:.6g} does not match weight x 1000 / dose = {weight:g} x 1000 / "
                             f"{dose:.6g} = {computed:.6g}")
        factor, origin = (given if given is not None else computed), "weight and dose"
    elif given is not None and given > 0:
        factor, origin = given, "factor column"
    else:
        raise ValueError("no usable factor: needs a positive factor, or a positive weight (kg) and dose (Bq)")
    if not low <= factor <= high:
        raise ValueError(f"factor {factor:.6g} g/Bq is implausible (expected {low:g} to {high:g}: weight in kg x "
                         "1000 / decay-corrected dose in Bq); check the units of weight and dose")
    return SuvFactor(pid, float(factor), weight, dose, origin, str(table))


def read_suv_factors(path: str | Path) -> dict[str, SuvFactor]:
    """Read a Bq/mL -> SUV factor table (the organisers' ``suv_conversion_tags.csv`` format).

    Parameters
    ----------
    path : path-like
        CSV with a patient column (``PatientID``/``pid``) and a factor (``bqml_to_suvbw_factor``) and/or a
        weight (``patient_weight_kg``) and a dose (``dose_for_suv_bq`` or ``decay_corrected_dose_at_scan_bq``);
        optional ``units`` (must be ``BQML``).

    Returns
    -------
    dict
        PatientID -> :class:`SuvFactor`.

    Raises
    ------
    HecktorError
        Unreadable file, no patient column, neither a factor nor weight and dose columns, duplicate
        patients, or any refused row (every one listed with its patient and reason).
    """
    table = Path(path).expanduser()
    try:
        text = table.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise HecktorError(f"cannot read the SUV factor table {table} ({getattr(exc, 'strerror', None) or exc})") from None
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header = rows[0] if rows else []
    index = {role: _column(header, role) for role in COLUMNS}
    if index["patient"] is None:
        raise HecktorError(f"{table}: no patient column (one of {', '.join(COLUMNS['patient'])}; columns: "
                           f"{', '.join(header) or 'none'})")
    if index["factor"] is None and (index["weight_kg"] is None or index["dose_bq"] is None):
        raise HecktorError(f"{table}: needs a factor column ({COLUMNS['factor'][0]}) or weight and dose columns "
                           f"({COLUMNS['weight_kg'][0]}, {COLUMNS['dose_bq'][0]})")
    factors: dict[str, SuvFactor] = {}
    problems: list[str] = []
    for line, cells in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        values = {role: (cells[i] if i < len(cells) else "") for role, i in index.items() if i is not None}
        pid = values.pop("patient").strip()
        if not pid:
            problems.append(f"{table}: line {line}: empty patient ID")
            continue
        if pid in factors:
            problems.append(f"{pid}: {table}: two rows (line {line} repeats the patient)")
            continue
        try:
            factors[pid] = _row_factor(values, pid, table)
        except ValueError as exc:
            problems.append(f"{pid}: {table}: line {line}: {exc}")
    if problems:
        raise HecktorError("SUV factor table refused (nothing converted):\n  " + "\n  ".join(problems))
    return factors


def apply_suv_factor(pet, factor: SuvFactor, p99: float, path: Path):
    """The PET in SUV: a new float32 image ``pet x factor`` (the source image and file are untouched).

    Parameters
    ----------
    pet : SimpleITK.Image
        The PET as read (Bq/mL expected).
    factor : SuvFactor
    p99 : float
        The PET's 99th percentile before conversion (``checks.pet_statistics``).
    path : Path
        The PET file (for the message).

    Raises
    ------
    InputDataError
        The PET already looks like SUV (``p99 <= checks.PET_SUV_P99_LIMIT``): converting it again would
        make it ~2000 times too small.
    """
    import SimpleITK as sitk

    if p99 <= PET_SUV_P99_LIMIT:
        raise InputDataError(
            f"a Bq/mL -> SUV factor ({factor.factor:.6g}, {factor.table}) is given, but the PET already looks like "
            f"SUV (99th percentile {p99:.4g} <= {PET_SUV_P99_LIMIT:g}); remove its row from the factor table",
            factor.patient_id, path)
    return sitk.Cast(pet, sitk.sitkFloat32) * float(factor.factor)


def suv_factors_csv_text(applied: dict[str, SuvFactor]) -> str:
    """``suv_factors.csv``: one row per converted patient whose PET was scaled (PatientID, factor, ...)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["PatientID", "bqml_to_suvbw_factor", "patient_weight_kg", "dose_bq", "origin", "table"])
    for pid in sorted(applied):
        f = applied[pid]
        writer.writerow([pid, repr(f.factor), "" if f.weight_kg is None else repr(f.weight_kg),
                         "" if f.dose_bq is None else repr(f.dose_bq), f.origin, f.table])
    return buffer.getvalue()
