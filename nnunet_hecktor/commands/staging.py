"""``nnunet-hecktor staging fit|predict``: patient-level T and N stage (HECKTOR 2026; thin wrapper)."""

from __future__ import annotations

import argparse

from nnunet_hecktor.commands._options import require

NAME = "staging"
ORDER = 53
HELP = "fit / apply the patient-level T and N stage classifiers (AJCC 7; mask geometry + clinical inputs)"
DESCRIPTION = """\
fit: cross-validate two class-weighted multinomial logistic regressions (T stage, N stage; L2 penalty
chosen inside each training fold on balanced accuracy) on the staging geometry of the segmentations
(largest diameters, extents, node count and sizes, node sides relative to the primary and midline)
and the clinical inputs the edition supplies at test time (2026: HPV status included; CenterID
never); score the AJCC 7 geometry rule on the same patients and compare by paired bootstrap; refit
on all patients. Features must come from predicted (out-of-fold) segmentations unless
--allow-ground-truth-features. Writes OUTPUT/model.joblib, oof_predictions.csv and cv_summary.json.
--feature-set clinical fits the clinical-only baseline.

predict: write PatientID,t_stage,n_stage,p_T0..p_T4,p_N0..p_N3 (canonical labels; probabilities).

The fitted model goes into a model folder with
'nnunet-hecktor prognosis stage --model MODEL --tn-stage OUTPUT/model.joblib'.

examples:
  nnunet-hecktor staging fit --features features_cv.csv --clinical clinical.csv --output staging_model
  nnunet-hecktor staging fit --features features_cv.csv --clinical clinical.csv --feature-set clinical \\
      --output staging_clinical_only
  nnunet-hecktor staging predict --model-file staging_model/model.joblib --features features_test.csv \\
      --clinical clinical_test.csv --output stages.csv
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nnunet_hecktor.commands.prognosis import add_common_fit_arguments, add_common_predict_arguments

    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fit = actions.add_parser("fit", help="cross-validate, refit and save the T/N stage model")
    add_common_fit_arguments(fit)
    fit.add_argument("--image-columns", choices=("staging", "all"), default="staging",
                     help="image inputs: the staging geometry features (default) or every feature of the table")
    fit.add_argument("--edition", default="2026",
                     help="HECKTOR edition whose test-time clinical inputs are permitted (default 2026)")
    predict = actions.add_parser("predict", help="T and N stage from a saved staging model")
    add_common_predict_arguments(predict)


def run(args: argparse.Namespace) -> int:
    from nnunet_hecktor.prognosis.stage_io import plain_warnings

    with plain_warnings():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from nnunet_hecktor.prognosis.staging_fit import fit_staging, predict_staging

    if args.action == "fit":
        fit_staging(args.clinical, args.output, features_csv=args.features, feature_set=args.feature_set,
                    image_columns=args.image_columns, cv=args.cv, n_splits=args.cv_folds, random_state=args.seed,
                    allow_ground_truth_features=args.allow_ground_truth_features,
                    clinical_columns=args.clinical_columns, edition=args.edition, progress=not args.quiet)
    else:
        predict_staging(require(args, "model_file", "--model-file"), args.output,
                    features_csv=args.features, clinical_csv=args.clinical)
    return 0
