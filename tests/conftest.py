"""Shared, session-scoped fixtures: a tiny converted + preprocessed dataset and a tiny trained model.

Both are expensive (real ``nnUNetv2_plan_and_preprocess`` and ``nnUNetv2_train``), so every test
module that needs nnU-Net data should reuse them instead of making its own:

``tiny_dataset`` (:class:`TinyDataset`)
    12 synthetic patients (seed 2: 10 with labels -> imagesTr, 2 without -> imagesTs; both HPV
    classes and relapses among the labelled ones) made by ``nnunet_hecktor.synthetic.make_cohort``,
    converted by ``nnunet_hecktor.dataset_conversion.convert_dataset`` to ``Dataset987_TinyHecktor``
    and preprocessed by the real ``nnUNetv2_plan_and_preprocess -c 3d_fullres``. A narrow plans
    variant ``nnUNetPlansTiny`` (features 8..32, same preprocessed data) is written next to
    ``nnUNetPlans`` so CPU training takes seconds. Volumes are ~23x30x30 voxels (patch 24x32x32).
``tiny_model`` (:class:`TinyModel`)
    fold 0 of ``nnUNetv2_train 987 3d_fullres 0 -tr HecktorMultiTaskTrainer_tiny -p nnUNetPlansTiny
    -device cpu``: checkpoint_final.pth (SWA average), checkpoint_final_last_iterate.pth, validation/,
    validation_heads.json ...
``nnunet_env``  (function scope)
    sets the tiny dataset's nnU-Net variables in ``os.environ`` for in-process nnU-Net code.

Treat the fixtures' folders as read-only: copy what you want to modify. Subprocesses get
``TinyDataset.env`` (nnU-Net folders, ``nnUNet_extTrainer``, ``nnUNet_n_proc_DA=0``,
``nnUNet_compile=false``, ``nnUNet_def_n_proc=1`` and ``OMP_WAIT_POLICY=PASSIVE``, which avoids
OpenMP spin-waiting on an oversubscribed machine).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

# Set before torch is first imported (libgomp reads it when it loads): OpenMP threads that
# spin-wait make torch ops up to ~1000x slower on a shared 2-core machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

TINY_DATASET_ID = 987
TINY_DATASET_NAME = f"Dataset{TINY_DATASET_ID}_TinyHecktor"
TINY_PLANS = "nnUNetPlansTiny"
TINY_CONFIGURATION = "3d_fullres"
TINY_TRAINER = "HecktorMultiTaskTrainer_tiny"

#: Variables every nnU-Net subprocess of the tests gets (fast and deterministic on a small CPU box).
NNUNET_TEST_VARIABLES = {
    "nnUNet_n_proc_DA": "0",
    "nnUNet_compile": "false",
    "nnUNet_def_n_proc": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
}


@dataclass(frozen=True)
class TinyDataset:
    """A converted and preprocessed synthetic dataset (see the module docstring)."""

    root: Path              # holds nnUNet_raw/, nnUNet_preprocessed/, nnUNet_results/, source/
    env: dict               # environment for nnU-Net subprocesses
    dataset_id: int
    dataset_name: str
    raw_dir: Path           # $nnUNet_raw/Dataset987_TinyHecktor
    preprocessed_dir: Path  # $nnUNet_preprocessed/Dataset987_TinyHecktor
    results_root: Path      # $nnUNet_results
    plans: str              # "nnUNetPlansTiny"
    configuration: str      # "3d_fullres"
    training_cases: tuple   # PatientIDs with labels (imagesTr)
    test_cases: tuple       # PatientIDs without labels (imagesTs)
    planning_log: str       # stdout of nnUNetv2_plan_and_preprocess --verify_dataset_integrity


@dataclass(frozen=True)
class TinyModel:
    """Fold 0 trained with ``HecktorMultiTaskTrainer_tiny`` on :class:`TinyDataset`."""

    dataset: TinyDataset
    trainer: str
    model_dir: Path         # $nnUNet_results/Dataset987_TinyHecktor/<trainer>__nnUNetPlansTiny__3d_fullres
    fold_dir: Path          # model_dir / "fold_0"
    train_log: str          # stdout + stderr of nnUNetv2_train


def run_nnunet_command(name: str, args, env: dict, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run a stock ``nnUNetv2_*`` command; fail the test with the output's tail when it fails."""
    from nnunet_hecktor.nnunet_env import nnunet_command

    cmd = nnunet_command(name) + [str(a) for a in args]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + "\n" + result.stderr).splitlines()[-40:])
        pytest.fail(f"{' '.join(cmd)} failed with exit code {result.returncode}:\n{tail}")
    return result


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> TinyDataset:
    from nnunet_hecktor.dataset_conversion import convert_dataset
    from nnunet_hecktor.nnunet_env import nnunet_environment
    from nnunet_hecktor.synthetic import make_cohort
    from nnunet_hecktor.trainers.small_plans import write_small_plans

    root = tmp_path_factory.mktemp("tiny_nnunet")
    env = nnunet_environment(root, extra=NNUNET_TEST_VARIABLES)
    cohort = make_cohort(root / "source", n_patients=12, seed=2, layout="release", size="test", progress=False)
    raw_dir = Path(env["nnUNet_raw"]) / TINY_DATASET_NAME
    summary = convert_dataset(cohort.out_dir, dataset_id=TINY_DATASET_ID, name="TinyHecktor", output=raw_dir,
                              progress=False)
    # Not with nnUNet_n_proc_DA=0: nnU-Net's planner calls torch.set_num_threads(nnUNet_n_proc_DA).
    planning_env = {k: v for k, v in env.items() if k != "nnUNet_n_proc_DA"}
    planning = run_nnunet_command("nnUNetv2_plan_and_preprocess",
                                  ["-d", TINY_DATASET_ID, "-c", TINY_CONFIGURATION, "--verify_dataset_integrity",
                                   "-np", "1", "-npfp", "1"], planning_env)
    preprocessed_dir = Path(env["nnUNet_preprocessed"]) / TINY_DATASET_NAME
    write_small_plans(preprocessed_dir, "nnUNetPlans", TINY_PLANS)
    return TinyDataset(root, env, TINY_DATASET_ID, TINY_DATASET_NAME, raw_dir, preprocessed_dir,
                       Path(env["nnUNet_results"]), TINY_PLANS, TINY_CONFIGURATION,
                       tuple(sorted(summary.training)), tuple(sorted(summary.test)), planning.stdout)


