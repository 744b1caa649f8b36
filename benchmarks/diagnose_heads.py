"""Why the HPV and risk heads do not learn: cheap in-process experiments (issue 9, step 1).

Not a test and not the learning benchmark (``bench_learning.py``): small experiments on a
synthetic cohort at the ``test`` image size, whole images padded to the tiny plan's 24x32x32
patch, a PlainConvUNet shaped like ``nnUNetPlansTiny`` (5 stages, 8..32 features, bottleneck
3x2x2) and the plugin's own head, Cox-bank and HPV-loss code. Each experiment prints figures on
patients of a second cohort (another seed) that no model saw.

Experiments (``--experiments``):

``facts``     cohort counts; bottleneck cells under the GTVp mask; C-index of log GTVp volume, of
              the generator's true risk (ceiling) and of a clinical-only Cox model.
``gradient``  in the stock training step (seg loss + 0.1 Cox over bank ∪ batch, clip at 12): the
              Cox gradient reaching the one eligible risk vs the bank's size, the head's share of
              the clipped gradient.
``inputs``    heads fitted to convergence (full batch, Adam) on a frozen segmentation-trained
              encoder, for several head inputs: the stock masked bottleneck pooling, soft lesion
              statistics of the network's own segmentation, both; with/without clinical.
``training``  the stock training protocol (nnU-Net SGD, one eligible patch per step, Cox bank,
              loss weight, clipping) on that encoder for ``--steps`` steps, stock input vs lesion
              statistics, loss weight 0.1 vs 1: spread of the risk output and test C-index.

Usage::

    python benchmarks/diagnose_heads.py --train-patients 300 --test-patients 260 --pretrain-steps 400

Results: a JSON in ``--workdir`` and printed tables.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PATCH = (24, 32, 32)


# --------------------------------------------------------------------------- data

def load_cohort(directory: Path, n_patients: int, seed: int) -> dict:
    """Images on the CT grid padded to PATCH, labels, clinical records and generator truth."""
    import SimpleITK as sitk

    from nnunet_hecktor.clinical import read_clinical_csv
    from nnunet_hecktor.synthetic import make_cohort
    from nnunet_hecktor.trainers.patient_data import PatientTable

    if not (directory / "synthetic_ground_truth.json").is_file():
        make_cohort(directory, n_patients=n_patients, seed=seed, layout="flat", size="test", progress=False,
                    overwrite=True)
    truth = json.loads((directory / "synthetic_ground_truth.json").read_text())["patients"]
    ids = sorted(p.name[:-len(".nii.gz")] for p in directory.glob("*.nii.gz") if "__" not in p.name)
    images, labels = [], []
    for pid in ids:
        label_img = sitk.ReadImage(str(directory / f"{pid}.nii.gz"))
        ct_img = sitk.ReadImage(str(directory / f"{pid}__CT.nii.gz"))
        pet_img = sitk.Resample(sitk.ReadImage(str(directory / f"{pid}__PT.nii.gz")), ct_img, sitk.Transform(),
                                sitk.sitkLinear, 0.0)
        arrays = [sitk.GetArrayFromImage(i).astype(np.float32) for i in (ct_img, pet_img, label_img)]
        out = []
        for a in arrays:
            padded = np.zeros(PATCH, np.float32)
            sl = tuple(slice(0, min(s, t)) for s, t in zip(a.shape, PATCH))
            padded[sl] = a[sl]
            out.append(padded)
        ct, pet, lab = out
        # nnU-Net-like normalisation: CT clipped and scaled, PET z-scored with cohort-free constants.
        images.append(np.stack([np.clip(ct, -200, 300) / 150.0, pet / 5.0]))
        labels.append(lab.astype(np.int64))
    table = PatientTable.from_records(ids, read_clinical_csv(directory / "HECKTOR_2025_Training_clinical.csv"))
    return {"ids": ids, "images": np.stack(images), "labels": np.stack(labels), "table": table,
            "true_risk": np.array([truth[p]["true_risk"] for p in ids]),
            "hpv_probability": np.array([truth[p]["hpv_probability"] for p in ids])}


def tiny_unet():
    import torch
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    return PlainConvUNet(2, 5, [8, 16, 32, 32, 32], torch.nn.Conv3d, 3,
                         [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]], 2, 3, 1, True,
                         torch.nn.InstanceNorm3d, {"eps": 1e-5, "affine": True}, None, None,
                         torch.nn.LeakyReLU, {"inplace": True}, deep_supervision=False)


def seg_loss(logits, target, class_weights=None):
    import torch
    import torch.nn.functional as F

    ce = F.cross_entropy(logits, target, weight=class_weights)
    p = torch.softmax(logits, 1)
    onehot = F.one_hot(target, 3).permute(0, 4, 1, 2, 3).float()
    inter = (p * onehot).sum((0, 2, 3, 4))[1:]
    den = (p + onehot).sum((0, 2, 3, 4))[1:]
    return ce + 1 - ((2 * inter + 1e-5) / (den + 1e-5)).mean()


def pretrain_segmentation(data: dict, steps: int, seed: int, init_state=None):
    """Segmentation-only training (Adam, batch 4, random flips, foreground-weighted CE to leave the
    all-background plateau sooner): the 'pre-trained encoder'. ``init_state`` continues a run."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 0 if init_state is None else 1])
    net = tiny_unet()
    if init_state is not None:
        net.load_state_dict(init_state)
    weights = torch.tensor([1.0, 5.0, 5.0])
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    x_all = torch.from_numpy(data["images"])
    y_all = torch.from_numpy(data["labels"])
    for step in range(steps):
        idx = rng.choice(len(x_all), 4)
        x, y = x_all[idx], y_all[idx]
        for axis in (2, 3, 4):
            if rng.random() < 0.5:
                x, y = x.flip(axis), y.flip(axis - 1)
        loss = seg_loss(net(x), y, weights)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            print(f"  pretrain step {step}: seg loss {float(loss.detach()):.3f}", file=sys.stderr, flush=True)
    net.eval()
    return net


