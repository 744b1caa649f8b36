"""The demo: resumable steps, and the whole pipeline to the report on a tiny run (2 x 3 iterations)."""

from __future__ import annotations

import json
import logging

import pytest

from nnunet_hecktor.demo.steps import StepRunner


def test_steps_skip_completed_and_invalidate_later_ones(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="nnunet_hecktor")
    calls = []
    order = ["a", "b", "c"]
    runner = StepRunner(tmp_path, order=order)
    for name in order:
        runner.run(name, f"doing {name}", lambda name=name: calls.append(name) or {"made": name})
    assert calls == ["a", "b", "c"] and not runner.resumed

    # A step that fails leaves no marker; the next run redoes it (and only what follows it).
    runner.marker("b").unlink()
    again = StepRunner(tmp_path, order=order)
    again.run("a", "doing a", lambda: calls.append("a2"))
    with pytest.raises(RuntimeError):
        again.run("b", "doing b", lambda: (_ for _ in ()).throw(RuntimeError("interrupted")))
    assert not runner.marker("b").exists() and not runner.marker("c").exists()
    assert again.resumed == ["a"] and again.info["a"] == {"made": "a"}
    assert "already complete" in caplog.text

    third = StepRunner(tmp_path, order=order)
    for name in order:
        third.run(name, name, lambda name=name: calls.append(name + "3"))
    assert calls[-2:] == ["b3", "c3"] and third.resumed == ["a"] and third.ran_earlier


def test_demo_tiny_run_writes_the_report_and_resumes(tmp_path):
    from nnunet_hecktor.demo import run_demo
    from nnunet_hecktor.demo.summary import MODEL_ROW, comparisons

    output = tmp_path / "demo"
    result = run_demo(output, patients=20, test_patients=6, seed=3, size="test",
                      trainer="HecktorMultiTaskTrainer_tiny", n_bootstrap=20, dataset_id=931)
    report = output / "report" / "report.html"
    assert result.report == report and report.is_file()
    names = [row["name"] for row in result.table]
    assert names == [MODEL_ROW, "pet_suvmax40", "pet_suv2.5", "clinical_only", "pet_volume", "ceiling"]
    page = report.read_text()
    for row in result.table:
        assert row["description"].split(":")[0] in page
    overlays = sorted((output / "report").glob("overlay_*.png"))
    assert 1 <= len(overlays) <= 3
    for picture in ("dice_distributions.png", "hpv_roc.png", "kaplan_meier.png"):
        assert (output / "report" / picture).stat().st_size > 1000
        assert picture in page
    # Every comparison is listed, losses included.
    assert len(comparisons(result.table)) >= 6
    summary = json.loads((output / "demo_summary.json").read_text())
    assert set(summary["seconds_per_step"]) == {"synth", "convert", "plan_and_preprocess", "train", "postprocessing",
                                                "predict", "evaluate", "baselines", "report"}
    # The post-processing was chosen on fold 0's validation patients and is what predict applied.
    settings = json.loads((output / "predictions" / "prediction_settings.json").read_text())
    assert settings["postprocessing"]["file"] == str(result.model_dir / "postprocessing.json")
    assert summary["steps"]["postprocessing"]["validation_patients"] == 4
    assert "| train |" in (output / "report" / "report.md").read_text()
    assert "## Post-processing" in (output / "report" / "report.md").read_text()

    # Running again resumes: every step is complete, nothing is redone.
    before = report.stat().st_mtime_ns
    again = run_demo(output, patients=20, test_patients=6, seed=3, size="test",
                     trainer="HecktorMultiTaskTrainer_tiny", n_bootstrap=20, dataset_id=931)
    assert set(again.resumed) == set(summary["seconds_per_step"])
    assert report.stat().st_mtime_ns == before
    assert again.table == result.table
