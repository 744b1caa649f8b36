"""Multi-GPU behaviour of the multi-task trainer, with two gloo processes on the CPU.

nnU-Net's own DDP launcher needs CUDA, so each rank builds the tiny trainer in-process, joins a gloo
group and wraps its network in ``DistributedDataParallel`` as ``nnUNetv2_train -num_gpus 2`` would.
Checked: each rank's patient sampler draws its own stream; the end-of-training work (heads on every
training case, segmentation + heads of every validation case) is split across the ranks (each does
only its share) and the gathered rows, the HPV threshold and ``validation_heads.json`` equal those
of a single process.
"""

from __future__ import annotations

import json
import traceback

import numpy as np
import pytest
import torch
import torch.distributed as dist
from conftest import free_port, spawn_ranks_and_check

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not available")]

WORLD = 2


def _make_trainer(preprocessed_dir: str):
    from pathlib import Path

    from nnunet_hecktor.trainers import HecktorMultiTaskTrainer_tiny

    folder = Path(preprocessed_dir)
    plans = json.loads((folder / "nnUNetPlansTiny.json").read_text())
    plans["continue_training"] = False
    dataset_json = json.loads((folder / "dataset.json").read_text())
    trainer = HecktorMultiTaskTrainer_tiny(plans, "3d_fullres", 0, dataset_json, device=torch.device("cpu"))
    torch.manual_seed(0)
    trainer.initialize()
    trainer.setup_patient_data()
    return trainer


def _same_rows(a: list[dict], b: list[dict]) -> None:
    assert [r["PatientID"] for r in a] == [r["PatientID"] for r in b]
    for x, y in zip(a, b):
        for key in ("hpv_probability", "risk"):
            assert x[key] == pytest.approx(y[key], abs=1e-6), (x["PatientID"], key)
        assert x["patch_centre_voxel"] == y["patch_centre_voxel"]


def _worker(rank: int, port: int, preprocessed_dir: str, errors) -> None:
    try:
        torch.set_num_threads(1)
        from torch.nn.parallel import DistributedDataParallel

        from nnunet_hecktor.metrics.classification import choose_threshold

        trainer = _make_trainer(preprocessed_dir)
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
        try:
            trainer.is_ddp, trainer.local_rank = True, rank
            trainer.network = DistributedDataParallel(trainer.network)

            # 1. One patient stream per rank.
            gen_tr, _ = trainer.get_dataloaders()
            assert gen_tr.data_loader.rank == rank
            keys = [str(k) for _ in range(4) for k in next(gen_tr)["keys"]]
            streams = [None] * WORLD
            dist.all_gather_object(streams, keys)
            assert streams[0] != streams[1], "both ranks drew the same patients"

            # 2. Sharded end-of-training work.
            processed: list[str] = []
            cases = trainer._cases

            def recording_cases(case_keys):
                processed.extend(case_keys)
                return cases(case_keys)

            trainer._cases = recording_cases
            gathered: list[list[dict]] = []
            heads_on_cases = trainer._heads_on_cases

            def recording_heads_on_cases(*args, **kwargs):
                gathered.append(heads_on_cases(*args, **kwargs))
                return gathered[-1]

            trainer._heads_on_cases = recording_heads_on_cases
            train_keys, val_keys = trainer._train_keys, trainer._val_keys
            trainer.finalise_weights("final")
            assert processed == train_keys[rank::WORLD]
            rows = gathered[0]
            threshold = float(trainer.plain_network.hecktor_heads.hpv_threshold)
            y = np.array([r["hpv_true"] for r in rows], dtype=float)
            p = np.array([r["hpv_probability"] for r in rows])
            known = np.isfinite(y)
            # Every rank holds the rows of every training case (gathered), hence the same threshold.
            assert [r["PatientID"] for r in rows] == list(train_keys)
            assert np.isfinite(p).all()
            assert threshold == pytest.approx(choose_threshold(
                y[known], calibrated_prevalence=trainer.hpv_loss.calibrated_prevalence))
            processed.clear()
            summary = trainer.validate_heads()
            # segmentation + heads of its own validation cases only
            assert processed == val_keys[rank::WORLD] * 2
            thresholds = [None] * WORLD
            dist.all_gather_object(thresholds, threshold)
            assert thresholds[0] == thresholds[1]
            all_rows = [None] * WORLD
            dist.all_gather_object(all_rows, rows)
            _same_rows(all_rows[0], all_rows[1])
        finally:
            dist.destroy_process_group()

        if rank == 0:
            # The same work in one process.
            assert summary is not None and summary["n_patients"] == len(val_keys)
            trainer.is_ddp = False
            trainer.network = trainer.network.module
            trainer.set_deep_supervision_enabled(False)
            _same_rows(rows, trainer._heads_on_cases(train_keys))
            single = trainer._heads_on_cases(val_keys, trainer._predict_validation_segmentations(val_keys))
            trainer.set_deep_supervision_enabled(True)
            written = (trainer.output_folder + "/validation_heads.csv")
            with open(written) as f:
                lines = f.read().splitlines()
            header = lines[0].split(",")
            assert [ln.split(",")[0] for ln in lines[1:]] == val_keys
            for line, row in zip(lines[1:], single):
                values = dict(zip(header, line.split(",")))
                assert float(values["hpv_probability"]) == pytest.approx(row["hpv_probability"], abs=1e-6)
                assert float(values["risk"]) == pytest.approx(row["risk"], abs=1e-6)
        else:
            assert summary is None
        errors.put(f"ok {rank}")
    except BaseException:
        errors.put(f"rank {rank}:\n{traceback.format_exc()}")
        raise


def test_two_ranks_split_the_end_of_training_work_and_draw_their_own_patients(nnunet_env, tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))
    spawn_ranks_and_check(_worker, (free_port(), str(nnunet_env.preprocessed_dir)), WORLD)
