"""GPU check: stock ``nnUNetTrainer`` against ``HecktorMultiTaskTrainer`` with nnU-Net's default GPU settings.

On a CUDA machine this script

1. makes a synthetic cohort of benchmark size (CT 512 x 512 x ~200, PET on its own grid),
   converts it (``nnunet-hecktor`` converter) and runs ``nnUNetv2_plan_and_preprocess -c 3d_fullres``;
2. trains fold 0 with each trainer for ``--epochs`` x ``--iterations`` in a fresh subprocess
   (nnU-Net's defaults: data-augmentation workers, ``torch.compile`` and mixed precision as nnU-Net
   chooses them; nothing is set), timing every iteration (batch wait + ``train_step``, CUDA
   synchronised) and recording the peak GPU memory;
3. times the end of training (``on_train_end``: checkpoints, and for the multi-task trainer the SWA
   average and the HPV threshold on the training fold; then ``perform_actual_validation``, which for
   the multi-task trainer includes the whole-volume head evaluation);
4. times prediction per case: ``nnUNetv2_predict`` with the stock model, ``nnUNetv2_predict`` with the
   multi-task model (segmentation only) and ``nnunet-hecktor predict`` with the multi-task model
   (segmentation + HPV + risk). Per case = (time for N cases - time for 1 case) / (N - 1), so the
   start-up (imports, model loading) is left out.

It prints a table and writes everything to ``--json``. Targets: the heads add at most 3 % per
training iteration and at most 5 % per predicted case.

Without CUDA it stops with a clear message. ``--device cpu --smoke`` runs the same code on tiny
data (test-size volumes, narrow ``nnUNetPlansTiny``, a few iterations) to show that the script
works; its figures say nothing about a GPU.

Examples
--------
On a GPU machine (the synthetic data and models go to --workdir and are reused)::

    python benchmarks/gpu_check.py --workdir /scratch/gpu_check --json gpu_check.json

Here, on the CPU::

    python benchmarks/gpu_check.py --device cpu --smoke --json /tmp/gpu_check_smoke.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

DATASET_ID = 985
DATASET_NAME = f"Dataset{DATASET_ID}_GPUCheck"
CONFIGURATION = "3d_fullres"
STOCK, MULTITASK = "nnUNetTrainer", "HecktorMultiTaskTrainer"
TARGETS = {"iteration": 0.03, "prediction": 0.05}
RESULT_TAG = "GPU_CHECK_RESULT "


def require_device(device: str) -> None:
    """Stop with a clear message when CUDA is requested but absent."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"gpu_check: no CUDA device (torch {torch.__version__} sees none). This check needs a GPU; "
                         "`--device cpu --smoke` runs the same code on tiny data to check the script itself.")


# -- 1. data ---------------------------------------------------------------------------------------
def prepare(workdir: Path, patients: int, size: str, smoke: bool, processes: int) -> tuple[dict, str]:
    """Synthetic cohort -> converted dataset -> plans and preprocessed data; returns (env, plans name)."""
    from nnunet_hecktor.dataset_conversion import convert_dataset
    from nnunet_hecktor.nnunet_env import nnunet_environment, run_nnunet
    from nnunet_hecktor.synthetic import make_cohort
    from nnunet_hecktor.trainers.small_plans import write_small_plans

    env = nnunet_environment(workdir / "nnunet")
    # Never nnUNet_n_proc_DA=0 for planning: nnU-Net passes it to torch.set_num_threads.
    env.pop("nnUNet_n_proc_DA", None)
    preprocessed = Path(env["nnUNet_preprocessed"]) / DATASET_NAME
    plans = "nnUNetPlansTiny" if smoke else "nnUNetPlans"
    if not (preprocessed / f"{plans}.json").is_file():
        t = time.perf_counter()
        print(f"[gpu_check] synthetic cohort: {patients} patients, {size} size ...", flush=True)
        shutil.rmtree(workdir / "source", ignore_errors=True)
        shutil.rmtree(Path(env["nnUNet_raw"]) / DATASET_NAME, ignore_errors=True)
        cohort = make_cohort(workdir / "source", n_patients=patients, seed=0, size=size, num_processes=processes,
                             progress=False)
        convert_dataset(cohort.out_dir, dataset_id=DATASET_ID, name="GPUCheck",
                        output=Path(env["nnUNet_raw"]) / DATASET_NAME, num_processes=processes, progress=False)
        print("[gpu_check] nnUNetv2_plan_and_preprocess ...", flush=True)
        run_nnunet("nnUNetv2_plan_and_preprocess", ["-d", DATASET_ID, "-c", CONFIGURATION, "-np", processes,
                                                    "-npfp", processes], env, workdir / "logs" / "plan.log")
        if smoke:
            write_small_plans(preprocessed, "nnUNetPlans", plans)
        print(f"[gpu_check] data ready in {time.perf_counter() - t:.0f} s", flush=True)
    return env, plans


