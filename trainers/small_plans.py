"""A narrow copy of an nnU-Net plans file, for CPU smoke tests and the demo.

nnU-Net plans a U-Net with 32 features at full resolution doubling per stage (up to 320); on a CPU
that takes seconds per step even on 32^3 patches. :func:`write_small_plans` writes a second plans
file (e.g. ``nnUNetPlansTiny.json``) next to the original, with the feature counts capped, that
points at the *same* preprocessed data (same ``data_identifier``), so no second preprocessing is
needed. Use it with nnU-Net's own ``-p`` flag::

    nnUNetv2_train 501 3d_fullres 0 -tr HecktorMultiTaskTrainer_tiny -p nnUNetPlansTiny -device cpu
    nnUNetv2_predict ... -tr HecktorMultiTaskTrainer_tiny -p nnUNetPlansTiny -c 3d_fullres -f 0 -device cpu
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np

from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.fileio import write_json_atomic


def write_small_plans(preprocessed_dataset_folder: str | os.PathLike, source_plans: str = "nnUNetPlans",
                      target_plans: str = "nnUNetPlansTiny", base_features: int = 8, max_features: int = 32,
                      configurations: tuple[str, ...] | None = None,
                      patch_size: tuple[int, ...] | None = None, batch_size: int | None = None) -> Path:
    """Write ``<target_plans>.json``: ``source_plans`` with narrower U-Nets.

    Parameters
    ----------
    preprocessed_dataset_folder : path
        ``$nnUNet_preprocessed/DatasetNNN_Name``.
    source_plans, target_plans : str
        Plans identifiers (file names without ``.json``).
    base_features : int
        Features of the first stage; stage ``s`` gets ``min(base_features * 2**s, max_features)``.
    max_features : int
        Cap of the feature count.
    configurations : tuple of str, optional
        Configurations to narrow (default: all that define an architecture).
    patch_size : tuple of int, optional
        Patch size (z, y, x) of the narrowed 3D configurations instead of the planned one: smaller
        patches make CPU iterations cheaper. Each size must be divisible by the network's total
        stride along that axis.
    batch_size : int, optional
        Batch size of the narrowed configurations instead of the planned one.

    Returns
    -------
    Path
        The written plans file. The data identifiers are unchanged, so the configurations use
        the data already preprocessed for ``source_plans``.
    """
    folder = Path(preprocessed_dataset_folder)
    source = folder / f"{source_plans}.json"
    if not source.is_file():
        raise HecktorError(f"{source}: plans file not found (run nnUNetv2_plan_and_preprocess first)")
    plans = json.loads(source.read_text())
    small = copy.deepcopy(plans)
    small["plans_name"] = target_plans
    for name, config in small["configurations"].items():
        if configurations is not None and name not in configurations:
            continue
        kwargs = config.get("architecture", {}).get("arch_kwargs")
        if not kwargs or "features_per_stage" not in kwargs:
            continue
        n = len(kwargs["features_per_stage"])
        kwargs["features_per_stage"] = [min(base_features * 2 ** s, max_features) for s in range(n)]
        if patch_size is not None and len(config.get("patch_size", ())) == len(patch_size):
            strides = kwargs.get("strides") or [[1] * len(patch_size)]
            total = [int(t) for t in np.prod(np.array(strides), axis=0)]
            bad = [f"{p} (stride {t})" for p, t in zip(patch_size, total) if p % t]
            if bad:
                raise HecktorError(f"patch size {tuple(patch_size)} of {name}: not divisible by the network's "
                                   f"total stride: {', '.join(bad)}")
            config["patch_size"] = [int(p) for p in patch_size]
        if batch_size is not None:
            config["batch_size"] = int(batch_size)
        # Keep the original data (not re-preprocessed under the new plans name).
        if "data_identifier" in config:
            config["data_identifier"] = plans["configurations"][name]["data_identifier"]
    destination = folder / f"{target_plans}.json"
    write_json_atomic(destination, small)
    return destination
