"""Patient-level parameters of the synthetic cohort: centre, clinical values, lesions, outcomes.

Everything here is drawn without rendering an image, so prognosis benchmarks can draw
thousands of patients in a fraction of a second (:func:`draw_patients`).

Conventions
-----------
- Lengths in mm, volumes in mL, times in days.
- ``true_risk`` is the linear predictor of the proportional-hazards model that generated
  RFS/Relapse: higher = earlier relapse.
- ``hpv_probability`` is the probability of HPV positivity (1 = positive) the HPV status
  was drawn from.
- Clinical values are stored twice: the *true* values (used by the outcome models) and the
  *recorded* values, where some are missing (``None``) as in the release CSVs.

Generating models (coefficients in :data:`RISK_COEFFICIENTS` and :data:`HPV_COEFFICIENTS`)
---------------------------------------------------------------------------------------
HPV: ``logit p = intercept + centre shift + sum(coef * feature)`` with younger age,
non-smokers, more nodes and smaller primaries more often positive (~87 % positive).

RFS: Weibull proportional hazards, ``S(t | x) = exp(-(t / scale)^shape * exp(lp))`` with
``lp`` a function of log primary volume, SUVmax, node count, HPV, M-stage and age, and
independent censoring (administrative end of follow-up plus loss to follow-up), giving
~20-30 % observed relapses.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from nnunet_hecktor import schema
from nnunet_hecktor.synthetic.image_factors import check_world, draw_image_factors
from nnunet_hecktor.synthetic.lesions import Lesion, draw_lesions
from nnunet_hecktor.synthetic.staging import draw_staging

#: Bumped whenever a change alters what a given seed produces with the default options (2025 edition,
#: default world, not enriched, id offset 0). Other options are recorded as their own ground-truth keys
#: (``edition``, ``world``, ``id_offset``, ``enrichment_acceptance``); the covariate enrichment replaced
#: the outcome one without a bump (its ground truth says ``"scheme": "covariate"``).
GENERATOR_VERSION = "1"

#: Task 1 cohort sizes per centre of the 2025 training release, used as sampling weights; CHUV gets
#: a few patients too so every CenterID code appears in bigger cohorts.
CENTRE_WEIGHTS: dict[str, float] = {
    "MDA": 396, "CHUP": 72, "CHUS": 72, "CHUM": 56, "HGJ": 55, "CHUV": 30, "HMR": 18, "USZ": 11,
}
#: Order in which small cohorts are guaranteed one patient per centre (several centres at n=12).
CENTRE_ROUND_ROBIN: tuple[str, ...] = ("MDA", "CHUP", "CHUS", "CHUM", "HGJ", "CHUV", "HMR", "USZ")


@dataclass(frozen=True)
class CentreProfile:
    """Scanner/protocol differences between centres (what a model must be robust to)."""

    pet_calibration: float  #: multiplies the true SUV (cross-calibration error)
    ct_noise_hu: float  #: standard deviation of CT noise
    pet_fwhm_mm: float  #: PET point-spread function (benchmark size)
    karnofsky_fraction: float  #: share of patients whose Performance Status is Karnofsky
    hpv_logit_shift: float  #: label shift between centres (HPV prevalence differs)


CENTRE_PROFILES: dict[str, CentreProfile] = {
    "CHUM": CentreProfile(1.00, 14.0, 6.0, 0.10, 0.0),
    "CHUP": CentreProfile(1.12, 24.0, 7.0, 0.05, -0.3),
    "CHUS": CentreProfile(0.92, 18.0, 6.5, 0.10, 0.0),
    "CHUV": CentreProfile(1.05, 16.0, 5.5, 0.90, -0.5),
    "MDA": CentreProfile(0.97, 10.0, 6.0, 0.05, 0.4),
    "HGJ": CentreProfile(1.20, 30.0, 7.5, 0.85, -0.6),
    "HMR": CentreProfile(0.85, 22.0, 7.0, 0.80, -0.9),
    "USZ": CentreProfile(1.08, 12.0, 5.0, 0.90, -0.3),
}

#: Coefficients of the true risk (linear predictor, higher = earlier relapse).
RISK_COEFFICIENTS: dict[str, float] = {
    "log_primary_volume_per_ln": 0.55,  # per unit of ln(volume / 15 mL)
    "suvmax_per_4": 0.35,  # per 4 SUV above 12
    "node_count": 0.45,
    "hpv_positive": -1.00,
    "m1": 1.50,
    "mx": 0.30,
    "age_per_10y": 0.20,  # per 10 years above 60
}
#: Weibull baseline of relapse time and censoring distribution (days).
WEIBULL_SHAPE = 0.9
WEIBULL_SCALE_DAYS = 3800.0
FOLLOW_UP_DAYS = (365.0, 2200.0)  # administrative end of follow-up, uniform
LOSS_TO_FOLLOW_UP_MEAN_DAYS = 6000.0

#: Coefficients of the true HPV logit (before the centre shift).
HPV_COEFFICIENTS: dict[str, float] = {
    "intercept": 2.0,
    "age_per_10y": -0.45,  # per 10 years above 60
    "tobacco": -1.20,
    "node_count": 0.35,
    "log_primary_volume_per_ln": -0.40,
    "male": 0.30,
}

#: Probability that a recorded value is missing (empty CSV cell), per column.
MISSING_RATES: dict[str, float] = {
    schema.COL_AGE: 0.02,
    schema.COL_GENDER: 0.02,
    schema.COL_TOBACCO: 0.35,
    schema.COL_ALCOHOL: 0.40,
    schema.COL_PERFORMANCE: 0.25,
    schema.COL_TREATMENT: 0.05,
    schema.COL_MSTAGE: 0.10,
    schema.COL_HPV: 0.05,
    "outcome": 0.03,  # Relapse and RFS missing together
}


@dataclass
class SyntheticPatient:
    """All generating parameters of one synthetic patient (see the module docstring)."""

    index: int
    patient_id: str
    centre: str
    center_id: int
    tasks: tuple[int, ...]
    has_planning: bool
    clinical_true: dict[str, Any]
    clinical_recorded: dict[str, Any]
    primary: Lesion | None
    nodes: list[Lesion]
    hpv_probability: float
    hpv: int
    true_risk: float
    event_time_days: float
    censor_time_days: float
    rfs_days: float
    relapse: int
    anatomy: dict[str, float]
    #: T/N stages from the lesion geometry and as clinically recorded (:mod:`.staging`).
    staging: dict[str, Any] = field(default_factory=dict)
    #: ``"default"`` or ``"rich"`` (:mod:`.image_factors`); the rich world's factor values (None otherwise).
    world: str = "default"
    image_factors: dict[str, Any] | None = None

    @property
    def node_count(self) -> int:
        return len(self.nodes)

    @property
    def primary_volume_ml(self) -> float:
        return 0.0 if self.primary is None else self.primary.volume_ml

    @property
    def suvmax(self) -> float:
        peaks = [les.suv_peak for les in ([self.primary] if self.primary else []) + self.nodes]
        return max(peaks) if peaks else 0.0

    def released_values(self, edition: str = "2025") -> dict[str, Any]:
        """Clinical values as the release of ``edition`` shows them (``None`` = missing).

        2025: recorded values, with Relapse/RFS only for Task 2 members and HPV Status only for Task 3
        members. 2026 (one cohort): no M-stage; HPV Status, Relapse/RFS (blank for a few more
        patients, :data:`~.staging.EXTRA_OUTCOME_MISSING_2026`) and the recorded clinical
        ``T-stage``/``N-stage`` for every patient.
        """
        values = dict(self.clinical_recorded)
        values[schema.COL_PATIENT] = self.patient_id
        values[schema.COL_CENTER] = self.center_id
        if str(edition) == "2026":
            values.pop(schema.COL_MSTAGE, None)
            recorded = self.staging["recorded"]
            if recorded["outcome_missing_2026"]:
                values[schema.COL_RELAPSE] = values[schema.COL_RFS] = None
            values[schema.COL_TSTAGE] = recorded[schema.COL_TSTAGE]
            values[schema.COL_NSTAGE] = recorded[schema.COL_NSTAGE]
            return values
        if str(edition) != "2025":
            raise ValueError(f"synthetic releases exist for the 2025 and 2026 editions, not {edition!r}")
        if 2 not in self.tasks:
            values[schema.COL_RELAPSE] = values[schema.COL_RFS] = None
        if 3 not in self.tasks:
            values[schema.COL_HPV] = None
        return values

    def to_json(self, with_staging: bool = False) -> dict[str, Any]:
        """Plain-JSON view for the ground-truth file (``staging`` only when ``with_staging``, so the
        2025 ground truth of a seed is what it was before stages existed)."""
        data = asdict(self)
        if not with_staging:
            data.pop("staging")
        if self.world == "default":  # the default world's ground truth is what it was before worlds
            data.pop("world")
            data.pop("image_factors")
        data["tasks"] = list(self.tasks)
        data["node_count"] = self.node_count
        data["primary_volume_ml"] = self.primary_volume_ml
        data["node_volume_ml"] = sum(n.volume_ml for n in self.nodes)
        data["suvmax"] = self.suvmax
        return data


def patient_rng(seed: int, index: int, stream: int = 0) -> np.random.Generator:
    """Random generator of one patient, independent of how many processes generate the cohort.

    ``stream`` separates parameter draws (0) from image noise (1) and so on, so that changing
    the image renderer never changes the clinical values or outcomes of a seed.
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index), int(stream)]))


