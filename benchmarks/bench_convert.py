"""Benchmark of ``nnunet-hecktor convert`` at benchmark scale (CT 512 x 512 x ~200).

Side by side, on the same patients, each variant in a fresh subprocess (so peak memory is its own):

- ``plain``:      SimpleITK only: read CT, PET, label; resample PET onto the CT grid (linear, outside 0);
                  write CT, PET and label as .nii.gz. The minimum any converter has to do.
- ``convert-1``:  ``convert_dataset(..., num_processes=1)`` (all checks, report, clinical table, splits).
- ``convert-2``:  ``convert_dataset(..., num_processes=2)``.

Printed per variant: wall time, seconds per patient, ratio to ``plain``, peak resident memory of the
main process and of the largest worker process (``resource.getrusage``; workers are waited-for children).

Usage::

    python benchmarks/bench_convert.py                      # generates 4 synthetic patients (~1-2 min)
    python benchmarks/bench_convert.py --cohort /tmp/bench   # reuse a cohort made by make_cohort(size="benchmark")
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_PLAIN = r"""
import json, resource, sys, time
from pathlib import Path
import SimpleITK as sitk
from nnunet_hecktor.dataset_conversion import discover_layout

layout = discover_layout(sys.argv[1])
out = Path(sys.argv[2])
(out / "imagesTr").mkdir(parents=True)
(out / "labelsTr").mkdir(parents=True)
start = time.perf_counter()
for pid, p in layout.patients.items():
    ct = sitk.ReadImage(str(p.ct))
    pet = sitk.ReadImage(str(p.pet))
    pet_on_ct = sitk.Resample(pet, ct, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    sitk.WriteImage(ct, str(out / "imagesTr" / f"{pid}_0000.nii.gz"), True)
    sitk.WriteImage(pet_on_ct, str(out / "imagesTr" / f"{pid}_0001.nii.gz"), True)
    if p.label is not None:
        label = sitk.Cast(sitk.ReadImage(str(p.label)), sitk.sitkUInt8)
        sitk.WriteImage(label, str(out / "labelsTr" / f"{pid}.nii.gz"), True)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "patients": len(layout.patients),
                  "self_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "children_maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""

_CONVERT = r"""
import json, resource, sys, time
from nnunet_hecktor.dataset_conversion import convert_dataset

start = time.perf_counter()
summary = convert_dataset(sys.argv[1], dataset_id=599, name="BENCH", output=sys.argv[2],
                          num_processes=int(sys.argv[3]), progress=False)
seconds = time.perf_counter() - start
assert not summary.failed, summary.failed
print(json.dumps({"seconds": seconds, "patients": len(summary.training) + len(summary.test),
                  "self_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "children_maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  "per_patient_report_s": [e["seconds"] for e in
                                           json.load(open(summary.report_path))["patients"].values()]}))
"""


def _run(code: str, args: list[str]) -> dict:
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"benchmark variant failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cohort", type=Path, default=None, help="existing benchmark-size cohort (else generated)")
    parser.add_argument("--patients", type=int, default=4, help="patients to generate (default 4)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        scratch = Path(scratch)
        cohort = args.cohort
        if cohort is None:
            from nnunet_hecktor.synthetic import make_cohort

            cohort = scratch / "cohort"
            started = time.perf_counter()
            # One task folder: every patient has CT, PET and label, as in Task 1.
            made = make_cohort(cohort, n_patients=args.patients, seed=args.seed, layout="task", task=1,
                               size="benchmark", num_processes=2, progress=False)
            print(f"generated {made.n_patients} benchmark-size patients in {time.perf_counter() - started:.0f} s")
        from nnunet_hecktor.dataset_conversion import discover_layout

        layout = discover_layout(cohort)
        sizes = [list(__import__("SimpleITK").ReadImage(str(p.ct)).GetSize()) for p in layout.patients.values()]
        print(f"cohort: {cohort} ({len(layout.patients)} patients, CT sizes {sizes})")
        print(f"machine: {os.cpu_count()} CPUs, load average before start {os.getloadavg()[0]:.1f}")

        results = {}
        results["plain"] = _run(_PLAIN, [str(cohort), str(scratch / "plain")])
        results["convert-1"] = _run(_CONVERT, [str(cohort), str(scratch / "c1" / "Dataset599_BENCH"), "1"])
        results["convert-2"] = _run(_CONVERT, [str(cohort), str(scratch / "c2" / "Dataset599_BENCH"), "2"])

    base = results["plain"]["seconds"]
    print()
    print(f"{'variant':<12}{'total s':>9}{'s/patient':>11}{'vs plain':>10}{'peak RSS main':>15}{'peak RSS worker':>17}")
    for name, r in results.items():
        worker = f"{r['children_maxrss_kb'] / 1024:.0f} MiB" if name == "convert-2" else "-"
        print(f"{name:<12}{r['seconds']:>9.1f}{r['seconds'] / r['patients']:>11.2f}{r['seconds'] / base:>9.2f}x"
              f"{r['self_maxrss_kb'] / 1024:>11.0f} MiB{worker:>17}")
    if "per_patient_report_s" in results["convert-1"]:
        per = results["convert-1"]["per_patient_report_s"]
        print(f"\nconvert-1 per-patient worker seconds (from the report): {', '.join(f'{s:.1f}' for s in per)}")
    print(f"load average after: {os.getloadavg()[0]:.1f} (the machine may be shared: compare ratios within one run)")


if __name__ == "__main__":
    main()
