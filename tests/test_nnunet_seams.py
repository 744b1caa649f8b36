"""The trainer stack's contract with nnU-Net: mirrored methods unchanged, the trainer list complete,
each concern in its own class."""

import importlib
import inspect

import pytest

from nnunet_hecktor import trainers
from nnunet_hecktor.trainers import nnunet_seams


@pytest.mark.parametrize("method", sorted(nnunet_seams.MIRRORED_METHODS))
def test_mirrored_nnunet_method_is_unchanged_in_the_installed_nnunet(method):
    mirror, fingerprint = nnunet_seams.MIRRORED_METHODS[method]
    assert nnunet_seams.method_fingerprint(method) == fingerprint, (
        f"nnUNetTrainer.{method} changed in the installed nnU-Net: re-check {mirror} against it, "
        "then update MIRRORED_METHODS in trainers/nnunet_seams.py")


def test_fingerprint_ignores_comments_but_not_code(monkeypatch):
    from nnunetv2.training.nnUNetTrainer import nnUNetTrainer as module

    original = nnunet_seams.method_fingerprint("train_step")

    def edited(self, batch):  # a different body
        return {"loss": 0}

    monkeypatch.setattr(module.nnUNetTrainer, "train_step", edited)
    assert nnunet_seams.method_fingerprint("train_step") != original
    assert nnunet_seams.changed_mirrors() and "train_step" in nnunet_seams.changed_mirrors()[0]


def _trainer_classes_defined_in_the_package() -> dict[str, str]:
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    found = {}
    for name in ("base_trainer", "swa_trainer", "multitask_trainer", "variants", "benchmark_variants"):
        module = importlib.import_module(f"nnunet_hecktor.trainers.{name}")
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and issubclass(cls, nnUNetTrainer) and cls_name.startswith("Hecktor"):
                found[cls_name] = name
    return found


def test_trainer_list_names_every_trainer_class_and_its_module():
    defined = _trainer_classes_defined_in_the_package()
    # The building blocks are not trainers one trains with.
    defined.pop("HecktorTrainerBase")
    assert trainers._TRAINERS == defined


def test_each_concern_is_its_own_class():
    from nnunet_hecktor.trainers.base_trainer import HecktorTrainerBase
    from nnunet_hecktor.trainers.multitask_trainer import HecktorHeadsTrainer, HecktorMultiTaskTrainer
    from nnunet_hecktor.trainers.swa_trainer import HecktorSWATrainer, SWAMixin
    from nnunet_hecktor.trainers.variants import HecktorMultiTaskTrainerNoSWA

    assert issubclass(HecktorSWATrainer, SWAMixin) and issubclass(HecktorSWATrainer, HecktorTrainerBase)
    assert issubclass(HecktorMultiTaskTrainer, SWAMixin) and issubclass(HecktorMultiTaskTrainer, HecktorHeadsTrainer)
    # The heads exist without SWA, and the SWA ablation really has no SWA code in it.
    assert not issubclass(HecktorHeadsTrainer, SWAMixin)
    assert not issubclass(HecktorMultiTaskTrainerNoSWA, SWAMixin)
    # The trainers hold no copy of nnU-Net's data pipeline: the stock method builds it.
    assert "get_dataloaders" not in vars(HecktorTrainerBase)
    assert "nnUNetDataLoader" not in inspect.getsource(HecktorHeadsTrainer.get_dataloaders).replace(
        "in place of ``nnUNetDataLoader``", "")
