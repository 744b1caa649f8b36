"""Benchmark: HECKTOR Task 1 evaluation of benchmark-scale cases (512 x 512 x 200 uint8 label pairs).

Compares, in the same run, on the same files:

- ``ours``: ``nnunet_hecktor.evaluation.segmentation.evaluate_segmentation_folders`` (crop to the
  foreground box, cc3d components, IoU of all component pairs from one ``np.unique``);
- ``straightforward``: SimpleITK ``ConnectedComponent`` on the full volumes and a Python loop over
  (GT lesion, predicted lesion) pairs computing each overlap with full-volume masks.

Both with 1 and 2 worker processes; both must give identical figures (checked). Label pairs are
random blobs (one primary, 0-6 nodes, perturbed prediction with misses and false positives),
written once to a temporary folder (or ``--workdir``, reused when it already holds them).

Run:  python benchmarks/bench_evaluate.py --patients 400
      (with fewer patients the time for 400 is extrapolated linearly and marked as such)
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPE = (200, 512, 512)  # z, y, x


# --------------------------------------------------------------------------- synthetic data
def _ball(array: np.ndarray, centre, radii, value: int, rng: np.random.Generator, lumps: int = 2) -> None:
    """Paint a lumpy ellipsoid (union of a few jittered ellipsoids) into ``array`` (in place)."""
    for k in range(lumps + 1):
        c = np.asarray(centre, dtype=float) + (rng.normal(0, 0.35, 3) * radii if k else 0)
        r = np.asarray(radii, dtype=float) * (rng.uniform(0.6, 1.0) if k else 1.0)
        lo = np.maximum(np.floor(c - r).astype(int), 0)
        hi = np.minimum(np.ceil(c + r).astype(int) + 1, array.shape)
        if np.any(hi <= lo):
            continue
        grids = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
        inside = sum(((g - cc) / rr) ** 2 for g, cc, rr in zip(grids, c, r)) <= 1.0
        region = array[tuple(slice(a, b) for a, b in zip(lo, hi))]
        region[inside] = value


def synthetic_pair(seed: int) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """(ground truth, prediction, spacing x/y/z) for one synthetic patient."""
    rng = np.random.default_rng(seed)
    gt = np.zeros(SHAPE, np.uint8)
    pred = np.zeros(SHAPE, np.uint8)
    centre = np.array([rng.uniform(80, 120), rng.uniform(200, 300), rng.uniform(200, 300)])
    has_primary = rng.random() > 0.05
    if has_primary:
        radii = np.array([rng.uniform(3, 8), rng.uniform(8, 25), rng.uniform(8, 25)])
        _ball(gt, centre, radii, 1, rng)
        if rng.random() > 0.05:  # a few primaries are missed entirely
            _ball(pred, centre + rng.normal(0, 1.5, 3), radii * rng.uniform(0.8, 1.2, 3), 1, rng)
    for _ in range(rng.integers(0, 7)):
        node = centre + np.array([rng.uniform(-25, 25), rng.uniform(-60, 60), rng.uniform(-60, 60)])
        radii = np.array([rng.uniform(1.5, 4), rng.uniform(3, 9), rng.uniform(3, 9)])
        _ball(gt, node, radii, 2, rng, lumps=1)
        if rng.random() < 0.8:
            _ball(pred, node + rng.normal(0, 1.0, 3), radii * rng.uniform(0.7, 1.3, 3), 2, rng, lumps=1)
    for _ in range(rng.integers(0, 4)):  # false-positive nodes, some small
        node = centre + np.array([rng.uniform(-40, 40), rng.uniform(-90, 90), rng.uniform(-90, 90)])
        _ball(pred, node, np.array([rng.uniform(1, 3), rng.uniform(2, 6), rng.uniform(2, 6)]), 2, rng, lumps=0)
    spacing = (float(rng.choice([0.9766, 1.0, 1.1719])),) * 2 + (float(rng.choice([2.0, 3.0, 3.27])),)
    return gt, pred, (spacing[0], spacing[1], spacing[2])


def _write_patient(args) -> None:
    import SimpleITK as sitk

    seed, folder = args
    gt, pred, spacing = synthetic_pair(seed)
    pid = f"BENCH-{seed:03d}"
    for array, sub in ((gt, "gt"), (pred, "pred")):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(spacing)
        image.SetOrigin((-250.0, -250.0, -400.0))
        sitk.WriteImage(image, str(Path(folder) / sub / f"{pid}.nii.gz"), True)


def ensure_dataset(folder: Path, patients: int, processes: int) -> None:
    """Write ``patients`` synthetic label pairs to ``folder/gt`` and ``folder/pred`` (skips existing)."""
    (folder / "gt").mkdir(parents=True, exist_ok=True)
    (folder / "pred").mkdir(parents=True, exist_ok=True)
    todo = [(i, str(folder)) for i in range(patients)
            if not (folder / "pred" / f"BENCH-{i:03d}.nii.gz").is_file()]
    if todo:
        start = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            pool.map(_write_patient, todo, chunksize=1)
        print(f"wrote {len(todo)} synthetic patients in {time.perf_counter() - start:.1f} s to {folder}")


# --------------------------------------------------------------------------- baseline
def straightforward_case(args) -> dict:
    """Task 1 statistics the obvious way: full-volume masks, SimpleITK components, pair loops."""
    import SimpleITK as sitk

    gt_path, pred_path = args
    gt_image, pred_image = sitk.ReadImage(str(gt_path)), sitk.ReadImage(str(pred_path))
    if gt_image.GetSize() != pred_image.GetSize() or not np.allclose(gt_image.GetSpacing(), pred_image.GetSpacing()):
        raise ValueError(f"geometry mismatch: {pred_path}")
    gt, pred = sitk.GetArrayFromImage(gt_image), sitk.GetArrayFromImage(pred_image)
    voxel = float(np.prod(gt_image.GetSpacing()))
    out = {"gtvp": [int(((gt == 1) & (pred == 1)).sum()), int((gt == 1).sum()), int((pred == 1).sum())],
           "gtvn": [int(((gt == 2) & (pred == 2)).sum()) * voxel, float(((gt == 2).sum() + (pred == 2).sum()) * voxel)]}
    gt_cc = sitk.GetArrayFromImage(sitk.ConnectedComponent(gt_image == 2, True))
    pred_cc = sitk.GetArrayFromImage(sitk.ConnectedComponent(pred_image == 2, True))
    n_gt, n_pred = int(gt_cc.max()), int(pred_cc.max())
    pairs = []
    for i in range(1, n_gt + 1):
        gi = gt_cc == i
        for j in range(1, n_pred + 1):
            pj = pred_cc == j
            inter = int((gi & pj).sum())
            if inter:
                pairs.append((inter / int((gi | pj).sum()), i, j))
    used_g, used_p, tp = set(), set(), 0
    for iou, i, j in sorted(pairs, key=lambda p: (-p[0], p[1], p[2])):
        if iou > 0.3 and i not in used_g and j not in used_p:
            used_g.add(i)
            used_p.add(j)
            tp += 1
    out["lesions"] = [tp, n_pred - tp, n_gt - tp]
    return out


def straightforward_folder(gt_dir: Path, pred_dir: Path, processes: int) -> dict:
    files = sorted(gt_dir.glob("*.nii.gz"))
    jobs = [(f, pred_dir / f.name) for f in files]
    if processes > 1:
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            results = pool.map(straightforward_case, jobs, chunksize=1)
    else:
        results = [straightforward_case(j) for j in jobs]
    dice = []
    for r in results:
        inter, a, b = r["gtvp"]
        dice.append(1.0 if a + b == 0 else 2 * inter / (a + b))
    inter = sum(r["gtvn"][0] for r in results)
    total = sum(r["gtvn"][1] for r in results)
    tp, fp, fn = (sum(r["lesions"][k] for r in results) for k in range(3))
    return {"gtvp_dice_mean": float(np.mean(dice)), "gtvn_dice_agg": 2 * inter / total if total else 1.0,
            "gtvn_f1_agg": 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 1.0, "tp_fp_fn": (tp, fp, fn)}


def ours_folder(gt_dir: Path, pred_dir: Path, processes: int) -> dict:
    from nnunet_hecktor.evaluation.segmentation import evaluate_segmentation_folders
    from nnunet_hecktor.metrics.segmentation import aggregate_task1

    result = evaluate_segmentation_folders(gt_dir, pred_dir, num_processes=processes, progress=False)
    t = aggregate_task1(result.stats)
    return {"gtvp_dice_mean": t.gtvp_dice_mean, "gtvn_dice_agg": t.gtvn_dice_agg, "gtvn_f1_agg": t.gtvn_f1_agg,
            "tp_fp_fn": (t.gtvn_tp, t.gtvn_fp, t.gtvn_fn)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=400, help="synthetic patients (default 400)")
    parser.add_argument("--workdir", help="folder for the synthetic files (kept); default: a temp dir, removed")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="worker counts (default 1 2)")
    parser.add_argument("--baseline-patients", type=int,
                        help="run the straightforward baseline on the first K patients only (default: all)")
    args = parser.parse_args()

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench_evaluate_"))
    try:
        ensure_dataset(workdir, args.patients, max(args.processes))
        gt_dir, pred_dir = workdir / "gt", workdir / "pred"
        n = args.patients
        print(f"{n} patients of {SHAPE[2]}x{SHAPE[1]}x{SHAPE[0]} uint8 (gt + prediction), "
              f"{sum(f.stat().st_size for f in workdir.rglob('*.nii.gz')) / 1e6:.1f} MB on disk; "
              f"cpu count {os.cpu_count()}")
        k = min(args.baseline_patients or n, n)
        base_dir = workdir / f"baseline_{k}"
        if k < n:
            for sub, src in (("gt", gt_dir), ("pred", pred_dir)):
                (base_dir / sub).mkdir(parents=True, exist_ok=True)
                for f in sorted(src.glob("*.nii.gz"))[:k]:
                    target = base_dir / sub / f.name
                    if not target.exists():
                        os.link(f, target)
        rows = []
        reference = None
        for processes in args.processes:
            start = time.perf_counter()
            ours = ours_folder(gt_dir, pred_dir, processes)
            t_ours = time.perf_counter() - start
            start = time.perf_counter()
            if k < n:
                base = straightforward_folder(base_dir / "gt", base_dir / "pred", processes)
                ours_k = ours_folder(base_dir / "gt", base_dir / "pred", processes)
            else:
                base = straightforward_folder(gt_dir, pred_dir, processes)
                ours_k = ours
            t_base = time.perf_counter() - start
            for key in ("gtvp_dice_mean", "gtvn_dice_agg", "gtvn_f1_agg"):
                assert abs(base[key] - ours_k[key]) < 1e-9, (key, base[key], ours_k[key])
            assert base["tp_fp_fn"] == ours_k["tp_fp_fn"], (base["tp_fp_fn"], ours_k["tp_fp_fn"])
            reference = reference or ours
            rows.append((processes, t_ours / n, t_base / k))
        print(f"figures (identical for both implementations): GTVp Dice {reference['gtvp_dice_mean']:.4f}, "
              f"GTVn DSCagg {reference['gtvn_dice_agg']:.4f}, GTVn F1agg {reference['gtvn_f1_agg']:.4f}, "
              f"TP/FP/FN {reference['tp_fp_fn']}")
        extrapolated = "" if n == 400 else f" (extrapolated linearly from {n})"
        print(f"{'processes':>9} | {'ours s/patient':>14} | {'straightforward s/patient':>25} | {'ratio':>6} | "
              f"ours for 400 patients{extrapolated}")
        for processes, ours_s, base_s in rows:
            print(f"{processes:>9} | {ours_s:>14.3f} | {base_s:>25.3f} | {base_s / ours_s:>6.1f} | "
                  f"{ours_s * 400 / 60:.1f} min (straightforward {base_s * 400 / 60:.1f} min)")
        if k < n:
            print(f"(straightforward timed on the first {k} patients; ours on all {n})")
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
