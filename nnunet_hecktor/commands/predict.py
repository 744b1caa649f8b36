"""``nnunet-hecktor predict``: segmentations on the original CT grids, HPV status and risk per patient."""

from __future__ import annotations

import argparse

NAME = "predict"
ORDER = 30
HELP = "predict new patients: <PID>.nii.gz on the original CT grid + predictions.csv (HPV, risk), folds ensembled"
DESCRIPTION = """\
Predict every patient of INPUT with a trained multi-task model (HecktorMultiTaskTrainer or a variant).

INPUT is a HECKTOR folder (release root with 'Task 1'..., one task folder, or a flat folder of
<PID>__CT.nii.gz / <PID>__PT.nii.gz: the converter's preprocessing recorded in the model is
repeated) or an nnU-Net imagesTs-style folder (<PID>_0000 CT, <PID>_0001 PET already on the CT grid).

OUTPUT receives:
  <PID>.nii.gz               uint8 labels 0 background, 1 GTVp, 2 GTVn on the patient's original CT grid
  predictions.csv            PatientID,hpv_probability,hpv_status,risk
                             (hpv_status 1 = HPV positive; risk higher = earlier relapse)
  predictions_per_fold.csv   the same per fold (+ the fold's HPV threshold and head-patch centre)
  predictions_clinical_substitutions.csv
                             PatientID,field,value,used,reason: every clinical value not used as given
  prediction_settings.json   model, folds, checkpoint, preprocessing, ensembling rules, warnings

Clinical values are advisory: unknown columns and CenterID are not read; Karnofsky 10-100, M1a/M1b/M1c
and spelled-out sexes (Male/M/Female/F...) are mapped; any other value that cannot be parsed or is out
of range (e.g. Age 121) is treated as missing, with a warning naming patient, column and value.

Folds are ensembled as nnU-Net does for the segmentation (mean logits); hpv_probability = mean of
the folds' probabilities, hpv_status = probability >= mean of the folds' stored thresholds,
risk = mean of the folds' raw risks. Mirroring (test-time augmentation) applies to both.

example:
  nnunet-hecktor predict -i /data/hecktor_test -o predictions \\
      -m $nnUNet_results/Dataset501_HECKTOR/HecktorMultiTaskTrainer__nnUNetPlans__3d_fullres \\
      -f 0 1 2 3 4 --device cuda --postprocessing pp.json

By default each fold's deployed weights are used: checkpoint_final.pth, which holds the weights the
training validated (the SWA average); for models trained before checkpoint layout 2,
checkpoint_swa.pth. --checkpoint names another file (e.g. checkpoint_final_last_iterate.pth).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", required=True, help="HECKTOR folder or nnU-Net imagesTs-style folder")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument("-m", "--model", required=True,
                        help="trained model folder ($nnUNet_results/DatasetNNN_X/<Trainer>__<Plans>__<config>)")
    parser.add_argument("-f", "--folds", nargs="+", default=None,
                        help="folds to ensemble (default: every fold with the checkpoint)")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint file in each fold (default: the validated weights, see below)")
    parser.add_argument("--clinical", default=None,
                        help="clinical CSV (HECKTOR column names; empty = missing). Default: the task CSVs of a "
                             "HECKTOR input folder, else all clinical inputs missing")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    parser.add_argument("--postprocessing", default=None, help="post-processing JSON (tune-postprocessing output)")
    parser.add_argument("--no-mirroring", action="store_true", help="disable test-time mirroring (faster)")
    parser.add_argument("--step-size", type=float, default=0.5,
                        help="sliding-window step as a fraction of the patch (default 0.5)")
    parser.add_argument("--segmentation-only", action="store_true",
                        help="write only segmentations (needed for models without HPV/risk heads)")
    parser.add_argument("--patients", nargs="+", default=None, help="predict only these PatientIDs")
    parser.add_argument("--crops", default=None,
                        help="converter crop records for imagesTs-style input (default: INPUT/../crops if present)")
    parser.add_argument("--threads", type=int, default=None,
                        help="PyTorch CPU threads (default: PyTorch's choice; 1 helps on an oversubscribed machine)")
    parser.add_argument("--previous-stage", default=None,
                        help="3d_cascade_fullres models: the 3d_lowres model folder (default: nnU-Net's sibling "
                             "folder <Trainer>__<Plans>__3d_lowres)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def run(args: argparse.Namespace) -> int:
    from nnunet_hecktor.prediction.api import predict

    predict(args.input, args.output, args.model, clinical_csv=args.clinical, folds=args.folds,
            checkpoint=args.checkpoint, device=args.device, postprocessing=args.postprocessing,
            use_mirroring=not args.no_mirroring, tile_step_size=args.step_size,
            segmentation_only=args.segmentation_only, patients=args.patients, crops_dir=args.crops,
            num_threads=args.threads, previous_stage=args.previous_stage, progress=not args.quiet)
    return 0
