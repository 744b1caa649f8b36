"""Does stacking help? The prognosis stage with the network heads' outputs as two more inputs.

Reads a finished ``benchmarks/bench_learning.py`` work folder and, for each of its training seeds:

1. predicts the network heads (``nnunet-hecktor predict``, heads answering, HPV status withheld from
   the clinical input as for the new patients) on the held-out cohort the deployed stage was fitted on;
2. adds them to that stage's feature table (``net_risk``, ``net_hpv_probability``: the columns the
   deployed stage accepts, :data:`nnunet_hecktor.prognosis.feature_catalogue.HEAD_COLUMNS`) and fits the
   stage's survival and HPV models again on the same patients with the same permitted clinical inputs
   and the same settings as ``prognosis build``;
3. measures the new patients' features exactly as deployment does
   (:func:`nnunet_hecktor.prognosis.deployment.deployed_feature_row`, on the deployed masks, with the
   heads' outputs that ``predict`` wrote) and applies the stacked models;
4. compares the stacked stage with the deployed stage on the same new patients: paired bootstrap of the
   difference of the risk C-index and of the HPV AUC and balanced accuracy
   (:mod:`nnunet_hecktor.metrics.paired`; *better*/*worse* only when the 95 % interval excludes 0).

Usage::

    python benchmarks/bench_stacking.py --workdir bench_output/learning

Results: ``<workdir>/stacking/results.json`` and a printed table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

EDITION = "2025"


def _dataset(work: Path, suffix: str) -> Path:
    found = sorted((work / "nnUNet_raw").glob(f"Dataset*_{suffix}"))
    if not found:
        raise SystemExit(f"{work}: no converted dataset *_{suffix}: run bench_learning.py first")
    return found[0]


def held_out_heads(model_dir: Path, held_out: Path, patients: list[str], out_dir: Path, args) -> Path:
    """The heads' risk and HPV probability of the held-out patients (HPV status withheld)."""
    from bench_learning import withheld_input

    from nnunet_hecktor.prediction.api import predict

    if not (out_dir / "prediction_settings.json").is_file():
        clinical = withheld_input(held_out / "clinical.csv", out_dir.parent, "held_out_input.csv")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predict(held_out / "imagesTr", out_dir, model_dir, clinical_csv=clinical, folds=[0], device=args.device,
                    use_mirroring=False, patients=patients, num_threads=args.threads, progress=False,
                    warn_missing_stage=False)
    return out_dir / "predictions.csv"


def new_patient_features(new: Path, pred_dir: Path, out_csv: Path) -> Path:
    """Deployment's features of every new patient on its deployed mask, with the heads' outputs."""
    import pandas as pd
    import SimpleITK as sitk

    from nnunet_hecktor.prognosis.deployment import deployed_feature_row
    from nnunet_hecktor.prognosis.feature_catalogue import PATIENT_COLUMN, SEG_SOURCE_COLUMN
    from nnunet_hecktor.prognosis.features import FeatureTable, write_feature_table

    if out_csv.is_file():
        return out_csv
    with (pred_dir / "predictions.csv").open(newline="", encoding="utf-8") as handle:
        heads = {r["PatientID"]: {"risk": float(r["head_risk"]), "hpv_probability": float(r["head_hpv_probability"])}
                 for r in csv.DictReader(handle)}
    rows, pids = [], []
    for pid in sorted(heads):
        ct, pet = (sitk.ReadImage(str(new / "imagesTr" / f"{pid}_{c}.nii.gz")) for c in ("0000", "0001"))
        mask = sitk.ReadImage(str(pred_dir / f"{pid}.nii.gz"))
        rows.append(deployed_feature_row(ct, pet, mask, pid, heads[pid]))
        pids.append(pid)
    table = pd.DataFrame(rows, index=pd.Index(pids, name=PATIENT_COLUMN))
    table.insert(0, SEG_SOURCE_COLUMN, "predicted")
    write_feature_table(FeatureTable(table, {"seg_source": "predicted", "n_patients": len(table)}), out_csv)
    return out_csv


