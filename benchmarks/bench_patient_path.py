"""Benchmark of the deployed patient-level path: the staged prognosis stage (``prognosis build``) on
new patients, against the network heads and a clinical-only model, with paired bootstrap CIs.

Usage::

    python benchmarks/bench_patient_path.py --model $M --test-patients 1000 --edition 2025 --device cuda

``--model`` is a trained model folder (its training dataset converted in ``$nnUNet_raw``); the stage is
built with ``prognosis build`` unless ``--no-build`` and the model already has one. New patients
are a synthetic release drawn with ``make_cohort`` (``--test-seed``, never the training seed) and
predicted with ``nnunet-hecktor predict``'s Python API exactly as a user would: the stage answers
risk/HPV (``risk``, ``hpv_probability``, ``hpv_status``), the heads' values are kept in ``head_*``.
The clinical-only models are the stage's own survival/HPV fits with ``feature_set="clinical"`` and
the same edition inputs, on the same training patients.

HECKTOR 2025 Task 2 risk is measured with HPV status WITHHELD from the new patients' clinical input
(the 2025 Task 2 test input carries none): the prediction sees a copy of the clinical table without
the ``HPV Status`` column. HPV (Task 3) is measured with AUC and balanced accuracy (hard labels at
each model's own threshold).

Every "A beats B" line is a paired bootstrap of the difference on the same patients
(:mod:`nnunet_hecktor.metrics.paired`): ``better``/``worse`` only when the 95 % interval excludes 0,
else ``undecided``. Results go to ``--workdir/results.json``; a table is printed.

``--smoke`` runs it on a few patients without bootstrapping much: it checks the script, its figures
mean nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _clinical_records(release: Path) -> dict[str, dict]:
    """Merged clinical records of a synthetic release (its task CSVs)."""
    from nnunet_hecktor.clinical import read_clinical_csv

    records: dict[str, dict] = {}
    for path in sorted(release.rglob("*.csv")):
        for pid, record in read_clinical_csv(path).items():
            merged = records.setdefault(pid, {})
            merged.update({k: v for k, v in record.items() if v is not None})
    return records


def _write_csv(records: dict[str, dict], path: Path, drop: tuple[str, ...] = ()) -> Path:
    columns = sorted({c for r in records.values() for c in r if c not in drop and c != "PatientID"})
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["PatientID", *columns])
        for pid, record in records.items():
            writer.writerow([pid, *("" if record.get(c) is None else record[c] for c in columns)])
    return path


def _read_predictions(path: Path) -> dict[str, dict[str, float]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["PatientID"]: {k: float(v) for k, v in row.items() if k != "PatientID" and v != ""}
                for row in csv.DictReader(handle)}


def _clinical_only(model_dir: Path, clinical_train: Path, test_csv: Path, edition: str, work: Path) -> dict:
    """Clinical-only survival and HPV models fitted on the stage's training patients, applied to the new ones."""
    from nnunet_hecktor.editions import get_edition
    from nnunet_hecktor.model_folder.build import BUILD_FOLDER, permitted_columns
    from nnunet_hecktor.prognosis.hpv_stage import fit_hpv, predict_hpv
    from nnunet_hecktor.prognosis.survival_stage import fit_survival, predict_survival

    inputs = get_edition(edition).test_inputs
    features = model_dir / BUILD_FOLDER / "features_oof.csv"  # the same patients as the stage
    out: dict[str, dict] = {}
    common = dict(features_csv=features, feature_set="clinical", progress=False, make_plots=False)
    survival = fit_survival(clinical_train, work / "clinical_survival",
                            clinical_columns=permitted_columns("survival", clinical_train, inputs), **common)
    risk = predict_survival(survival.paths["model"], work / "clinical_risk.csv", clinical_csv=test_csv)
    out["risk"] = dict(zip(risk["PatientID"], risk["risk"]))
    if "HPV Status" in get_edition(edition).targets:
        hpv = fit_hpv(clinical_train, work / "clinical_hpv",
                      clinical_columns=permitted_columns("hpv", clinical_train, inputs), **common)
        table = predict_hpv(hpv.paths["model"], work / "clinical_hpv.csv", clinical_csv=test_csv)
        out["hpv_probability"] = dict(zip(table["PatientID"], table["hpv_probability"]))
        out["hpv_status"] = dict(zip(table["PatientID"], table["hpv_status"]))
    return out