def dice_scores(net, data: dict) -> dict:
    import torch

    with torch.no_grad():
        pred = torch.cat([net(torch.from_numpy(data["images"][i:i + 32])).argmax(1)
                          for i in range(0, len(data["ids"]), 32)]).numpy()
    gt = data["labels"]
    out = {}
    for name, value in (("gtvp", 1), ("gtvn", 2)):
        a, b = gt == value, pred == value
        per = [2 * (x & y).sum() / (x.sum() + y.sum()) for x, y in zip(a, b) if x.any() or y.any()]
        out[f"{name}_mean_dice"] = float(np.mean(per))
        out[f"{name}_aggregated_dice"] = float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))
    return out


def features(net, data: dict, use_prediction: bool) -> dict:
    """Stock pooled bottleneck input (mask: ground truth or the network's own GTVp) and lesion statistics."""
    import torch

    from nnunet_hecktor.heads.lesion_statistics import soft_lesion_statistics
    from nnunet_hecktor.heads.multitask_network import pool_bottleneck

    pooled, stats, cells = [], [], []
    with torch.no_grad():
        for i in range(0, len(data["ids"]), 32):
            x = torch.from_numpy(data["images"][i:i + 32])
            skips = net.encoder(x)
            logits = net.decoder(skips)
            mask = (logits.argmax(1, keepdim=True) == 1) if use_prediction else \
                torch.from_numpy(data["labels"][i:i + 32] == 1)[:, None]
            mask = mask.float()
            pooled.append(pool_bottleneck(skips[-1], mask).numpy())
            stats.append(soft_lesion_statistics(logits, x).numpy())
            m = torch.nn.functional.adaptive_max_pool3d(mask, skips[-1].shape[2:]) > 0
            cells.append(m.flatten(1).sum(1).numpy())
    return {"pooled": np.concatenate(pooled), "stats": np.concatenate(stats), "cells": np.concatenate(cells)}


# --------------------------------------------------------------------------- metrics

def c_index(table, risk, rows=None) -> float:
    from nnunet_hecktor.trainers.head_metrics import survival_metrics

    return survival_metrics(table.rfs, table.relapse, risk)["c_index"]


def hpv_figures(table, prob, threshold) -> tuple[float, float]:
    from nnunet_hecktor.trainers.head_metrics import hpv_metrics

    m = hpv_metrics(table.hpv, prob, threshold)
    return m["auc"], m["balanced_accuracy"]


