"""nnU-Net trainer classes of nnunet-hecktor (importable as ``nnunet_hecktor.trainers``).

Trainers (use with ``nnUNetv2_train ... -tr NAME`` once ``nnUNet_extTrainer`` points at
``nnunet-hecktor trainer-path``):

- :class:`HecktorMultiTaskTrainer`: segmentation + HPV head + Cox head + SWA.
- :class:`HecktorSWATrainer`: stock segmentation with stochastic weight averaging.

How they are built (one concern per class, composed by inheritance): :mod:`.base_trainer`
(``HecktorTrainerBase``: checkpoint format and end-of-training hooks), :mod:`.swa_trainer`
(``SWAMixin``), :mod:`.multitask_trainer` (``HecktorHeadsTrainer``: the heads on the base;
``HecktorMultiTaskTrainer = SWAMixin + HecktorHeadsTrainer``); every nnU-Net internal they touch
goes through :mod:`.nnunet_seams`.
- Variants (:mod:`.variants`): ``*_tiny``, ``*_5epochs``, ``*_100epochs``, ``*_250epochs``,
  ``HecktorMultiTaskTrainerNoClinical``, ``HecktorMultiTaskTrainerNoSWA``,
  ``HecktorMultiTaskTrainerBottleneckHeads`` (the original heads).

Helpers: :mod:`.handover` (warm start, export of a stock checkpoint), :mod:`.swa`,
:mod:`.sampling`, :mod:`.patient_data`. Heads on a whole volume (shared with prediction):
:mod:`nnunet_hecktor.heads.inference`.

The trainer classes are loaded lazily: importing a helper module does not import nnU-Net's
training stack.
"""

from __future__ import annotations

from nnunet_hecktor.lazy_exports import lazy_exports

#: Every trainer class nnU-Net can be given with ``-tr`` -> its module (tests/test_nnunet_seams.py
#: checks it against the classes the modules define).
_TRAINERS = {
    "HecktorSWATrainer": "swa_trainer",
    "HecktorMultiTaskTrainer": "multitask_trainer",
    "HecktorHeadsTrainer": "multitask_trainer",
    "HecktorMultiTaskTrainer_tiny": "variants",
    "HecktorSWATrainer_tiny": "variants",
    "HecktorMultiTaskTrainer_5epochs": "variants",
    "HecktorMultiTaskTrainer_100epochs": "variants",
    "HecktorMultiTaskTrainer_250epochs": "variants",
    "HecktorSWATrainer_5epochs": "variants",
    "HecktorSWATrainer_100epochs": "variants",
    "HecktorSWATrainer_250epochs": "variants",
    "HecktorMultiTaskTrainerNoClinical": "variants",
    "HecktorMultiTaskTrainerNoSWA": "variants",
    "HecktorMultiTaskTrainer_demo": "variants",
    "HecktorMultiTaskTrainerBottleneckHeads": "variants",
    "HecktorMultiTaskTrainer_benchmark": "benchmark_variants",
    "HecktorMultiTaskTrainerBottleneckHeads_benchmark": "benchmark_variants",
    "HecktorSWATrainer_benchmark": "benchmark_variants",
    "HecktorMultiTaskTrainer_demo_benchmark": "benchmark_variants",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _TRAINERS, globals())
