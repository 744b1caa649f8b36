"""Per-patient time of the feature table's default features and of ``--radiomics shape|all``.

Usage::

    python benchmarks/bench_radiomics.py --gtvp-ml 5 20 60 --repeats 2

Each patient is a HECKTOR-like crop on a CT grid of 0.98 x 0.98 x 3 mm (z 3 mm): a lumpy GTVp of
the given volume (smoothed-noise boundary, PET falling off from its centre plus noise, soft-tissue
CT with noise) and two nodes of about 3 mL. Whole HECKTOR CT grids are larger, but every feature
is measured in the lesions' bounding box, so the crop is what the time depends on. One process,
one thread; MIRP's import (several seconds, once per process) is left out of the per-patient
times and printed separately. Prints one row per GTVp volume: seconds for the default features
(``compute_features``), and for the MIRP block at ``shape`` and ``all`` (added to the default).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

SPACING_ZYX = (3.0, 0.98, 0.98)


def make_patient(gtvp_ml: float, seed: int = 0):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    shape = (60, 200, 200)
    z, y, x = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, SPACING_ZYX)], indexing="ij")
    centre = np.array([90.0, 98.0, 80.0])
    radius = (3.0 * gtvp_ml * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
    r = np.sqrt((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2)
    lumps = ndimage.gaussian_filter(rng.normal(size=shape), 3.0)
    lumps *= 0.25 * radius / lumps.std()
    seg = np.zeros(shape, np.uint8)
    seg[r + lumps <= radius] = 1
    for node_centre in ([80.0, 110.0, 140.0], [110.0, 80.0, 150.0]):
        rn = np.sqrt((z - node_centre[0]) ** 2 + (y - node_centre[1]) ** 2 + (x - node_centre[2]) ** 2)
        seg[rn <= 9.0] = 2
    pet = np.clip(12.0 - 0.3 * r, 1.0, None) + rng.normal(0.0, 0.4, shape)
    ct = 40.0 + rng.normal(0.0, 25.0, shape)
    return ct.astype(np.float32), pet.astype(np.float32), seg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gtvp-ml", type=float, nargs="+", default=[5.0, 20.0, 60.0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from nnunet_hecktor.prognosis.patient_features import compute_features
    from nnunet_hecktor.prognosis.radiomics import radiomics_feature_names, radiomics_features

    start = time.perf_counter()
    import mirp  # noqa: F401

    print(f"MIRP import: {time.perf_counter() - start:.1f} s (once per process)")
    for level in ("shape", "all"):
        start = time.perf_counter()
        names = radiomics_feature_names(level)
        print(f"{level}: {len(names)} columns, learned in {time.perf_counter() - start:.1f} s (once per process)")

    print(f"{'GTVp mL':>8} {'voxels':>8} {'default s':>10} {'shape s':>8} {'all s':>8}")
    for gtvp_ml in args.gtvp_ml:
        ct, pet, seg = make_patient(gtvp_ml)
        times = {"default": [], "shape": [], "all": []}
        for _ in range(args.repeats):
            start = time.perf_counter()
            compute_features(ct, pet, seg, SPACING_ZYX)
            times["default"].append(time.perf_counter() - start)
            for level in ("shape", "all"):
                start = time.perf_counter()
                radiomics_features(ct, pet, seg, SPACING_ZYX, level)
                times[level].append(time.perf_counter() - start)
        measured = float(np.count_nonzero(seg == 1)) * float(np.prod(SPACING_ZYX)) / 1000.0
        print(f"{measured:8.1f} {int(np.count_nonzero(seg)):8d} {min(times['default']):10.2f} "
              f"{min(times['shape']):8.2f} {min(times['all']):8.2f}")


if __name__ == "__main__":
    main()