# --------------------------------------------------------------------------- experiments

def experiment_facts(train, test, feats_train) -> dict:
    from sksurv.linear_model import CoxPHSurvivalAnalysis
    from sksurv.util import Surv

    from nnunet_hecktor.heads.clinical_encoding import ClinicalEncoder

    t = test["table"]
    gtvp_voxels = (test["labels"] == 1).reshape(len(test["ids"]), -1).sum(1)
    enc = ClinicalEncoder()
    enc.fit(train["table"].records)
    xc_tr, xc_te = enc.encode(train["table"].records).numpy(), enc.encode(test["table"].records).numpy()
    known = np.isfinite(train["table"].rfs)
    cox = CoxPHSurvivalAnalysis(alpha=1.0).fit(xc_tr[known], Surv.from_arrays(
        train["table"].relapse[known].astype(bool), train["table"].rfs[known]))
    return {
        "train_patients": len(train["ids"]), "train_with_rfs": int(known.sum()),
        "train_events": int(np.nansum(train["table"].relapse)),
        "train_hpv_known": int(np.isfinite(train["table"].hpv).sum()),
        "train_hpv_negative": int((train["table"].hpv == 0).sum()),
        "test_patients": len(test["ids"]), "test_with_rfs": int(np.isfinite(t.rfs).sum()),
        "test_events": int(np.nansum(t.relapse)), "test_hpv_negative": int((t.hpv == 0).sum()),
        "bottleneck_cells_under_gtvp_median": float(np.median(feats_train["cells"])),
        "bottleneck_cells_under_gtvp_max": float(np.max(feats_train["cells"])),
        "bottleneck_cells_total": 12,
        "test_c_index_log_gt_gtvp_volume": c_index(t, np.log1p(gtvp_voxels)),
        "test_c_index_true_risk": c_index(t, test["true_risk"]),
        "test_c_index_clinical_cox": c_index(t, cox.predict(xc_te)),
        "test_hpv_auc_true_probability": hpv_figures(t, test["hpv_probability"], float(np.nanmean(t.hpv)))[0],
    }


def experiment_gradient(net, train, feats) -> dict:
    """Cox gradient on the one eligible risk of a step, as the bank fills; heads' share after clipping."""
    import torch

    from nnunet_hecktor.heads import HeadConfig, RiskBank
    from nnunet_hecktor.heads.multitask_network import HecktorMultiTaskNetwork

    table = train["table"]
    known = np.where(np.isfinite(table.rfs))[0]
    out = {"bank_size": [], "events_in_pool": [], "mean_abs_dcox_drisk": []}
    rng = np.random.default_rng(0)
    for size in (0, 8, 32, 128, len(known)):
        bank = RiskBank(256)
        members = rng.choice(known, min(size, len(known)), replace=False)
        if len(members):
            bank.push(torch.zeros(len(members)), table.rfs[members], table.relapse[members], members.tolist())
        grads = []
        for i in rng.choice(np.setdiff1d(known, members) if size < len(known) else known, 40):
            r = torch.zeros(1, requires_grad=True)
            loss = bank.pooled_loss(r, table.rfs[[i]], table.relapse[[i]], [int(i)], push=False)
            loss.backward()
            grads.append(abs(float(r.grad[0])))
        events = int(np.nansum(table.relapse[members])) if len(members) else 0
        out["bank_size"].append(int(len(members)))
        out["events_in_pool"].append(events)
        out["mean_abs_dcox_drisk"].append(float(np.mean(grads)))
    # Heads' share of the gradient in one stock step (random heads on the pre-trained U-Net).
    torch.manual_seed(0)
    mt = HecktorMultiTaskNetwork(net, HeadConfig(use_clinical=False))
    mt.train()
    bank = RiskBank(256)
    bank.push(torch.randn(len(known)) * 0.05, table.rfs[known], table.relapse[known], known.tolist())
    norms = {"seg": [], "cox_heads": [], "total_before_clip": []}
    for trial in range(10):
        idx = rng.choice(known, 2)
        x = torch.from_numpy(train["images"][idx])
        y = torch.from_numpy(train["labels"][idx])
        mask = (y == 1)[:, None].float()
        seg, hpv, risk = mt(x, with_heads=True, clinical=None, pool_mask=mask)
        cox = bank.pooled_loss(risk, [table.rfs[idx[0]], np.nan], [table.relapse[idx[0]], np.nan],
                               [int(idx[0]), -1], push=False)
        sl = seg_loss(seg, y)
        mt.zero_grad()
        (0.1 * cox).backward(retain_graph=True)
        head_norm = math.sqrt(sum(float((p.grad ** 2).sum()) for n, p in mt.named_parameters()
                                  if p.grad is not None and "risk_head" in n))
        mt.zero_grad()
        (sl + 0.1 * cox).backward(retain_graph=True)
        total = math.sqrt(sum(float((p.grad ** 2).sum()) for p in mt.parameters() if p.grad is not None))
        mt.zero_grad()
        sl.backward()
        seg_norm = math.sqrt(sum(float((p.grad ** 2).sum()) for p in mt.parameters() if p.grad is not None))
        norms["seg"].append(seg_norm)
        norms["cox_heads"].append(head_norm)
        norms["total_before_clip"].append(total)
    out.update({k: float(np.median(v)) for k, v in norms.items()})
    out["steps_clipped_at_12"] = int(sum(v > 12 for v in norms["total_before_clip"]))
    return out


