"""Loading a trained nnU-Net model folder for prediction, with clear errors for the usual mistakes.

The segmentation network is loaded by nnU-Net itself
(:meth:`nnUNetPredictor.initialize_from_trained_model_folder`: the trainer's static
``build_network_architecture`` + ``load_state_dict(strict=True)`` for every fold); this module only
checks the folder first (plans, dataset.json, fold folders, checkpoint files), makes the plugin's
trainers findable for nnU-Net, and tells multi-task models (``HecktorMultiTaskTrainer`` and its
variants: segmentation + HPV + risk heads) from segmentation-only ones.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from nnunet_hecktor.checkpoints import DEPLOYED_CHECKPOINT, deployed_checkpoint
from nnunet_hecktor.errors import HecktorError

from .settings import ConversionSettings

#: ``None`` = the deployed (validated) weights of the model, see :func:`resolve_checkpoint`.
DEFAULT_CHECKPOINT: str | None = None
_FOLD_DIR = re.compile(r"^fold_(\d+|all)$")


@dataclass
class ModelInfo:
    """What was loaded.

    Attributes
    ----------
    model_dir : Path
        ``$nnUNet_results/DatasetNNN_Name/<Trainer>__<Plans>__<configuration>``.
    trainer_name, configuration, plans_name : str
    folds : tuple
        Fold identifiers used (ints, or ``"all"``).
    checkpoint : str
        Checkpoint file name used in every fold.
    multitask : bool
        The network has the HPV and risk heads.
    hpv_thresholds : list of float
        Per fold, the HPV probability threshold stored in the checkpoint (chosen on that fold's
        training patients); empty for segmentation-only models.
    mirror_axes : tuple of int or None
        Axes nnU-Net mirrors for test-time augmentation (None = mirroring off).
    conversion : ConversionSettings
        The converter's preprocessing, to be repeated on new cases.
    channel_names : dict
    """

    model_dir: Path
    trainer_name: str
    configuration: str
    plans_name: str
    folds: tuple
    checkpoint: str
    multitask: bool
    hpv_thresholds: list[float] = field(default_factory=list)
    mirror_axes: tuple[int, ...] | None = None
    conversion: ConversionSettings = field(default_factory=ConversionSettings)
    channel_names: dict = field(default_factory=dict)

    def describe(self) -> str:
        kind = "multi-task (segmentation + HPV + risk)" if self.multitask else "segmentation only"
        folds = ", ".join(str(f) for f in self.folds)
        mirroring = "off" if self.mirror_axes is None else f"axes {tuple(self.mirror_axes)}"
        return (f"model {self.model_dir}\n  trainer {self.trainer_name} ({kind}), {self.configuration}, "
                f"plans {self.plans_name}\n  folds {folds}, {self.checkpoint}, mirroring {mirroring}\n"
                f"  preprocessing: {self.conversion.describe()}")

    def to_json(self) -> dict:
        return {"model_dir": str(self.model_dir), "trainer": self.trainer_name, "configuration": self.configuration,
                "plans": self.plans_name, "folds": list(self.folds), "checkpoint": self.checkpoint,
                "multitask": self.multitask, "hpv_thresholds": list(self.hpv_thresholds),
                "mirror_axes": None if self.mirror_axes is None else list(self.mirror_axes),
                "conversion": self.conversion.to_json()}


def _fold_id(text: str | int):
    text = str(text).strip()
    if text == "all":
        return "all"
    try:
        return int(text)
    except ValueError:
        raise HecktorError(f"fold {text!r}: expected an integer or 'all'") from None


def available_folds(model_dir: Path) -> dict:
    """Fold id -> checkpoint file names present, for every ``fold_*`` folder of a model folder."""
    out = {}
    for child in sorted(model_dir.iterdir()) if model_dir.is_dir() else []:
        match = _FOLD_DIR.match(child.name)
        if match and child.is_dir():
            out[_fold_id(match.group(1))] = sorted(p.name for p in child.glob("*.pth"))
    return out


def _describe_folds(folds: dict) -> str:
    if not folds:
        return "no fold_* folders"
    return "; ".join(f"fold_{f}: {', '.join(c) or 'no checkpoint'}" for f, c in folds.items())


def resolve_checkpoint(model_dir: str | os.PathLike, folds: Sequence | None = None,
                       checkpoint: str | None = None) -> str:
    """The checkpoint file name to use: ``checkpoint`` when given, else the one deployed by default.

    The default is :data:`~nnunet_hecktor.checkpoints.DEPLOYED_CHECKPOINT` (``checkpoint_final.pth``,
    the weights the training validated), or ``checkpoint_swa.pth`` for models trained with SWA before
    checkpoint layout 2 (:func:`~nnunet_hecktor.checkpoints.deployed_checkpoint`).

    Raises
    ------
    HecktorError
        The folds mix both layouts (name the checkpoint then).
    """
    if checkpoint:
        return checkpoint
    path = Path(model_dir).expanduser()
    present = available_folds(path)
    chosen = [_fold_id(f) for f in folds] if folds else [f for f in present if f != "all"]
    fold_dirs = [path / f"fold_{f}" for f in chosen if DEPLOYED_CHECKPOINT in present.get(f, ())]
    try:
        return deployed_checkpoint(fold_dirs)
    except ValueError as exc:
        raise HecktorError(f"{path}: {exc} (e.g. --checkpoint {DEPLOYED_CHECKPOINT})") from None


def check_model_folder(model_dir: str | os.PathLike, folds: Sequence | None = None,
                       checkpoint: str | None = DEFAULT_CHECKPOINT) -> tuple[Path, tuple]:
    """Validate a model folder before loading it; return the folder and the folds to use.

    Parameters
    ----------
    model_dir : path-like
        nnU-Net model folder (``<Trainer>__<Plans>__<configuration>``).
    folds : sequence of int or "all", optional
        Default: every numbered fold whose folder has ``checkpoint``; ``("all",)`` when only
        ``fold_all`` has it.
    checkpoint : str, optional
        Checkpoint file name (``checkpoint_final.pth``, ...); default: the deployed weights
        (:func:`resolve_checkpoint`).

    Raises
    ------
    HecktorError
        Not a model folder (with a hint when a parent or child folder was given instead), a
        requested fold missing, or the checkpoint absent from a fold (the checkpoints present
        are listed).
    """
    path = Path(model_dir).expanduser()
    if not path.is_dir():
        raise HecktorError(f"model folder {path} does not exist")
    checkpoint = resolve_checkpoint(path, folds, checkpoint)
    path = path.resolve()
    missing = [name for name in ("plans.json", "dataset.json") if not (path / name).is_file()]
    if missing:
        hint = ""
        if _FOLD_DIR.match(path.name) and (path.parent / "plans.json").is_file():
            hint = f"; this is a fold folder, give its parent {path.parent} and choose folds with --folds"
        else:
            candidates = sorted(p.name for p in path.iterdir() if p.is_dir() and (p / "plans.json").is_file())
            if candidates:
                hint = f"; it holds the model folders {', '.join(candidates)}: give one of them"
        raise HecktorError(f"{path} is not an nnU-Net model folder (no {' or '.join(missing)}; expected "
                           f"$nnUNet_results/DatasetNNN_Name/<Trainer>__<Plans>__<configuration>){hint}")
    present = available_folds(path)
    if folds is None or len(folds) == 0:
        chosen = tuple(f for f, names in present.items() if checkpoint in names and f != "all")
        if not chosen and checkpoint in present.get("all", ()):
            chosen = ("all",)  # a model trained on every case only (nnUNetv2_train ... all)
        if not chosen:
            raise HecktorError(f"{path}: no fold has {checkpoint} ({_describe_folds(present)})")
        return path, chosen
    chosen = tuple(_fold_id(f) for f in folds)
    if len(set(chosen)) != len(chosen):
        raise HecktorError(f"folds {list(folds)}: a fold is listed twice")
    for fold in chosen:
        if fold not in present:
            raise HecktorError(f"{path}: fold {fold} not found (no fold_{fold} folder; available: "
                               f"{_describe_folds(present)})")
        if checkpoint not in present[fold]:
            alternatives = ", ".join(present[fold]) or "none"
            raise HecktorError(f"{path}/fold_{fold}: no {checkpoint} (checkpoints there: {alternatives}); "
                               "is training finished? choose another one with --checkpoint")
    return path, chosen


@contextlib.contextmanager
def plugin_trainers_findable():
    """Let nnU-Net's trainer search find the plugin's trainers (``nnUNet_extTrainer``), restoring it after."""
    from nnunet_hecktor.nnunet_env import plugin_trainer_folder

    previous = os.environ.get("nnUNet_extTrainer")
    existing = [p for p in (previous or "").split(os.pathsep) if p]
    folder = plugin_trainer_folder()
    if folder not in existing:
        os.environ["nnUNet_extTrainer"] = os.pathsep.join(existing + [folder])
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("nnUNet_extTrainer", None)
        else:
            os.environ["nnUNet_extTrainer"] = previous


def is_multitask_network(network) -> bool:
    """True for the plugin's multi-task network (also when wrapped by ``torch.compile``)."""
    from nnunet_hecktor.heads import HecktorMultiTaskNetwork

    network = getattr(network, "_orig_mod", network)
    return isinstance(network, HecktorMultiTaskNetwork)


