"""Benchmark: post-processing time per patient at 512 x 512 x 200, and connected components of such a mask.

Reports, on synthetic predictions (random blobs, as in ``bench_evaluate.py``):

1. Connected components of the full 512x512x200 GTVn mask: ``cc3d`` on the full volume, cc3d after
   cropping to the foreground box (what the plugin does, box search included),
   ``scipy.ndimage.label`` and SimpleITK ``ConnectedComponent`` on the full volume.
2. ``postprocess_segmentation`` on the in-memory array with every rule but the probability
   threshold on (closing 2 mm on GTVn, minimum sizes, single GTVp, at most 6 nodes, GTVn within
   60 mm of the GTVp), and each rule alone.
3. The whole file round trip of ``postprocess_folder`` (read .nii.gz, post-process, atomic write).

Run:  python benchmarks/bench_postprocess.py --patients 10
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_evaluate import synthetic_pair  # noqa: E402  (benchmarks share the synthetic cohort)


def timed(function, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    import cc3d
    import SimpleITK as sitk
    from scipy import ndimage

    from nnunet_hecktor.metrics.components import bounding_box, label_components
    from nnunet_hecktor.postprocessing.apply import postprocess_folder
    from nnunet_hecktor.postprocessing.config import PostprocessingConfig
    from nnunet_hecktor.postprocessing.rules import postprocess_segmentation
    from nnunet_hecktor.postprocessing.tuning import set_coordinate

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=10, help="synthetic patients (default 10)")
    args = parser.parse_args()

    # Tuning coordinates (the names rule_steps uses too) and the values benchmarked.
    rules = {"closing:GTVn": 2.0, "min_size:GTVp": 200.0, "min_size:GTVn": 30.0, "gtvp_single_lesion": "remove",
             "max_components:GTVn": 6, "gtvn_distance": 60.0}
    config = PostprocessingConfig()
    for name, value in rules.items():
        config = set_coordinate(config, name, value)
    cases = [synthetic_pair(1000 + i) for i in range(args.patients)]

    # 1. connected components of a full-size mask
    mask = max((pred == 2 for _, pred, _ in cases), key=lambda m: int(m.sum()))
    full_cc3d = timed(lambda: cc3d.connected_components(mask, connectivity=26))

    def cropped():
        box = bounding_box(mask)
        return None if box is None else label_components(mask[box], 26)

    crop_cc3d = timed(cropped)
    scipy_full = timed(lambda: ndimage.label(mask, np.ones((3, 3, 3), bool)), 1)
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    sitk_full = timed(lambda: sitk.ConnectedComponent(image, True), 1)
    print(f"connected components of a 512x512x200 GTVn mask ({int(mask.sum())} voxels):")
    print(f"  cc3d full volume {full_cc3d * 1e3:8.1f} ms | crop to box + cc3d {crop_cc3d * 1e3:8.1f} ms | "
          f"scipy.ndimage.label {scipy_full * 1e3:8.1f} ms | SimpleITK ConnectedComponent {sitk_full * 1e3:8.1f} ms")

    # 2. in-memory post-processing
    totals, per_rule = [], {}
    for gt, pred, spacing_xyz in cases:
        spacing = spacing_xyz[::-1]
        totals.append(timed(lambda: postprocess_segmentation(pred, spacing, config), 1))
        for name, value in rules.items():
            single = set_coordinate(PostprocessingConfig(), name, value)
            per_rule.setdefault(name, []).append(timed(lambda: postprocess_segmentation(pred, spacing, single), 1))
    print(f"postprocess_segmentation, all rules, in memory: mean {np.mean(totals) * 1e3:.0f} ms, "
          f"max {np.max(totals) * 1e3:.0f} ms per patient ({len(cases)} patients)")
    print("  each rule alone (mean ms, includes the uint8 copy and the foreground box): "
          + ", ".join(f"{k} {np.mean(v) * 1e3:.0f}" for k, v in per_rule.items()))

    # 3. file round trip
    workdir = Path(tempfile.mkdtemp(prefix="bench_postprocess_"))
    try:
        (workdir / "in").mkdir()
        for i, (_, pred, spacing_xyz) in enumerate(cases):
            out = sitk.GetImageFromArray(pred)
            out.SetSpacing(spacing_xyz)
            sitk.WriteImage(out, str(workdir / "in" / f"BENCH-{i:03d}.nii.gz"), True)
        start = time.perf_counter()
        postprocess_folder(workdir / "in", workdir / "out", config, num_processes=1, progress=False)
        elapsed = time.perf_counter() - start
        print(f"postprocess_folder (read .nii.gz + all rules + atomic write), 1 process: "
              f"{elapsed / len(cases) * 1e3:.0f} ms per patient")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
