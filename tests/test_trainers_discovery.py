"""nnU-Net finds the plugin's trainers through ``nnUNet_extTrainer`` and they (and their networks) pickle."""

from __future__ import annotations

import copy
import pickle
import sys
from pathlib import Path

import pytest
import torch

import nnunet_hecktor.trainers as trainers
from nnunet_hecktor.cli import main as cli_main
from nnunet_hecktor.nnunet_env import plugin_trainer_folder


def _plans(architecture: dict) -> dict:
    """A minimal nnU-Net 2.8 plans dict with one 3d_fullres configuration."""
    return {
        "dataset_name": "Dataset999_Test", "plans_name": "nnUNetPlans", "original_median_spacing_after_transp": [1, 1, 1],
        "original_median_shape_after_transp": [32, 32, 32], "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2], "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager", "foreground_intensity_properties_per_channel": {},
        "configurations": {"3d_fullres": {
            "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
            "patch_size": [16, 16, 16], "median_image_size_in_voxels": [32, 32, 32], "spacing": [1, 1, 1],
            "normalization_schemes": ["CTNormalization", "ZScoreNormalization"], "use_mask_for_norm": [False, False],
            "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": {}, "resampling_fn_seg_kwargs": {},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape", "resampling_fn_probabilities_kwargs": {},
            "architecture": architecture, "batch_dice": False}},
    }


COMMON_ARCH = {"n_stages": 3, "features_per_stage": [4, 8, 16], "conv_op": "torch.nn.modules.conv.Conv3d",
               "kernel_sizes": [[3, 3, 3]] * 3, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
               "n_conv_per_stage_decoder": [1, 1], "conv_bias": True,
               "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-5, "affine": True},
               "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
               "nonlin_kwargs": {"inplace": True}}
PLAIN = {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
         "arch_kwargs": {**COMMON_ARCH, "n_conv_per_stage": [1, 1, 1]},
         "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}
RESENC = {"network_class_name": "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet",
          "arch_kwargs": {**COMMON_ARCH, "n_blocks_per_stage": [1, 2, 2]},
          "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}


@pytest.fixture
def ext_trainer_env(monkeypatch):
    monkeypatch.setenv("nnUNet_extTrainer", plugin_trainer_folder())


@pytest.mark.parametrize("name", trainers.__all__)
def test_nnunet_finds_every_plugin_trainer_and_the_class_pickles(name, ext_trainer_env):
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    found = recursive_find_trainer_class_by_name(name)
    assert found is getattr(trainers, name)
    assert issubclass(found, nnUNetTrainer)
    assert found.__module__.startswith("nnunet_hecktor.trainers.")
    assert pickle.loads(pickle.dumps(found)) is found
    # nnU-Net drops the re-export module from sys.modules; the class must not depend on it.
    folder = Path(plugin_trainer_folder()).resolve()
    assert not [m for m in list(sys.modules.values())
                if getattr(m, "__file__", None) and Path(m.__file__).resolve().parent == folder]


def test_without_nnunet_ext_trainer_nnunet_reports_the_missing_trainer(monkeypatch):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    monkeypatch.delenv("nnUNet_extTrainer", raising=False)
    with pytest.raises(RuntimeError, match="nnUNet_extTrainer"):
        recursive_find_trainer_class_by_name("HecktorMultiTaskTrainer")


def test_the_trainer_folder_holds_only_one_line_re_exports():
    files = sorted(Path(plugin_trainer_folder()).glob("*.py"))
    assert files, "no entry module in the nnUNet_extTrainer folder"
    for f in files:
        code = [line for line in f.read_text().splitlines() if line.strip() and not line.startswith("#")]
        assert len(code) == 1 and code[0].startswith("from nnunet_hecktor.trainers import"), f


def test_trainer_path_command_prints_the_folder(capsys):
    assert cli_main(["trainer-path"]) == 0
    assert capsys.readouterr().out.strip() == plugin_trainer_folder()


def test_trainer_path_check_names_the_set_up_line_when_nnunet_cannot_find_the_trainers(capsys, monkeypatch):
    from nnunet_hecktor.nnunet_env import TRAINER_PATH_SETUP

    monkeypatch.delenv("nnUNet_extTrainer", raising=False)
    monkeypatch.delenv("nnUNet_n_proc_DA", raising=False)
    assert cli_main(["trainer-path", "--check"]) == 1
    err = capsys.readouterr().err
    assert "HecktorMultiTaskTrainer" in err and TRAINER_PATH_SETUP in err
    monkeypatch.setenv("nnUNet_extTrainer", plugin_trainer_folder())
    assert cli_main(["trainer-path", "--check"]) == 0
    assert "problem" not in capsys.readouterr().err


@pytest.mark.parametrize("architecture", [PLAIN, RESENC], ids=["PlainConvUNet", "ResidualEncoderUNet"])
def test_network_from_the_static_builder_pickles_and_keeps_stock_keys(architecture):
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    pm = PlansManager(_plans(architecture))
    cm = pm.get_configuration("3d_fullres")
    net = trainers.HecktorMultiTaskTrainer.build_network_architecture(pm, cm, 2, 3, enable_deep_supervision=False)
    stock = nnUNetTrainer.build_network_architecture(pm, cm, 2, 3, enable_deep_supervision=False)
    if architecture is PLAIN:
        clone = pickle.loads(pickle.dumps(net))
    else:
        # dynamic_network_architectures' residual blocks hold a lambda: the *stock* ResidualEncoderUNet
        # does not pickle either (nnU-Net never pickles networks; DDP builds one per process).
        with pytest.raises((AttributeError, pickle.PicklingError)):
            pickle.dumps(stock)
        clone = copy.deepcopy(net)
    for (k, a), (k2, b) in zip(net.state_dict().items(), clone.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    seg_keys = {k for k in net.state_dict() if not k.startswith("hecktor_heads.")}
    assert seg_keys == set(stock.state_dict())
    # The variant's HEAD_CONFIG reaches the static builder (classmethod), e.g. the image-only ablation.
    no_clinical = trainers.HecktorMultiTaskTrainerNoClinical.build_network_architecture(pm, cm, 2, 3, False)
    assert no_clinical.head_config.use_clinical is False and net.head_config.use_clinical is True
    # ... and only that: the rest of the default trainer's heads design is kept (ablation of one thing).
    from dataclasses import replace
    assert replace(no_clinical.head_config, use_clinical=True) == trainers.HecktorMultiTaskTrainer.HEAD_CONFIG
