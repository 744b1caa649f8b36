"""Time per training step of HecktorMultiTaskTrainer relative to stock nnUNetTrainer, and peak memory.

Both trainers run on the same plans and preprocessed data; each measurement runs in a fresh
subprocess (so peak memory is per trainer), and the order alternates over rounds (stock,
multi-task, stock, multi-task, ...) so that a change in machine load hits both. Only
``train_step`` is timed: batches are drawn before the clock starts, so data loading and
augmentation are excluded. Target: the heads add < 5 % per step.

Examples
--------
Synthetic tiny dataset made on the fly (CPU, minutes)::

    python benchmarks/bench_train_step.py --steps 20 --rounds 2

An existing preprocessed dataset, on a GPU::

    python benchmarks/bench_train_step.py --dataset 501 --device cuda --steps 50

Printed: median/mean milliseconds per step for each trainer, the ratio multi-task / stock, and the
peak memory (CPU: peak resident set size of the process and its growth during the steps; CUDA:
``torch.cuda.max_memory_allocated``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAINERS = ("nnUNetTrainer", "HecktorMultiTaskTrainer")


def _prepare_dataset(workdir: Path, patients: int, seed: int) -> tuple[dict, str]:
    from nnunet_hecktor.dataset_conversion import convert_dataset
    from nnunet_hecktor.nnunet_env import nnunet_environment, run_nnunet
    from nnunet_hecktor.synthetic import make_cohort

    # No nnUNet_n_proc_DA=0 here: nnU-Net's planner calls torch.set_num_threads(nnUNet_n_proc_DA).
    env = nnunet_environment(workdir, extra={"nnUNet_compile": "false", "nnUNet_def_n_proc": "1"})
    name = "Dataset986_BenchHecktor"
    if not (Path(env["nnUNet_preprocessed"]) / name / "nnUNetPlans.json").is_file():
        print(f"[bench] making a synthetic dataset in {workdir} ...", flush=True)
        cohort = make_cohort(workdir / "source", n_patients=patients, seed=seed, size="test", progress=False)
        convert_dataset(cohort.out_dir, dataset_id=986, name="BenchHecktor",
                        output=Path(env["nnUNet_raw"]) / name, progress=False)
        run_nnunet("nnUNetv2_plan_and_preprocess", ["-d", "986", "-c", "3d_fullres", "-np", "1"], env,
                   workdir / "plan_and_preprocess.log")
    return env, name


def _worker(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    np.random.seed(0)
    device = torch.device(args.device)
    name = maybe_convert_to_dataset_name(args.dataset if str(args.dataset).startswith("Dataset") else int(args.dataset))
    folder = Path(os.environ["nnUNet_preprocessed"]) / name
    plans = json.loads((folder / f"{args.plans}.json").read_text())
    if args.patch_size:
        plans["configurations"][args.configuration]["patch_size"] = list(args.patch_size)
    plans["continue_training"] = False
    dataset_json = json.loads((folder / "dataset.json").read_text())
    if args.worker == "nnUNetTrainer":
        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer as cls
    else:
        import nnunet_hecktor.trainers as trainers
        cls = getattr(trainers, args.worker)
    trainer = cls(plans, args.configuration, 0, dataset_json, device=device)
    trainer.on_train_start()
    trainer.network.train()
    batches = [next(trainer.dataloader_train) for _ in range(min(args.steps, 8))]
    for i in range(args.warmup):
        trainer.train_step(batches[i % len(batches)])
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for i in range(args.steps):
        start = time.perf_counter()
        trainer.train_step(batches[i % len(batches)])
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    result = {
        "trainer": args.worker, "median_ms": 1000 * statistics.median(times), "mean_ms": 1000 * statistics.mean(times),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024,
        "patch_size": trainer.configuration_manager.patch_size, "batch_size": trainer.batch_size,
        "features": trainer.configuration_manager.network_arch_init_kwargs.get("features_per_stage"),
    }
    if device.type == "cuda":
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default=None, help="preprocessed dataset id/name (default: make a synthetic one)")
    parser.add_argument("--plans", default="nnUNetPlans")
    parser.add_argument("--configuration", default="3d_fullres")
    parser.add_argument("--patch-size", type=int, nargs="+", default=None, help="override the plans' patch size")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--steps", type=int, default=20, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs per trainer")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 = stable on a shared machine)")
    parser.add_argument("--patients", type=int, default=12, help="synthetic patients (no --dataset)")
    parser.add_argument("--workdir", default=None, help="folder for the synthetic dataset (default: a temp dir)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print("BENCH_RESULT " + json.dumps(_worker(args)), flush=True)
        return 0

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_train_step_"))
    if args.dataset is None:
        env, args.dataset = _prepare_dataset(workdir, args.patients, seed=2)
    else:
        env = dict(os.environ)
    env = dict(env, nnUNet_results=str(workdir / "bench_results"), nnUNet_n_proc_DA="0", nnUNet_compile="false",
               OMP_WAIT_POLICY=env.get("OMP_WAIT_POLICY", "PASSIVE"))
    results = {t: [] for t in TRAINERS}
    for r in range(args.rounds):
        order = TRAINERS if r % 2 == 0 else TRAINERS[::-1]
        for trainer in order:
            cmd = [sys.executable, __file__, "--worker", trainer, "--dataset", str(args.dataset), "--plans", args.plans,
                   "--configuration", args.configuration, "--device", args.device, "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--threads", str(args.threads)]
            if args.patch_size:
                cmd += ["--patch-size", *map(str, args.patch_size)]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
            if proc.returncode != 0 or line is None:
                print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{trainer} run failed (exit {proc.returncode})")
            res = json.loads(line[len("BENCH_RESULT "):])
            results[trainer].append(res)
            print(f"[bench] round {r + 1} {trainer:<26} median {res['median_ms']:8.1f} ms/step", flush=True)

    first = results[TRAINERS[0]][0]
    print(f"\ndevice {args.device}, threads {args.threads}, plans {args.plans}, patch {first['patch_size']}, "
          f"batch {first['batch_size']}, features {first['features']}, {args.steps} steps x {args.rounds} rounds")
    print(f"{'trainer':<26}{'median ms/step':>16}{'mean ms/step':>14}{'peak RSS MB':>13}{'RSS growth MB':>15}"
          + (f"{'peak CUDA MB':>14}" if args.device == "cuda" else ""))
    summary = {}
    for trainer, runs in results.items():
        med = statistics.median(r["median_ms"] for r in runs)
        mean = statistics.mean(r["mean_ms"] for r in runs)
        rss = max(r["peak_rss_mb"] for r in runs)
        growth = max(r["rss_growth_mb"] for r in runs)
        summary[trainer] = med
        extra = f"{max(r['peak_cuda_mb'] for r in runs):>14.1f}" if args.device == "cuda" else ""
        print(f"{trainer:<26}{med:>16.1f}{mean:>14.1f}{rss:>13.0f}{growth:>15.1f}{extra}")
    ratio = summary[TRAINERS[1]] / summary[TRAINERS[0]]
    print(f"\nratio HecktorMultiTaskTrainer / nnUNetTrainer (median step time): {ratio:.3f} "
          f"({100 * (ratio - 1):+.1f} %; target < +5 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
