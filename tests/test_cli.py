"""The console command: every subcommand is found, explains itself, and errors are one clear line."""

import subprocess
import sys

import pytest

from nnunet_hecktor import __version__
from nnunet_hecktor.cli import _command_modules, main

EXPECTED_COMMANDS = {
    "demo", "synth", "convert", "trainer-path", "warm-start", "export-seg", "predict", "postprocess",
    "tune-postprocessing", "evaluate", "challenge", "features", "prognosis", "hpv", "staging", "export-model",
    "import-model",
}


def test_every_expected_subcommand_is_registered():
    names = {module.NAME for module in _command_modules()}
    assert EXPECTED_COMMANDS <= names, f"missing: {sorted(EXPECTED_COMMANDS - names)}"


@pytest.mark.parametrize("name", sorted(EXPECTED_COMMANDS))
def test_subcommand_help_explains_itself(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: nnunet-hecktor {name}")
    assert len(text.splitlines()) >= 4


def test_version_and_top_level_help_through_the_console_script():
    out = subprocess.run([sys.executable, "-m", "nnunet_hecktor.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"nnunet-hecktor {__version__}"
    out = subprocess.run([sys.executable, "-m", "nnunet_hecktor.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in EXPECTED_COMMANDS:
        assert name in out.stdout


def test_user_error_is_one_line_without_traceback(tmp_path, capsys):
    code = main(["convert", str(tmp_path / "does-not-exist"), "--dataset-id", "501",
                 "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err
    assert "does-not-exist" in err


def test_cli_prints_library_log_records_plainly(capsys):
    """Library modules log; the CLI's set-up prints INFO as the bare message and warnings prefixed."""
    import logging

    from nnunet_hecktor.logs import configure_cli_logging

    configure_cli_logging()  # what main() does before running a command
    configure_cli_logging()  # idempotent: one handler
    capsys.readouterr()
    logging.getLogger("nnunet_hecktor.prognosis.hpv_stage").info("hpv: 12 patients")
    logging.getLogger("nnunet_hecktor.prognosis.stage_io").warning("column X ignored")
    logging.getLogger("nnunet_hecktor.prognosis").debug("not shown")
    captured = capsys.readouterr()
    assert captured.out == "hpv: 12 patients\n"
    assert captured.err == "warning: column X ignored\n"


@pytest.mark.parametrize("name", sorted(EXPECTED_COMMANDS))
def test_every_command_takes_quiet_and_verbose(name, capsys):
    with pytest.raises(SystemExit):
        main([name, "--help"])
    text = capsys.readouterr().out
    assert "-q, --quiet" in text and "-v, --verbose" in text


def test_usage_error_exits_2_with_the_usage_line(monkeypatch, capsys):
    import types

    from nnunet_hecktor import cli
    from nnunet_hecktor.errors import UsageError

    def run(args):
        raise UsageError("give --gt or --challenge-outputs")

    fake = types.SimpleNamespace(NAME="fake", HELP="a test command", add_arguments=lambda parser: None, run=run)
    monkeypatch.setattr(cli, "_command_modules", lambda: [fake])
    assert main(["fake"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: nnunet-hecktor fake") and "error: give --gt" in err


def test_verbose_shows_debug_records(capsys):
    import logging

    from nnunet_hecktor.logs import configure_cli_logging

    configure_cli_logging(verbose=True)
    try:
        logging.getLogger("nnunet_hecktor.test").debug("a debug record")
        assert "a debug record" in capsys.readouterr().out
    finally:
        configure_cli_logging()


def test_shared_options_have_one_spelling_and_meaning(capsys):
    """-m is a model folder, -f fold indices, --cv-folds a count, -chk a checkpoint, -device auto by default."""
    from nnunet_hecktor.cli import build_parser

    parser = build_parser()
    predict = parser.parse_args(["predict", "-i", "in", "-o", "out", "-m", "M", "-f", "0", "1", "-chk", "c.pth"])
    assert (predict.model, predict.folds, predict.checkpoint, predict.device) == ("M", ["0", "1"], "c.pth", "auto")
    convert = parser.parse_args(["convert", "src", "-d", "501"])
    assert convert.dataset_id == 501
    fit = parser.parse_args(["prognosis", "fit", "--clinical", "c.csv", "--output", "o", "--cv-folds", "3"])
    assert fit.cv_folds == 3
    # Old spellings: one more release, with a warning naming the new one.
    old = parser.parse_args(["hpv", "fit", "--clinical", "c.csv", "--output", "o", "--folds", "4"])
    assert old.cv_folds == 4 and "use --cv-folds" in capsys.readouterr().err
    old = parser.parse_args(["staging", "predict", "--model", "m.joblib", "--output", "p.csv"])
    assert old.model_file == "m.joblib" and "use --model-file" in capsys.readouterr().err


def test_evaluate_without_inputs_is_a_usage_error(capsys):
    assert main(["evaluate"]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err


def test_convert_refuses_an_nnunet_dataset_and_a_duplicate_dataset_id(tmp_path, capsys):
    import json

    dataset = tmp_path / "Dataset501_HECKTOR"
    (dataset / "imagesTr").mkdir(parents=True)
    (dataset / "imagesTr" / "CHUP-000_0000.nii.gz").write_bytes(b"")
    (dataset / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT", "1": "PET"}}))
    assert main(["convert", str(dataset), "-d", "502", "--output", str(tmp_path / "out" / "Dataset502_X")]) == 1
    assert "is an nnU-Net dataset" in capsys.readouterr().err
    (tmp_path / "raw" / "Dataset503_Other").mkdir(parents=True)
    src = tmp_path / "src"
    src.mkdir()
    assert main(["convert", str(src), "-d", "503", "--output", str(tmp_path / "raw" / "Dataset503_New")]) == 1
    assert "already holds Dataset503_Other" in capsys.readouterr().err


def test_cli_reference_table_matches_the_parser():
    """docs/reference/cli.md's option table is generated from the parser (docs/_hooks/cli_table.py --write)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "docs" / "_hooks" / "cli_table.py"
    spec = importlib.util.spec_from_file_location("cli_table", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    page = module.PAGE.read_text(encoding="utf-8")
    assert module.page_table(page) == module.table(), "regenerate: python docs/_hooks/cli_table.py --write"
