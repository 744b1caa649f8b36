"""The end-to-end demo on built-in synthetic data (the README's main job).

Steps, each a plain call of the plugin's Python API or a stock nnU-Net command:

1. ``synth``: a synthetic HECKTOR 2025 release for training (CT/PET on different grids, labels,
   clinical CSVs) and a second one of new patients for testing.
2. ``convert``: both releases -> ``nnUNet_raw/Dataset<ID>_...`` (PET resampled onto the CT grid).
3. ``nnUNetv2_plan_and_preprocess -c 3d_fullres --verify_dataset_integrity``, then a narrow plans
   variant (``nnUNetPlansTiny``) so that CPU training takes minutes, not days.
4. ``nnUNetv2_train DATASET 3d_fullres 0 -tr HecktorMultiTaskTrainer_tiny -p nnUNetPlansTiny``:
   segmentation + HPV + Cox heads + SWA, a few iterations (a smoke run, not a useful model).
5. ``nnunet-hecktor predict`` on the new patients' release folder: segmentations on each original
   CT grid plus ``predictions.csv`` (HPV probability/status, risk).
6. ``nnunet-hecktor evaluate``: the HECKTOR metrics of those predictions.

All nnU-Net folders live under the demo's output folder; the caller's environment is not touched.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_hecktor.nnunet_env import nnunet_environment, run_nnunet

DEMO_TRAINER = "HecktorMultiTaskTrainer_tiny"
DEMO_PLANS = "nnUNetPlansTiny"
DEMO_CONFIGURATION = "3d_fullres"

#: Settings for nnU-Net subprocesses on a small CPU machine: no augmentation worker processes,
#: no torch.compile, and OpenMP threads that sleep instead of spin-waiting when cores are shared.
CPU_FRIENDLY_VARIABLES = {
    "nnUNet_n_proc_DA": "0",
    "nnUNet_compile": "false",
    "OMP_WAIT_POLICY": "PASSIVE",
}


@dataclass
class DemoResult:
    """What the demo produced: folders, seconds per step and the headline figures."""

    output: Path
    dataset_name: str = ""
    model_dir: Path | None = None
    predictions_dir: Path | None = None
    steps: dict[str, float] = field(default_factory=dict)
    figures: dict[str, object] = field(default_factory=dict)


def run_demo(output: str | Path, patients: int = 16, test_patients: int = 8, seed: int = 0,
             dataset_id: int = 501, num_processes: int = 1, device: str = "cpu") -> DemoResult:
    """Run the demo pipeline into ``output`` and return what it made.

    Parameters
    ----------
    output : path
        Demo folder; receives ``synthetic_train/``, ``synthetic_new_patients/``, ``nnUNet_raw/``,
        ``nnUNet_preprocessed/``, ``nnUNet_results/``, ``predictions/``, ``evaluation/``, ``logs/``
        and ``demo_summary.json``.
    patients : int
        Synthetic patients of the training cohort (all tasks; those with a label are trained on).
    test_patients : int
        Synthetic new patients to predict and evaluate.
    seed : int
        Seed of the training cohort (the new patients use ``seed + 1``).
    dataset_id : int
        nnU-Net dataset id of the training dataset (``dataset_id + 1`` holds the new patients' labels).
    num_processes : int
        Worker processes for generation, conversion and preprocessing.
    device : str
        ``cpu`` or ``cuda`` for training and prediction.
    """
    from nnunet_hecktor.dataset_conversion import convert_dataset
    from nnunet_hecktor.evaluation.evaluate import evaluate
    from nnunet_hecktor.prediction.api import predict
    from nnunet_hecktor.synthetic import make_cohort
    from nnunet_hecktor.trainers.small_plans import write_small_plans

    output = Path(output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    env = nnunet_environment(output, extra=CPU_FRIENDLY_VARIABLES)
    raw = Path(env["nnUNet_raw"])
    result = DemoResult(output=output)
    name, test_name = "HECKTORDemo", "HECKTORDemoNew"
    result.dataset_name = f"Dataset{dataset_id:03d}_{name}"
    test_dataset = raw / f"Dataset{dataset_id + 1:03d}_{test_name}"

    def step(label: str, fn):
        print(f"[demo] {label} ...", flush=True)
        start = time.perf_counter()
        value = fn()
        result.steps[label] = round(time.perf_counter() - start, 1)
        return value

    train_src, test_src = output / "synthetic_train", output / "synthetic_new_patients"
    step("synth", lambda: (
        make_cohort(train_src, n_patients=patients, seed=seed, size="test", num_processes=num_processes,
                    overwrite=True),
        make_cohort(test_src, n_patients=test_patients, seed=seed + 1, size="test", num_processes=num_processes,
                    overwrite=True)))
    step("convert", lambda: (
        convert_dataset(train_src, dataset_id=dataset_id, name=name, output=raw / result.dataset_name,
                        num_processes=num_processes),
        convert_dataset(test_src, dataset_id=dataset_id + 1, name=test_name, output=test_dataset,
                        num_processes=num_processes)))
    # nnU-Net's planner sets torch's thread count from nnUNet_n_proc_DA, so 0 would break it.
    planning_env = {k: v for k, v in env.items() if k != "nnUNet_n_proc_DA"}
    step("plan_and_preprocess", lambda: run_nnunet(
        "nnUNetv2_plan_and_preprocess",
        ["-d", str(dataset_id), "-c", DEMO_CONFIGURATION, "--verify_dataset_integrity", "-np", str(num_processes)],
        planning_env, output / "logs" / "plan_and_preprocess.log"))
    write_small_plans(Path(env["nnUNet_preprocessed"]) / result.dataset_name, "nnUNetPlans", DEMO_PLANS)
    step("train", lambda: run_nnunet(
        "nnUNetv2_train", [str(dataset_id), DEMO_CONFIGURATION, "0", "-tr", DEMO_TRAINER, "-p", DEMO_PLANS,
                           "-device", device], env, output / "logs" / "train_fold0.log"))
    result.model_dir = Path(env["nnUNet_results"]) / result.dataset_name / \
        f"{DEMO_TRAINER}__{DEMO_PLANS}__{DEMO_CONFIGURATION}"

    result.predictions_dir = output / "predictions"
    step("predict", lambda: predict(test_src, result.predictions_dir, result.model_dir, folds=[0],
                                    device=device))
    evaluation = step("evaluate", lambda: evaluate(
        test_dataset / "labelsTr", result.predictions_dir, clinical_csv=test_dataset / "clinical.csv",
        predictions_csv=result.predictions_dir / "predictions.csv", output_dir=output / "evaluation",
        n_bootstrap=200, num_processes=num_processes, progress=False))

    metrics = json.loads((output / "evaluation" / "metrics.json").read_text())
    heads = json.loads((result.model_dir / "fold_0" / "validation_heads.json").read_text())
    result.figures = {
        "new_patients_metrics": {task: {k: v for k, v in block.items() if not isinstance(v, (dict, list))}
                                 for task, block in metrics.items() if isinstance(block, dict)},
        "fold0_validation_heads": heads,
    }
    del evaluation
    summary = {"dataset": result.dataset_name, "model": str(result.model_dir),
               "seconds_per_step": result.steps, "figures": result.figures}
    (output / "demo_summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return result