# -- 2./3. training (one trainer per subprocess) -----------------------------------------------------
def train_worker(args: argparse.Namespace) -> dict:
    """Train fold 0 briefly with one trainer; time iterations, peak memory and the end of training."""
    import numpy as np
    import torch
    from torch._dynamo import OptimizedModule

    device = torch.device(args.device)
    folder = Path(os.environ["nnUNet_preprocessed"]) / DATASET_NAME
    plans = json.loads((folder / f"{args.plans}.json").read_text())
    plans["continue_training"] = False  # nnU-Net 2.8's run_training adds this key to the plans it passes
    dataset_json = json.loads((folder / "dataset.json").read_text())
    if args.worker == STOCK:
        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer as trainer_class
    else:
        import nnunet_hecktor.trainers as trainers

        trainer_class = getattr(trainers, args.worker)
    torch.manual_seed(0)
    np.random.seed(0)
    trainer = trainer_class(plans, CONFIGURATION, 0, dataset_json, device=device)
    trainer.num_epochs = args.epochs
    trainer.num_iterations_per_epoch = args.iterations
    trainer.num_val_iterations_per_epoch = args.val_iterations

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    trainer.on_train_start()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    iteration_ms, step_ms = [], []
    for _ in range(trainer.current_epoch, trainer.num_epochs):
        trainer.on_epoch_start()
        trainer.on_train_epoch_start()
        outputs = []
        for _ in range(trainer.num_iterations_per_epoch):
            sync()
            t0 = time.perf_counter()
            batch = next(trainer.dataloader_train)
            t1 = time.perf_counter()
            outputs.append(trainer.train_step(batch))
            sync()
            t2 = time.perf_counter()
            iteration_ms.append(1000 * (t2 - t0))
            step_ms.append(1000 * (t2 - t1))
        trainer.on_train_epoch_end(outputs)
        with torch.no_grad():
            trainer.on_validation_epoch_start()
            val = [trainer.validation_step(next(trainer.dataloader_val))
                   for _ in range(trainer.num_val_iterations_per_epoch)]
            trainer.on_validation_epoch_end(val)
        trainer.on_epoch_end()
    peak = torch.cuda.max_memory_allocated() / 2 ** 20 if device.type == "cuda" else None
    sync()
    t = time.perf_counter()
    trainer.on_train_end()
    sync()
    end_s = time.perf_counter() - t
    t = time.perf_counter()
    trainer.perform_actual_validation(False)
    sync()
    validation_s = time.perf_counter() - t
    timed = iteration_ms[args.warmup:] or iteration_ms   # the first iterations compile / tune kernels
    steps = step_ms[args.warmup:] or step_ms
    return {
        "trainer": args.worker, "iterations_timed": len(timed),
        "iteration_ms_median": statistics.median(timed), "iteration_ms_mean": statistics.mean(timed),
        "step_ms_median": statistics.median(steps), "peak_gpu_mb": peak,
        "end_of_training_s": end_s, "final_validation_s": validation_s,
        "patch_size": list(trainer.configuration_manager.patch_size), "batch_size": trainer.batch_size,
        "compiled": isinstance(trainer.network, OptimizedModule), "amp": trainer.grad_scaler is not None,
        "n_proc_DA": os.environ.get("nnUNet_n_proc_DA", "nnU-Net default"),
        "model_dir": str(Path(trainer.output_folder).parent),
    }


def run_trainer(trainer: str, args: argparse.Namespace, env: dict, plans: str, workdir: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", trainer, "--plans", plans, "--device", args.device,
           "--epochs", str(args.epochs), "--iterations", str(args.iterations),
           "--val-iterations", str(args.val_iterations), "--warmup", str(args.warmup)]
    print(f"[gpu_check] training {trainer}: {args.epochs} x {args.iterations} iterations ...", flush=True)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    log = workdir / "logs" / f"train_{trainer}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"$ {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)), None)
    if proc.returncode != 0 or line is None:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise SystemExit(f"gpu_check: training {trainer} failed (exit {proc.returncode}); log {log}\n{tail}")
    return json.loads(line[len(RESULT_TAG):])