@pytest.fixture(scope="session")
def tiny_model(tiny_dataset) -> TinyModel:
    result = run_nnunet_command(
        "nnUNetv2_train", [tiny_dataset.dataset_id, tiny_dataset.configuration, "0", "-tr", TINY_TRAINER,
                           "-p", tiny_dataset.plans, "-device", "cpu"], tiny_dataset.env)
    model_dir = tiny_dataset.results_root / tiny_dataset.dataset_name / \
        f"{TINY_TRAINER}__{tiny_dataset.plans}__{tiny_dataset.configuration}"
    return TinyModel(tiny_dataset, TINY_TRAINER, model_dir, model_dir / "fold_0", result.stdout + result.stderr)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One PyTorch thread for a test module: on a shared, oversubscribed CPU, OpenMP threads
    spin-waiting on each other make the tiny network several times slower."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def nnunet_env(tiny_dataset, monkeypatch) -> TinyDataset:
    """Put the tiny dataset's nnU-Net variables into ``os.environ`` for this test."""
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer",
                *NNUNET_TEST_VARIABLES):
        monkeypatch.setenv(key, tiny_dataset.env[key])
    return tiny_dataset


def free_port() -> int:
    """A TCP port that is free now (for a gloo process group on localhost)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn_ranks_and_check(worker, args: tuple, world: int) -> None:
    """Run ``worker(rank, *args, reports)`` in ``world`` spawned processes and fail unless every rank
    put ``"ok <rank>"`` on ``reports`` (a rank's traceback is put there on failure).

    A rank that reported all its checks passed and then died while gloo tore down its threads at exit
    ("terminate called without an active exception") has nothing to do with what is under test, so
    that alone is not a failure: the ranks are judged by what they reported.
    """
    import torch.multiprocessing as mp

    reports = mp.get_context("spawn").SimpleQueue()
    try:
        mp.spawn(worker, args=(*args, reports), nprocs=world, join=True)
        spawn_error = None
    except Exception as exc:  # noqa: BLE001 - judged below from what the ranks reported
        spawn_error = exc
    messages = []
    while not reports.empty():
        messages.append(reports.get())
    passed = sorted(m for m in messages if m.startswith("ok "))
    failures = [m for m in messages if not m.startswith("ok ")]
    if failures or passed != [f"ok {r}" for r in range(world)]:
        pytest.fail("\n".join(failures) or f"a worker failed before finishing its checks ({spawn_error!r})")
