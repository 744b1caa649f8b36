"""Model hand-over between stock nnU-Net and the multi-task trainer: warm start and export.

**Warm start.** nnU-Net's ``-pretrained_weights`` asserts that every key of the new network exists
in the old checkpoint, so a stock segmentation checkpoint cannot be loaded into a network with
heads directly. :func:`write_warm_start_checkpoint` builds the multi-task network for the target
dataset's plans, copies the stock segmentation weights into it (every segmentation key must match),
keeps the heads at their initial values and writes the result as an nnU-Net checkpoint, which the
stock flag then accepts::

    nnunet-hecktor warm-start STOCK/fold_0/checkpoint_final.pth -d 501 -o warm_start.pth
    nnUNetv2_train 501 3d_fullres 0 -tr HecktorMultiTaskTrainer -pretrained_weights warm_start.pth

(nnU-Net then skips the final 1x1 segmentation layers, as it always does with pretrained weights.)

**Export.** :func:`export_segmentation_model` strips the heads from a trained fold and writes a
stock ``nnUNetTrainer`` model folder (plans.json, dataset.json, dataset_fingerprint.json,
``fold_K/checkpoint_final.pth``) usable by ``nnUNetv2_predict -tr nnUNetTrainer`` without the
plugin.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from nnunet_hecktor.checkpoints import EXTRA_STATE_KEY, FINAL_CHECKPOINT
from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.fileio import atomic_path, write_json_atomic

STOCK_TRAINER = "nnUNetTrainer"


def _load_checkpoint(path: Path) -> dict:
    import torch

    if not path.is_file():
        raise HecktorError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a truncated / foreign file
        raise HecktorError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(checkpoint, dict) or "network_weights" not in checkpoint:
        raise HecktorError(f"{path}: not an nnU-Net checkpoint (no 'network_weights')")
    return checkpoint


def _find_trainer_class(trainer_name: str):
    if trainer_name == STOCK_TRAINER:
        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

        return nnUNetTrainer
    import nnunet_hecktor.trainers as trainers

    try:
        return getattr(trainers, trainer_name)
    except AttributeError:
        raise HecktorError(f"unknown trainer {trainer_name!r}; the plugin's trainers are: "
                           f"{', '.join(trainers.__all__)}") from None


def _dataset_folder(dataset: str | int) -> Path:
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    if not nnUNet_preprocessed.is_set():
        raise HecktorError("nnUNet_preprocessed is not set (see the README's nnU-Net set-up)")
    try:
        name = maybe_convert_to_dataset_name(dataset if str(dataset).startswith("Dataset") else int(dataset))
    except (RuntimeError, ValueError) as exc:
        raise HecktorError(f"dataset {dataset!r}: {exc}") from None
    return Path(nnUNet_preprocessed.get()) / name


def write_warm_start_checkpoint(stock_checkpoint: str | os.PathLike, dataset: str | int, output: str | os.PathLike,
                                configuration: str = "3d_fullres", plans: str = "nnUNetPlans",
                                trainer: str = "HecktorMultiTaskTrainer") -> Path:
    """Write a heads-augmented checkpoint from a stock nnU-Net segmentation checkpoint.

    Parameters
    ----------
    stock_checkpoint : path
        ``checkpoint_final.pth`` (or any nnU-Net checkpoint) of a segmentation-only training
        with the same plans, configuration and channels as the target dataset.
    dataset : str or int
        Target dataset (id or ``DatasetNNN_Name``); its plans and ``dataset.json`` are read from
        ``$nnUNet_preprocessed``.
    output : path
        Checkpoint to write (``.pth``), for ``nnUNetv2_train ... -pretrained_weights output``.
    configuration, plans, trainer : str
        Target configuration, plans identifier and multi-task trainer class (its
        ``HEAD_CONFIG`` decides the heads).

    Returns
    -------
    Path
        ``output``.

    Raises
    ------
    HecktorError
        Missing files, or a checkpoint whose segmentation weights do not match the target plans.
    """
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_hecktor.heads import load_segmentation_weights

    stock_checkpoint, output = Path(stock_checkpoint), Path(output)
    checkpoint = _load_checkpoint(stock_checkpoint)
    folder = _dataset_folder(dataset)
    plans_file, dataset_json_file = folder / f"{plans}.json", folder / "dataset.json"
    for f in (plans_file, dataset_json_file):
        if not f.is_file():
            raise HecktorError(f"{f}: not found (run nnUNetv2_plan_and_preprocess for the target dataset first)")
    plans_manager = PlansManager(str(plans_file))
    dataset_json = json.loads(dataset_json_file.read_text())
    try:
        configuration_manager = plans_manager.get_configuration(configuration)
    except (KeyError, RuntimeError) as exc:
        raise HecktorError(f"{plans_file}: no configuration {configuration!r} ({exc})") from None
    trainer_class = _find_trainer_class(trainer)
    network = trainer_class.build_network_architecture(
        plans_manager, configuration_manager,
        determine_num_input_channels(plans_manager, configuration_manager, dataset_json),
        plans_manager.get_label_manager(dataset_json).num_segmentation_heads, enable_deep_supervision=True)
    if not hasattr(network, "hecktor_heads"):
        raise HecktorError(f"{trainer} has no heads; use the stock checkpoint directly with -pretrained_weights")
    try:
        load_segmentation_weights(network, checkpoint["network_weights"])
    except ValueError as exc:
        raise HecktorError(f"{stock_checkpoint}: {exc}") from None
    out = {
        "network_weights": network.state_dict(),
        "trainer_name": trainer,
        "init_args": {"configuration": configuration},
        "inference_allowed_mirroring_axes": checkpoint.get("inference_allowed_mirroring_axes"),
        "warm_start_from": str(stock_checkpoint),
    }
    import torch

    with atomic_path(output) as tmp:
        torch.save(out, tmp)
    return output


@dataclass(frozen=True)
class ExportResult:
    """Where :func:`export_segmentation_model` wrote the stock model."""

    model_folder: Path
    checkpoint: Path
    source_checkpoint: Path
    removed_head_keys: int


def export_segmentation_model(fold_folder: str | os.PathLike, output_root: str | os.PathLike,
                              checkpoint_name: str | None = None, overwrite: bool = False) -> ExportResult:
    """Strip the heads from a trained fold and write a stock ``nnUNetTrainer`` model.

    Parameters
    ----------
    fold_folder : path
        ``$nnUNet_results/DatasetNNN_Name/<Trainer>__<plans>__<configuration>/fold_K``.
    output_root : path
        A results root: the model lands in
        ``output_root/DatasetNNN_Name/nnUNetTrainer__<plans>__<configuration>/fold_K/checkpoint_final.pth``
        (``nnUNet_results=output_root nnUNetv2_predict -d NNN -tr nnUNetTrainer ...``, or
        ``nnUNetv2_predict_from_modelfolder -m <model folder>``).
    checkpoint_name : str, optional
        Which checkpoint of the fold to export; default: the deployed (validated) weights,
        ``checkpoint_final.pth`` (``checkpoint_swa.pth`` for folds trained before checkpoint layout 2).
    overwrite : bool
        Replace an existing exported checkpoint (never a checkpoint of the source folder).

    Returns
    -------
    ExportResult
    """
    from nnunet_hecktor.heads import split_state_dict

    fold_folder = Path(fold_folder).resolve()
    if not fold_folder.is_dir() or not fold_folder.name.startswith("fold_"):
        raise HecktorError(f"{fold_folder}: not an nnU-Net fold folder (fold_K inside a trained model folder)")
    model_folder, dataset_folder = fold_folder.parent, fold_folder.parent.parent
    parts = model_folder.name.split("__")
    if len(parts) != 3:
        raise HecktorError(f"{model_folder}: not an nnU-Net model folder (<Trainer>__<plans>__<configuration>)")
    _, plans_name, configuration = parts
    if checkpoint_name is None:
        from nnunet_hecktor.checkpoints import deployed_checkpoint

        checkpoint_name = deployed_checkpoint([fold_folder])
    source = fold_folder / checkpoint_name
    checkpoint = _load_checkpoint(source)
    seg_weights, head_weights = split_state_dict(checkpoint["network_weights"])
    target_model = Path(output_root).resolve() / dataset_folder.name / f"{STOCK_TRAINER}__{plans_name}__{configuration}"
    target_fold = target_model / fold_folder.name
    if target_model == model_folder:
        raise HecktorError(f"{target_model}: export target is the source model folder")
    destination = target_fold / FINAL_CHECKPOINT
    if destination.exists() and not overwrite:
        raise HecktorError(f"{destination} exists; pass --overwrite to replace it")
    for name in ("plans.json", "dataset.json"):
        if not (model_folder / name).is_file():
            raise HecktorError(f"{model_folder / name}: missing (was the training started with nnUNetv2_train?)")
    target_fold.mkdir(parents=True, exist_ok=True)
    for name in ("plans.json", "dataset.json", "dataset_fingerprint.json"):
        if (model_folder / name).is_file():
            with atomic_path(target_model / name) as tmp:
                shutil.copyfile(model_folder / name, tmp)
    exported = {k: v for k, v in checkpoint.items()
                if k not in ("optimizer_state", "grad_scaler_state", EXTRA_STATE_KEY)}
    exported["network_weights"] = seg_weights
    exported["trainer_name"] = STOCK_TRAINER
    exported["exported_from"] = {"checkpoint": str(source), "trainer": checkpoint.get("trainer_name")}
    import torch

    with atomic_path(destination) as tmp:
        torch.save(exported, tmp)
    write_json_atomic(target_fold / "exported_from.json",
                      {"source_checkpoint": str(source), "source_trainer": checkpoint.get("trainer_name"),
                       "removed_head_keys": len(head_weights)})
    return ExportResult(target_model, destination, source, len(head_weights))
