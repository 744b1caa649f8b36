"""``nnunet-hecktor predict``: segmentations on the original CT grids, HPV status and risk per patient."""

from __future__ import annotations

import argparse

from nnunet_hecktor.commands._options import add_checkpoint, add_device, add_folds, add_model_folder

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

Risk/HPV source: when MODEL/prognosis/ holds fitted prognosis-stage models (built there once by
'nnunet-hecktor prognosis build -m MODEL'), or --prognosis DIR names them, risk and/or HPV come from the stage:
features of each patient's predicted segmentation (CT, PET on the CT grid) + clinical values (missing
ones imputed by the stage), the stage's risk and HPV model with its stored threshold. The heads' values
are then kept as head_hpv_probability, head_hpv_status, head_risk. --heads-only uses the heads. A model
without heads (stock nnU-Net) gets risk/HPV from the stage. The source of each output is printed and
recorded in prediction_settings.json (output_sources, routing). A multi-task model without a staged
stage gets risk/HPV from the heads with a warning naming 'nnunet-hecktor prognosis build' (a model
folder exported with nnU-Net's own nnUNetv2_export_model_to_zip loses its stage; use
'nnunet-hecktor export-model'). Post-processing defaults to the model folder's own
(challenge_model.json's entry, else MODEL/postprocessing.json), as the stage was fitted with.

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
    add_model_folder(parser)
    add_folds(parser, "folds to ensemble (default: every fold with the checkpoint)")
    add_checkpoint(parser, "checkpoint file in each fold (default: the validated weights, see below)")
    parser.add_argument("--clinical", default=None,
                        help="clinical CSV (HECKTOR column names; empty = missing). Default: the task CSVs of a "
                             "HECKTOR input folder, else all clinical inputs missing")
    add_device(parser)
    parser.add_argument("--postprocessing", default=None, help="post-processing JSON (tune-postprocessing output)")
    parser.add_argument("--no-mirroring", action="store_true", help="disable test-time mirroring (faster)")
    parser.add_argument("--step-size", type=float, default=0.5,
                        help="sliding-window step as a fraction of the patch (default 0.5)")
    parser.add_argument("--segmentation-only", action="store_true",
                        help="write only segmentations (needed for models without HPV/risk heads)")
    parser.add_argument("--save-probabilities", action="store_true",
                        help="also write OUTPUT/<PID>.npz: nnU-Net's softmax before post-processing, on the CT grid "
                             "(for tune-postprocessing's probability thresholds; large for full-size CTs)")
    parser.add_argument("--patients", nargs="+", default=None, help="predict only these PatientIDs")
    parser.add_argument("--crops", default=None,
                        help="converter crop records for imagesTs-style input (default: INPUT/../crops if present)")
    parser.add_argument("--threads", type=int, default=None,
                        help="PyTorch CPU threads (default: PyTorch's choice; 1 helps on an oversubscribed machine)")
    parser.add_argument("--previous-stage", default=None,
                        help="3d_cascade_fullres models: the 3d_lowres model folder (default: nnU-Net's sibling "
                             "folder <Trainer>__<Plans>__3d_lowres)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--prognosis", default=None, metavar="DIR",
                        help="risk/HPV from the prognosis stage: a folder with survival.joblib and/or hpv.joblib "
                             "('prognosis stage'), or 'prognosis fit'/'hpv fit' output folders. Default: "
                             "MODEL/prognosis/ when it holds models, else the network heads")
    source.add_argument("--heads-only", action="store_true",
                        help="risk/HPV from the network heads even when MODEL/prognosis/ holds stage models")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def run(args: argparse.Namespace) -> int:
    import logging

    from nnunet_hecktor.prediction.api import predict
    from nnunet_hecktor.prognosis.deployment import STAGE_FOLDER, resolve_stage_models

    stage = resolve_stage_models(args.model, args.prognosis, args.heads_only)
    if stage is not None and args.prognosis is None:
        logging.getLogger("nnunet_hecktor.prediction.api").info(
            "risk/HPV: using the prognosis stage found in %s/%s/ (--heads-only to use the network heads)",
            args.model, STAGE_FOLDER)
    predict(args.input, args.output, args.model, clinical_csv=args.clinical, folds=args.folds,
            checkpoint=args.checkpoint, device=args.device, postprocessing=args.postprocessing,
            use_mirroring=not args.no_mirroring, tile_step_size=args.step_size,
            segmentation_only=args.segmentation_only, patients=args.patients, crops_dir=args.crops,
            num_threads=args.threads, previous_stage=args.previous_stage, progress=not args.quiet,
            prognosis=stage, warn_missing_stage=not args.heads_only, save_probabilities=args.save_probabilities)
    return 0
