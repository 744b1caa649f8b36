"""``nnunet-hecktor prognosis fit|predict``: patient-level recurrence-free-survival model (thin wrapper)."""

from __future__ import annotations

import argparse

from nnunet_hecktor.commands._options import (
    add_checkpoint,
    add_cv_folds,
    add_deprecated_alias,
    add_device,
    add_folds,
    add_model_folder,
    add_num_processes,
    require,
)

NAME = "prognosis"
ORDER = 51
HELP = "fit / apply the patient-level survival model (clinical + image features; risk higher = earlier relapse)"
DESCRIPTION = """\
fit: cross-validate scikit-survival models (elastic-net Cox 'coxnet', random survival forest 'rsf',
gradient-boosted Cox 'gbsa') and a bagged ICARE model ('icare') on clinical variables and image
features; keep out-of-fold risks; choose the model (or the ensemble of all) with the best pooled
out-of-fold C-index; refit it on all patients. Preprocessing is fitted inside each training fold.
Features must come from predicted (out-of-fold) segmentations unless --allow-ground-truth-features.
Writes OUTPUT/model.joblib, oof_predictions.csv, cv_summary.json and km_oof.png.

predict: write PatientID,risk (z-score of the training risks; higher = earlier relapse).

build: THE way to a deployed stage, once the folds are trained. Takes each fold's out-of-fold
predicted masks (fold_k/validation; missing ones are predicted with the fold's own checkpoint),
post-processes them as deployment will (the model folder's post-processing), measures the features,
fits every patient-level target the edition scores (2025: risk and HPV; 2026: risk, and T/N stage when
registered) with only the clinical inputs the edition supplies at test time (2025: no HPV status for
the risk), prints the cross-validated figures with 95 % CIs and stages the models in MODEL/prognosis/
(with stage.json). Working files go to MODEL/prognosis_build/.

stage: copy fitted models into MODEL/prognosis/ (survival.joblib from 'prognosis fit', hpv.joblib from
'hpv fit', stage.joblib from 'staging fit'); 'nnunet-hecktor predict -m MODEL' and the challenge
container then take risk/HPV (and T/N stage) from them.

examples:
  nnunet-hecktor prognosis build -m $nnUNet_results/Dataset501_HECKTOR/HecktorMultiTaskTrainer__nnUNetPlans__3d_fullres
  nnunet-hecktor prognosis build -m MODEL --edition 2026 --device cuda
  nnunet-hecktor prognosis fit --features features_cv.csv --clinical clinical.csv --output prognosis_model
  nnunet-hecktor prognosis fit --features features_cv.csv --clinical clinical.csv --cv centre --output loco
  nnunet-hecktor prognosis predict --model-file prognosis_model/model.joblib --features features_test.csv \\
      --clinical clinical_test.csv --output predictions.csv
  nnunet-hecktor prognosis stage --model $nnUNet_results/Dataset501_HECKTOR/<Trainer>__nnUNetPlans__3d_fullres \
      --survival prognosis_model/model.joblib --hpv hpv_model/model.joblib
"""


