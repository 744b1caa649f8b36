"""``export-model`` / ``import-model``: a whole model folder travels, and predicts the same (slow)."""

import json
import shutil
import zipfile

import pytest
from test_prognosis_deployment import fitted  # noqa: F401 - the fitted stage models

from nnunet_hecktor.errors import HecktorError

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

POSTPROCESSING = {"format": "nnunet-hecktor-postprocessing", "version": 1,
                  "min_component_size": {"GTVn": 2}, "min_component_size_unit": "voxels"}


def test_exported_and_imported_model_gives_the_same_patient_level_outputs(tiny_model, fitted, tmp_path):  # noqa: F811
    from nnunet_hecktor.cli import main
    from nnunet_hecktor.prognosis.deployment import stage_into_model

    dataset = tiny_model.dataset.dataset_name
    model_dir = tmp_path / "results" / dataset / tiny_model.model_dir.name
    shutil.copytree(tiny_model.model_dir, model_dir)
    stage_into_model(model_dir, survival=fitted / "surv", hpv=fitted / "hpv")
    (model_dir / "postprocessing.json").write_text(json.dumps(POSTPROCESSING))

    archive = tmp_path / "model.zip"
    assert main(["export-model", "-m", str(model_dir), "-o", str(archive)]) == 0
    names = zipfile.ZipFile(archive).namelist()
    prefix = f"{dataset}/{model_dir.name}/"
    # nnU-Net's layout (nnUNetv2_install_pretrained_model_from_zip extracts it into $nnUNet_results) ...
    assert all(n.startswith(prefix) for n in names)
    assert {prefix + "plans.json", prefix + "dataset.json", prefix + "fold_0/checkpoint_final.pth"} <= set(names)
    # ... with the stage and the post-processing, and no per-patient file.
    assert {prefix + "prognosis/survival.joblib", prefix + "prognosis/hpv.joblib",
            prefix + "postprocessing.json"} <= set(names)
    assert not any("/validation/" in n or n.endswith("validation_heads.csv") for n in names)

    other = tmp_path / "elsewhere"
    assert main(["import-model", str(archive), "-o", str(other)]) == 0
    imported = other / dataset / model_dir.name
    assert (imported / "prognosis" / "hpv.joblib").is_file()
    with pytest.raises(HecktorError, match="already exist"):
        from nnunet_hecktor.model_folder.archive import import_model

        import_model(archive, other)

    source = tiny_model.dataset.root / "source"
    patient = tiny_model.dataset.test_cases[0]
    outputs = {}
    for name, folder in (("original", model_dir), ("imported", imported)):
        out = tmp_path / f"out_{name}"
        assert main(["predict", "-i", str(source), "-o", str(out), "-m", str(folder), "--patients", patient,
                     "--quiet"]) == 0
        settings = json.loads((out / "prediction_settings.json").read_text())
        assert settings["routing"]["outputs"]["risk"]["source"] == "stage"
        assert settings["postprocessing"]["rules"]["min_component_size"]  # the model folder's own, by default
        outputs[name] = (out / "predictions.csv").read_text()
    assert outputs["imported"] == outputs["original"]


def test_a_zip_reaching_outside_the_results_folder_is_refused(tmp_path):
    from nnunet_hecktor.model_folder.archive import import_model

    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("Dataset1_X/T__P__3d_fullres/../../../escaped.txt", "x")
    with pytest.raises(HecktorError, match="outside the results folder"):
        import_model(archive, tmp_path / "results")
    assert not (tmp_path / "escaped.txt").exists()
