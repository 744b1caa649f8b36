"""Survival and HPV models of the prognosis stage: leakage, thresholds, prevalence, persistence
(nnunet_hecktor.prognosis)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline
from test_prognosis_tables import make_tables

from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.metrics.classification import balanced_accuracy, best_balanced_accuracy_threshold, choose_threshold
from nnunet_hecktor.prognosis.cross_validation import cross_validate_classifier, cross_validate_survival, make_folds
from nnunet_hecktor.prognosis.hpv_models import adjust_for_prevalence, adjusted_decision, hpv_pipeline
from nnunet_hecktor.prognosis.hpv_stage import fit_hpv, predict_hpv
from nnunet_hecktor.prognosis.model_store import load_model
from nnunet_hecktor.prognosis.preprocessing import ColumnRoles, make_preprocessor
from nnunet_hecktor.prognosis.survival_models import survival_pipeline
from nnunet_hecktor.prognosis.survival_stage import fit_survival, predict_survival


@pytest.fixture()
def tables(tmp_path):
    features, clinical = make_tables()
    features.to_csv(tmp_path / "features.csv", index=False)
    clinical.to_csv(tmp_path / "clinical.csv", index=False)
    return tmp_path / "features.csv", tmp_path / "clinical.csv"


class RowRecorder(TransformerMixin, BaseEstimator):
    """Pass-through transformer remembering which rows (PatientIDs) it was fitted on."""

    def fit(self, X, y=None):
        self.fitted_rows_ = list(X.index)
        return self

    def transform(self, X):
        return X


ROLES = ColumnRoles(log_continuous=["gtvp_volume_ml"], continuous=["gtvn_lesion_count", "noise"])


def _xy():
    features, clinical = make_tables()
    keep = clinical["RFS"].notna().to_numpy()
    X = features.set_index("PatientID")[ROLES.all_columns][keep]
    return X, clinical["RFS"].to_numpy()[keep], clinical["Relapse"].to_numpy()[keep] == 1, \
        clinical["HPV Status"].to_numpy()[keep].astype(int)


def test_survival_cv_fits_every_fold_on_its_training_rows_only():
    X, time, event, _ = _xy()
    folds = make_folds(event.astype(int), n_splits=3)
    recorded = {name: Pipeline([("record", RowRecorder())] + survival_pipeline(ROLES, name).steps)
                for name in ("icare", "coxnet")}
    result = cross_validate_survival(X, time, event, recorded, folds, keep_fitted=True)
    for name in recorded:
        for fold, model in zip(folds, result.fitted[name]):
            seen = set(model.named_steps["record"].fitted_rows_)
            assert seen == set(X.index[fold.train])
            assert not seen & set(X.index[fold.validation])
            # the fold's scaler was estimated from its training rows only
            scaler = model.named_steps["preprocess"].named_transformers_["continuous"].named_steps["scale"]
            np.testing.assert_allclose(scaler.mean_, X.iloc[fold.train][["gtvn_lesion_count", "noise"]].mean())
    assert set(result.oof_risk) == {"icare", "coxnet", "ensemble"}
    assert not np.isnan(result.oof_risk["ensemble"]).any()


def test_validation_outcomes_never_change_that_folds_predictions():
    X, time, event, hpv = _xy()
    folds = make_folds(event.astype(int), n_splits=3)
    candidates = {"icare": survival_pipeline(ROLES, "icare").set_params(model__n_estimators=20)}
    base = cross_validate_survival(X, time, event, candidates, folds)
    v = folds[0].validation
    time2, event2 = time.copy(), event.copy()
    time2[v], event2[v] = time[v][::-1], ~event[v]  # scramble fold 0's outcomes
    moved = cross_validate_survival(X, time2, event2, candidates, folds)
    np.testing.assert_allclose(moved.oof_risk["icare"][v], base.oof_risk["icare"][v])

    hfolds = make_folds(hpv, n_splits=3)
    estimator = hpv_pipeline(ROLES)
    hv = hfolds[1].validation
    hpv2 = hpv.copy()
    hpv2[hv] = 1 - hpv[hv]
    for rule in ("prevalence", "search"):
        base = cross_validate_classifier(X, hpv, estimator, hfolds, threshold_rule=rule)
        moved = cross_validate_classifier(X, hpv2, estimator, hfolds, threshold_rule=rule)
        np.testing.assert_allclose(moved.oof_probability[hv], base.oof_probability[hv])
        assert moved.fold_thresholds[hfolds[1].name] == base.fold_thresholds[hfolds[1].name]
        if rule == "prevalence":  # the other folds' thresholds follow their (changed) training labels
            assert moved.fold_thresholds[hfolds[0].name] == pytest.approx(hpv2[hfolds[0].train].mean())


def test_hpv_cv_records_training_rows_and_chooses_thresholds_inside_training_folds():
    X, _, _, hpv = _xy()
    folds = make_folds(hpv, n_splits=3)
    estimator = Pipeline([("record", RowRecorder())] + hpv_pipeline(ROLES).steps)
    result = cross_validate_classifier(X, hpv, estimator, folds, keep_fitted=True)
    for fold, model in zip(folds, result.fitted):
        assert set(model.named_steps["record"].fitted_rows_) == set(X.index[fold.train])
        assert np.all(result.nested_threshold[fold.validation] == result.fold_thresholds[fold.name])
    assert not np.isnan(result.oof_probability).any()


def test_leave_one_centre_out_folds_hold_exactly_one_centre():
    groups = np.array(["MDA", "CHUP", "MDA", "HGJ", "CHUP", "MDA"])
    folds = make_folds(np.array([1, 0, 0, 1, 1, 0]), groups, scheme="centre")
    assert sorted(f.name for f in folds) == ["CHUP", "HGJ", "MDA"]
    for fold in folds:
        assert set(groups[fold.validation]) == {fold.name}
        assert fold.name not in set(groups[fold.train])
    with pytest.raises(HecktorError, match="at least two centres"):
        make_folds(np.array([1, 0]), np.array(["MDA", "MDA"]), scheme="centre")


@pytest.mark.parametrize("p, pi_train, pi_new, expected", [
    (0.5, 0.5, 0.5, 0.5),
    (0.9, 0.9, 0.5, 0.5),  # odds 9 scaled by 1/9
    (0.5, 0.8, 0.5, 0.2),  # odds 1 x (1 / 4) = 0.25 -> 0.2
    (0.6, 0.5, 0.75, 9 / 11),  # odds 1.5 x 3 = 4.5 -> 4.5 / 5.5
    (0.0, 0.9, 0.5, 0.0),
    (1.0, 0.9, 0.5, 1.0),
])
def test_prevalence_adjustment_hand_checked(p, pi_train, pi_new, expected):
    assert adjust_for_prevalence(np.array([p]), pi_train, pi_new)[0] == pytest.approx(expected)


def test_prevalence_adjustment_matches_bayes_rule_under_label_shift():
    # Class-conditional densities N(+1, 1) (positive) and N(-1, 1): posterior at prevalence pi is
    # sigmoid(2x + logit(pi)). Adjusting the posterior at 0.9 to 0.3 must give the one at 0.3.
    x = np.linspace(-3, 3, 13)

    def posterior(pi):
        return 1 / (1 + np.exp(-(2 * x + np.log(pi / (1 - pi)))))

    np.testing.assert_allclose(adjust_for_prevalence(posterior(0.9), 0.9, 0.3), posterior(0.3), rtol=1e-10)
    np.testing.assert_allclose(adjust_for_prevalence(adjust_for_prevalence(posterior(0.9), 0.9, 0.3), 0.3, 0.9),
                               posterior(0.9), rtol=1e-10)
    with pytest.raises(ValueError, match="strictly between"):
        adjust_for_prevalence(x, 0.9, 1.0)


def test_balanced_accuracy_decision_is_unchanged_by_a_prevalence_shift():
    rng = np.random.default_rng(0)
    p = rng.random(200)
    p_new, t_new, labels = adjusted_decision(p, 0.83, 0.9, 0.4)
    np.testing.assert_array_equal(labels, (p >= 0.83).astype(int))
    assert t_new == pytest.approx(adjust_for_prevalence(np.array([0.83]), 0.9, 0.4)[0])
    assert np.all(p_new < p)  # lower prevalence -> lower probabilities
    _, t_acc, labels_acc = adjusted_decision(p, 0.83, 0.9, 0.4, decision="accuracy")
    assert t_acc == 0.5
    np.testing.assert_array_equal(labels_acc, (p_new >= 0.5).astype(int))


def test_hpv_fit_default_policy_thresholds_at_training_prevalence(tables, tmp_path):
    features_csv, clinical_csv = tables
    fit = fit_hpv(clinical_csv, tmp_path / "hpv", features_csv=features_csv, n_splits=3, progress=False,
                  make_plots=False)  # the package's policy: the prevalence rule
    oof = fit.oof
    y = oof["HPV Status"].to_numpy()
    assert fit.summary["threshold_rule"] == "prevalence"
    assert fit.model.threshold == pytest.approx(y.mean()) == pytest.approx(fit.model.training_prevalence)
    for fold, rows in oof.groupby("fold"):  # each fold's threshold = prevalence of the OTHER folds' rows
        others = oof.loc[oof["fold"] != fold, "HPV Status"].to_numpy()
        np.testing.assert_allclose(rows["fold_threshold"].to_numpy(), others.mean())
    honest = fit.summary["cross_validation"]["nested_threshold"]["balanced_accuracy"]
    assert honest == pytest.approx(balanced_accuracy(y, oof["hpv_status_fold_threshold"]))
    assert fit.summary["cross_validation"]["nested_threshold"]["auc"] > 0.6


@pytest.mark.parametrize("y, rule, prob, expected", [
    ([1, 1, 1, 0], "prevalence", None, 0.75),
    ([1, 0, 0, 0, 0], "prevalence", None, 0.2),
    ([1, 1, 1], "prevalence", None, 0.5),  # one class only
    ([0, 0, 1, 1], "search", [0.1, 0.3, 0.6, 0.9], 0.45),  # midway between the separating scores
])
def test_choose_threshold_hand_checked(y, rule, prob, expected):
    assert choose_threshold(np.array(y), rule, None if prob is None else np.array(prob)) == pytest.approx(expected)


def test_choose_threshold_rejects_unknown_rule_and_search_without_probabilities():
    with pytest.raises(ValueError, match="threshold rule"):
        choose_threshold(np.array([0, 1]), "youden")
    with pytest.raises(ValueError, match="out-of-fold"):
        choose_threshold(np.array([0, 1]), "search")


def test_hpv_fit_search_rule_maximises_oof_balanced_accuracy(tables, tmp_path):
    features_csv, clinical_csv = tables
    fit = fit_hpv(clinical_csv, tmp_path / "hpv", features_csv=features_csv, n_splits=3, progress=False,
                  make_plots=False, threshold_rule="search")
    assert fit.summary["threshold_rule"] == "search"
    oof = fit.oof
    assert (tmp_path / "hpv" / "oof_predictions.csv").is_file()
    y, p = oof["HPV Status"].to_numpy(), oof["hpv_probability"].to_numpy()
    assert fit.model.threshold == best_balanced_accuracy_threshold(y, p)
    best = balanced_accuracy(y, (p >= fit.model.threshold).astype(int))
    for t in np.unique(p):  # no threshold does better on these predictions
        assert balanced_accuracy(y, (p >= t).astype(int)) <= best + 1e-12
    honest = fit.summary["cross_validation"]["nested_threshold"]["balanced_accuracy"]
    assert honest == pytest.approx(balanced_accuracy(y, oof["hpv_status_fold_threshold"]))
    assert fit.model.training_prevalence == pytest.approx(y.mean())
    assert "HPV Status" not in fit.model.clinical_columns and "CenterID" not in fit.model.clinical_columns
    assert fit.summary["cross_validation"]["nested_threshold"]["auc"] > 0.6

    # The in-memory API (a challenge container's path) gives what predict_hpv writes.
    from nnunet_hecktor.clinical import read_clinical_csv
    from nnunet_hecktor.prognosis.features import read_feature_table
    from nnunet_hecktor.prognosis.hpv_stage import hpv_prediction, predict_hpv

    written = predict_hpv(tmp_path / "hpv" / "model.joblib", tmp_path / "p.csv", features_csv, clinical_csv)
    frame, threshold = hpv_prediction(fit.model, read_feature_table(features_csv), read_clinical_csv(clinical_csv))
    assert threshold == fit.model.threshold
    np.testing.assert_allclose(frame["hpv_probability"].to_numpy(), written["hpv_probability"].to_numpy())
    np.testing.assert_array_equal(frame["hpv_status"].to_numpy(), written["hpv_status"].to_numpy())


def test_saved_models_predict_identically_and_check_their_inputs(tables, tmp_path):
    features_csv, clinical_csv = tables
    fit_survival(clinical_csv, tmp_path / "surv", features_csv=features_csv, models=("icare", "coxnet"),
                 n_splits=3, progress=False, make_plots=False)
    model = load_model(tmp_path / "surv" / "model.joblib", task="survival")
    assert model.image_columns == ["gtvp_volume_ml", "gtvn_lesion_count", "total_suvmax", "noise"]
    assert model.versions["scikit-learn"] and model.seg_source == "predicted"
    pred = predict_survival(tmp_path / "surv" / "model.joblib", tmp_path / "pred.csv", features_csv, clinical_csv)
    features, _ = make_tables()
    from nnunet_hecktor.prognosis.stage_io import load_prediction_inputs

    direct = model.estimator.predict(load_prediction_inputs(model, features_csv, clinical_csv).frame)
    np.testing.assert_allclose(pred["risk"], direct)
    assert list(pred["PatientID"]) == list(features["PatientID"])
    assert abs(pred["risk"].mean()) < 0.2  # z-score of the training risks

    # One patient in memory, as in a challenge container: the lenient ehr.json reader reads every
    # column the model uses (HPV Status included); missing keys and unusable values are imputed.
    import json

    from nnunet_hecktor.clinical import read_inference_ehr_json
    from nnunet_hecktor.prognosis.survival_stage import survival_risk

    assert "HPV Status" in model.clinical_columns
    one = features.set_index("PatientID").iloc[[5]]
    pid = one.index[0]
    ehr = tmp_path / "ehr.json"
    ehr.write_text(json.dumps({"Age": 121, "Gender": 1, "HPV Status": 1}))
    record, substitutions = read_inference_ehr_json(ehr, pid, columns=tuple(model.clinical_columns))
    assert record["Age"] is None and record["HPV Status"] == 1 and record["Gender"] == 1
    assert [(s.column, s.is_missing) for s in substitutions] == [("Age", True)]
    single = survival_risk(model, one, {pid: record})
    assert list(single.index) == [pid] and np.isfinite(single.iloc[0])
    # HPV Status is read, not dropped: a negative patient gets another risk.
    ehr.write_text(json.dumps({"Age": 121, "Gender": 1, "HPV Status": 0}))
    negative = survival_risk(model, one, {pid: read_inference_ehr_json(ehr, pid, tuple(model.clinical_columns))[0]})
    assert negative.iloc[0] != single.iloc[0]

    with pytest.raises(HecktorError, match="is a survival model"):
        load_model(tmp_path / "surv" / "model.joblib", task="hpv")
    features.drop(columns=["noise", "total_suvmax"]).to_csv(tmp_path / "fewer.csv", index=False)
    with pytest.raises(HecktorError, match="lacks 2 feature.*total_suvmax, noise"):
        predict_survival(tmp_path / "surv" / "model.joblib", tmp_path / "p2.csv", tmp_path / "fewer.csv", clinical_csv)
    clinical = pd.read_csv(clinical_csv).drop(columns=["Age"])
    clinical.to_csv(tmp_path / "no_age.csv", index=False)
    with pytest.raises(HecktorError, match="clinical table .*lacks column.*Age"):
        predict_survival(tmp_path / "surv" / "model.joblib", tmp_path / "p3.csv", features_csv, tmp_path / "no_age.csv")


def test_ground_truth_features_need_an_explicit_option(tmp_path):
    features, clinical = make_tables(seg_source="ground_truth")
    features.to_csv(tmp_path / "f.csv", index=False)
    clinical.to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(HecktorError, match="allow-ground-truth-features"):
        fit_survival(tmp_path / "c.csv", tmp_path / "out", features_csv=tmp_path / "f.csv", progress=False)
    # Clinical-only models do not use the segmentations at all, but keep the feature table's patients
    # so that they are a baseline on the same patients.
    features.iloc[10:].to_csv(tmp_path / "f80.csv", index=False)
    fit = fit_survival(tmp_path / "c.csv", tmp_path / "clin", features_csv=tmp_path / "f80.csv",
                       feature_set="clinical", models=("coxnet",), n_splits=3, progress=False, make_plots=False)
    assert fit.summary["n_patients"] == 80 and fit.model.image_columns == [] and fit.model.seg_source is None
    with pytest.warns(UserWarning, match="optimistic"):
        fit = fit_hpv(tmp_path / "c.csv", tmp_path / "gt", features_csv=tmp_path / "f.csv", n_splits=3,
                      allow_ground_truth_features=True, progress=False, make_plots=False)
    assert fit.model.seg_source == "ground_truth"
    features.assign(seg_source="predicted").to_csv(tmp_path / "pred.csv", index=False)
    with pytest.warns(UserWarning, match="trained on ground-truth"):
        predict_hpv(tmp_path / "gt" / "model.joblib", tmp_path / "p.csv", tmp_path / "pred.csv", tmp_path / "c.csv")


def test_preprocessing_encodes_clinical_values_without_nan():
    frame = pd.DataFrame({"Age": [60.0, np.nan, 70.0], "Gender": [1.0, np.nan, 0.0],
                          "Performance Status": [0.0, 1.0, np.nan], "M-stage": ["M0", "missing", "Mx"]})
    roles = ColumnRoles(continuous=["Age"], binary=["Gender"], ordinal=["Performance Status"], categorical=["M-stage"])
    out = make_preprocessor(roles).fit(frame).transform(pd.DataFrame(
        {"Age": [np.nan], "Gender": [np.nan], "Performance Status": [4.0], "M-stage": ["M1"]}))  # unseen M1
    assert not out.isna().any().any()
    assert "binary__missingindicator_Gender" in out.columns
    assert out.filter(like="M-stage").to_numpy().sum() == 0  # unknown category: all zeros


def test_penalised_logistic_regression_l1_zeroes_noise_features():
    from nnunet_hecktor.prognosis.hpv_models import PenalisedLogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 8))
    y = (rng.random(300) < 1 / (1 + np.exp(-(1.5 + 2.0 * X[:, 0])))).astype(int)
    lasso = PenalisedLogisticRegression(Cs=(0.05,), l1_ratio=1.0).fit(X, y)
    ridge = PenalisedLogisticRegression(Cs=(0.05,)).fit(X, y)
    assert lasso.model_.coef_[0, 0] > 0.3 and np.sum(lasso.model_.coef_[0, 1:] == 0) >= 5
    assert np.all(ridge.model_.coef_[0] != 0)
    assert lasso.predict_proba(X).shape == (300, 2) and set(lasso.predict(X)) <= {0, 1}