def _cohort_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EED, 0xC0407]))


def assign_centres(n_patients: int, rng: np.random.Generator) -> list[str]:
    """Centre of every patient: round robin over centres first (small cohorts span several
    centres), then by the released centre sizes."""
    n_robin = min(n_patients // 2, len(CENTRE_ROUND_ROBIN))
    names = list(CENTRE_WEIGHTS)
    weights = np.array([CENTRE_WEIGHTS[c] for c in names], dtype=float)
    rest = rng.choice(len(names), size=n_patients - n_robin, p=weights / weights.sum())
    return list(CENTRE_ROUND_ROBIN[:n_robin]) + [names[i] for i in rest]


def assign_patient_ids(centres: list[str], rng: np.random.Generator, id_offset: int = 0) -> list[str]:
    """``<CENTRE>-<NNN>`` ids, numbered per centre from ``id_offset`` plus a small random start (can be
    ``000``) with occasional gaps, as in the release."""
    next_number = {c: int(id_offset) + int(rng.integers(0, 4)) for c in CENTRE_WEIGHTS}
    ids = []
    for centre in centres:
        number = next_number[centre]
        ids.append(f"{centre}-{number:03d}")
        next_number[centre] = number + 1 + int(rng.random() < 0.15)
    return ids


def first_free_id_number(patient_ids) -> int:
    """One more than the highest number among ``patient_ids`` (``<CENTRE>-<NNN>``), 0 for none.

    Pass it as ``id_offset`` when drawing a cohort of new patients next to a training cohort, so that
    no new patient has the id of a training patient (both are drawn from the same centres).
    """
    numbers = [int(pid.rsplit("-", 1)[1]) for pid in patient_ids]
    return max(numbers, default=-1) + 1


def assign_tasks(n_patients: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """Task membership per patient: Task 1 ~75 %, Task 2 and Task 3 ~75 % each; some patients
    are only in Task 2 and/or 3 (no label anywhere), some only in Task 1.

    Small cohorts (>= 6 patients) are guaranteed a patient in Task 2 only, one in Task 3
    only, one in Task 1 only and one in all three, so every layout case shows up in tests.
    """
    fixed: list[tuple[int, ...]] = [(1, 2, 3), (2,), (3,), (1,), (1, 2), (1, 3)] if n_patients >= 6 else []
    memberships = []
    for i in range(n_patients):
        if i < len(fixed):
            memberships.append(fixed[i])
            continue
        in_task1 = rng.random() < 0.75
        p_other = 0.70 if in_task1 else 0.85
        tasks = [1] if in_task1 else []
        for task in (2, 3):
            if rng.random() < p_other:
                tasks.append(task)
        if not tasks:
            tasks = [int(rng.choice([1, 2, 3]))]
        memberships.append(tuple(tasks))
    # Shuffle so the guaranteed patterns do not always sit on the first centres.
    order = rng.permutation(n_patients)
    return [memberships[i] for i in order]


def _draw_clinical(rng: np.random.Generator, profile: CentreProfile) -> dict[str, Any]:
    age = float(np.clip(round(rng.normal(61.0, 9.0)), 30, 90))
    male = int(rng.random() < 0.82)
    tobacco = int(rng.random() < 0.45)
    alcohol = int(rng.random() < (0.55 if tobacco else 0.30))
    ecog = int(rng.choice(schema.ECOG_VALUES, p=[0.50, 0.35, 0.10, 0.04, 0.01]))
    if rng.random() < profile.karnofsky_fraction:
        # Karnofsky 100/90/80 correspond to ECOG 0/1/>=2 (the release only has these three).
        performance = {0: 100, 1: 90}.get(ecog, 80)
    else:
        performance = ecog
    m_stage = str(rng.choice(schema.M_STAGES, p=[0.90, 0.03, 0.07]))
    treatment = int(rng.random() < 0.75)
    return {
        schema.COL_AGE: age,
        schema.COL_GENDER: male,
        schema.COL_TOBACCO: tobacco,
        schema.COL_ALCOHOL: alcohol,
        schema.COL_PERFORMANCE: performance,
        schema.COL_TREATMENT: treatment,
        schema.COL_MSTAGE: m_stage,
        "ECOG (true)": ecog,
    }


def _hpv_logit(clinical: dict[str, Any], primary_volume_ml: float, node_count: int,
               profile: CentreProfile) -> float:
    c = HPV_COEFFICIENTS
    return (c["intercept"] + profile.hpv_logit_shift
            + c["age_per_10y"] * (clinical[schema.COL_AGE] - 60.0) / 10.0
            + c["tobacco"] * clinical[schema.COL_TOBACCO]
            + c["node_count"] * node_count
            + c["log_primary_volume_per_ln"] * math.log(max(primary_volume_ml, 0.5) / 15.0)
            + c["male"] * clinical[schema.COL_GENDER])


def true_risk_of(primary_volume_ml: float, suvmax: float, node_count: int, hpv: int,
                 m_stage: str, age: float) -> float:
    """Linear predictor of the generating proportional-hazards model (higher = earlier relapse)."""
    c = RISK_COEFFICIENTS
    return (c["log_primary_volume_per_ln"] * math.log(max(primary_volume_ml, 0.5) / 15.0)
            + c["suvmax_per_4"] * (suvmax - 12.0) / 4.0
            + c["node_count"] * node_count
            + c["hpv_positive"] * hpv
            + c["m1"] * (m_stage == "M1")
            + c["mx"] * (m_stage == "Mx")
            + c["age_per_10y"] * (age - 60.0) / 10.0)


def _mask_missing(rng: np.random.Generator, true: dict[str, Any]) -> dict[str, Any]:
    recorded = {}
    for column in (schema.COL_AGE, schema.COL_GENDER, schema.COL_TOBACCO, schema.COL_ALCOHOL,
                   schema.COL_PERFORMANCE, schema.COL_TREATMENT, schema.COL_MSTAGE):
        recorded[column] = None if rng.random() < MISSING_RATES[column] else true[column]
    return recorded


def _draw_anatomy(rng: np.random.Generator) -> dict[str, float]:
    """Body size factors (multiply the canonical anatomy of anatomy.py) and head tilt."""
    return {
        "width_scale": float(rng.uniform(0.88, 1.12)),
        "depth_scale": float(rng.uniform(0.88, 1.12)),
        "neck_shift_x_mm": float(rng.normal(0.0, 3.0)),
        "neck_shift_y_mm": float(rng.normal(0.0, 3.0)),
        "brain_suv": float(rng.uniform(7.0, 12.0)),
        "tonsil_suv": float(rng.uniform(2.5, 6.0)),
        "salivary_suv": float(rng.uniform(1.8, 3.5)),
        "liver_suv": float(rng.uniform(1.8, 2.6)),
    }


def draw_patient(seed: int, index: int, patient_id: str, centre: str, tasks: tuple[int, ...],
                 has_planning: bool, world: str = "default") -> SyntheticPatient:
    """Draw all parameters and outcomes of one patient from its own generator (seed, index).

    ``world="rich"`` adds the image-only outcome factors of :mod:`.image_factors` (own stream 8).
    """
    rng = patient_rng(seed, index, 0)
    profile = CENTRE_PROFILES[centre]
    clinical = _draw_clinical(rng, profile)
    anatomy = _draw_anatomy(rng)
    primary, nodes = draw_lesions(rng, anatomy)

    primary_volume = 0.0 if primary is None else primary.volume_ml
    hpv_probability = 1.0 / (1.0 + math.exp(-_hpv_logit(clinical, primary_volume, len(nodes), profile)))
    hpv = int(rng.random() < hpv_probability)
    suvmax = max([les.suv_peak for les in ([primary] if primary else []) + nodes], default=0.0)
    risk = true_risk_of(primary_volume, suvmax, len(nodes), hpv, clinical[schema.COL_MSTAGE],
                        clinical[schema.COL_AGE])
    factors = None
    if check_world(world) == "rich":
        primary, nodes, factors = draw_image_factors(patient_rng(seed, index, 8), primary, nodes, hpv,
                                                     hpv_probability)
        risk += factors["risk_term"]

    # Inverse-transform sampling of the Weibull PH model: S(t) = exp(-(t/scale)^k e^lp).
    u = rng.random()
    event_time = WEIBULL_SCALE_DAYS * (-math.log(1.0 - u) * math.exp(-risk)) ** (1.0 / WEIBULL_SHAPE)
    censor_time = min(rng.uniform(*FOLLOW_UP_DAYS), rng.exponential(LOSS_TO_FOLLOW_UP_MEAN_DAYS))
    # Whole days, at least one: RFS of 0 days would be a data error in the release.
    event_time = max(1.0, float(round(event_time)))
    censor_time = max(1.0, float(round(censor_time)))
    relapse = int(event_time <= censor_time)
    rfs = event_time if relapse else censor_time

    recorded = _mask_missing(rng, clinical)
    recorded[schema.COL_HPV] = None if rng.random() < MISSING_RATES[schema.COL_HPV] else hpv
    outcome_missing = rng.random() < MISSING_RATES["outcome"]
    recorded[schema.COL_RELAPSE] = None if outcome_missing else relapse
    recorded[schema.COL_RFS] = None if outcome_missing else rfs

    true = dict(clinical)
    true.update({schema.COL_HPV: hpv, schema.COL_RELAPSE: relapse, schema.COL_RFS: rfs})
    # Stages from their own stream (7): adding them changed nothing else a seed draws.
    staging = draw_staging(patient_rng(seed, index, 7), primary, nodes)
    return SyntheticPatient(
        index=index, patient_id=patient_id, centre=centre, center_id=schema.CENTER_CODES[centre],
        tasks=tuple(tasks), has_planning=has_planning, clinical_true=true, clinical_recorded=recorded,
        primary=primary, nodes=nodes, hpv_probability=hpv_probability, hpv=hpv, true_risk=risk,
        event_time_days=event_time, censor_time_days=censor_time, rfs_days=rfs, relapse=relapse,
        anatomy=anatomy, staging=staging, world=world, image_factors=factors,
    )


#: Enrichment schemes of ``draw_patients(..., enriched=True)``.
ENRICHMENTS: tuple[str, ...] = ("covariate", "outcome")

#: ``enrichment="covariate"`` (default): probability of keeping a drawn patient is
#: ``a(HPV) x sigmoid(slope x (r0 - centre))`` with ``a(HPV negative) = 1``,
#: ``a(HPV positive) = hpv_positive`` and ``r0`` the true log-risk without its HPV term (a function of
#: the risk covariates). Selection depends on covariates of the risk model only (HPV status is one),
#: so relapse times given the covariates keep the generator's proportional-hazards model: a Cox fit on
#: the true covariates of an enriched cohort recovers :data:`RISK_COEFFICIENTS`. For the HPV model the
#: factor on HPV status is case-control sampling (``r0`` is independent of HPV status given the HPV
#: covariates): the slopes of :data:`HPV_COEFFICIENTS` hold, the intercept moves by
#: ``log(hpv_positive)`` (:data:`ENRICHMENT_HPV_LOGIT_SHIFT`). Base rates ~12 % HPV negative and
#: ~25 % relapse become ~30 % and ~42 %; ~16 % of the drawn patients are kept.
COVARIATE_ENRICHMENT: dict[str, float] = {"hpv_positive": 0.35, "slope": 2.0, "centre": 1.0}
#: Within a covariate-enriched cohort, P(HPV+ | covariates) = sigmoid(logit hpv_probability + this).
ENRICHMENT_HPV_LOGIT_SHIFT = math.log(COVARIATE_ENRICHMENT["hpv_positive"])

#: ``enrichment="outcome"`` (the first scheme, kept to reproduce figures made with it): probability
#: of keeping a drawn patient by (HPV status, relapse). Selecting on the drawn relapse changes the
#: associations inside the cohort (a Cox refit on the true covariates of 3,000 such patients gives an
#: HPV coefficient of about -0.4 where the generator has -1.0); ~30 % HPV negative, ~43 % relapse.
ENRICHMENT_ACCEPTANCE: dict[tuple[int, int], float] = {(0, 0): 1.0, (0, 1): 1.0, (1, 1): 0.60, (1, 0): 0.25}


def covariate_acceptance(patient: SyntheticPatient) -> float:
    """Probability of keeping ``patient`` in a covariate-enriched cohort (:data:`COVARIATE_ENRICHMENT`)."""
    c = COVARIATE_ENRICHMENT
    r0 = patient.true_risk - RISK_COEFFICIENTS["hpv_positive"] * patient.hpv
    return (1.0 if patient.hpv == 0 else c["hpv_positive"]) / (1.0 + math.exp(-c["slope"] * (r0 - c["centre"])))


def draw_patients(n_patients: int, seed: int = 0, enriched: bool = False, world: str = "default",
                  id_offset: int = 0, enrichment: str = "covariate", progress: bool = False) -> list[SyntheticPatient]:
    """Draw the parameters and outcomes of a synthetic cohort without rendering images.

    This is the fast path for prognosis benchmarks: the same ``(n_patients, seed, enriched)`` gives
    the same patients as :func:`nnunet_hecktor.synthetic.make_cohort` writes.

    Parameters
    ----------
    n_patients : int
        Number of patients (all tasks together).
    seed : int
        Cohort seed; each patient has its own generator seeded from ``(seed, index)``.
    enriched : bool
        Enrich HPV-negative patients and relapses (~30 % HPV negative, ~42 % relapse) and put every
        patient in all three tasks (label, outcome and HPV status; values still go missing at the
        usual rates). The patients are those kept, in index order, from a larger cohort of the same
        seed, numbered afresh per centre.
    enrichment : {"covariate", "outcome"}
        How patients are kept: ``covariate`` (default) on HPV status and high-risk covariates, which
        keeps the generator's associations (:data:`COVARIATE_ENRICHMENT`); ``outcome`` on HPV status
        and the drawn relapse (:data:`ENRICHMENT_ACCEPTANCE`), the first scheme, which distorts them
        (kept only to reproduce figures made with it; its ids keep the pool's gaps).
    world : {"default", "rich"}
        ``rich`` adds outcome factors only the images show (:mod:`.image_factors`); the clinical
        values, lesion sizes and HPV statuses are those of the default world of the same seed.
    id_offset : int
        Patient numbers start here (per centre, plus a small random start): a cohort of new patients
        drawn with ``id_offset = first_free_id_number(training ids)`` shares no id with the training
        cohort. 0 (default) keeps the ids a seed always had; nothing else depends on it.
    progress : bool
        Show a tqdm progress bar (plain cohorts; large draws take minutes).

    Returns
    -------
    list of SyntheticPatient
        Sorted by patient index; ``true_risk`` higher = earlier relapse, ``rfs_days`` in days.
    """
    if n_patients < 1:
        raise ValueError("n_patients must be at least 1")
    if id_offset < 0:
        raise ValueError("id_offset must be at least 0")
    check_world(world)
    if enrichment not in ENRICHMENTS:
        raise ValueError(f"unknown enrichment {enrichment!r}; choose one of {', '.join(ENRICHMENTS)}")
    if enriched and enrichment == "outcome":
        return _outcome_enriched_patients(n_patients, seed, world, id_offset)
    if enriched:
        return _covariate_enriched_patients(n_patients, seed, world, id_offset)
    rng = _cohort_rng(seed)
    centres = assign_centres(n_patients, rng)
    ids = assign_patient_ids(centres, rng, id_offset)
    tasks = assign_tasks(n_patients, rng)
    # Planning CT + dose for ~40 % of Task 2 patients (at least one when Task 2 is not empty).
    planning = [2 in t and rng.random() < 0.4 for t in tasks]
    task2 = [i for i, t in enumerate(tasks) if 2 in t]
    if task2 and not any(planning):
        planning[task2[0]] = True
    indices = range(n_patients)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc=f"draw ({world} world)", unit="patient")
    return [draw_patient(seed, i, ids[i], centres[i], tasks[i], planning[i], world) for i in indices]


def keep_enriched(pool: list[SyntheticPatient], seed: int, enrichment: str = "covariate") -> list[SyntheticPatient]:
    """The patients of ``pool`` (a plain cohort of ``seed``) that an enriched cohort keeps, in index
    order, with their pool ids and tasks (:func:`draw_patients` renumbers covariate-enriched ones)."""
    if enrichment == "outcome":
        return [p for p in pool
                if patient_rng(seed, p.index, 6).random() < ENRICHMENT_ACCEPTANCE[(p.hpv, p.relapse)]]
    return [p for p in pool if patient_rng(seed, p.index, 6).random() < covariate_acceptance(p)]


def _covariate_enriched_patients(n_patients: int, seed: int, world: str, id_offset: int) -> list[SyntheticPatient]:
    """The first ``n_patients`` kept (:func:`covariate_acceptance`) from a pool of the same seed,
    numbered afresh per centre from ``id_offset``."""
    from dataclasses import replace

    kept_share = 0.16  # expected share kept at the base rates; the pool is sized with a margin
    pool_size = int(math.ceil(n_patients / kept_share * 1.3)) + 10
    while True:  # deterministic: the pool size depends only on n_patients
        kept = keep_enriched(draw_patients(pool_size, seed, world=world), seed)
        if len(kept) >= n_patients:
            break
        pool_size *= 2
    kept = kept[:n_patients]
    # Fresh numbers: the pool's numbering would leave ids with large gaps (and 4 digits).
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EED, 0xE11C]))
    ids = assign_patient_ids([p.centre for p in kept], rng, id_offset)
    return [replace(p, patient_id=pid, tasks=(1, 2, 3)) for p, pid in zip(kept, ids)]


