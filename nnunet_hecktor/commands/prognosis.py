"""``nnunet-hecktor prognosis fit|predict``: patient-level recurrence-free-survival model (thin wrapper)."""

from __future__ import annotations

import argparse

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

stage: copy fitted models into MODEL/prognosis/ (survival.joblib from 'prognosis fit', hpv.joblib from
'hpv fit', stage.joblib from 'staging fit'); 'nnunet-hecktor predict -m MODEL' and the challenge
container then take risk/HPV (and T/N stage) from them.

examples:
  nnunet-hecktor prognosis fit --features features_cv.csv --clinical clinical.csv --output prognosis_model
  nnunet-hecktor prognosis fit --features features_cv.csv --clinical clinical.csv --cv centre --output loco
  nnunet-hecktor prognosis predict --model prognosis_model/model.joblib --features features_test.csv \\
      --clinical clinical_test.csv --output predictions.csv
  nnunet-hecktor prognosis stage --model $nnUNet_results/Dataset501_HECKTOR/<Trainer>__nnUNetPlans__3d_fullres \
      --survival prognosis_model/model.joblib --hpv hpv_model/model.joblib
"""


def add_common_fit_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by 'prognosis fit' and 'hpv fit'."""
    parser.add_argument("--clinical", required=True,
                        help="clinical CSV with the targets (e.g. the converter's clinical.csv)")
    parser.add_argument("--features", default=None, help="feature table of 'nnunet-hecktor features'")
    parser.add_argument("--output", required=True, help="output folder (created)")
    parser.add_argument("--feature-set", choices=("all", "image", "clinical"), default="all",
                        help="inputs: clinical + image features (default), image only, or clinical only (baseline)")
    parser.add_argument("--clinical-columns", nargs="+", default=None, metavar="COLUMN",
                        help="clinical predictors (default: every known one present; CenterID never)")
    parser.add_argument("--cv", choices=("kfold", "centre"), default="kfold",
                        help="stratified k-fold (default) or leave-one-centre-out")
    parser.add_argument("--folds", type=int, default=5, help="folds of --cv kfold (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--allow-ground-truth-features", action="store_true",
                        help="train on features of ground-truth segmentations (warned: deployment sees predicted ones)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary: only warnings and errors")


def add_common_predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model.joblib written by fit")
    parser.add_argument("--features", default=None, help="feature table (needed when the model uses image features)")
    parser.add_argument("--clinical", default=None, help="clinical CSV (needed when the model uses clinical variables)")
    parser.add_argument("--output", required=True, help="predictions CSV to write")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fit = actions.add_parser("fit", help="cross-validate, choose, refit and save the survival model")
    add_common_fit_arguments(fit)
    fit.add_argument("--models", nargs="+", default=["coxnet", "rsf", "gbsa", "icare"],
                     choices=("coxnet", "rsf", "gbsa", "icare"), help="candidate models (default: all four)")
    fit.add_argument("--final", default="best", choices=("best", "ensemble", "coxnet", "rsf", "gbsa", "icare"),
                     help="final model: best cross-validated (default), the ensemble, or a named model")
    fit.add_argument("--num-processes", type=int, default=1, help="threads of the random survival forest (default 1)")
    predict = actions.add_parser("predict", help="risk scores from a saved survival model")
    add_common_predict_arguments(predict)
    stage = actions.add_parser("stage", help="put fitted survival/HPV models into a model folder's prognosis/ "
                                             "(used by predict and the challenge container)")
    stage.add_argument("--model", required=True, help="trained model folder (receives prognosis/)")
    stage.add_argument("--survival", default=None, help="model.joblib of 'prognosis fit' (or its output folder)")
    stage.add_argument("--hpv", default=None, help="model.joblib of 'hpv fit' (or its output folder)")
    stage.add_argument("--tn-stage", default=None,
                       help="model.joblib of 'staging fit' (T and N stage; or its output folder)")


def run(args: argparse.Namespace) -> int:
    from nnunet_hecktor.prognosis.stage_io import plain_warnings

    with plain_warnings():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from nnunet_hecktor.prognosis.survival_stage import fit_survival, predict_survival

    if args.action == "stage":
        from nnunet_hecktor.prognosis.deployment import stage_into_model

        for task, path in stage_into_model(args.model, args.survival, args.hpv, args.tn_stage).items():
            print(f"{task} model -> {path}")
        return 0
    if args.action == "fit":
        fit_survival(args.clinical, args.output, features_csv=args.features, feature_set=args.feature_set,
                     models=args.models, final=args.final, cv=args.cv, n_splits=args.folds, random_state=args.seed,
                     allow_ground_truth_features=args.allow_ground_truth_features,
                     clinical_columns=args.clinical_columns, n_jobs=args.num_processes, progress=not args.quiet,
                     make_plots=not args.no_plots)
    else:
        predict_survival(args.model, args.output, features_csv=args.features, clinical_csv=args.clinical)
    return 0
