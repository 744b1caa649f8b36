"""``tune-postprocessing`` on a fake nnU-Net results folder, and its pickle under stock nnU-Net."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_hecktor.cli import main
from nnunet_hecktor.errors import HecktorError, InputDataError
from nnunet_hecktor.evaluation.evaluate import evaluate
from nnunet_hecktor.postprocessing.apply import postprocess_folder
from nnunet_hecktor.postprocessing.config import PostprocessingConfig, load_config
from nnunet_hecktor.postprocessing.nnunet_pkl import hecktor_postprocessing, reader_axis_spacing
from nnunet_hecktor.postprocessing.tuning import CroppedCase, find_validation_cases, load_cases, search_postprocessing

SPACING_XYZ = (1.0, 1.0, 3.0)

# Top-level keys as nnUNetv2_plan_experiment 2.8.1 wrote them for a 3-case toy dataset on this
# grid (configurations trimmed: nnUNetv2_apply_postprocessing only uses the reader/writer).
PLANS = {
    "dataset_name": "Dataset998_Toy", "plans_name": "nnUNetPlans",
    "original_median_spacing_after_transp": [3.0, 1.0, 1.0],
    "original_median_shape_after_transp": [12, 16, 16],
    "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
    "configurations": {}, "experiment_planner_used": "ExperimentPlanner",
    "label_manager": "LabelManager", "foreground_intensity_properties_per_channel": {},
}
DATASET = {"channel_names": {"0": "CT", "1": "PET"}, "labels": {"background": 0, "GTVp": 1, "GTVn": 2},
           "numTraining": 4, "file_ending": ".nii.gz"}


def _write(path: Path, array: np.ndarray) -> None:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(SPACING_XYZ)
    image.SetOrigin((-5.0, 3.0, 100.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


def _case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """GT: one primary and one node. Prediction: the same plus a 1-voxel false node far away and a
    small second GTVp component (both of which post-processing should remove)."""
    gt = np.zeros((10, 24, 24), np.uint8)
    gt[3:6, 5:11, 5:11] = 1
    gt[4:6, 13:16, 13:16] = 2
    pred = gt.copy()
    pred[3, 5:11, 5:7] = 0  # imperfect primary
    pred[8, 20 - seed, 2] = 2  # spurious node, far from the primary
    pred[0, 0, 20:22] = 1  # spurious second primary component
    return gt, pred


@pytest.fixture
def results(tmp_path):
    labels = tmp_path / "labelsTr"
    model = tmp_path / "Dataset998_Toy" / "HecktorTrainer__nnUNetPlans__3d_fullres"
    for i, pid in enumerate(["A-000", "A-001", "B-002", "B-003"]):
        gt, pred = _case(i)
        _write(labels / f"{pid}.nii.gz", gt)
        _write(model / f"fold_{i // 2}" / "validation" / f"{pid}.nii.gz", pred)
    (model / "plans.json").write_text(json.dumps(PLANS))
    (model / "dataset.json").write_text(json.dumps(DATASET))
    return model, labels


SMALL_GRID = {
    "closing:GTVp": [], "closing:GTVn": [], "min_size:GTVp": [5.0], "min_size:GTVn": [1.0, 10.0],
    "cranial_border": [["GTVn"], ["GTVp", "GTVn"]],
    # The spurious second primary lies on the caudal slice, where this rule would remove it before
    # the single-lesion rule is tried; test_border_rules_follow_each_image_direction tests it.
    "caudal_border": [],
    "gtvp_single_lesion": ["remove", "to_gtvn"], "gtvn_touching_gtvp": ["remove", "to_gtvp"],
    "max_components:GTVn": [1], "gtvn_distance": [30.0],
}


def test_tune_postprocessing_end_to_end(results, tmp_path, capsys):
    model, labels = results
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps(SMALL_GRID))
    out = tmp_path / "tuned" / "pp.json"
    assert main(["tune-postprocessing", "--results", str(model), "--gt", str(labels), "--output", str(out),
                 "--grid", str(grid), "--folds", "0", "1"]) == 0
    printed = capsys.readouterr().out
    assert "before" in printed and "after" in printed
    data = json.loads(out.read_text())
    tuning = data["tuning"]
    assert tuning["n_cases"] == 4 and tuning["folds"] == [0, 1] and tuning["objective"] == "mean"
    assert tuning["before"]["gtvn_fp"] == 4 and tuning["after"]["gtvn_fp"] == 0
    assert tuning["after"]["objective"] > tuning["before"]["objective"]
    assert tuning["after"]["gtvn_f1_agg"] == 1.0
    config = load_config(out)
    # Voxels are 3 mm3: the 1-voxel node (3 mm3) goes with the 10 mm3 threshold (1 mm3 removes
    # nothing); the 2-voxel extra primary (6 mm3) survives min_size:GTVp 5 (not < 5), so the
    # single-lesion rule removes it ("to_gtvn" would add a false node instead).
    assert config.min_component_size == {2: 10.0}
    assert config.gtvp_single_lesion == "remove"
    assert config.gtvn_max_distance_mm is None and not config.max_components  # no further gain: left off
    assert config.gtvn_touching_gtvp is None  # no node touches the primary in these cases
    assert config.cranial_border_components == ()  # no lesion reaches the top slice
    first_sweep = [row for row in tuning["search"] if row["sweep"] == 1]
    assert len(first_sweep) == sum(len(v) for v in SMALL_GRID.values())
    assert tuning["sweeps"] == 2  # the second sweep changed nothing
    assert (tmp_path / "tuned" / "postprocessing.pkl").is_file()

    # The crop-based search gives the same figures as post-processing the full volumes and evaluating them.
    merged = tmp_path / "merged"
    for fold in (0, 1):
        for path in (model / f"fold_{fold}" / "validation").glob("*.nii.gz"):
            merged.mkdir(exist_ok=True)
            (merged / path.name).write_bytes(path.read_bytes())
    postprocess_folder(merged, tmp_path / "merged_pp", config, progress=False)
    full = evaluate(labels, tmp_path / "merged_pp", n_bootstrap=0, progress=False).metrics["task1"]
    for key in ("gtvp_dice_mean", "gtvn_dice_agg", "gtvn_f1_agg"):
        assert full[key] == pytest.approx(tuning["after"][key])


def test_border_rules_follow_each_image_direction(tmp_path):
    """One case numbers its slices from the feet up, the other from the head down; each has a false
    node on its cranial slice and a node and a false primary on its caudal slice. The search removes
    the cranial node and the caudal primary, and its figures equal the full volumes'."""
    labels = tmp_path / "labelsTr"
    model = tmp_path / "Dataset998_Toy" / "HecktorTrainer__nnUNetPlans__3d_fullres"
    for pid, head_down in (("A-000", False), ("A-001", True)):
        gt, pred = _case(0)
        pred[0 if head_down else 9, 2:4, 2:4] = 2  # on the cranial slice
        pred[9 if head_down else 0, 20:22, 8:10] = 2  # on the caudal slice: a node may lie there, kept
        pred[9 if head_down else 0, 12:14, 18:20] = 1  # a false primary on the caudal slice
        for path, array in ((labels / f"{pid}.nii.gz", gt), (model / "fold_0" / "validation" / f"{pid}.nii.gz", pred)):
            _write(path, array)
            if head_down:
                image = sitk.ReadImage(str(path))
                image.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, -1))
                sitk.WriteImage(image, str(path))
    (model / "plans.json").write_text(json.dumps(PLANS))
    cases = load_cases(find_validation_cases(model, labels), {}, progress=False)
    result = search_postprocessing(cases, {"cranial_border": [["GTVn"]], "caudal_border": [["GTVp"]]}, progress=False)
    assert result.config.cranial_border_components == (2,) and result.config.caudal_border_components == (1,)
    assert result.after["gtvp_dice_mean"] > result.before["gtvp_dice_mean"]
    # Before: per case the far spurious node, the cranial one and the caudal one.
    assert result.before["gtvn_fp"] == 6 and result.after["gtvn_fp"] == 4
    out = tmp_path / "pp"
    postprocess_folder(model / "fold_0" / "validation", out, result.config, progress=False)
    full = evaluate(labels, out, n_bootstrap=0, progress=False).metrics["task1"]
    assert full["gtvn_fp"] == 4 and full["gtvn_f1_agg"] == pytest.approx(result.after["gtvn_f1_agg"])
    assert full["gtvp_dice_mean"] == pytest.approx(result.after["gtvp_dice_mean"])