def _outcome_enriched_patients(n_patients: int, seed: int, world: str = "default",
                               id_offset: int = 0) -> list[SyntheticPatient]:
    """The first ``n_patients`` kept (:data:`ENRICHMENT_ACCEPTANCE`) from a pool of the same seed."""
    from dataclasses import replace

    kept_share = 0.40  # expected share kept at the base rates; the pool is sized with a margin
    pool_size = int(math.ceil(n_patients / kept_share * 1.3)) + 10
    while True:  # deterministic: the pool size depends only on n_patients
        kept = []
        for patient in draw_patients(pool_size, seed, world=world, id_offset=id_offset):
            accept = ENRICHMENT_ACCEPTANCE[(patient.hpv, patient.relapse)]
            if patient_rng(seed, patient.index, 6).random() < accept:
                kept.append(replace(patient, tasks=(1, 2, 3)))
                if len(kept) == n_patients:
                    return kept
        pool_size *= 2


def patients_table(patients: list[SyntheticPatient], recorded: bool = True, edition: str = "2025"):
    """One row per patient as a :class:`pandas.DataFrame` (index PatientID).

    Columns: the clinical columns of :data:`nnunet_hecktor.schema.CLINICAL_COLUMNS` (when
    ``recorded``: the values the CSVs of ``edition`` show, see
    :meth:`SyntheticPatient.released_values`, NaN for missing; else the true values, all targets
    included, with the clinical stages for ``edition="2026"``), plus ground truth
    ``true_risk``, ``hpv_probability``, ``primary_volume_ml``, ``node_count``, ``suvmax``,
    ``tasks`` and, in the rich world, ``necrosis``, ``heterogeneity``, ``extranodal_extension``,
    ``cystic_nodes``, ``hpv_posterior``.
    """
    import pandas as pd

    rows = []
    for p in patients:
        if recorded:
            values = p.released_values(edition)
        elif str(edition) == "2026":
            values = {**p.clinical_true, schema.COL_TSTAGE: p.staging[schema.COL_TSTAGE],
                      schema.COL_NSTAGE: p.staging[schema.COL_NSTAGE]}
        else:
            values = p.clinical_true
        row = {schema.COL_PATIENT: p.patient_id, schema.COL_CENTER: p.center_id}
        row.update({c: values.get(c) for c in schema.CLINICAL_COLUMNS[2:]})
        row.update({"true_risk": p.true_risk, "hpv_probability": p.hpv_probability,
                    "primary_volume_ml": p.primary_volume_ml, "node_count": p.node_count,
                    "suvmax": p.suvmax, "tasks": ",".join(map(str, p.tasks))})
        if p.image_factors is not None:  # rich world only: its factors and the HPV posterior
            row.update({name: p.image_factors[name] for name in
                        ("necrosis", "heterogeneity", "extranodal_extension", "cystic_nodes", "hpv_posterior")})
        rows.append(row)
    return pd.DataFrame(rows).set_index(schema.COL_PATIENT)