def add_common_fit_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by 'prognosis fit' and 'hpv fit'."""
    parser.add_argument("--clinical", required=True,
                        help="clinical CSV with the targets (e.g. the converter's clinical.csv)")
    parser.add_argument("--features", default=None, help="feature table of 'nnunet-hecktor features'")
    parser.add_argument("-o", "--output", required=True, help="output folder (created)")
    parser.add_argument("--feature-set", choices=("all", "image", "clinical"), default="all",
                        help="inputs: clinical + image features (default), image only, or clinical only (baseline)")
    parser.add_argument("--clinical-columns", nargs="+", default=None, metavar="COLUMN",
                        help="clinical predictors (default: every known one present; CenterID never)")
    parser.add_argument("--cv", choices=("kfold", "centre"), default="kfold",
                        help="stratified k-fold (default) or leave-one-centre-out")
    add_cv_folds(parser)
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--allow-ground-truth-features", action="store_true",
                        help="train on features of ground-truth segmentations (warned: deployment sees predicted ones)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary: only warnings and errors")


def add_common_predict_arguments(parser: argparse.ArgumentParser) -> None:
    # -m/--model is a trained nnU-Net model folder in every command; a fitted patient-level model is a file.
    parser.add_argument("--model-file", default=None, help="model.joblib written by fit (required)")
    add_deprecated_alias(parser, "--model", "model_file", "--model-file")
    parser.add_argument("--features", default=None, help="feature table (needed when the model uses image features)")
    parser.add_argument("--clinical", default=None, help="clinical CSV (needed when the model uses clinical variables)")
    parser.add_argument("-o", "--output", required=True, help="predictions CSV to write")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fit = actions.add_parser("fit", help="cross-validate, choose, refit and save the survival model")
    add_common_fit_arguments(fit)
    fit.add_argument("--models", nargs="+", default=["coxnet", "rsf", "gbsa", "icare"],
                     choices=("coxnet", "rsf", "gbsa", "icare"), help="candidate models (default: all four)")
    fit.add_argument("--final", default="best", choices=("best", "ensemble", "coxnet", "rsf", "gbsa", "icare"),
                     help="final model: best cross-validated (default), the ensemble, or a named model")
    add_num_processes(fit, "threads of the random survival forest (default 1)")
    predict = actions.add_parser("predict", help="risk scores from a saved survival model")
    add_common_predict_arguments(predict)
    build = actions.add_parser("build", help="fit and stage the patient-level models of a trained model folder as "
                                             "deployed (out-of-fold masks, post-processing, edition inputs)")
    add_build_arguments(build)
    stage = actions.add_parser("stage", help="put fitted survival/HPV models into a model folder's prognosis/ "
                                             "(used by predict and the challenge container)")
    add_model_folder(stage, help_text="trained model folder (receives prognosis/)")
    stage.add_argument("--survival", default=None, help="model.joblib of 'prognosis fit' (or its output folder)")
    stage.add_argument("--hpv", default=None, help="model.joblib of 'hpv fit' (or its output folder)")
    stage.add_argument("--tn-stage", default=None,
                       help="model.joblib of 'staging fit' (T and N stage; or its output folder)")


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    from nnunet_hecktor.editions import DEFAULT_EDITION, EDITIONS

    add_model_folder(parser)
    parser.add_argument("--edition", choices=sorted(EDITIONS), default=DEFAULT_EDITION,
                        help=f"HECKTOR edition: its targets and test-time inputs (default {DEFAULT_EDITION})")
    add_folds(parser)
    add_checkpoint(parser, "checkpoint for missing masks (default: the deployed weights)")
    parser.add_argument("--postprocessing", default=None,
                        help="post-processing JSON (default: the model folder's own, as deployment uses it)")
    parser.add_argument("--raw", default=None, help="converted dataset folder (default $nnUNet_raw/<dataset>)")
    parser.add_argument("--clinical", default=None, help="clinical CSV (default <raw>/clinical.csv)")
    parser.add_argument("--splits", default=None,
                        help="splits_final.json (default $nnUNet_preprocessed/<dataset>/splits_final.json)")
    parser.add_argument("--targets", nargs="+", default=None, metavar="TARGET",
                        help="only these targets (default: every target the edition scores)")
    add_device(parser)
    parser.add_argument("--cv", choices=("kfold", "centre"), default="kfold",
                        help="the stage's cross-validation: stratified k-fold (default) or leave-one-centre-out")
    parser.add_argument("--cv-folds", type=int, default=5, help="cross-validation folds of --cv kfold (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates of the CIs (default 1000)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def run(args: argparse.Namespace) -> int:
    from nnunet_hecktor.prognosis.stage_io import plain_warnings

    with plain_warnings():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from nnunet_hecktor.prognosis.survival_stage import fit_survival, predict_survival

    if args.action == "build":
        from nnunet_hecktor.model_folder.build import build_stage

        result = build_stage(args.model, edition=args.edition, folds=args.folds, checkpoint=args.checkpoint,
                             postprocessing=args.postprocessing, raw_dir=args.raw, clinical_csv=args.clinical,
                             splits_json=args.splits, device=args.device, n_splits=args.cv_folds, cv=args.cv,
                             random_state=args.seed, n_bootstrap=args.bootstrap, targets=args.targets,
                             progress=not args.quiet)
        if args.quiet:
            print(f"staged {', '.join(result.stage_files)} in {args.model}")
        return 0
    if args.action == "stage":
        from nnunet_hecktor.prognosis.deployment import stage_into_model

        for task, path in stage_into_model(args.model, args.survival, args.hpv, args.tn_stage).items():
            print(f"{task} model -> {path}")
        return 0
    if args.action == "fit":
        fit_survival(args.clinical, args.output, features_csv=args.features, feature_set=args.feature_set,
                     models=args.models, final=args.final, cv=args.cv, n_splits=args.cv_folds, random_state=args.seed,
                     allow_ground_truth_features=args.allow_ground_truth_features,
                     clinical_columns=args.clinical_columns, n_jobs=args.num_processes, progress=not args.quiet,
                     make_plots=not args.no_plots)
    else:
        predict_survival(require(args, "model_file", "--model-file"), args.output,
                    features_csv=args.features, clinical_csv=args.clinical)
    return 0
