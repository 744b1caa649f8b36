"""``nnunet-hecktor features``: image-derived features of a cohort (thin wrapper)."""

from __future__ import annotations

import argparse

NAME = "features"
ORDER = 50
HELP = "measure tumour features (volumes, SUV, TLG, nodes, distances, shape) per patient into one table"
DESCRIPTION = """\
Measure, for every patient that has a segmentation, image features in physical units from CT (HU),
PET (SUV) and the segmentation (0 background, 1 GTVp, 2 GTVn): GTVp/GTVn/total volume (mL),
SUVmax/SUVmean/SUVpeak (1 mL ball), TLG, GTVn lesion count (26-connected), GTVp-to-farthest-node
distance and lesion spread (mm), CT mean/std (HU), surface (mm^2) and sphericity. Absent structures
get defined values (0) plus gtvp_present/gtvn_present indicators; the table never holds NaN.
Surface and sphericity follow IBSI (marching-cubes mesh; sphericity <= 1).

--radiomics adds IBSI radiomics of the GTVp and of all GTVn together, computed by the MIRP library
(rad_* columns): 'shape' the morphology family (mesh volume/area, sphericity, compactness, PCA axes,
elongation, flatness, ...), 'all' also PET (SUV, bins of 0.5 SUV) and CT (HU, bins of 25 HU)
intensity statistics, histogram and texture (GLCM, GLRLM, GLSZM, GLDZM, NGTDM, NGLDM). Measured on
one core (benchmarks/bench_radiomics.py, GTVp 5-74 mL and two 3 mL nodes): 6-12 s per patient for
'shape' or 'all' (most of it MIRP's Moran's I / Geary's C), against 0.03-0.08 s for the default
features. Settings in the sidecar JSON.

Images: converter layout (<PID>_0000 CT, <PID>_0001 PET; IMAGES may be the dataset folder) or the
release layout (<PID>__CT, <PID>__PT; PET resampled onto the segmentation/CT grid). Segmentations:
<PID>.nii.gz in one or more folders (e.g. every fold_k/validation folder of a cross-validation).
The table records whether the segmentations are ground truth or predicted (column seg_source and the
sidecar JSON); 'prognosis fit' and 'hpv fit' train on predicted ones unless told otherwise.

examples:
  nnunet-hecktor features --images $nnUNet_raw/Dataset501_HECKTOR/imagesTr \\
      --seg $nnUNet_results/Dataset501_HECKTOR/HecktorMultiTaskTrainer__nnUNetPlans__3d_fullres/fold_*/validation \\
      --seg-source predicted --output features_cv.csv --num-processes 4
  nnunet-hecktor features --images /data/hecktor2025/Task\\ 1 --seg /data/hecktor2025/Task\\ 1 \\
      --seg-source ground_truth --output features_gt.csv
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", required=True, help="folder with the CT and PET images (either layout)")
    parser.add_argument("--seg", required=True, nargs="+", metavar="DIR",
                        help="folder(s) with <PID>.nii.gz segmentations on the CT grid")
    parser.add_argument("-o", "--output", required=True,
                        help="feature table to write (CSV; a .json sidecar goes next to it)")
    parser.add_argument("--seg-source", choices=("predicted", "ground_truth"), default=None,
                        help="what the segmentations are (default: inferred from the folder names; an error "
                             "when it cannot be)")
    parser.add_argument("--heads", default=None, metavar="CSV",
                        help="predictions.csv of 'nnunet-hecktor predict': adds net_hpv_probability / net_risk")
    parser.add_argument("-np", "--num-processes", type=int, default=None,
                        help="patients processed in parallel (default: CPU count, at most 8)")
    parser.add_argument("--radiomics", choices=("none", "shape", "all"), default="none",
                        help="add IBSI radiomics from MIRP: none (default), shape (morphology), all (shape, "
                             "PET/CT intensity and texture); needs pip install 'nnunet-hecktor[radiomics]'")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary: only warnings and errors")


def run(args: argparse.Namespace) -> int:
    from nnunet_hecktor.prognosis.stage_io import plain_warnings

    with plain_warnings():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import sys

    from nnunet_hecktor.prognosis.features import (
        default_num_processes,
        extract_features,
        write_feature_table,
    )

    features = extract_features(args.images, args.seg, seg_source=args.seg_source,
                                num_processes=args.num_processes or default_num_processes(),
                                heads_csv=args.heads, progress=not args.quiet,
                                radiomics=args.radiomics)
    table_path, sidecar = write_feature_table(features, args.output)
    table = features.table
    print(f"features of {len(table)} patients ({features.metadata['seg_source']} segmentations; "
          f"GTVp present in {int(table['gtvp_present'].sum())}, GTVn in {int(table['gtvn_present'].sum())}) "
          f"-> {table_path} (+ {sidecar.name})", file=sys.stderr)
    return 0
