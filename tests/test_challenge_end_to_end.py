"""``nnunet-hecktor challenge`` end to end on CPU with the session's tiny trained multi-task model.

A fake grand-challenge input tree (``images/ct/<uuid>.mha``, ``images/pet/<uuid>.mha``, ``ehr.json``
with keys absent) is made from a synthetic patient; each task must write exactly its official
output, agree with ``nnunet-hecktor predict`` on the same patient, and write nowhere else.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_hecktor.checkpoints import FINAL_CHECKPOINT
from nnunet_hecktor.errors import HecktorError

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


OMITTED = ("Tobacco Consumption", "Performance Status", "Alcohol Consumption")


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def patient(tiny_dataset):
    """A labelled synthetic patient: its files, typed clinical record and ehr.json content."""
    from nnunet_hecktor.clinical import read_clinical_csv
    from nnunet_hecktor.dataset_conversion import discover_layout
    from nnunet_hecktor.synthetic.challenge_input import ehr_from_record

    layout = discover_layout(tiny_dataset.root / "source")
    pid = sorted(p for p, s in layout.patients.items() if s.label is not None)[0]
    record = read_clinical_csv(tiny_dataset.raw_dir / "clinical.csv")[pid]
    ehr = ehr_from_record(record, OMITTED)
    return {"pid": pid, "sources": layout.patients[pid], "record": record, "ehr": ehr}


@pytest.fixture(scope="module")
def fake_input(patient, tmp_path_factory):
    from nnunet_hecktor.synthetic.challenge_input import write_challenge_input

    root = tmp_path_factory.mktemp("challenge") / "input"
    fake = write_challenge_input(root, patient["sources"].ct, patient["sources"].pet, patient["ehr"],
                                 name=patient["pid"], extra_folders=["images/rt-dose"])
    assert not set(OMITTED) & set(json.loads(fake.ehr.read_text()))
    return fake


@pytest.fixture(scope="module")
def reference(tiny_model, patient, tmp_path_factory):
    """``nnunet-hecktor predict`` of the same patient with the same clinical values missing."""
    from nnunet_hecktor.evaluation.outcome import read_predictions_csv
    from nnunet_hecktor.prediction import predict

    folder = tmp_path_factory.mktemp("challenge_reference")
    columns = ["PatientID", *patient["ehr"]]
    (folder / "clinical.csv").write_text(",".join(columns) + "\n" + ",".join(
        [patient["pid"], *[str(v) for v in patient["ehr"].values()]]) + "\n")
    predict(tiny_model.dataset.root / "source", folder / "out", tiny_model.model_dir,
            clinical_csv=folder / "clinical.csv", patients=[patient["pid"]], progress=False)
    row = read_predictions_csv(folder / "out" / "predictions.csv").rows[patient["pid"]]
    return {"row": row, "segmentation": sitk.ReadImage(str(folder / "out" / f"{patient['pid']}.nii.gz"))}


@pytest.mark.parametrize("task", [1, 2, 3])
def test_each_task_writes_exactly_its_output(task, tiny_model, patient, fake_input, reference, tmp_path):
    from nnunet_hecktor.challenge import run_challenge
    from nnunet_hecktor.challenge.io import check_outputs

    before = _snapshot(fake_input.root)
    out = tmp_path / "output"
    result = run_challenge(task, fake_input.root, out, tiny_model.model_dir, device="cpu", verbose=False)
    assert _snapshot(fake_input.root) == before, "the input tree was modified"
    ct = sitk.ReadImage(str(patient["sources"].ct))
    assert check_outputs(out, [task], ct) == []
    if task == 1:
        seg = sitk.ReadImage(str(out / "images/tumor-lymph-node-segmentation/output.mha"))
        assert np.array_equal(sitk.GetArrayFromImage(seg), sitk.GetArrayFromImage(reference["segmentation"]))
    elif task == 2:
        risk = json.loads((out / "rfs.json").read_text())
        assert risk == pytest.approx(reference["row"]["risk"], rel=1e-6, abs=1e-9)
        assert result.risk == risk
    else:
        assert json.loads((out / "hpv-status.json").read_text()) is bool(reference["row"]["hpv_status"])
        assert result.hpv_probability == pytest.approx(reference["row"]["hpv_probability"], abs=1e-9)


def test_staged_survival_model_answers_task_2_as_predict_does(tiny_model, patient, tmp_path, caplog):
    """Task 2 from the staged survival model (the routing of ``predict``: same risk as ``predict`` with the
    same model folder), Task 3 from the heads; HPV status in ehr.json is not read for Task 2; a failed
    stage falls back to the stage's own median risk."""
    import shutil

    from test_challenge_2026 import stage_prognosis

    from nnunet_hecktor.challenge import run_challenge
    from nnunet_hecktor.challenge.run import ChallengeResult, _clinical_columns, _write_fallbacks
    from nnunet_hecktor.evaluation.outcome import read_predictions_csv
    from nnunet_hecktor.prediction import predict
    from nnunet_hecktor.prognosis.deployment import resolve_stage_models
    from nnunet_hecktor.synthetic.challenge_input import write_challenge_input

    model = tmp_path / "model"
    shutil.copytree(tiny_model.model_dir, model)
    stage_prognosis(model, staging=False, hpv_input=False)
    stage = resolve_stage_models(model)
    assert "HPV Status" not in _clinical_columns(stage)  # a 2025 Task 2 record never carries HPV status
    fake = write_challenge_input(tmp_path / "input", patient["sources"].ct, patient["sources"].pet,
                                 {**patient["ehr"], "HPV Status": 1}, name=patient["pid"])
    result = run_challenge((2, 3), fake.root, tmp_path / "out", model, device="cpu", verbose=False)
    assert result.errors == [] and not result.fallback
    assert result.sources == {2: f"stage: {stage.source}", 3: "heads: network heads"}
    predict(tiny_model.dataset.root / "source", tmp_path / "predict", model, patients=[patient["pid"]],
            progress=False, prognosis=stage)  # what 'nnunet-hecktor predict -m MODEL' resolves
    row = read_predictions_csv(tmp_path / "predict" / "predictions.csv").rows[patient["pid"]]
    assert json.loads((tmp_path / "out" / "rfs.json").read_text()) == pytest.approx(row["risk"], rel=1e-6)
    failed = ChallengeResult((2,))
    _write_fallbacks((2,), tmp_path / "fallback", failed, None, fake.root, model, [0], {}, stage, (2,))
    assert json.loads((tmp_path / "fallback" / "rfs.json").read_text()) == pytest.approx(stage.fallback()["risk"])
    # without the stage: the heads, with the warning 'predict' prints
    shutil.rmtree(model / "prognosis")
    with caplog.at_level("WARNING", logger="nnunet_hecktor"):
        heads = run_challenge(2, fake.root, tmp_path / "heads", model, device="cpu", verbose=False)
    assert heads.sources[2] == "heads: network heads" and "nnunet-hecktor prognosis build" in caplog.text


