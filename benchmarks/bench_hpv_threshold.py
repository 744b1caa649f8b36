"""Benchmark of the HPV decision-threshold rule: ``search`` vs ``prevalence`` on patients never seen.

Usage::

    python benchmarks/bench_hpv_threshold.py --sizes 150 400 --cohorts 3 --fold-seeds 3

For each size N and cohort seed, a synthetic cohort is drawn without images
(:func:`nnunet_hecktor.synthetic.draw_patients`) so that about N patients have a known HPV status.
Inputs: the recorded clinical values plus three image features taken from the generator (primary
volume, node count, SUVmax; the same for both rules). ``fit_hpv`` is cross-validated (5-fold,
stratified) once per fold seed with each threshold rule; the figure compared is the *nested*
balanced accuracy: each fold's threshold is chosen on that fold's training rows only, so every
patient is scored by a model and a threshold that never saw it. Printed next to it: balanced
accuracy at 0.5 (the trivial threshold) and the ceiling, the true HPV probability thresholded at
the prevalence (Bayes rule for balanced accuracy).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def cohort_tables(n_known: int, seed: int, folder: Path) -> tuple[Path, Path, float]:
    """Clinical and feature CSVs of a drawn cohort with about ``n_known`` HPV-labelled patients; the ceiling."""
    from nnunet_hecktor import schema
    from nnunet_hecktor.metrics.classification import balanced_accuracy
    from nnunet_hecktor.synthetic import draw_patients, patients_table

    n = int(n_known * 1.6)
    table = patients_table(draw_patients(n, seed))
    known = table[schema.COL_HPV].notna()
    table = table[known].iloc[:n_known]
    clinical = table[[c for c in schema.CLINICAL_COLUMNS if c in table.columns]].reset_index()
    features = table[["primary_volume_ml", "node_count", "suvmax"]].rename(columns={
        "primary_volume_ml": "gtvp_volume_ml", "node_count": "gtvn_lesion_count", "suvmax": "total_suvmax"})
    features.insert(0, "seg_source", "predicted")
    clinical_csv, features_csv = folder / f"clinical_{seed}.csv", folder / f"features_{seed}.csv"
    clinical.to_csv(clinical_csv, index=False)
    features.reset_index().to_csv(features_csv, index=False)
    y = table[schema.COL_HPV].to_numpy().astype(int)
    prob = table["hpv_probability"].to_numpy()
    return clinical_csv, features_csv, balanced_accuracy(y, (prob >= y.mean()).astype(int))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[150, 400])
    parser.add_argument("--cohorts", type=int, default=3, help="cohort seeds per size")
    parser.add_argument("--fold-seeds", type=int, default=3, help="cross-validation splits per cohort")
    parser.add_argument("--output", default=str(REPO / "bench_output" / "hpv_threshold.json"))
    args = parser.parse_args()

    from nnunet_hecktor.prognosis.hpv_stage import fit_hpv

    results = []
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for size in args.sizes:
            for cohort in range(args.cohorts):
                clinical_csv, features_csv, ceiling = cohort_tables(size, cohort, Path(tmp))
                for fold_seed in range(args.fold_seeds):
                    row = {"size": size, "cohort": cohort, "fold_seed": fold_seed, "ceiling": ceiling}
                    for rule in ("search", "prevalence"):
                        fit = fit_hpv(clinical_csv, Path(tmp) / f"{size}_{cohort}_{fold_seed}_{rule}",
                                      features_csv=features_csv, random_state=fold_seed, progress=False,
                                      make_plots=False, threshold_rule=rule)
                        cv = fit.summary["cross_validation"]
                        row[rule] = cv["nested_threshold"]["balanced_accuracy"]
                        row["at_0.5"] = cv["threshold_0.5"]["balanced_accuracy"]
                        row["auc"] = cv["nested_threshold"]["auc"]
                        row["n_negative"] = fit.summary["n_negative"]
                    results.append(row)
                    print(json.dumps(row), file=sys.stderr)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2))
    print("\nNested (never-seen) balanced accuracy, mean +- SD over cohorts x fold seeds")
    print(f"{'N':>5} {'HPV-':>5} {'search':>15} {'prevalence':>15} {'prev - search':>15} {'at 0.5':>8} {'ceiling':>8}")
    for size in args.sizes:
        rows = [r for r in results if r["size"] == size]
        s, p = np.array([r["search"] for r in rows]), np.array([r["prevalence"] for r in rows])
        d = p - s
        print(f"{size:>5} {np.mean([r['n_negative'] for r in rows]):>5.0f} {s.mean():>7.3f} +- {s.std(ddof=1):.3f} "
              f"{p.mean():>7.3f} +- {p.std(ddof=1):.3f} {d.mean():>+7.3f} +- {d.std(ddof=1):.3f} "
              f"{np.mean([r['at_0.5'] for r in rows]):>8.3f} {np.mean([r['ceiling'] for r in rows]):>8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
