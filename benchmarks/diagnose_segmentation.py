"""What a trainer's patches hold, and how a trained model segments its fold's validation patients.

Two cheap checks used to find out why lymph nodes went unlearned on the demo's CPU schedule
(``docs/tutorials/demo.md``, "How the recipe was chosen"):

``patches``
    Draws training batches from a trainer's own data loader (nnU-Net's augmentation included) and
    counts the voxels of each label in them, and how many patches hold any lymph node.
``fold``
    Segments the fold's validation patients of a trained model (whole preprocessed volumes,
    sliding window, no mirroring) and prints the GTVp mean Dice (patients with a GTVp) and the
    aggregated GTVn Dice, plus the model's largest GTVn probability on and off the nodes.

Examples
--------
::

    python benchmarks/diagnose_segmentation.py patches --preprocessed $nnUNet_preprocessed/Dataset501_HECKTORDemo \
        --plans nnUNetPlansDemo --trainer HecktorMultiTaskTrainer_demo --batches 20
    python benchmarks/diagnose_segmentation.py fold --preprocessed $nnUNet_preprocessed/Dataset501_HECKTORDemo \
        --model $nnUNet_results/Dataset501_HECKTORDemo/HecktorMultiTaskTrainer_demo__nnUNetPlansDemo__3d_fullres

Figures are printed; nothing is written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

CONFIGURATION = "3d_fullres"


def _case(folder: Path, key: str) -> tuple[np.ndarray, np.ndarray]:
    import blosc2

    image = np.asarray(blosc2.open(str(folder / f"{key}.b2nd"))[:])
    seg = np.asarray(blosc2.open(str(folder / f"{key}_seg.b2nd"))[:])[0]
    return image, seg


def patch_content(preprocessed: Path, plans_name: str, trainer_name: str, batches: int, fold: int = 0) -> dict:
    """Label voxel counts over ``batches`` training batches of ``trainer_name``'s own loader."""
    import torch

    import nnunet_hecktor.trainers as trainers

    os.environ.setdefault("nnUNet_n_proc_DA", "0")
    plans = json.loads((preprocessed / f"{plans_name}.json").read_text())
    plans["continue_training"] = False
    dataset_json = json.loads((preprocessed / "dataset.json").read_text())
    trainer = getattr(trainers, trainer_name)(plans, CONFIGURATION, fold, dataset_json, torch.device("cpu"))
    trainer.initialize()
    if hasattr(trainer, "setup_patient_data"):
        trainer.setup_patient_data()
    loader, _ = trainer.get_dataloaders()
    counts = {0: 0, 1: 0, 2: 0}
    patches = with_nodes = 0
    for _ in range(batches):
        batch = next(loader)
        target = batch["target"][0] if isinstance(batch["target"], list) else batch["target"]
        for label in counts:
            counts[label] += int((target == label).sum())
        patches += target.shape[0]
        with_nodes += int(sum(bool((target[j] == 2).any()) for j in range(target.shape[0])))
    return {"patches": patches, "patches_with_a_node": with_nodes, "voxels": counts}


def fold_segmentation(preprocessed: Path, model: Path, fold: int = 0) -> dict:
    """GTVp mean Dice, GTVn aggregated Dice and GTVn probabilities on the fold's validation patients."""
    import torch

    from nnunet_hecktor.prediction.model import load_predictor

    predictor, _ = load_predictor(model, [fold], use_mirroring=False)
    model_plans = json.loads((model / "plans.json").read_text())
    folder = preprocessed / model_plans["configurations"][CONFIGURATION]["data_identifier"]
    keys = json.loads((preprocessed / "splits_final.json").read_text())[fold]["val"]
    gtvp_dice, intersection, total = [], 0, 0
    node_max, off_max = 0.0, 0.0
    for key in keys:
        image, seg = _case(folder, key)
        logits = predictor.predict_sliding_window_return_logits(torch.from_numpy(np.ascontiguousarray(image)).float())
        probabilities = torch.softmax(logits.float(), 0).numpy()
        predicted = probabilities.argmax(0)
        truth, guess = seg == 1, predicted == 1
        if truth.any():
            gtvp_dice.append(2 * (truth & guess).sum() / (truth.sum() + guess.sum()))
        nodes, found = seg == 2, predicted == 2
        intersection += int((nodes & found).sum())
        total += int(nodes.sum() + found.sum())
        if nodes.any():
            node_max = max(node_max, float(probabilities[2][nodes].max()))
        off_max = max(off_max, float(probabilities[2][~nodes].max()))
    return {"patients": len(keys), "gtvp_mean_dice": float(np.mean(gtvp_dice)),
            "gtvn_dsc_agg": 2 * intersection / total if total else float("nan"),
            "gtvn_probability_max_on_nodes": node_max, "gtvn_probability_max_elsewhere": off_max}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("check", choices=("patches", "fold"))
    parser.add_argument("--preprocessed", required=True, type=Path, help="nnU-Net preprocessed dataset folder")
    parser.add_argument("--plans", default="nnUNetPlansDemo")
    parser.add_argument("--trainer", default="HecktorMultiTaskTrainer_demo")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--model", type=Path, help="trained model folder (check 'fold')")
    parser.add_argument("--fold", type=int, default=0)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    if args.check == "patches":
        result = patch_content(args.preprocessed, args.plans, args.trainer, args.batches, args.fold)
    else:
        if args.model is None:
            parser.error("'fold' needs --model")
        result = fold_segmentation(args.preprocessed, args.model, args.fold)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
