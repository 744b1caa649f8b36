"""The current post-processing search on a finished learning benchmark's networks, on unseen patients.

Reads a ``benchmarks/bench_learning.py`` work folder and, for each training seed:

1. copies the seed's trained model folder (its staged rules, chosen by the search of the time the
   benchmark ran, are left out of the copy) and runs the current post-processing search on fold 0's
   validation patients, as the demo's ``postprocessing`` step does
   (:func:`nnunet_hecktor.model_folder.fold_postprocessing.tune_on_fold_validation`);
2. predicts a fixed range of the benchmark's new patients (sorted PatientIDs, ``--first`` to
   ``--last``, chosen before looking at any result) with the re-tuned rules;
3. scores them with ``nnunet-hecktor evaluate --compare``: paired 95 % bootstrap intervals of the
   differences to the two PET rules and to the benchmark's own predictions of the same patients (the
   old rules), on the same patients (*better*/*worse* only when the interval excludes 0).

Why a range: predicting all 1,000 new patients takes ~25 min per seed on this project's 2-core
machine. Patients the search's failure analysis looked at (the first 200 of the benchmark's new
patients, 7 Dec 2026) should be left out of the range.

Usage::

    python benchmarks/bench_postprocessing_retune.py --workdir bench_output/learning --seeds 0 1 2

Results: ``<workdir>/retune/seed_<S>/`` (model copy, predictions, ``eval/comparisons.json``) and a
printed table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

TRAINED_MODEL_GLOB = "seed_{seed}/nnUNet_results/*/*__3d_fullres"


def _one(base: Path, pattern: str) -> Path:
    found = sorted(base.glob(pattern))
    if len(found) != 1:
        raise SystemExit(f"expected one match of {base / pattern}, found {len(found)}: run bench_learning.py first")
    return found[0]


def retune(seed: int, work: Path, out: Path) -> dict:
    """Copy the seed's model without its staged rules and run the current search on fold 0's validation."""
    from nnunet_hecktor.model_folder.fold_postprocessing import tune_on_fold_validation

    model = out / "model"
    marker = out / "tuned.json"
    if not marker.is_file():
        source = _one(work, TRAINED_MODEL_GLOB.format(seed=seed))
        if model.exists():
            shutil.rmtree(model)
        shutil.copytree(source, model, ignore=shutil.ignore_patterns("postprocessing.json", "postprocessing.pkl"))
        train = _one(work, "nnUNet_raw/Dataset*_LearnTrain")
        splits = _one(work, "nnUNet_preprocessed/Dataset*_LearnTrain") / "splits_final.json"
        result = tune_on_fold_validation(model, train, splits, device="cpu", use_mirroring=False, progress=False)
        marker.write_text(json.dumps({"rules": result.config.describe(), "sweeps": result.sweeps,
                                      "validation_before": result.before, "validation_after": result.after},
                                     indent=1, default=float))
    return json.loads(marker.read_text())


def predict_range(work: Path, out: Path, patients: list[str], threads: int | None) -> Path:
    from nnunet_hecktor.prediction.api import predict

    pred = out / "pred"
    if not (pred / "prediction_settings.json").is_file():
        predict(work / "synthetic_new", pred, out / "model", folds=[0], device="cpu", use_mirroring=False,
                segmentation_only=True, patients=patients, progress=True, num_threads=threads,
                warn_missing_stage=False)
    return pred


def link_sets(work: Path, out: Path, seed: int, patients: list[str]) -> dict[str, Path]:
    """Folders of links to the same patients' ground truth, PET-rule masks and the benchmark's own masks."""
    sources = {"gt": None, "pet40": work / "baselines" / "pet_suvmax40", "suv25": work / "baselines" / "pet_suv2.5",
               "old_rules": work / f"seed_{seed}" / "new_patients"}
    folders = {}
    for name, folder in sources.items():
        target_dir = out / "sets" / name
        target_dir.mkdir(parents=True, exist_ok=True)
        for pid in patients:
            target = (work / "synthetic_new" / "Task 1" / pid / f"{pid}.nii.gz" if folder is None
                      else folder / f"{pid}.nii.gz")
            if not target.is_file():
                raise SystemExit(f"{pid}: {target} is missing")
            link = target_dir / f"{pid}.nii.gz"
            if not link.exists():
                link.symlink_to(target)
        folders[name] = target_dir
    return folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, type=Path, help="bench_learning.py's work folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--first", type=int, default=500, help="first new patient (sorted PatientIDs, 0-based)")
    parser.add_argument("--last", type=int, default=800, help="one past the last new patient")
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    work = args.workdir.resolve()
    patients = sorted(p.name for p in (work / "synthetic_new" / "Task 1").iterdir() if p.is_dir())[args.first:args.last]
    if not patients:
        raise SystemExit(f"no new patients in the range {args.first}:{args.last}")
    lines = []
    for seed in args.seeds:
        out = work / "retune" / f"seed_{seed}"
        tuned = retune(seed, work, out)
        pred = predict_range(work, out, patients, args.threads)
        sets = link_sets(work, out, seed, patients)
        cmd = ["nnunet-hecktor", "evaluate", "--gt", str(sets["gt"]), "--compare", f"model={pred}",
               "--compare", f"pet40={sets['pet40']}", "--compare", f"suv25={sets['suv25']}",
               "--compare", f"old_rules={sets['old_rules']}", "-o", str(out / "eval"), "--no-plots",
               "--bootstrap", str(args.bootstrap), "-q"]
        subprocess.run(cmd, check=True)
        comparisons = json.loads((out / "eval" / "comparisons.json").read_text())["comparisons"]
        lines.append(f"seed {seed}: rules {tuned['rules']} ({tuned['sweeps']} sweeps)")
        lines += [f"  {c['text']}" for c in comparisons]
    print(f"\nnew patients {args.first}..{args.last - 1} ({len(patients)}), current post-processing search:")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