def test_container_entry_point_writes_nowhere_else(tiny_model, fake_input, tmp_path):
    """``python -m nnunet_hecktor.challenge`` with a sentinel HOME, its own TMPDIR and an empty working folder."""
    home, tmp, cwd, out = (tmp_path / name for name in ("home", "tmp", "cwd", "output"))
    for folder in (home, tmp, cwd):
        folder.mkdir()
    before = _snapshot(fake_input.root)
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME")}
    env.update(HOME=str(home), TMPDIR=str(tmp), HECKTOR_TASK="3", HECKTOR_MODEL=str(tiny_model.model_dir),
               HECKTOR_INPUT=str(fake_input.root), HECKTOR_OUTPUT=str(out), HECKTOR_DEVICE="cpu",
               HECKTOR_MIRRORING="0", OMP_WAIT_POLICY="PASSIVE")
    result = subprocess.run([sys.executable, "-m", "nnunet_hecktor.challenge"], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Task 3: HPV" in result.stdout
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["hpv-status.json"]
    assert list(home.iterdir()) == [], "the run wrote into HOME"
    assert list(cwd.iterdir()) == [], "the run wrote into the working folder"
    assert _snapshot(fake_input.root) == before


def test_segmentation_only_model_cannot_do_tasks_2_and_3(tiny_model, fake_input, tmp_path):
    from nnunet_hecktor.challenge import run_challenge
    from nnunet_hecktor.challenge.io import check_outputs
    from nnunet_hecktor.trainers.handover import export_segmentation_model

    stock = export_segmentation_model(tiny_model.fold_dir, tmp_path / "stock", FINAL_CHECKPOINT).model_folder
    with pytest.raises(HecktorError, match="not a multi-task model"):
        run_challenge(2, fake_input.root, tmp_path / "out2", stock, device="cpu", verbose=False)
    assert not (tmp_path / "out2" / "rfs.json").exists()
    run_challenge(1, fake_input.root, tmp_path / "out1", stock, device="cpu", use_mirroring=False, verbose=False)
    assert check_outputs(tmp_path / "out1", [1]) == []


def test_cli_strict_reports_bad_input_clearly(tiny_model, fake_input, tmp_path, capsys):
    """--strict keeps fail-fast behaviour (without it the case gets fallback outputs: test_challenge_fallback)."""
    from nnunet_hecktor.cli import main
    from nnunet_hecktor.synthetic.challenge_input import write_challenge_input

    bad = write_challenge_input(tmp_path / "input", sitk.ReadImage(str(fake_input.ct)),
                                sitk.ReadImage(str(fake_input.pet)), None)
    sitk.WriteImage(sitk.ReadImage(str(bad.ct)), str(bad.ct.parent / "second.mha"))
    code = main(["challenge", "--task", "1", "--input", str(bad.root), "--output", str(tmp_path / "out"),
                 "--model", str(tiny_model.model_dir), "--device", "cpu", "--strict"])
    assert code == 1
    assert "2 CT images" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))
