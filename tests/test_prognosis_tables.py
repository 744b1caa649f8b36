"""Small feature + clinical tables with known effects, shared by the prognosis tests (no tests here)."""

import numpy as np
import pandas as pd

CENTRES = {"CHUM": 1, "CHUP": 2, "MDA": 5}


def make_tables(n=90, seed=0, seg_source="predicted"):
    """Feature table and clinical table with known effects: volume and Age raise the hazard,
    node count and non-smoking raise the HPV probability."""
    rng = np.random.default_rng(seed)
    centres = rng.choice(list(CENTRES), n)
    pids = [f"{c}-{i:03d}" for i, c in enumerate(centres)]
    volume = np.exp(rng.normal(2.0, 0.8, n))
    nodes = rng.integers(0, 4, n)
    age = rng.normal(60, 9, n)
    tobacco = (rng.random(n) < 0.4).astype(float)
    hpv = (rng.random(n) < 1 / (1 + np.exp(-(0.5 + 1.2 * nodes - 1.5 * tobacco)))).astype(int)
    log_hazard = 0.9 * np.log(volume) + 0.04 * (age - 60) - 0.8 * hpv
    event_time = np.round(rng.exponential(np.exp(-log_hazard)) * 900) + 1
    censor = np.round(rng.uniform(300, 1500, n))
    relapse = (event_time <= censor).astype(int)
    features = pd.DataFrame({"PatientID": pids, "seg_source": seg_source, "gtvp_volume_ml": volume,
                             "gtvn_lesion_count": nodes.astype(float), "total_suvmax": rng.normal(10, 2, n),
                             "noise": rng.normal(size=n)})
    clinical = pd.DataFrame({"PatientID": pids, "CenterID": [float(CENTRES[c]) for c in centres],
                             "Age": age.round(), "Gender": (rng.random(n) < 0.8).astype(float),
                             "Tobacco Consumption": tobacco, "Performance Status": rng.choice([0.0, 1.0, 90.0], n),
                             "M-stage": rng.choice(["M0", "M0", "Mx"], n), "HPV Status": hpv.astype(float),
                             "Relapse": relapse.astype(float), "RFS": np.where(relapse, event_time, censor)})
    clinical.loc[rng.random(n) < 0.15, "Tobacco Consumption"] = np.nan
    clinical.loc[:2, ["Relapse", "RFS"]] = np.nan  # three patients without outcome
    return features, clinical