def _comparisons(truth: dict[str, dict], sources: dict[str, dict[str, dict]], n_bootstrap: int) -> dict:
    """Risk C-index and HPV AUC/BA of the stage against each other source, paired on the same patients."""
    from nnunet_hecktor.metrics.paired import paired_binary, paired_c_index

    results: dict = {"risk": {}, "hpv": {}}
    with_outcome = [p for p, r in truth.items() if r.get("RFS") is not None and r.get("Relapse") is not None]
    for other in [s for s in sources if s != "stage"]:
        pids = [p for p in with_outcome if all(p in sources[s].get("risk", {}) for s in ("stage", other))]
        if len(pids) > 2:
            time_ = np.array([truth[p]["RFS"] for p in pids], float)
            event = np.array([truth[p]["Relapse"] for p in pids], int)
            cmp = paired_c_index(time_, event, np.array([sources["stage"]["risk"][p] for p in pids]),
                                 np.array([sources[other]["risk"][p] for p in pids]), "stage", other,
                                 n_bootstrap=n_bootstrap)
            results["risk"][other] = cmp.to_dict() | {"line": cmp.describe()}
        with_hpv = [p for p, r in truth.items() if r.get("HPV Status") is not None
                    and all(p in sources[s].get("hpv_probability", {}) for s in ("stage", other))]
        if len(with_hpv) > 2:
            y = np.array([truth[p]["HPV Status"] for p in with_hpv], int)
            score = {s: np.array([sources[s]["hpv_probability"][p] for p in with_hpv]) for s in ("stage", other)}
            label = {s: np.array([sources[s]["hpv_status"][p] for p in with_hpv], int) for s in ("stage", other)}
            auc = paired_binary(y, "auc", "stage", other, score_a=score["stage"], score_b=score[other],
                                n_bootstrap=n_bootstrap)
            ba = paired_binary(y, "balanced_accuracy", "stage", other, pred_a=label["stage"], pred_b=label[other],
                               n_bootstrap=n_bootstrap)
            results["hpv"][other] = {"auc": auc.to_dict() | {"line": auc.describe()},
                                     "balanced_accuracy": ba.to_dict() | {"line": ba.describe()}}
    return results


def run(args) -> dict:
    from nnunet_hecktor.model_folder.build import build_stage
    from nnunet_hecktor.prediction import predict
    from nnunet_hecktor.prognosis.deployment import resolve_stage_models
    from nnunet_hecktor.synthetic import make_cohort

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    model_dir = Path(args.model).expanduser().resolve()
    timings = {}
    start = time.perf_counter()
    if not args.no_build or resolve_stage_models(model_dir) is None:
        build = build_stage(model_dir, edition=args.edition, device=args.device, n_bootstrap=args.bootstrap,
                            progress=not args.quiet)
        build_figures = build.figures
    else:
        build_figures = resolve_stage_models(model_dir).manifest.get("targets", {})
    timings["build_s"] = time.perf_counter() - start

    release = work / "new_patients"
    if not release.is_dir():
        make_cohort(release, n_patients=args.test_patients, seed=args.test_seed, layout="release", size=args.size,
                    num_processes=args.num_processes, progress=not args.quiet)
    truth = _clinical_records(release)
    # What the 2025 test input carries: no HPV status (withheld from every new patient).
    withheld = ("HPV Status", "Relapse", "RFS") if args.edition == "2025" else ("Relapse", "RFS")
    test_csv = _write_csv(truth, work / "clinical_input.csv", drop=withheld)

    start = time.perf_counter()
    stage = resolve_stage_models(model_dir)
    out = work / "predicted"
    predict(release, out, model_dir, clinical_csv=test_csv, device=args.device, prognosis=stage,
            num_threads=args.threads, progress=not args.quiet)
    timings["predict_s"] = time.perf_counter() - start
    rows = _read_predictions(out / "predictions.csv")
    sources: dict[str, dict[str, dict]] = {"stage": {}, "heads": {}}
    for column in ("risk", "hpv_probability", "hpv_status"):
        sources["stage"][column] = {p: r[column] for p, r in rows.items() if column in r}
        sources["heads"][column] = {p: r[f"head_{column}"] for p, r in rows.items() if f"head_{column}" in r}
    if not any(sources["heads"].values()):
        del sources["heads"]

    from nnunet_hecktor.model_folder.build import build_sources

    clinical_train = build_sources(model_dir).clinical
    sources["clinical-only"] = _clinical_only(model_dir, clinical_train, test_csv, args.edition, work)
    result = {
        "model": str(model_dir), "edition": args.edition, "test_patients": len(truth),
        "test_seed": args.test_seed, "hpv_withheld_from_input": "HPV Status" in withheld,
        "stage_cross_validation": build_figures, "comparisons": _comparisons(truth, sources, args.bootstrap),
        "timings": timings,
    }
    (work / "results.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def print_table(result: dict) -> None:
    print(f"deployed patient-level path, HECKTOR {result['edition']}, {result['test_patients']} new patients "
          f"(seed {result['test_seed']}; HPV withheld from the input: {result['hpv_withheld_from_input']})")
    for task, block in result["comparisons"].items():
        for other, figures in block.items():
            lines = [figures["line"]] if "line" in figures else [f["line"] for f in figures.values()]
            for line in lines:
                print(f"  {task}: {line}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="trained model folder")
    parser.add_argument("--edition", default="2025", choices=("2025", "2026"))
    parser.add_argument("--test-patients", type=int, default=1000, help="new synthetic patients (all tasks)")
    parser.add_argument("--test-seed", type=int, default=1001, help="seed of the new patients (not the training one)")
    parser.add_argument("--size", default="demo", help="synthetic image size preset (the model's training one)")
    parser.add_argument("--no-build", action="store_true", help="use the staged stage as it is")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--workdir", default=str(REPO / "bench_output" / "patient_path"))
    parser.add_argument("--smoke", action="store_true", help="few patients, few replicates: checks the script only")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.test_patients, args.bootstrap = min(args.test_patients, 12), min(args.bootstrap, 50)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    print_table(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