def stacked_rows(seed: int, work: Path, args) -> dict[str, dict]:
    """The stacked stage's risk / HPV of the new patients."""
    from bench_learning import withheld_input

    from nnunet_hecktor.editions import get_edition
    from nnunet_hecktor.model_folder.build import BUILD_FOLDER, permitted_columns
    from nnunet_hecktor.prognosis.feature_catalogue import PATIENT_COLUMN
    from nnunet_hecktor.prognosis.features import FeatureTable, read_feature_table, read_heads_csv, write_feature_table
    from nnunet_hecktor.prognosis.hpv_stage import fit_hpv, predict_hpv
    from nnunet_hecktor.prognosis.survival_stage import fit_survival, predict_survival

    result = json.loads((work / f"seed_{seed}" / "result.json").read_text())
    model_dir = Path(result["model_dir"])
    out = work / "stacking" / f"seed_{seed}"
    out.mkdir(parents=True, exist_ok=True)
    held_out, new = _dataset(work, "LearnStage"), _dataset(work, "LearnNew")
    features = read_feature_table(model_dir / BUILD_FOLDER / "features_oof.csv")
    patients = [str(p) for p in features.index]
    heads_csv = held_out_heads(model_dir, held_out, patients, out / "held_out_heads", args)
    stacked = features.join(read_heads_csv(heads_csv, patients))
    train_csv = out / "features_stacked.csv"
    write_feature_table(FeatureTable(stacked, {"seg_source": "predicted", "n_patients": len(stacked),
                                               "heads": str(heads_csv)}), train_csv)
    new_csv = new_patient_features(new, work / f"seed_{seed}" / "new_patients", out / "new_features.csv")
    test_clinical = withheld_input(new / "clinical.csv", work)
    inputs, fit_clinical = get_edition(EDITION).test_inputs, held_out / "clinical.csv"
    # As prognosis build fits (same folds, seed and permitted inputs), plus the two head columns.
    common = dict(features_csv=train_csv, n_splits=5, cv="kfold", random_state=seed, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        survival = fit_survival(fit_clinical, out / "survival",
                                clinical_columns=permitted_columns("survival", fit_clinical, inputs), **common)
        hpv = fit_hpv(fit_clinical, out / "hpv", clinical_columns=permitted_columns("hpv", fit_clinical, inputs),
                      **common)
        risk = predict_survival(survival.paths["model"], out / "risk.csv", features_csv=new_csv,
                                clinical_csv=test_clinical)
        status = predict_hpv(hpv.paths["model"], out / "hpv.csv", features_csv=new_csv, clinical_csv=test_clinical)
        # Control: the same refit without the head columns must give the deployed stage's risks, which
        # checks that these features are the ones deployment measured.
        control = fit_survival(fit_clinical, out / "survival_control",
                               clinical_columns=permitted_columns("survival", fit_clinical, inputs),
                               **{**common, "features_csv": model_dir / BUILD_FOLDER / "features_oof.csv"})
        control_risk = predict_survival(control.paths["model"], out / "risk_control.csv", features_csv=new_csv,
                                        clinical_csv=test_clinical)
    with (work / f"seed_{seed}" / "new_patients" / "predictions.csv").open(newline="", encoding="utf-8") as handle:
        deployed = {r["PatientID"]: float(r["risk"]) for r in csv.DictReader(handle)}
    control_gap = max(abs(float(r) - deployed[str(p)]) for p, r in zip(control_risk[PATIENT_COLUMN],
                                                                      control_risk["risk"]))
    rows = {str(p): {"risk": float(r)} for p, r in zip(risk[PATIENT_COLUMN], risk["risk"])}
    for p, prob, s in zip(status[PATIENT_COLUMN], status["hpv_probability"], status["hpv_status"]):
        rows[str(p)].update({"hpv_probability": float(prob), "hpv_status": int(s)})
    uses = {"survival": [c for c in survival.model.image_columns if c.startswith("net_")],
            "hpv": [c for c in hpv.model.image_columns if c.startswith("net_")]}
    return {"rows": rows, "head_columns_used": uses, "control_max_risk_difference": control_gap}


def main(argv=None) -> int:
    from bench_learning import DEPLOYED, compare, per_patient

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=str(REPO / "bench_output" / "learning"),
                        help="a finished bench_learning.py work folder")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: every seed of the work folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--num-processes", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    work = Path(args.workdir).resolve()
    seeds = args.seeds or sorted(int(p.name.split("_")[1]) for p in work.glob("seed_*") if (p / "result.json").is_file())
    cohorts = {"new": {"dataset": _dataset(work, "LearnNew")}}
    stacked_name = "stage + network heads as inputs (stacked)"
    results = []
    for seed in seeds:
        found = stacked_rows(seed, work, args)
        pred_dir = work / f"seed_{seed}" / "new_patients"
        rows = {DEPLOYED: per_patient(f"stack_seed{seed}_deployed", {"pred": None, "predictions": pred_dir /
                                                                     "predictions.csv"}, cohorts, work, args),
                stacked_name: per_patient(f"stack_seed{seed}_stacked", {"pred": None, "rows": found["rows"]}, cohorts,
                                          work, args)}
        comparisons = [c for c in compare(rows, stacked_name, DEPLOYED, args) if c["task"] in ("task2", "task3")]
        results.append({"seed": seed, "head_columns_used": found["head_columns_used"], "comparisons": comparisons,
                        "control_max_risk_difference": found["control_max_risk_difference"]})
        print(f"seed {seed}: control refit without heads vs the deployed stage, largest risk difference "
              f"{found['control_max_risk_difference']:.2e}; head columns used: {found['head_columns_used']}")
        for c in comparisons:
            print(f"seed {seed}: {c['text']}")
    (work / "stacking" / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"results: {work / 'stacking' / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
