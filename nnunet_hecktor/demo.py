"""The end-to-end demo on built-in synthetic data (the README's main job).

Steps, each a plain call of the plugin's Python API or a stock nnU-Net command:

1. ``synth``: a synthetic HECKTOR 2025 release (CT/PET on different grids, labels, clinical CSVs).
2. ``convert``: the release -> ``nnUNet_raw/Dataset<ID>_<NAME>`` (PET resampled onto the CT grid).
3. ``nnUNetv2_plan_and_preprocess -c 3d_fullres --verify_dataset_integrity``.

All nnU-Net folders live under the demo's output folder; the caller's environment is not touched.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_hecktor.nnunet_env import nnunet_environment, run_nnunet


@dataclass
class DemoResult:
    """What the demo produced: folders and the figures it printed."""

    output: Path
    dataset_name: str
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds
    figures: dict[str, object] = field(default_factory=dict)


def run_demo(output: str | Path, patients: int = 16, seed: int = 0, dataset_id: int = 501,
             num_processes: int = 1) -> DemoResult:
    """Run the demo pipeline into ``output`` and return what it made.

    Parameters
    ----------
    output : path
        Demo folder; receives ``synthetic_release/``, ``nnUNet_raw/``, ``nnUNet_preprocessed/``,
        ``nnUNet_results/``, ``logs/`` and ``demo_summary.json``.
    patients : int
        Number of synthetic patients.
    seed : int
        Seed of the synthetic cohort (the demo is deterministic for a seed).
    dataset_id : int
        nnU-Net dataset id of the converted dataset.
    num_processes : int
        Worker processes for generation, conversion and preprocessing.
    """
    from nnunet_hecktor.dataset_conversion import convert_dataset
    from nnunet_hecktor.synthetic import make_cohort

    output = Path(output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    env = nnunet_environment(output)
    result = DemoResult(output=output, dataset_name="")

    def step(name: str, fn):
        print(f"[demo] {name} ...", flush=True)
        start = time.perf_counter()
        value = fn()
        result.steps[name] = round(time.perf_counter() - start, 2)
        return value

    release = output / "synthetic_release"
    cohort = step("synth", lambda: make_cohort(release, n_patients=patients, seed=seed, layout="release",
                                                size="test", num_processes=num_processes))
    summary = step("convert", lambda: convert_dataset(
        release, dataset_id=dataset_id, name="HECKTORDemo", output=Path(env["nnUNet_raw"]) / f"Dataset{dataset_id:03d}_HECKTORDemo",
        num_processes=num_processes))
    result.dataset_name = f"Dataset{dataset_id:03d}_HECKTORDemo"
    step("plan_and_preprocess", lambda: run_nnunet(
        "nnUNetv2_plan_and_preprocess",
        ["-d", str(dataset_id), "-c", "3d_fullres", "--verify_dataset_integrity", "-np", str(num_processes)],
        env, output / "logs" / "plan_and_preprocess.log"))

    result.figures.update({
        "patients_generated": len(getattr(cohort, "patient_ids", []) or []),
        "conversion": str(summary),
    })
    (output / "demo_summary.json").write_text(json.dumps(
        {"dataset": result.dataset_name, "seconds_per_step": result.steps,
         "figures": result.figures}, indent=2, default=str) + "\n")
    return result
