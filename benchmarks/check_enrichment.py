"""Does an enriched synthetic cohort keep the generator's associations?

Draws ``--patients`` patients (default 3,000) plain, covariate-enriched (the default enrichment) and
outcome-enriched (the first scheme), refits the generating models on the TRUE covariates and prints the
coefficients next to the generator's, with 95 % intervals:

- relapse: Cox proportional hazards (lifelines) on ln(volume / 15 mL), (SUVmax - 12) / 4, node count,
  HPV status, M1, Mx, (age - 60) / 10 against :data:`nnunet_hecktor.synthetic.patients.RISK_COEFFICIENTS`;
- HPV: logistic regression (scikit-learn, practically unpenalised, Wald intervals) on
  (age - 60) / 10, tobacco, node count, ln(volume / 15 mL), male and centre indicators against
  :data:`~nnunet_hecktor.synthetic.patients.HPV_COEFFICIENTS` (slopes only: case-control sampling on HPV
  status moves the intercept by ln 0.35 by design).

    python benchmarks/check_enrichment.py                 # 3,000 patients per cohort
"""

from __future__ import annotations

import argparse
import math
import time


def cox_table(patients):
    import numpy as np
    import pandas as pd
    from lifelines import CoxPHFitter

    from nnunet_hecktor import schema

    frame = pd.DataFrame({
        "log_primary_volume_per_ln": [math.log(max(p.primary_volume_ml, 0.5) / 15.0) for p in patients],
        "suvmax_per_4": [(p.suvmax - 12.0) / 4.0 for p in patients],
        "node_count": [p.node_count for p in patients],
        "hpv_positive": [p.hpv for p in patients],
        "m1": [p.clinical_true[schema.COL_MSTAGE] == "M1" for p in patients],
        "mx": [p.clinical_true[schema.COL_MSTAGE] == "Mx" for p in patients],
        "age_per_10y": [(p.clinical_true[schema.COL_AGE] - 60.0) / 10.0 for p in patients],
        "T": [p.rfs_days for p in patients], "E": [p.relapse for p in patients]}).astype(float)
    fit = CoxPHFitter().fit(frame, "T", "E")
    ci = fit.confidence_intervals_
    return {name: (float(fit.params_[name]), float(ci.loc[name].iloc[0]), float(ci.loc[name].iloc[1]))
            for name in fit.params_.index}, int(np.sum(frame["E"]))


def hpv_table(patients):
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from nnunet_hecktor import schema
    from nnunet_hecktor.synthetic.patients import CENTRE_PROFILES

    names = ["age_per_10y", "tobacco", "node_count", "log_primary_volume_per_ln", "male"]
    centres = sorted(CENTRE_PROFILES)
    x = np.array([[(p.clinical_true[schema.COL_AGE] - 60.0) / 10.0, p.clinical_true[schema.COL_TOBACCO],
                   p.node_count, math.log(max(p.primary_volume_ml, 0.5) / 15.0), p.clinical_true[schema.COL_GENDER]]
                  + [float(p.centre == c) for c in centres[1:]] for p in patients])
    y = np.array([p.hpv for p in patients])
    model = LogisticRegression(C=1e6, max_iter=5000).fit(x, y)
    # Wald intervals from the observed information.
    design = np.column_stack([np.ones(len(x)), x])
    prob = model.predict_proba(x)[:, 1]
    information = design.T @ (design * (prob * (1 - prob))[:, None])
    se = np.sqrt(np.diag(np.linalg.inv(information)))[1:]
    return {name: (float(model.coef_[0][i]), float(model.coef_[0][i] - 1.96 * se[i]),
                   float(model.coef_[0][i] + 1.96 * se[i])) for i, name in enumerate(names)}


def main(argv=None) -> int:
    from nnunet_hecktor.synthetic import draw_patients
    from nnunet_hecktor.synthetic.patients import HPV_COEFFICIENTS, RISK_COEFFICIENTS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    cohorts = {
        "plain": draw_patients(args.patients, args.seed, progress=True),
        "covariate-enriched": draw_patients(args.patients, args.seed, enriched=True),
        "outcome-enriched": draw_patients(args.patients, args.seed, enriched=True, enrichment="outcome"),
    }
    print(f"\nCox refit on the true covariates, {args.patients} patients per cohort, seed {args.seed} "
          "(coefficient [95 % interval])\n")
    tables = {name: cox_table(p) for name, p in cohorts.items()}
    print("| covariate | generator | " + " | ".join(f"{n} ({tables[n][1]} relapses)" for n in cohorts) + " |")
    print("|---|---|" + "---|" * len(cohorts))
    for name, value in RISK_COEFFICIENTS.items():
        cells = [f"{t[0][name][0]:+.2f} [{t[0][name][1]:+.2f}, {t[0][name][2]:+.2f}]" for t in tables.values()]
        print(f"| {name} | {value:+.2f} | " + " | ".join(cells) + " |")
    print("\nLogistic refit of HPV status on the true covariates (centre indicators included; slopes)\n")
    hpv = {name: hpv_table(p) for name, p in cohorts.items()}
    print("| covariate | generator | " + " | ".join(cohorts) + " |")
    print("|---|---|" + "---|" * len(cohorts))
    for name in ("age_per_10y", "tobacco", "node_count", "log_primary_volume_per_ln", "male"):
        cells = [f"{t[name][0]:+.2f} [{t[name][1]:+.2f}, {t[name][2]:+.2f}]" for t in hpv.values()]
        print(f"| {name} | {HPV_COEFFICIENTS[name]:+.2f} | " + " | ".join(cells) + " |")
    for name, patients in cohorts.items():
        print(f"{name}: HPV negative {sum(1 - p.hpv for p in patients) / len(patients):.0%}, "
              f"relapse {sum(p.relapse for p in patients) / len(patients):.0%}")
    print(f"\n{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