def test_later_sweeps_drop_a_rule_that_a_later_rule_made_harmful():
    """Sweep 1 keeps a size rule for the small false nodes it removes (and a small true node with
    them), then the distance rule removes every far false node; sweep 2 finds the size rule now only
    costs the small true node and turns it off."""
    gt = np.zeros((10, 40, 40), np.uint8)
    gt[3:6, 5:10, 5:10] = 1
    gt[4, 12:15, 12] = 2  # true node, 9 mm3
    gt[4, 5:7, 13] = 2  # small true node, 6 mm3
    pred = gt.copy()
    for k in range(5):
        pred[8, 4 * k:4 * k + 2, 38] = 2  # small false nodes (6 mm3), > 30 mm from the GTVp
    pred[1, 30:32, 37:39] = 2  # a larger false node (12 mm3), > 30 mm from the GTVp
    cases = [CroppedCase("P", (3.0, 1.0, 1.0), gt, pred)]
    grid = {"min_size:GTVn": [8.0], "gtvn_distance": [30.0]}
    greedy = search_postprocessing(cases, grid, objective="gtvn_f1", progress=False, max_sweeps=1)
    assert greedy.config.min_component_size == {2: 8.0} and greedy.config.gtvn_max_distance_mm == 30.0
    assert greedy.after["gtvn_f1_agg"] == pytest.approx(2 / 3) and greedy.sweeps == 1
    swept = search_postprocessing(cases, grid, objective="gtvn_f1", progress=False)
    assert not swept.config.min_component_size and swept.config.gtvn_max_distance_mm == 30.0
    assert swept.after["gtvn_f1_agg"] == 1.0 and swept.sweeps == 3
    assert {row["sweep"] for row in swept.search} == {1, 2, 3}


