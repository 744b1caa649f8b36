"""Peak memory and time of the 2026 challenge container on a whole-body CT (issue 20 item 4).

Makes a 2026 container input with a long CT (default 512 x 512 x 1000 voxels at 1 mm, int16) and a
PET on its own grid (4 mm) with a brain-like uptake at the top and a tumour below it, then runs
``nnunet-hecktor challenge --edition 2026`` in a child process under ``/usr/bin/time -v`` and prints
its peak resident memory, its wall time and the outputs it wrote (checked with
:func:`nnunet_hecktor.challenge.outputs.check_outputs_2026`).

The model is the tests' tiny multi-task model (``HecktorMultiTaskTrainer_tiny``, 3d_fullres, a few
seconds of CPU training on a synthetic cohort), built into ``--work`` when ``--model`` is not given.
Memory is dominated by the image arrays, not the network, so the figure carries over to a full-size
model; the time does not.

usage::

    python benchmarks/bench_challenge_memory.py [--work DIR] [--model MODEL_DIR] [--size 512 512 1000]
        [--spacing 1 1 1] [--no-crop] [--device cpu]

Needs ``/usr/bin/time`` (``apt-get install -y time``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TINY_ID = 986
TINY_NAME = f"Dataset{TINY_ID}_BenchTiny"
TINY_TRAINER = "HecktorMultiTaskTrainer_tiny"


def build_tiny_model(work: Path) -> Path:
    """Synthetic cohort -> convert -> plan -> fold 0 of the tiny multi-task trainer (as tests/conftest.py)."""
    from nnunet_hecktor.dataset_conversion import convert_dataset
    from nnunet_hecktor.nnunet_env import nnunet_command, nnunet_environment
    from nnunet_hecktor.synthetic import make_cohort
    from nnunet_hecktor.trainers.small_plans import write_small_plans

    extra = {"nnUNet_n_proc_DA": "0", "nnUNet_compile": "false", "nnUNet_def_n_proc": "1",
             "OMP_WAIT_POLICY": "PASSIVE"}
    env = nnunet_environment(work, extra=extra)
    model = Path(env["nnUNet_results"]) / TINY_NAME / f"{TINY_TRAINER}__nnUNetPlansTiny__3d_fullres"
    if (model / "fold_0" / "checkpoint_final.pth").is_file():
        return model
    cohort = make_cohort(work / "source", n_patients=12, seed=2, layout="release", size="test", progress=False)
    convert_dataset(cohort.out_dir, dataset_id=TINY_ID, name="BenchTiny",
                    output=Path(env["nnUNet_raw"]) / TINY_NAME, progress=False)
    planning = {k: v for k, v in env.items() if k != "nnUNet_n_proc_DA"}
    subprocess.run(nnunet_command("nnUNetv2_plan_and_preprocess") + ["-d", str(TINY_ID), "-c", "3d_fullres",
                                                                    "-np", "1", "-npfp", "1"],
                   env=planning, check=True, capture_output=True)
    write_small_plans(Path(env["nnUNet_preprocessed"]) / TINY_NAME, "nnUNetPlans", "nnUNetPlansTiny")
    subprocess.run(nnunet_command("nnUNetv2_train") + [str(TINY_ID), "3d_fullres", "0", "-tr", TINY_TRAINER, "-p",
                                                       "nnUNetPlansTiny", "-device", "cpu"],
                   env=env, check=True, capture_output=True)
    return model


def write_whole_body_input(root: Path, size: tuple[int, int, int], spacing: tuple[float, float, float]) -> Path:
    """CT (int16, HU-like body cylinder) and PET (4 mm, brain at the top, a tumour 15 cm below it)."""
    import SimpleITK as sitk

    from nnunet_hecktor.synthetic.challenge_input import SAMPLE_EHR_2026_TEXT, write_challenge_input

    nx, ny, nz = size
    z, y, x = np.ogrid[:nz, :ny, :nx]
    ct = np.full((nz, ny, nx), -1000, dtype=np.int16)
    body = ((x - nx / 2) ** 2 / (0.35 * nx) ** 2 + (y - ny / 2) ** 2 / (0.3 * ny) ** 2) <= 1
    ct[:, body[0]] = 40
    ct_image = sitk.GetImageFromArray(ct)
    del ct
    ct_image.SetSpacing(spacing)
    length = nz * spacing[2]
    ct_image.SetOrigin((-nx * spacing[0] / 2, -ny * spacing[1] / 2, -length))
    pet_spacing = (4.0, 4.0, 4.0)
    pet_size = (int(nx * spacing[0] / 4), int(ny * spacing[1] / 4), int(length / 4))
    pz, py, px = np.ogrid[:pet_size[2], :pet_size[1], :pet_size[0]]
    cx, cy, top = pet_size[0] / 2, pet_size[1] / 2, pet_size[2] - 1
    # SimpleITK's array is z-first and the origin is the most inferior slice: top = head.
    body = ((px - cx) ** 2 / (0.35 * pet_size[0]) ** 2 + (py - cy) ** 2 / (0.3 * pet_size[1]) ** 2) <= 1
    brain = ((px - cx) ** 2 + (py - cy) ** 2) / 15 ** 2 + (pz - (top - 20)) ** 2 / 15 ** 2 <= 1
    tumour = ((px - cx - 5) ** 2 + (py - cy) ** 2 + (pz - (top - 60)) ** 2) <= 4 ** 2
    pet = 1.0 * body * np.ones((pet_size[2], 1, 1)) + 8.0 * brain + 10.0 * tumour
    pet_image = sitk.GetImageFromArray(pet.astype(np.float32))
    pet_image.SetSpacing(pet_spacing)
    pet_image.SetOrigin(ct_image.GetOrigin())
    fake = write_challenge_input(root, ct_image, pet_image, None, name="whole-body")
    (root / "ehr.json").write_text(SAMPLE_EHR_2026_TEXT, encoding="utf-8")
    return fake.ct


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="/tmp/bench_challenge_memory")
    parser.add_argument("--model", default=None)
    parser.add_argument("--size", type=int, nargs=3, default=(512, 512, 1000))
    parser.add_argument("--spacing", type=float, nargs=3, default=(1.0, 1.0, 1.0))
    parser.add_argument("--no-crop", action="store_true", help="disable the long-CT crop (the old behaviour)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if not Path("/usr/bin/time").exists():
        print("needs /usr/bin/time (apt-get install -y time)", file=sys.stderr)
        return 2
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = Path(args.model) if args.model else build_tiny_model(work / "tiny")
    print(f"model {model} ({time.perf_counter() - t0:.0f} s)")
    input_dir = work / f"input_{'x'.join(map(str, args.size))}"
    if not input_dir.is_dir():
        write_whole_body_input(input_dir, tuple(args.size), tuple(args.spacing))
    output = work / "output"
    if output.exists():
        import shutil

        shutil.rmtree(output)
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "nnunet_hecktor.cli", "challenge", "--edition", "2026",
           "--input", str(input_dir), "--output", str(output), "--model", str(model), "--device", args.device]
    if args.no_crop:
        cmd += ["--long-ct-mm", "0"]
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", nnUNet_compile="false")
    print("command:", " ".join(cmd))
    run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", run.stderr).group(1)
    print("\n".join(line for line in run.stdout.splitlines()[-12:]))
    print("\n".join(line for line in run.stderr.splitlines() if "warning" in line.lower())[-3000:])
    import SimpleITK as sitk

    from nnunet_hecktor.challenge.io import CT_FOLDER, find_single_image
    from nnunet_hecktor.challenge.outputs import check_outputs_2026

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(find_single_image(input_dir, CT_FOLDER, "CT")))
    reader.ReadImageInformation()
    problems = check_outputs_2026(output) if run.returncode == 0 else [f"exit code {run.returncode}"]
    seg = sitk.ReadImage(str(output / "images/head-neck-tumor-segmentation/output.mha")) if not problems else None
    print(f"\nCT {'x'.join(map(str, args.size))} at {args.spacing} mm ({np.prod(args.size) / 1e6:.0f} M voxels), "
          f"crop {'off' if args.no_crop else 'on'}, device {args.device}")
    print(f"peak resident memory: {peak_kb / 1024 ** 2:.2f} GiB ({peak_kb} kB)   wall time: {wall}   "
          f"exit code {run.returncode}")
    print("outputs:", "all four valid" if not problems else "; ".join(problems),
          "" if seg is None else f"(mask {seg.GetSize()} == CT {reader.GetSize()}: {seg.GetSize() == reader.GetSize()})")
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
