"""T/N staging models: learning on new patients, clinical inputs of the edition, store and deployment, CLI."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from nnunet_hecktor import schema
from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.prognosis.feature_catalogue import FEATURE_NAMES, SEG_SOURCE_COLUMN
from nnunet_hecktor.prognosis.features import FeatureTable, write_feature_table
from nnunet_hecktor.prognosis.stage_models import BalancedStageClassifier, TNStageModel, stage_codes
from nnunet_hecktor.prognosis.staging_fit import (
    STAGING_IMAGE_FEATURES,
    fit_staging,
    predict_staging,
    stage_prediction,
    stratification,
)
from nnunet_hecktor.prognosis.staging_rules import ajcc7_n_stage, ajcc7_t_stage

CENTRES = ("CHUM", "CHUP", "CHUS", "MDA")


def _cohort(n: int, seed: int):
    """Patients whose stages follow AJCC 7 from their geometry, with 10 % of labels moved one stage."""
    rng = np.random.default_rng(seed)
    ids = [f"{CENTRES[i % 4]}-{i:03d}" for i in range(n)]
    present = rng.random(n) > 0.05
    diameter = np.where(present, np.exp(rng.normal(np.log(28), 0.35, n)), 0.0)
    count = rng.choice([0, 1, 2, 3], p=[0.3, 0.3, 0.25, 0.15], size=n)
    largest = np.where(count > 0, np.exp(rng.normal(np.log(18), 0.35, n)), 0.0)
    contralateral = (count > 0) & (rng.random(n) < 0.2)
    features = pd.DataFrame(0.0, index=pd.Index(ids, name="PatientID"), columns=list(FEATURE_NAMES))
    features["gtvp_present"] = present.astype(float)
    features["gtvp_max_diameter_mm"] = diameter
    features["gtvp_volume_ml"] = np.pi / 6 * diameter ** 3 / 1000
    features["gtvp_extent_x_mm"] = diameter * rng.uniform(0.7, 1.0, n)
    features["gtvn_present"] = (count > 0).astype(float)
    features["gtvn_lesion_count"] = count.astype(float)
    features["gtvn_largest_node_diameter_mm"] = largest
    features["gtvn_contralateral"] = contralateral.astype(float)
    features["gtvn_contralateral_count"] = contralateral.astype(float)
    features["gtvn_ipsilateral_count"] = count - contralateral
    t = [ajcc7_t_stage(d) for d in diameter]
    nn = [ajcc7_n_stage(c, s, bool(k), False) for c, s, k in zip(count, largest, contralateral)]
    for labels, stages in ((t, schema.T_STAGES[1:4]), (nn, schema.N_STAGES[1:3])):
        for i in np.flatnonzero(rng.random(n) < 0.1):
            if labels[i] in stages:
                labels[i] = stages[int(np.clip(stages.index(labels[i]) + rng.choice([-1, 1]), 0, len(stages) - 1))]
    clinical = pd.DataFrame({
        "PatientID": ids, "CenterID": [schema.CENTER_CODES[i.split("-")[0]] for i in ids],
        "Age": rng.normal(60, 8, n).round(), "Gender": rng.integers(0, 2, n),
        "Tobacco Consumption": rng.integers(0, 2, n), "Performance Status": rng.integers(0, 2, n),
        "HPV Status": rng.integers(0, 2, n), "M-stage": "M0", "T-stage": t, "N-stage": nn,
        "Relapse": rng.integers(0, 2, n), "RFS": rng.uniform(100, 2000, n).round(),
    })
    return features, clinical


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("staging")
    features, clinical = _cohort(240, 0)
    train, new = features.index[:150], features.index[150:]
    table = features.copy()
    table.insert(0, SEG_SOURCE_COLUMN, "predicted")
    paths = {"features": write_feature_table(FeatureTable(table, {}), root / "features.csv")[0],
             "features_new": write_feature_table(FeatureTable(table.loc[new], {}), root / "features_new.csv")[0],
             "clinical_train": root / "clinical_train.csv", "clinical_new": root / "clinical_new.csv", "root": root}
    clinical[clinical.PatientID.isin(train)].to_csv(paths["clinical_train"], index=False)
    clinical[clinical.PatientID.isin(new)].drop(columns=["T-stage", "N-stage"]).to_csv(paths["clinical_new"],
                                                                                         index=False)
    truth = clinical.set_index("PatientID").loc[new]
    return paths, truth


@pytest.fixture(scope="module")
def fitted(tables):
    paths, _ = tables
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fit_staging(paths["clinical_train"], paths["root"] / "model", features_csv=paths["features"],
                            progress=False, n_bootstrap=200, Cs=(0.1, 1.0, 10.0))
        clinical = fit_staging(paths["clinical_train"], paths["root"] / "clinical_only", features_csv=paths["features"],
                               feature_set="clinical", progress=False, n_bootstrap=200, Cs=(0.1, 1.0))
    return model, clinical


def test_staging_learns_on_new_patients_and_beats_clinical_only(tables, fitted):
    from sklearn.metrics import balanced_accuracy_score

    paths, truth = tables
    model, clinical = fitted
    stages = predict_staging(model.paths["model"], paths["root"] / "stages.csv", features_csv=paths["features_new"],
                             clinical_csv=paths["clinical_new"])
    baseline = predict_staging(clinical.paths["model"], paths["root"] / "stages_clinical.csv",
                               clinical_csv=paths["clinical_new"])
    for column, short, chance in ((schema.COL_TSTAGE, "t_stage", 1 / 4), (schema.COL_NSTAGE, "n_stage", 1 / 3)):
        y = truth[column].to_numpy()
        ours = balanced_accuracy_score(y, stages.loc[truth.index, short])
        theirs = balanced_accuracy_score(y, baseline.loc[truth.index, short])
        assert ours > 0.6 and ours > theirs + 0.2, (column, ours, theirs)
        assert theirs < chance + 0.2  # clinical variables carry no stage information here
        assert model.summary["cross_validation"][column]["balanced_accuracy"] > 0.55
        assert "model_minus_rule" in model.summary["cross_validation"][column]
    written = pd.read_csv(paths["root"] / "stages.csv", dtype={"PatientID": str})
    assert list(written.columns[:3]) == ["PatientID", "t_stage", "n_stage"]
    assert {f"p_{s}" for s in schema.T_STAGES + schema.N_STAGES} <= set(written.columns)
    probabilities = written[[f"p_{s}" for s in schema.T_STAGES]].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)


def test_inputs_are_the_2026_test_inputs_hpv_included_centre_never(fitted):
    model, clinical = fitted
    for fit in (model, clinical):
        columns = fit.model.clinical_columns
        assert schema.COL_HPV in columns
        assert not {schema.COL_CENTER, schema.COL_MSTAGE, schema.COL_RELAPSE, schema.COL_RFS, schema.COL_TSTAGE,
                    schema.COL_NSTAGE} & set(columns)
    assert model.model.image_columns == list(STAGING_IMAGE_FEATURES)
    assert clinical.model.image_columns == []
    assert model.model.task == "stage" and model.model.seg_source == "predicted"
    oof = pd.read_csv(model.paths["oof"], dtype={"PatientID": str})
    assert {"t_stage", "n_stage", "t_stage_ajcc7_rule", "fold", "T-stage"} <= set(oof.columns)


def test_stage_prediction_in_memory_equals_the_cli_file_and_the_deployed_stage(tables, fitted, tmp_path):
    from nnunet_hecktor.clinical import read_clinical_csv
    from nnunet_hecktor.prognosis.deployment import load_stage_models, stage_into_model
    from nnunet_hecktor.prognosis.features import read_feature_table
    from nnunet_hecktor.prognosis.model_store import load_model

    paths, truth = tables
    model, _ = fitted
    loaded = load_model(model.paths["model"], task="stage")
    table = read_feature_table(paths["features"]).loc[truth.index[:5]]
    clinical = read_clinical_csv(paths["clinical_new"])
    in_memory = stage_prediction(loaded, table, {p: clinical[p] for p in table.index})
    (tmp_path / "trained").mkdir()
    copied = stage_into_model(tmp_path / "trained", stage=model.paths["model"].parent)
    assert copied["stage"].name == "stage.joblib"
    stage = load_stage_models(tmp_path / "trained" / "prognosis")
    assert stage.stage is not None and stage.outputs == ("t_stage", "n_stage")
    stage.check_inputs(heads_available=False)
    for pid in table.index:
        row = table.loc[pid].drop(SEG_SOURCE_COLUMN).to_dict()
        out = stage.predict_features(row, clinical[pid], pid)
        assert out["t_stage"] == in_memory.loc[pid, "t_stage"] and out["n_stage"] == in_memory.loc[pid, "n_stage"]
        assert out["p_T2"] == pytest.approx(in_memory.loc[pid, "p_T2"])
        assert out["t_stage"] in schema.T_STAGES and out["n_stage"] in schema.N_STAGES
    with pytest.raises(HecktorError, match="staging"):
        load_model(model.paths["model"], task="hpv")


def test_ground_truth_features_are_refused_and_unstaged_patients_listed(tables, tmp_path):
    paths, _ = tables
    table = pd.read_csv(paths["features"], dtype={"PatientID": str})
    table[SEG_SOURCE_COLUMN] = "ground_truth"
    gt_csv = tmp_path / "features_gt.csv"
    table.to_csv(gt_csv, index=False)
    with pytest.raises(HecktorError, match="PREDICTED"):
        fit_staging(paths["clinical_train"], tmp_path / "out", features_csv=gt_csv, progress=False)
    clinical = pd.read_csv(paths["clinical_train"], dtype={"PatientID": str})
    clinical.loc[:4, ["T-stage", "N-stage"]] = None
    clinical.loc[5:9, "N-stage"] = None  # T known: kept, N classifier skips them
    partial = tmp_path / "clinical_partial.csv"
    clinical.to_csv(partial, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_staging(partial, tmp_path / "out", features_csv=paths["features"], progress=False,
                          n_bootstrap=50, Cs=(1.0,))
    assert fit.summary["left_out"]["patients_without_stage"] == clinical.PatientID[:5].tolist()
    assert fit.summary["cross_validation"]["N-stage"]["n_patients"] == len(clinical) - 10
    assert fit.summary["cross_validation"]["T-stage"]["n_patients"] == len(clinical) - 5


def test_old_feature_table_without_staging_geometry_is_a_clear_error(tables, tmp_path):
    paths, _ = tables
    table = pd.read_csv(paths["features"], dtype={"PatientID": str}).drop(columns=["gtvn_bilateral"])
    old = tmp_path / "old.csv"
    table.to_csv(old, index=False)
    with pytest.raises(HecktorError, match="gtvn_bilateral.*nnunet-hecktor features"):
        fit_staging(paths["clinical_train"], tmp_path / "out", features_csv=old, progress=False)


def test_balanced_classifier_matches_scikit_learn_and_handles_one_class():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 3))
    y = np.digitize(X[:, 0] + 0.3 * rng.normal(size=120), [-1.2, 1.0])  # 0 common in the middle... 3 classes
    ours = BalancedStageClassifier(Cs=(0.5,)).fit(X, y)
    reference = LogisticRegression(C=0.5, class_weight="balanced", max_iter=5000).fit(X, y)
    assert np.allclose(ours.predict_proba(X), reference.predict_proba(X), atol=1e-6)
    single = BalancedStageClassifier().fit(X, np.full(120, 2))
    assert (single.predict(X) == 2).all()


def test_tn_model_probabilities_cover_every_stage_and_rare_strata_are_merged():
    from nnunet_hecktor.prognosis.preprocessing import ColumnRoles

    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.normal(size=60)})
    t = np.where(X["a"] > 0, 2, 1)
    n = np.full(60, -1)  # no N label at all
    model = TNStageModel(ColumnRoles(continuous=["a"]), Cs=(1.0,)).fit(X, t, n)
    pt, pn = model.predict_proba(X)
    assert list(pt.columns) == list(schema.T_STAGES) and (pt[["T0", "T3", "T4"]] == 0).all().all()
    assert pn.shape[1] == 0
    t_labels, n_labels = model.predict(X)
    assert set(t_labels) <= {"T1", "T2"} and all(v is None for v in n_labels)
    assert stage_codes(["T2", None, float("nan")], schema.COL_TSTAGE).tolist() == [2, -1, -1]
    strata = stratification(np.array([0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, -1]), 5)
    assert set(strata) == {1, 2} and (strata[[0, 12]] == 2).all()


def test_cli_fit_and_predict(tables, tmp_path):
    from nnunet_hecktor.cli import main

    paths, truth = tables
    assert main(["staging", "fit", "--clinical", str(paths["clinical_train"]), "--features", str(paths["features"]),
                 "--feature-set", "clinical", "--output", str(tmp_path / "fit"), "--quiet"]) == 0
    assert main(["staging", "predict", "--model", str(tmp_path / "fit" / "model.joblib"), "--clinical",
                 str(paths["clinical_new"]), "--output", str(tmp_path / "stages.csv")]) == 0
    out = pd.read_csv(tmp_path / "stages.csv", dtype={"PatientID": str})
    assert sorted(out.PatientID) == sorted(truth.index)
    assert main(["staging", "predict", "--model", str(tmp_path / "fit" / "model.joblib"),
                 "--output", str(tmp_path / "x.csv")]) == 1  # needs the clinical table: one clear line
    (tmp_path / "trained").mkdir()
    assert main(["prognosis", "stage", "--model", str(tmp_path / "trained"), "--tn-stage", str(tmp_path / "fit")]) == 0
    assert (tmp_path / "trained" / "prognosis" / "stage.joblib").is_file()
    assert main(["prognosis", "stage", "--model", str(tmp_path / "trained"), "--hpv", str(tmp_path / "fit")]) == 1


def test_ordinal_model_matches_statsmodels_without_weights_or_penalty():
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    from nnunet_hecktor.prognosis.stage_models import OrdinalLogistic

    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 2))
    score = X @ np.array([1.5, -0.8]) + rng.logistic(size=300)
    y = np.digitize(score, [-1.5, 0.0, 1.8])
    ours = OrdinalLogistic(C=1e10, class_weight=None).fit(X, y)
    reference = OrderedModel(y, X, distr="logit").fit(method="bfgs", disp=False, maxiter=2000)
    assert np.allclose(ours.coef_, reference.params[:2], atol=2e-3)
    assert np.allclose(ours.predict_proba(X), reference.predict(exog=X), atol=2e-3)
    balanced = OrdinalLogistic(C=10.0).fit(X, y)
    assert np.allclose(balanced.predict_proba(X).sum(axis=1), 1.0)
    assert (np.diff(balanced.thresholds_) > 0).all()
    from scipy.optimize import check_grad  # the analytic gradient of the objective

    objective = balanced.objective(X, y)
    assert check_grad(lambda v: objective(v)[0], lambda v: objective(v)[1], np.r_[0.3, -0.2, -1.0, 0.1, 0.4]) < 1e-5