def test_the_prior_rule_stays_on_on_a_tie_and_off_where_it_lowers_the_objective():
    """One GTVp lesion is a prior: kept when the validation patients cannot tell (no case with a
    second GTVp component), left off when they show it hurts (a two-component primary)."""
    from nnunet_hecktor.postprocessing.tuning import DEFAULT_PRIOR

    gt = np.zeros((10, 24, 24), np.uint8)
    gt[3:6, 5:11, 5:11] = 1
    gt[4:6, 13:16, 13:16] = 2
    grid = {"gtvp_single_lesion": ["remove", "to_gtvn"]}
    one_lesion = [CroppedCase("P", (3.0, 1.0, 1.0), gt, gt.copy())]
    tie = search_postprocessing(one_lesion, grid, progress=False)
    assert tie.config.gtvp_single_lesion == DEFAULT_PRIOR["gtvp_single_lesion"] == "to_gtvn"
    assert tie.after == tie.before and tie.report()["prior"] == DEFAULT_PRIOR
    assert [row["value"] for row in tie.search if row.get("prior")] == ["to_gtvn"]
    assert search_postprocessing(one_lesion, grid, progress=False, prior={}).config.gtvp_single_lesion is None

    two_components = gt.copy()
    two_components[3:5, 18:21, 18:21] = 1  # a second, separate piece of the true primary
    hurt = search_postprocessing([CroppedCase("P", (3.0, 1.0, 1.0), two_components, two_components.copy())], grid,
                                 progress=False)
    assert hurt.config.gtvp_single_lesion is None
    prior_row, = [row for row in hurt.search if row.get("prior")]
    assert prior_row["objective"] < hurt.after["objective"] == 1.0


def test_loaded_cases_own_their_arrays(tmp_path):
    """A crop box that spans the whole volume must still copy: the label images' buffers are freed
    once the case is loaded (the search used to read freed memory and gave different figures per run)."""
    import gc

    labels, model = tmp_path / "labelsTr", tmp_path / "Dataset998_Toy" / "T__P__3d_fullres"
    gt, pred = _case(0)
    gt[0, 0, 0] = gt[-1, -1, -1] = 2  # foreground in opposite corners: the box is the whole volume
    _write(labels / "A-000.nii.gz", gt)
    _write(model / "fold_0" / "validation" / "A-000.nii.gz", pred)
    case, = load_cases(find_validation_cases(model, labels), {}, progress=False)
    gc.collect()
    _ = [np.full(gt.shape, 7, np.uint8) for _ in range(20)]  # reuse freed memory
    assert case.gt.shape == gt.shape and case.gt.flags.owndata and case.pred.flags.owndata
    assert np.array_equal(case.gt, gt) and np.array_equal(case.pred, pred)


def test_search_with_probability_thresholds():
    gt, pred = _case(0)
    probabilities = np.zeros((3,) + pred.shape, np.float32)
    probabilities[1] = (pred == 1) * 0.9
    probabilities[2] = (pred == 2) * 0.9
    probabilities[2][pred == 2] = np.where(gt[pred == 2] == 2, 0.9, 0.45)  # the spurious node is unsure
    probabilities[1][0, 0, 20:22] = 0.45
    probabilities[0] = 1 - probabilities[1] - probabilities[2]
    cases = [CroppedCase(f"P{i}", (3.0, 1.0, 1.0), gt, pred, probabilities) for i in range(2)]
    grid = {"probability_threshold:GTVp": [0.5], "probability_threshold:GTVn": [0.3, 0.5]}
    result = search_postprocessing(cases, grid, progress=False)
    assert result.used_probabilities
    assert result.config.probability_threshold == {1: 0.5, 2: 0.5}
    assert result.after["gtvn_fp"] == 0 and result.before["gtvn_fp"] == 2


