"""Benchmark: overhead of ``nnunet-hecktor predict`` over stock ``nnUNetv2_predict``, same model and cases.

Compared side by side in one run (wall clock of the whole command, subprocesses, CPU):

- ``nnUNetv2_predict``: stock nnU-Net on the converted cases (``<PID>_0000`` CT, ``<PID>_0001`` PET
  already resampled onto the CT grid by ``nnunet-hecktor convert``), segmentation only;
- ``predict (HECKTOR folder)``: ``nnunet-hecktor predict`` on the synthetic release itself (CT and
  PET on their own grids: reading, PET resampling onto the CT grid, segmentation on the original
  CT grid, HPV + risk heads, predictions.csv);
- ``predict (converted)``: ``nnunet-hecktor predict`` on the same converted files as nnU-Net;
- ``predict --segmentation-only``: the HECKTOR folder, without the heads;
- ``nnUNetv2_predict -npp 1 -nps 1``: stock with one preprocessing and one export worker (context).

Same folds, checkpoint and mirroring everywhere (``--no-mirroring`` turns it off for all); the
baseline is nnUNetv2_predict with its default worker counts (3 preprocessing, 3 export processes).
Ratios are relative to ``nnUNetv2_predict``.
A stage breakdown (in-process, per case) follows.

The model: fold 0 of ``HecktorMultiTaskTrainer_tiny`` (narrow ``nnUNetPlansTiny``) trained on a
synthetic cohort in ``--workdir``; built on the first run (synthetic release -> convert ->
plan/preprocess -> 2 tiny epochs, a few minutes on a CPU) and reused afterwards.

``--full-size-io`` adds the input side at full size (512 x 512 x ~200 CT), the only place where the
two paths run different code: reading the original CT + PET and resampling the PET (ours) versus
reading the converter's files (nnU-Net).

Run:  python benchmarks/bench_predict.py [--patients 8] [--size test|benchmark] [--workdir DIR]
      [--no-mirroring] [--repeats 1] [--stages-only] [--full-size-io]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from nnunet_hecktor.checkpoints import FINAL_CHECKPOINT

DATASET_ID = 989
DATASET_NAME = f"Dataset{DATASET_ID:03d}_BenchPredict"
PLANS = "nnUNetPlansTiny"
TRAINER = "HecktorMultiTaskTrainer_tiny"
CONFIGURATION = "3d_fullres"


def _env(workdir: Path) -> dict:
    from nnunet_hecktor.nnunet_env import nnunet_environment

    return nnunet_environment(workdir / "nnunet", extra={"nnUNet_compile": "false", "OMP_WAIT_POLICY": "PASSIVE"})


def build(workdir: Path, patients: int, size: str) -> tuple[Path, Path, Path]:
    """(source release, folder of converted cases, model folder); built once per workdir."""
    from nnunet_hecktor.dataset_conversion import convert_dataset
    from nnunet_hecktor.nnunet_env import run_nnunet
    from nnunet_hecktor.synthetic import make_cohort
    from nnunet_hecktor.trainers.small_plans import write_small_plans

    env = _env(workdir)
    source = workdir / f"release_{size}_{patients}"
    raw = Path(env["nnUNet_raw"]) / DATASET_NAME
    model = Path(env["nnUNet_results"]) / DATASET_NAME / f"{TRAINER}__{PLANS}__{CONFIGURATION}"
    converted = workdir / f"converted_{size}_{patients}"
    if (model / "fold_0" / FINAL_CHECKPOINT).is_file() and converted.is_dir() and source.is_dir():
        return source, converted, model
    for path in (source, raw, converted, Path(env["nnUNet_preprocessed"]) / DATASET_NAME,
                 Path(env["nnUNet_results"]) / DATASET_NAME):
        shutil.rmtree(path, ignore_errors=True)
    t = time.perf_counter()
    print(f"[setup] synthetic release ({patients} patients, {size} size) ...", flush=True)
    make_cohort(source, n_patients=patients, seed=0, layout="release", size=size, progress=False)
    convert_dataset(source, dataset_id=DATASET_ID, name="BenchPredict", output=raw, progress=False)
    print("[setup] nnUNetv2_plan_and_preprocess ...", flush=True)
    run_nnunet("nnUNetv2_plan_and_preprocess", ["-d", DATASET_ID, "-c", CONFIGURATION, "-np", "1"], env,
               workdir / "logs" / "plan.log")
    write_small_plans(Path(env["nnUNet_preprocessed"]) / DATASET_NAME, "nnUNetPlans", PLANS)
    print("[setup] nnUNetv2_train (tiny) ...", flush=True)
    run_nnunet("nnUNetv2_train", [DATASET_ID, CONFIGURATION, "0", "-tr", TRAINER, "-p", PLANS, "-device", "cpu"],
               dict(env, nnUNet_n_proc_DA="0"), workdir / "logs" / "train.log")
    converted.mkdir()
    for folder in ("imagesTr", "imagesTs"):
        for path in sorted((raw / folder).glob("*.nii.gz")) if (raw / folder).is_dir() else []:
            shutil.copy(path, converted / path.name)
    print(f"[setup] done in {time.perf_counter() - t:.0f} s", flush=True)
    return source, converted, model


def _timed(cmd: list[str], env: dict, log: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    log.write_text(f"$ {' '.join(cmd)}\n{result.stdout}\n{result.stderr}")
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}): {' '.join(cmd)}\n" + result.stderr[-3000:])
    return seconds


def stage_breakdown(source: Path, model: Path, mirroring: bool) -> dict[str, float]:
    """Median seconds per case of each stage, in-process (after the model is loaded)."""
    from nnunet_hecktor.prediction import HecktorPredictor, find_input_cases, prepare_case

    predictor = HecktorPredictor(model, [0], use_mirroring=mirroring)
    times: dict[str, list[float]] = {k: [] for k in ("read + PET resampling", "nnU-Net preprocessing",
                                                      "sliding window", "export to original grid", "heads")}
    for case in find_input_cases(source).cases:
        t0 = time.perf_counter()
        prepared = prepare_case(case, predictor.info.conversion)
        t1 = time.perf_counter()
        pre = predictor.preprocess(prepared)
        t2 = time.perf_counter()
        logits = predictor.segmentation_logits(pre)
        t3 = time.perf_counter()
        predictor.export_segmentation(pre, logits)
        t4 = time.perf_counter()
        predictor.head_outputs(pre, logits, None)
        t5 = time.perf_counter()
        for key, a, b in zip(times, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5)):
            times[key].append(b - a)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=8, help="synthetic patients (default 8)")
    parser.add_argument("--size", choices=("test", "demo", "benchmark"), default="test",
                        help="volume size: test (~31x31x23 CT) or benchmark (512x512x~200 CT)")
    parser.add_argument("--workdir", default="/tmp/nnunet_hecktor_bench_predict")
    parser.add_argument("--no-mirroring", action="store_true")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--stages-only", action="store_true", help="only the in-process stage breakdown")
    parser.add_argument("--full-size-io", action="store_true",
                        help="also time the input side on 2 full-size (512x512x~200) synthetic patients")
    args = parser.parse_args(argv)

    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "logs").mkdir(exist_ok=True)
    source, converted, model = build(workdir, args.patients, args.size)
    env = _env(workdir)
    n_cases = len(list(converted.glob("*_0000.nii.gz")))
    mirror = ["--disable_tta"] if args.no_mirroring else []
    ours_mirror = ["--no-mirroring"] if args.no_mirroring else []
    hecktor = [sys.executable, "-m", "nnunet_hecktor.cli", "predict", "-m", str(model), "-f", "0", "--device", "cpu",
               "--quiet", *ours_mirror]
    commands = {
        "nnUNetv2_predict": [*_nnunet("nnUNetv2_predict"), "-i", str(converted), "-d", str(DATASET_ID), "-c",
                             CONFIGURATION, "-tr", TRAINER, "-p", PLANS, "-f", "0", "-device", "cpu", *mirror],
        "nnUNetv2_predict -npp 1 -nps 1": [*_nnunet("nnUNetv2_predict"), "-i", str(converted), "-d", str(DATASET_ID),
                                           "-c", CONFIGURATION, "-tr", TRAINER, "-p", PLANS, "-f", "0", "-device",
                                           "cpu", "-npp", "1", "-nps", "1", *mirror],
        "predict (HECKTOR folder)": [*hecktor, "-i", str(source)],
        "predict (converted)": [*hecktor, "-i", str(converted)],
        "predict --segmentation-only": [*hecktor, "-i", str(source), "--segmentation-only"],
    }
    seconds: dict[str, list[float]] = {k: [] for k in commands}
    names = list(commands)
    for repeat in range(0 if args.stages_only else args.repeats):
        # Rotate the order between repeats so that no command always runs first (cold caches).
        order = names[repeat % len(names):] + names[:repeat % len(names)]
        for name in order:
            index, cmd = names.index(name), commands[name]
            out = workdir / "out" / f"{index}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            cmd = cmd + (["-o", str(out)])
            seconds[name].append(_timed(cmd, env, workdir / "logs" / f"run_{index}_{repeat}.log"))
    if not args.stages_only:
        base = statistics.median(seconds["nnUNetv2_predict"])
        print(f"\n{n_cases} cases ({args.size} size), model {model.name} fold 0, CPU, mirroring "
              f"{'off' if args.no_mirroring else 'on'}, {args.repeats} repeat(s), median wall clock:")
        print(f"  {'command':32s} {'seconds':>8s} {'s/case':>8s} {'ratio':>6s}")
        for name, values in seconds.items():
            s = statistics.median(values)
            print(f"  {name:32s} {s:8.1f} {s / n_cases:8.2f} {s / base:6.2f}")
    print("\nstage breakdown of nnunet-hecktor predict (in-process, median seconds per case):")
    for stage, s in stage_breakdown(source, model, not args.no_mirroring).items():
        print(f"  {stage:28s} {s:7.3f}")
    if args.full_size_io:
        full_size_input(workdir)
    return 0


def full_size_input(workdir: Path) -> None:
    """Input side at full size (512 x 512 x ~200 CT), where the two paths differ.

    nnUNetv2_predict reads the converted ``_0000`` (CT) and ``_0001`` (PET already resampled to the
    CT grid, float32) files; nnunet-hecktor predict reads the original CT and PET and resamples the
    PET itself. Everything after that (nnU-Net preprocessing, sliding window, export) is the same code.
    """
    import SimpleITK as sitk

    from nnunet_hecktor.dataset_conversion import convert_dataset
    from nnunet_hecktor.prediction import ConversionSettings, find_input_cases, prepare_case
    from nnunet_hecktor.synthetic import make_cohort

    folder = workdir / "full_size"
    if not (folder / "converted" / "dataset.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        make_cohort(folder / "source", n_patients=2, seed=0, layout="flat", size="benchmark", progress=False)
        convert_dataset(folder / "source", dataset_id=988, name="FullSize", output=folder / "converted", progress=False)
    ours, stock = [], []
    for case in find_input_cases(folder / "source").cases:
        converted = next((folder / "converted" / d / f"{case.patient_id}_0000.nii.gz" for d in ("imagesTr", "imagesTs")
                          if (folder / "converted" / d / f"{case.patient_id}_0000.nii.gz").is_file()))
        t0 = time.perf_counter()
        prepared = prepare_case(case, ConversionSettings())
        t1 = time.perf_counter()
        sitk.ReadImage(str(converted))
        sitk.ReadImage(str(converted).replace("_0000", "_0001"))
        t2 = time.perf_counter()
        ours.append(t1 - t0)
        stock.append(t2 - t1)
        size = prepared.ct.GetSize()
    print(f"\nfull-size input ({len(ours)} synthetic patients, CT {size}), median seconds per case:")
    print(f"  nnunet-hecktor: read CT + PET, resample PET onto the CT grid  {statistics.median(ours):7.2f}")
    print(f"  nnUNetv2_predict: read converted CT + PET (.nii.gz)           {statistics.median(stock):7.2f}")


def _nnunet(name: str) -> list[str]:
    from nnunet_hecktor.nnunet_env import nnunet_command

    return nnunet_command(name)


if __name__ == "__main__":
    raise SystemExit(main())