def _standardise(train_x, test_x):
    mean, sd = train_x.mean(0), train_x.std(0) + 1e-6
    return (train_x - mean) / sd, (test_x - mean) / sd


def fit_heads_full_batch(x_tr, table_tr, x_te, table_te, seed: int, epochs: int = 400, hidden: int = 0,
                         weight_decay: float = 1e-3) -> dict:
    """Risk (Cox, all training patients at once) and HPV (balanced BCE) heads fitted to convergence."""
    import torch

    from nnunet_hecktor.heads import HPVLoss, cox_partial_likelihood_loss
    from nnunet_hecktor.metrics.classification import best_balanced_accuracy_threshold

    torch.manual_seed(seed)
    x_tr, x_te = _standardise(x_tr, x_te)
    xt, xv = torch.tensor(x_tr, dtype=torch.float32), torch.tensor(x_te, dtype=torch.float32)

    def model():
        if hidden:
            return torch.nn.Sequential(torch.nn.Linear(xt.shape[1], hidden), torch.nn.LeakyReLU(0.01),
                                       torch.nn.Dropout(0.2), torch.nn.Linear(hidden, 1))
        return torch.nn.Linear(xt.shape[1], 1)

    out = {}
    known = np.isfinite(table_tr.rfs)
    risk_model = model()
    opt = torch.optim.Adam(risk_model.parameters(), 1e-2, weight_decay=weight_decay)
    for _ in range(epochs):
        loss = cox_partial_likelihood_loss(risk_model(xt[known]).squeeze(1), torch.tensor(table_tr.rfs[known]),
                                           torch.tensor(table_tr.relapse[known]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    risk_model.eval()
    with torch.no_grad():
        out["c_index"] = c_index(table_te, risk_model(xv).squeeze(1).numpy())
        out["c_index_train"] = c_index(table_tr, risk_model(xt).squeeze(1).numpy())
    h = np.isfinite(table_tr.hpv)
    hpv_model = model()
    loss_fn = HPVLoss(float(np.mean(table_tr.hpv[h])), "balanced")
    opt = torch.optim.Adam(hpv_model.parameters(), 1e-2, weight_decay=weight_decay)
    for _ in range(epochs):
        loss = loss_fn(hpv_model(xt).squeeze(1), torch.tensor(table_tr.hpv, dtype=torch.float32))
        opt.zero_grad()
        loss.backward()
        opt.step()
    hpv_model.eval()
    with torch.no_grad():
        p_tr = torch.sigmoid(hpv_model(xt).squeeze(1)).numpy()
        p_te = torch.sigmoid(hpv_model(xv).squeeze(1)).numpy()
    threshold = best_balanced_accuracy_threshold(table_tr.hpv[h].astype(int), p_tr[h])
    out["hpv_auc"], out["hpv_ba"] = hpv_figures(table_te, p_te, threshold)
    out["hpv_auc_train"] = hpv_figures(table_tr, p_tr, threshold)[0]
    return out


def experiment_inputs(train, test, feats_tr, feats_te, seed: int) -> dict:
    from nnunet_hecktor.heads.clinical_encoding import ClinicalEncoder

    enc = ClinicalEncoder()
    enc.fit(train["table"].records)
    clin_tr = enc.encode(train["table"].records).numpy()
    clin_te = enc.encode(test["table"].records).numpy()
    sets = {
        "clinical only": (clin_tr, clin_te),
        "bottleneck pooled (stock input)": (feats_tr["pooled"], feats_te["pooled"]),
        "bottleneck pooled + clinical": (np.hstack([feats_tr["pooled"], clin_tr]),
                                         np.hstack([feats_te["pooled"], clin_te])),
        "lesion statistics": (feats_tr["stats"], feats_te["stats"]),
        "lesion statistics + clinical": (np.hstack([feats_tr["stats"], clin_tr]),
                                         np.hstack([feats_te["stats"], clin_te])),
        "all three": (np.hstack([feats_tr["pooled"], feats_tr["stats"], clin_tr]),
                      np.hstack([feats_te["pooled"], feats_te["stats"], clin_te])),
    }
    out = {}
    for name, (a, b) in sets.items():
        out[name] = fit_heads_full_batch(a, train["table"], b, test["table"], seed)
        out[name + " (MLP 128, as the stock head)"] = fit_heads_full_batch(a, train["table"], b, test["table"],
                                                                            seed, hidden=128)
    return out


def experiment_training(net_state, train, test, steps: int, seed: int, variants: dict) -> dict:
    """The stock head-training protocol on a segmentation-trained U-Net, per variant."""

    import torch

    from nnunet_hecktor.heads import RiskBank
    from nnunet_hecktor.heads.clinical_encoding import ClinicalEncoder
    from nnunet_hecktor.heads.multitask_network import HecktorMultiTaskNetwork

    table = train["table"]
    enc = ClinicalEncoder()
    enc.fit(table.records)
    clin_tr = enc.encode(table.records)
    clin_te = enc.encode(test["table"].records)
    out = {}
    for name, v in variants.items():
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        unet = tiny_unet()
        unet.load_state_dict(net_state)
        mt = HecktorMultiTaskNetwork(unet, v["config"])
        mt.hecktor_heads.clinical_encoder.load_state_dict(enc.state_dict())
        params = [{"params": [p for n, p in mt.named_parameters() if not n.startswith("hecktor_heads")]},
                  {"params": [p for n, p in mt.named_parameters() if n.startswith("hecktor_heads")],
                   "lr": 0.01 * v.get("head_lr_factor", 1.0)}]
        opt = torch.optim.SGD(params, 0.01, momentum=0.99, nesterov=True, weight_decay=3e-5)
        bank = RiskBank(256)
        t0 = time.perf_counter()
        mt.train()
        for step in range(steps):
            for g, base in zip(opt.param_groups, (0.01, 0.01 * v.get("head_lr_factor", 1.0))):
                g["lr"] = base * (1 - step / steps) ** 0.9  # nnU-Net's poly schedule
            idx = rng.choice(len(train["ids"]), 2)
            x = torch.from_numpy(train["images"][idx])
            y = torch.from_numpy(train["labels"][idx])
            # stock: only the foreground-oversampled, GTVp-centred sample feeds the heads
            eligible = np.array([False, rng.random() < v.get("eligible_fraction", 0.5)])
            rfs = np.where(eligible, table.rfs[idx], np.nan)
            rel = np.where(eligible, table.relapse[idx], np.nan)
            seg, hpv, risk = mt(x, with_heads=True, clinical=clin_tr[idx], pool_mask=(y == 1)[:, None].float())
            cox = bank.pooled_loss(risk, rfs, rel, idx.tolist())
            loss = seg_loss(seg, y) + v["weight"] * cox
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(mt.parameters(), 12)
            opt.step()
        seconds = time.perf_counter() - t0
        mt.eval()
        with torch.no_grad():
            risks = []
            for i in range(0, len(test["ids"]), 32):
                x = torch.from_numpy(test["images"][i:i + 32])
                seg = mt(x)
                mask = (seg.argmax(1, keepdim=True) == 1).float()
                risks.append(mt(x, with_heads=True, clinical=clin_te[i:i + 32], pool_mask=mask)[2].numpy())
            risk = np.concatenate(risks)
        out[name] = {"test_c_index": c_index(test["table"], risk), "test_risk_sd": float(risk.std()),
                     "test_dice": dice_scores(mt, test), "seconds": seconds}
        print(f"  training variant {name}: {out[name]}", file=sys.stderr, flush=True)
    return out


# --------------------------------------------------------------------------- main

def main(argv=None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-patients", type=int, default=300)
    parser.add_argument("--test-patients", type=int, default=260)
    parser.add_argument("--seed", type=int, default=0, help="training cohort seed (test: seed + 1)")
    parser.add_argument("--pretrain-steps", type=int, default=400)
    parser.add_argument("--steps", type=int, default=600, help="steps of the 'training' experiment")
    parser.add_argument("--experiments", nargs="+", default=["facts", "gradient", "inputs", "training"])
    parser.add_argument("--workdir", default=str(REPO / "bench_output" / "diagnose_heads"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    t0 = time.perf_counter()
    train = load_cohort(work / f"cohort_seed{args.seed}", args.train_patients, args.seed)
    test = load_cohort(work / f"cohort_seed{args.seed + 1}", args.test_patients, args.seed + 1)
    print(f"loaded {len(train['ids'])} + {len(test['ids'])} labelled patients in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr)
    weights = work / f"pretrained_{args.seed}_{args.pretrain_steps}.pt"
    if weights.is_file():
        net = tiny_unet()
        net.load_state_dict(torch.load(weights))
        net.eval()
    else:
        # continue the longest shorter run if there is one (pretraining is the slow part here)
        shorter = sorted(((int(p.stem.split("_")[-1]), p) for p in work.glob(f"pretrained_{args.seed}_*.pt")
                          if int(p.stem.split("_")[-1]) < args.pretrain_steps), key=lambda t: t[0])
        done, init = (shorter[-1][0], torch.load(shorter[-1][1])) if shorter else (0, None)
        net = pretrain_segmentation(train, args.pretrain_steps - done, args.seed, init)
        torch.save(net.state_dict(), weights)
    results = {"args": vars(args), "pretrained_dice_test": dice_scores(net, test)}
    print(f"pre-trained segmentation on the test patients: {results['pretrained_dice_test']}", file=sys.stderr)
    feats_tr = features(net, train, use_prediction=False)
    feats_te = features(net, test, use_prediction=True)
    if "facts" in args.experiments:
        results["facts"] = experiment_facts(train, test, feats_tr)
        print(json.dumps(results["facts"], indent=1))
    if "gradient" in args.experiments:
        results["gradient"] = experiment_gradient(net, train, feats_tr)
        print(json.dumps(results["gradient"], indent=1))
    if "inputs" in args.experiments:
        results["inputs"] = experiment_inputs(train, test, feats_tr, feats_te, args.seed)
        print(f"\n{'head input':55s} {'C test':>7s} {'C train':>7s} {'HPV AUC':>7s} {'HPV BA':>7s} {'AUC tr':>7s}")
        for name, r in results["inputs"].items():
            print(f"{name:55s} {r['c_index']:7.3f} {r['c_index_train']:7.3f} {r['hpv_auc']:7.3f} {r['hpv_ba']:7.3f} "
                  f"{r['hpv_auc_train']:7.3f}")
    if "training" in args.experiments:
        from nnunet_hecktor.heads import HeadConfig

        variants = {
            "stock (bottleneck MLP, w 0.1)": {"config": HeadConfig(), "weight": 0.1},
            "lesion statistics, linear, w 1.0, all eligible": {
                "config": HeadConfig(image_input="lesion_statistics", linear=True), "weight": 1.0,
                "eligible_fraction": 1.0},
        }
        results["training"] = experiment_training(net.state_dict(), train, test, args.steps, args.seed, variants)
        for name, r in results["training"].items():
            print(f"{name:45s} C {r['test_c_index']:.3f}  risk SD {r['test_risk_sd']:.3f}  "
                  f"GTVp Dice {r['test_dice']['gtvp_mean_dice']:.3f}  {r['seconds']:.0f} s")
    work.mkdir(parents=True, exist_ok=True)
    (work / "results.json").write_text(json.dumps(results, indent=1, default=float))
    print(f"results: {work / 'results.json'} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