def test_objective_changes_the_choice():
    gt, pred = _case(0)
    cases = [CroppedCase("P", (3.0, 1.0, 1.0), gt, pred)]
    grid = {"gtvp_single_lesion": ["remove"], "min_size:GTVn": [10.0]}
    gtvp_only = search_postprocessing(cases, grid, objective="gtvp_dice", progress=False)
    assert gtvp_only.config.gtvp_single_lesion == "remove" and not gtvp_only.config.min_component_size
    gtvn_only = search_postprocessing(cases, grid, objective="gtvn", progress=False)
    assert gtvn_only.config.min_component_size == {2: 10.0} and gtvn_only.config.gtvp_single_lesion is None
    with pytest.raises(HecktorError, match="unknown objective"):
        search_postprocessing(cases, grid, objective="borda", progress=False)


def test_find_validation_cases_errors(results, tmp_path):
    model, labels = results
    assert [c.fold for c in find_validation_cases(model, labels)] == [0, 0, 1, 1]
    with pytest.raises(HecktorError, match="fold 7"):
        find_validation_cases(model, labels, folds=[7])
    (labels / "B-003.nii.gz").unlink()
    with pytest.raises(InputDataError, match="B-003: .*no ground-truth label"):
        find_validation_cases(model, labels)
    _case_gt, pred = _case(0)
    _write(model / "fold_1" / "validation" / "A-000.nii.gz", pred)
    with pytest.raises(InputDataError, match="A-000: .*fold 0 and fold 1"):
        find_validation_cases(model, labels, folds=[0, 1])


def test_reader_axis_spacing_undoes_the_transpose():
    # nnU-Net puts the axis with the largest spacing first: reader (z, y, x) = (3, 1, 4) with
    # transpose_forward [2, 0, 1] is stored as [4, 3, 1]; transpose_backward [1, 2, 0] undoes it.
    plans = {"original_median_spacing_after_transp": [4.0, 3.0, 1.0], "transpose_forward": [2, 0, 1],
             "transpose_backward": [1, 2, 0]}
    assert reader_axis_spacing(plans) == [3.0, 1.0, 4.0]
    with pytest.raises(HecktorError, match="plans.json"):
        reader_axis_spacing({})


def test_pickle_function_on_nnunet_style_float_arrays():
    gt, pred = _case(1)
    config = PostprocessingConfig(min_component_size={2: 10.0}, gtvp_single_lesion="remove",
                                  probability_threshold={1: 0.5})
    out = hecktor_postprocessing(pred.astype(np.float32), config.to_dict(), [3.0, 1.0, 1.0])
    assert out.dtype == np.uint8
    expected = pred.copy()
    expected[8, 19, 2] = 0
    expected[0, 0, 20:22] = 0
    assert np.array_equal(out, expected)


@pytest.mark.slow
def test_pkl_with_stock_nnunet_apply_postprocessing(results, tmp_path):
    model, labels = results
    out_json = tmp_path / "pp.json"
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps(SMALL_GRID))
    assert main(["tune-postprocessing", "--results", str(model), "--gt", str(labels), "--output", str(out_json),
                 "--grid", str(grid)]) == 0
    pkl = tmp_path / "postprocessing.pkl"
    with open(pkl, "rb") as handle:
        functions, kwargs = pickle.load(handle)
    assert [f.__name__ for f in functions] == ["hecktor_postprocessing"]
    assert kwargs[0]["spacing"] == [3.0, 1.0, 1.0]

    source = model / "fold_0" / "validation"
    env = dict(os.environ)
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env.setdefault(name, str(tmp_path / name))
    script = Path(sys.executable).parent / "nnUNetv2_apply_postprocessing"
    completed = subprocess.run(
        [str(script), "-i", str(source), "-o", str(tmp_path / "stock"), "-pp_pkl_file", str(pkl), "-np", "1",
         "-plans_json", str(model / "plans.json"), "-dataset_json", str(model / "dataset.json")],
        env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    postprocess_folder(source, tmp_path / "ours", load_config(out_json), progress=False)
    for path in sorted(source.glob("*.nii.gz")):
        stock = sitk.ReadImage(str(tmp_path / "stock" / path.name))
        ours = sitk.ReadImage(str(tmp_path / "ours" / path.name))
        # every case has the median spacing here, so the pickle route is exact
        assert np.array_equal(sitk.GetArrayFromImage(stock), sitk.GetArrayFromImage(ours))
        assert stock.GetSpacing() == ours.GetSpacing() and stock.GetOrigin() == ours.GetOrigin()
        assert not np.array_equal(sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(sitk.ReadImage(str(path))))
