"""``nnunet-hecktor hpv fit|predict``: patient-level HPV status classifier (thin wrapper)."""

from __future__ import annotations

import argparse

from nnunet_hecktor.commands._options import require

NAME = "hpv"
ORDER = 52
HELP = "fit / apply the patient-level HPV classifier (threshold for balanced accuracy, prevalence shift)"
DESCRIPTION = """\
fit: cross-validate a well-regularised logistic regression (optionally calibrated) on clinical
variables, image features and the network's HPV probability (net_hpv_probability, when the feature
table has it); choose the decision threshold by the package's threshold policy (the training
prevalence of HPV positives, the Bayes rule for balanced accuracy; --threshold-rule search maximises
balanced accuracy on the out-of-fold probabilities instead); refit on all patients. Preprocessing is
fitted inside each training fold; the reported cross-validated balanced accuracy uses thresholds
chosen inside each training fold.
Writes OUTPUT/model.joblib, oof_predictions.csv, cv_summary.json and roc_oof.png.

predict: write PatientID,hpv_probability,hpv_status (1 = HPV positive). With --expected-prevalence the
probabilities are corrected for the new site's share of HPV-positive patients (odds scaled by the
prior-odds ratio) and the threshold is mapped with them: the balanced-accuracy decision is unchanged
under pure label shift; --decision accuracy thresholds the corrected probability at 0.5 instead.

examples:
  nnunet-hecktor hpv fit --features features_cv.csv --clinical clinical.csv --output hpv_model
  nnunet-hecktor hpv predict --model-file hpv_model/model.joblib --features features_test.csv \\
      --clinical clinical_test.csv --expected-prevalence 0.6 --output hpv_predictions.csv
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nnunet_hecktor.commands.prognosis import add_common_fit_arguments, add_common_predict_arguments

    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fit = actions.add_parser("fit", help="cross-validate, choose the threshold, refit and save the HPV model")
    add_common_fit_arguments(fit)
    fit.add_argument("--calibration", choices=("none", "sigmoid", "isotonic"), default="none",
                     help="wrap the logistic regression in CalibratedClassifierCV (default none)")
    fit.add_argument("--threshold-rule", choices=("prevalence", "search"), default=None,
                     help="decision threshold: 'prevalence' (the package's policy, default) uses the training "
                          "prevalence of HPV positives (the Bayes rule for balanced accuracy on calibrated "
                          "probabilities); 'search' maximises balanced accuracy on the out-of-fold probabilities")
    fit.add_argument("--l1-ratio", type=float, default=None,
                     help="elastic-net mixing of the logistic regression: 0 = L2 (default), 1 = L1")
    predict = actions.add_parser("predict", help="HPV probability and status from a saved HPV model")
    add_common_predict_arguments(predict)
    predict.add_argument("--expected-prevalence", type=float, default=None, metavar="P",
                         help="share of HPV-positive patients expected at this site (0-1)")
    predict.add_argument("--decision", choices=("balanced_accuracy", "accuracy"), default="balanced_accuracy",
                         help="decision rule after a prevalence correction (default balanced_accuracy)")
    predict.add_argument("--threshold", type=float, default=None,
                         help="override the fitted threshold (on the uncorrected probability)")


def run(args: argparse.Namespace) -> int:
    from nnunet_hecktor.prognosis.stage_io import plain_warnings

    with plain_warnings():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from nnunet_hecktor.prognosis.hpv_stage import fit_hpv, predict_hpv

    if args.action == "fit":
        penalty = {} if args.l1_ratio is None else {"l1_ratio": args.l1_ratio}
        if args.threshold_rule is not None:  # else fit_hpv's default: the package's one policy
            penalty["threshold_rule"] = args.threshold_rule
        fit_hpv(args.clinical, args.output, features_csv=args.features, feature_set=args.feature_set,
                calibration=args.calibration, cv=args.cv, n_splits=args.cv_folds, random_state=args.seed,
                allow_ground_truth_features=args.allow_ground_truth_features,
                clinical_columns=args.clinical_columns, progress=not args.quiet, make_plots=not args.no_plots,
                **penalty)
    else:
        predict_hpv(require(args, "model_file", "--model-file"), args.output,
                    features_csv=args.features, clinical_csv=args.clinical,
                    expected_prevalence=args.expected_prevalence, decision=args.decision, threshold=args.threshold)
    return 0