def _threshold_of(state_dict: dict, fold) -> float:
    from nnunet_hecktor.heads import HEADS_PREFIX

    key = f"{HEADS_PREFIX}hpv_threshold"
    if key not in state_dict:
        raise HecktorError(f"fold {fold}: the checkpoint has no {key} (heads of an older plugin version?)")
    return float(state_dict[key])


def load_predictor(model_dir: str | os.PathLike, folds: Sequence | None = None,
                   checkpoint: str | None = DEFAULT_CHECKPOINT, device: str = "cpu", use_mirroring: bool = True,
                   tile_step_size: float = 0.5, segmentation_only: bool = False, allow_tqdm: bool = False):
    """Build nnU-Net's predictor for a model folder and describe the model.

    Parameters
    ----------
    model_dir, folds, checkpoint
        See :func:`check_model_folder`.
    device : {"cpu", "cuda", "cuda:N", "auto"}
        ``"auto"`` = CUDA when available.
    use_mirroring : bool
        Test-time mirroring as nnU-Net does it (the model's ``inference_allowed_mirroring_axes``);
        used for the segmentation and for the heads.
    tile_step_size : float
        Sliding-window step as a fraction of the patch (nnU-Net's default 0.5).
    segmentation_only : bool
        Accept a model without heads (stock ``nnUNetTrainer`` etc.). Without it such a model is
        an error, so that nobody gets a prediction run without HPV/risk by accident.

    Returns
    -------
    (nnUNetPredictor, ModelInfo)

    Raises
    ------
    HecktorError
        Folder/fold/checkpoint problems, an unknown trainer, weights that do not fit the
        architecture, no CUDA device, or a segmentation-only model without ``segmentation_only``.
    """
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    if Path(model_dir).expanduser().is_dir():
        checkpoint = resolve_checkpoint(model_dir, folds, checkpoint)
    path, chosen = check_model_folder(model_dir, folds, checkpoint)
    # check_model_folder raised unless model_dir is a folder, so the checkpoint was resolved above.
    assert checkpoint is not None
    torch_device = resolve_device(device)
    dataset_json = json.loads((path / "dataset.json").read_text(encoding="utf-8"))
    conversion = ConversionSettings.from_dataset_json(dataset_json)
    channel_names = dict(dataset_json.get("channel_names", {}))
    if len(channel_names) != 2:
        raise HecktorError(f"{path}: the model takes {len(channel_names)} input channels "
                           f"({channel_names}); HECKTOR prediction feeds 2 (0 CT, 1 PET)")

    if not 0.0 < float(tile_step_size) <= 1.0:
        raise HecktorError(f"sliding-window step size {tile_step_size} must be in (0, 1]")
    log = io.StringIO()
    with contextlib.redirect_stdout(log):  # nnU-Net prints a notice for CPU devices
        predictor = nnUNetPredictor(tile_step_size=tile_step_size, use_gaussian=True, use_mirroring=use_mirroring,
                                    perform_everything_on_device=torch_device.type == "cuda", device=torch_device,
                                    verbose=False, verbose_preprocessing=False, allow_tqdm=allow_tqdm)
    try:
        with plugin_trainers_findable(), contextlib.redirect_stdout(log), warnings.catch_warnings():
            # nnU-Net's trainer search imports every trainer module (timm, torch.jit deprecations).
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            predictor.initialize_from_trained_model_folder(str(path), list(chosen), checkpoint)
    except RuntimeError as exc:
        text = str(exc)
        if "Could not find requested nnunet trainer" in text:
            raise HecktorError(f"{path}: the trainer of this model is unknown here ({text.splitlines()[0]}); "
                               "is the package that defines it installed?") from None
        if "state_dict" in text or "size mismatch" in text or "Missing key" in text:
            hint = ""
            if "hecktor_heads" in text and "HecktorMultiTaskTrainer" in path.name:
                # The default heads changed from MLPs on the pooled bottleneck to linear heads on
                # lesion statistics; models trained before keep working under the old design's name.
                hint = ("; if it was trained before the default heads changed (MLP heads on the bottleneck), "
                        "its architecture is HecktorMultiTaskTrainerBottleneckHeads: nnU-Net builds the network "
                        "of the checkpoint's 'trainer_name', so set that key to this name")
            raise HecktorError(f"{path}: the {checkpoint} weights do not fit the network the trainer builds "
                               f"({text.splitlines()[0]}){hint}") from None
        raise
    except (OSError, EOFError, ValueError) as exc:
        raise HecktorError(f"{path}: cannot load {checkpoint} ({type(exc).__name__}: {exc})") from None

    multitask = is_multitask_network(predictor.network)
    if not multitask and not segmentation_only:
        raise HecktorError(
            f"{path}: trainer {predictor.trainer_name} is not a multi-task model (no HPV/risk heads), so it cannot "
            "predict HPV status or risk. Use segmentation-only prediction (--segmentation-only) to write the "
            "segmentations alone, or a model trained with -tr HecktorMultiTaskTrainer")
    thresholds = [_threshold_of(p, f) for p, f in zip(predictor.list_of_parameters, chosen)] if multitask else []
    mirror_axes = predictor.allowed_mirroring_axes if use_mirroring else None
    # nnU-Net names model folders <Trainer>__<Plans>__<configuration>.
    configuration = path.name.split("__")[-1] if path.name.count("__") == 2 else "unknown"
    info = ModelInfo(path, predictor.trainer_name, configuration, predictor.plans_manager.plans_name, chosen,
                     checkpoint, multitask,
                     thresholds, None if mirror_axes is None else tuple(int(a) for a in mirror_axes), conversion,
                     channel_names)
    return predictor, info


def resolve_device(device: str):
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` -> ``torch.device`` (clear error without CUDA)."""
    import torch

    text = str(device).strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise HecktorError(f"device {device!r} requested but CUDA is not available in this PyTorch "
                               f"({torch.__version__}); use --device cpu")
        return torch.device(text)
    if text != "cpu":
        raise HecktorError(f"unknown device {device!r} (choose cpu, cuda, cuda:N or auto)")
    return torch.device("cpu")