# -- 4. prediction -------------------------------------------------------------------------------------
def _timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise SystemExit(f"gpu_check: failed (exit {proc.returncode}): {' '.join(map(str, cmd))}\n{tail}")
    return time.perf_counter() - start


def time_prediction(models: dict, args: argparse.Namespace, env: dict, plans: str, workdir: Path) -> dict:
    """Seconds per case of the three prediction commands (start-up excluded, see the module docstring)."""
    from nnunet_hecktor.nnunet_env import nnunet_command

    raw = Path(env["nnUNet_raw"]) / DATASET_NAME / "imagesTr"
    cases = sorted(p.name[: -len("_0000.nii.gz")] for p in raw.glob("*_0000.nii.gz"))[:args.predict_cases]
    if len(cases) < 2:
        raise SystemExit("gpu_check: need at least 2 cases to time prediction per case")
    inputs = {}
    for n in (1, len(cases)):
        folder = workdir / "predict_input" / f"{n}_cases"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for case in cases[:n]:
            for channel in ("0000", "0001"):
                shutil.copy(raw / f"{case}_{channel}.nii.gz", folder)
        inputs[n] = folder
    hecktor = [sys.executable, "-m", "nnunet_hecktor.cli"]
    commands = {
        "nnUNetv2_predict, stock model": lambda i, o: nnunet_command("nnUNetv2_predict") + [
            "-i", i, "-o", o, "-d", DATASET_ID, "-c", CONFIGURATION, "-tr", STOCK, "-p", plans, "-f", "0",
            "-device", args.device],
        "nnUNetv2_predict, multi-task model": lambda i, o: nnunet_command("nnUNetv2_predict") + [
            "-i", i, "-o", o, "-d", DATASET_ID, "-c", CONFIGURATION, "-tr", MULTITASK, "-p", plans, "-f", "0",
            "-device", args.device],
        "nnunet-hecktor predict, multi-task model": lambda i, o: hecktor + [
            "predict", "-i", i, "-o", o, "-m", models[MULTITASK], "-f", "0", "--device", args.device, "--quiet"],
    }
    out = {}
    for name, make in commands.items():
        seconds = {}
        for n, folder in inputs.items():
            target = workdir / "predict_output" / f"{name.split(',')[0]}_{name.split(', ')[1]}_{n}".replace(" ", "_")
            shutil.rmtree(target, ignore_errors=True)
            seconds[n] = _timed([str(a) for a in make(folder, target)], env)
        n = len(cases)
        marginal = (seconds[n] - seconds[1]) / (n - 1)
        # On a loaded machine the difference can drown in noise: then fall back to the plain mean.
        per_case, method = (marginal, "marginal") if marginal > 0 else (seconds[n] / n, "total / N (marginal <= 0)")
        out[name] = {"cases": n, "total_s": seconds[n], "one_case_s": seconds[1], "marginal_s": marginal,
                     "mean_s": seconds[n] / n, "per_case_s": per_case, "per_case_method": method}
        print(f"[gpu_check] {name}: {per_case:.2f} s per case ({method})", flush=True)
    return out


# -- report ----------------------------------------------------------------------------------------------
def report(training: dict, prediction: dict, args: argparse.Namespace) -> dict:
    stock, multi = training[STOCK], training[MULTITASK]
    iteration_ratio = multi["iteration_ms_median"] / stock["iteration_ms_median"]
    step_ratio = multi["step_ms_median"] / stock["step_ms_median"]
    base = prediction["nnUNetv2_predict, stock model"]["per_case_s"]
    prediction_ratio = prediction["nnunet-hecktor predict, multi-task model"]["per_case_s"] / base
    extra_end = (multi["end_of_training_s"] + multi["final_validation_s"]
                 - stock["end_of_training_s"] - stock["final_validation_s"])
    print(f"\ndevice {args.device}{' (smoke: tiny data, figures say nothing about a GPU)' if args.smoke else ''}; "
          f"patch {stock['patch_size']}, batch {stock['batch_size']}, compile {stock['compiled']}, "
          f"AMP {stock['amp']}, nnUNet_n_proc_DA {stock['n_proc_DA']}")
    print(f"{'trainer':<26}{'ms/iteration':>14}{'ms/step':>10}{'peak GPU MB':>13}{'end of training s':>19}"
          f"{'final validation s':>20}")
    for name, r in training.items():
        peak = "-" if r["peak_gpu_mb"] is None else f"{r['peak_gpu_mb']:.0f}"
        print(f"{name:<26}{r['iteration_ms_median']:>14.1f}{r['step_ms_median']:>10.1f}{peak:>13}"
              f"{r['end_of_training_s']:>19.1f}{r['final_validation_s']:>20.1f}")
    print(f"\n{'prediction':<42}{'s per case':>12}{'ratio':>8}{'total s / N':>13}  per case from")
    for name, r in prediction.items():
        print(f"{name:<42}{r['per_case_s']:>12.2f}{r['per_case_s'] / base:>8.3f}{r['mean_s']:>13.2f}  "
              f"{r['per_case_method']}")
    verdict = {
        "iteration": {"ratio": iteration_ratio, "target": 1 + TARGETS["iteration"],
                      "met": iteration_ratio <= 1 + TARGETS["iteration"]},
        "prediction": {"ratio": prediction_ratio, "target": 1 + TARGETS["prediction"],
                       "met": prediction_ratio <= 1 + TARGETS["prediction"]},
    }
    print(f"\nheads per iteration: {100 * (iteration_ratio - 1):+.1f} % (compute only {100 * (step_ratio - 1):+.1f} %; "
          f"target <= +{100 * TARGETS['iteration']:.0f} %: {'met' if verdict['iteration']['met'] else 'NOT met'})")
    print(f"heads per predicted case: {100 * (prediction_ratio - 1):+.1f} % "
          f"(target <= +{100 * TARGETS['prediction']:.0f} %: {'met' if verdict['prediction']['met'] else 'NOT met'})")
    print(f"end-of-training extra time of the multi-task trainer: {extra_end:+.1f} s")
    return {"device": args.device, "smoke": args.smoke,
            "settings": {k: getattr(args, k) for k in ("patients", "size", "epochs", "iterations", "val_iterations",
                                                       "warmup", "predict_cases")},
            "training": training, "prediction": prediction, "step_ratio": step_ratio,
            "end_of_training_extra_s": extra_end, "targets": verdict}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny data and schedule (checks the script, e.g. on a CPU)")
    parser.add_argument("--workdir", default=None, help="data, models and logs (default /tmp/nnunet_hecktor_gpu_check)")
    parser.add_argument("--json", default=None, help="write the results here (default WORKDIR/gpu_check.json)")
    parser.add_argument("--patients", type=int, default=None, help="synthetic patients (default 20; smoke 10)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per trainer (default 2)")
    parser.add_argument("--iterations", type=int, default=None, help="iterations per epoch (default 60; smoke 3)")
    parser.add_argument("--val-iterations", type=int, default=None, help="validation iterations (default 10; smoke 2)")
    parser.add_argument("--warmup", type=int, default=None, help="first iterations left out (default 10; smoke 1)")
    parser.add_argument("--predict-cases", type=int, default=None, help="cases predicted (default 6; smoke 2)")
    parser.add_argument("--processes", type=int, default=None,
                        help="processes for data preparation (default 8; smoke 1)")
    parser.add_argument("--plans", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    defaults = (dict(patients=10, epochs=2, iterations=3, val_iterations=2, warmup=1, predict_cases=2, processes=1)
                if args.smoke else
                dict(patients=20, epochs=2, iterations=60, val_iterations=10, warmup=10, predict_cases=6, processes=8))
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.size = "test" if args.smoke else "benchmark"
    require_device(args.device)

    if args.worker:
        print(RESULT_TAG + json.dumps(train_worker(args)), flush=True)
        return 0

    workdir = Path(args.workdir or "/tmp/nnunet_hecktor_gpu_check").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    env, plans = prepare(workdir, args.patients, args.size, args.smoke, args.processes)
    env["nnUNet_results"] = str(workdir / "results")
    if args.device == "cpu":
        # Not GPU defaults: CPU-friendly settings for the smoke run (training only, so n_proc_DA=0 is safe).
        env.update(nnUNet_compile="false", nnUNet_n_proc_DA="0", OMP_WAIT_POLICY="PASSIVE")
    shutil.rmtree(workdir / "results", ignore_errors=True)
    training = {t: run_trainer(t, args, env, plans, workdir) for t in (STOCK, MULTITASK)}
    env.pop("nnUNet_n_proc_DA", None)
    models = {t: r["model_dir"] for t, r in training.items()}
    prediction = time_prediction(models, args, env, plans, workdir)
    result = report(training, prediction, args)
    out = Path(args.json or workdir / "gpu_check.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
