"""Real-world source folders (issue 10 sections 2 and 4): each case is a row, input -> expected message/output.

Sources are a small synthetic release (``make_cohort``, size "test": 5 patients, 4 of them in Task 1),
copied and altered per row. Nothing here may fail a patient over a clinical field, lose data without a
warning that names it, or end in a traceback.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_conversion_helpers import snapshot

from nnunet_hecktor.cli import main as cli_main
from nnunet_hecktor.dataset_conversion import convert_dataset
from nnunet_hecktor.dataset_conversion.lock import LOCK_NAME
from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.synthetic import make_cohort

TASK1 = ["CHUM-002", "CHUP-002", "MDA-004", "MDA-005"]  # labelled (Task 1) patients of the cohort below
ONLY_TASKS_2_3 = "MDA-003"


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("release") / "hecktor"
    cohort = make_cohort(root, n_patients=5, seed=3, layout="release", progress=False)
    assert sorted(cohort.patient_ids[1]) == TASK1 and ONLY_TASKS_2_3 not in cohort.patient_ids[1]
    return root


def _copy(release: Path, tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(release, src)
    return src


def _convert(src: Path, tmp_path: Path, **kwargs):
    return convert_dataset(src, dataset_id=540, name="R", output=tmp_path / "out" / "Dataset540_R", progress=False,
                           **kwargs)


def _all_warnings(summary) -> str:
    report = json.loads(summary.report_path.read_text())
    per_patient = [f"{pid}: {w}" for pid, entry in report["patients"].items() for w in entry["warnings"]]
    return "\n".join(report["warnings"] + per_patient)


# -- a Task 1 patient without a label: a named warning, a failure under --strict -----------------------------

def _label_variant(kind: str, folder: Path, pid: str) -> str | None:
    """Alter the label of ``pid``; return the file name the warning must mention (None: nothing to mention)."""
    label = folder / f"{pid}.nii.gz"
    if kind == "deleted":
        label.unlink()
        return None
    if kind == "renamed _seg":
        label.rename(folder / f"{pid}_seg.nii.gz")
        return f"{pid}_seg.nii.gz"
    if kind == "renamed __GT":
        label.rename(folder / f"{pid}__GT.nii.gz")
        return f"{pid}__GT.nii.gz"
    if kind == "nested one level deeper":
        (folder / "seg").mkdir()
        label.rename(folder / "seg" / label.name)
        return f"seg/{pid}.nii.gz"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["deleted", "renamed _seg", "renamed __GT", "nested one level deeper"])
def test_task1_patient_without_label_is_named(release, tmp_path, kind):
    src = _copy(release, tmp_path)
    mentioned = _label_variant(kind, src / "Task 1" / "CHUP-002", "CHUP-002")
    summary = _convert(src, tmp_path)
    assert summary.failed == {} and "CHUP-002" in summary.test and "CHUP-002" not in summary.training
    assert sorted(summary.training) == sorted(set(TASK1) - {"CHUP-002"})
    warning = summary.patient_warnings["CHUP-002"][0]
    assert "no label file in the Task 1 folder" in warning and "imagesTs" in warning
    if mentioned:
        assert mentioned in warning
    assert "CHUP-002: no label file" in summary.describe()
    # The renamed label is not a patient of its own, and nobody else is warned about a label.
    assert not any(p.startswith("CHUP-002_") for p in summary.training + summary.test + list(summary.failed))
    assert set(summary.patient_warnings) == {"CHUP-002"}

    with pytest.raises(HecktorError, match=r"1 patients failed \(--strict\).*CHUP-002: no label file"):
        _convert(src, tmp_path, strict=True)
    report = json.loads((tmp_path / "out" / "Dataset540_R" / "conversion_report.json").read_text())
    assert report["patients"]["CHUP-002"]["status"] == "failed"
    assert not list((tmp_path / "out" / "Dataset540_R").rglob("CHUP-002_0000.nii.gz"))


def test_patient_only_in_tasks_2_and_3_needs_no_label(release, tmp_path):
    summary = _convert(_copy(release, tmp_path), tmp_path, strict=True)
    assert summary.test == [ONLY_TASKS_2_3] and summary.patient_warnings == {} and summary.failed == {}


# -- a release unpacked one level too deep ---------------------------------------------------------------------

def _nest(kind: str, src: Path) -> Path:
    """Rearrange ``src``; return the folder to give to convert."""
    if kind == "Task 1/Task 1":
        for task in ("Task 1", "Task 2", "Task 3"):
            (src / task).rename(src / "tmp")
            (src / task).mkdir()
            (src / "tmp").rename(src / task / task)
        return src
    if kind == "Task 1/Task 1 given as the task folder":
        shutil.rmtree(src / "Task 2")
        shutil.rmtree(src / "Task 3")
        (src / "Task 1").rename(src / "inner")
        (src / "Task 1").mkdir()
        (src / "inner").rename(src / "Task 1" / "Task 1")
        return src / "Task 1"
    if kind == "Task 1/data":
        (src / "Task 1").rename(src / "data")
        (src / "Task 1").mkdir()
        (src / "data").rename(src / "Task 1" / "data")
        return src
    if kind == "release inside one more folder":
        outer = src.parent / "download"
        outer.mkdir()
        src.rename(outer / "HECKTOR 2025 Training Data")
        return outer
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["Task 1/Task 1", "Task 1/Task 1 given as the task folder", "Task 1/data",
                                  "release inside one more folder"])
def test_release_unpacked_one_level_too_deep_is_converted(release, tmp_path, kind):
    given = _nest(kind, _copy(release, tmp_path))
    summary = _convert(given, tmp_path, strict=True)
    assert sorted(summary.training) == TASK1 and summary.failed == {}
    assert json.loads((summary.output_dir / "dataset.json").read_text())["numTraining"] == len(TASK1)
    assert "one level too deep" in _all_warnings(summary) or "one level deeper" in _all_warnings(summary)
    rows = list(csv.DictReader((summary.output_dir / "clinical.csv").open()))
    assert {r["PatientID"] for r in rows} >= set(TASK1)  # the CSVs were found in the inner folders too


def test_two_levels_too_deep_is_refused_with_what_was_found(release, tmp_path):
    src = _copy(release, tmp_path)
    deeper = tmp_path / "a" / "b"
    deeper.mkdir(parents=True)
    src.rename(deeper / "hecktor")
    (tmp_path / "a" / "notes.txt").write_text("x")
    with pytest.raises(HecktorError, match=r"no HECKTOR images found in .*/a \(it holds: b, notes.txt\)"):
        _convert(tmp_path / "a", tmp_path)


def test_labels_nowhere_gives_a_dataset_warning(release, tmp_path):
    src = _copy(release, tmp_path)
    for label in (src / "Task 1").glob("*/*[0-9].nii.gz"):
        label.unlink()
    summary = _convert(src, tmp_path)
    assert summary.training == [] and "numTraining 0" in _all_warnings(summary)
    assert set(summary.patient_warnings) == set(TASK1)


# -- clinical CSV headers and delimiters -----------------------------------------------------------------------

def _rewrite_csv(path: Path, header_map: dict[str, str] | None = None, delimiter: str = ",",
                 decimal_comma: bool = False) -> None:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    rows[0] = [(header_map or {}).get(h, h) for h in rows[0]]
    if decimal_comma:
        rows[1:] = [[c.replace(".", ",") if c.replace(".", "").isdigit() else c for c in row] for row in rows[1:]]
    with path.open("w", newline="") as handle:
        csv.writer(handle, delimiter=delimiter).writerows(rows)


def _targets(summary) -> dict[str, dict[str, str]]:
    with (summary.output_dir / "clinical.csv").open() as handle:
        return {r["PatientID"]: {k: r[k] for k in ("HPV Status", "Relapse", "RFS", "Age")}
                for r in csv.DictReader(handle)}


@pytest.mark.parametrize("task, written, known", [
    (3, "HPV status", "HPV Status"),
    (2, "relapse", "Relapse"),
    (2, " RFS ", "RFS"),
    (2, "RELAPSE", "Relapse"),
    (1, "Performance  Status", "Performance Status"),
])
def test_header_spelled_with_other_case_or_spaces_is_read_with_a_warning(release, tmp_path, task, written, known):
    reference = _targets(_convert(release, tmp_path / "ref"))
    src = _copy(release, tmp_path)
    _rewrite_csv(src / f"Task {task}" / f"HECKTOR_2025_Training_Task_{task}.csv", {known: written})
    summary = _convert(src, tmp_path)
    assert _targets(summary) == reference  # same values: the targets are not empty for anyone
    if written.strip() != known:  # spaces around a header were always read silently
        assert f"column {written!r} read as {known!r}" in _all_warnings(summary)


@pytest.mark.parametrize("task, written, known", [
    (2, "RFS (days)", "RFS"),
    (3, "HPV_Status", "HPV Status"),
    (2, "Relapses", "Relapse"),
    (1, "Patient ID", "PatientID"),
    (1, "Tobacco_Consumption", "Tobacco Consumption"),
])
def test_near_miss_header_is_an_error_naming_it(release, tmp_path, task, written, known):
    src = _copy(release, tmp_path)
    _rewrite_csv(src / f"Task {task}" / f"HECKTOR_2025_Training_Task_{task}.csv", {known: written})
    with pytest.raises(HecktorError) as info:
        _convert(src, tmp_path)
    assert f"column {written!r} looks like {known!r}" in str(info.value)
    assert not (tmp_path / "out").exists(), "nothing is written before the clinical tables are read"


@pytest.mark.parametrize("written, outcome", [
    ("T-stage", None),        # a 2026 column: an extra column, not a near miss of M-stage
    ("Center", "resembles 'CenterID'"),  # stratification only: a warning, not an error
])
def test_other_columns_are_kept(release, tmp_path, written, outcome):
    src = _copy(release, tmp_path)
    path = src / "Task 1" / "HECKTOR_2025_Training_Task_1.csv"
    text = path.read_text().splitlines()
    path.write_text("\n".join([text[0] + f",{written}"] + [line + ",x" for line in text[1:]]) + "\n")
    summary = _convert(src, tmp_path)
    assert sorted(summary.training) == TASK1
    header = (summary.output_dir / "clinical.csv").read_text().splitlines()[0].split(",")
    assert written in header
    if outcome:
        assert outcome in _all_warnings(summary)


@pytest.mark.parametrize("delimiter, decimal_comma, note", [
    (";", False, "semicolon-separated"),
    (";", True, "decimal comma"),
    ("\t", False, "tab-separated"),
])
def test_semicolon_and_tab_separated_csvs_are_read(release, tmp_path, delimiter, decimal_comma, note):
    reference = _targets(_convert(release, tmp_path / "ref"))
    src = _copy(release, tmp_path)
    for path in src.glob("Task */*.csv"):
        _rewrite_csv(path, delimiter=delimiter, decimal_comma=decimal_comma)
    summary = _convert(src, tmp_path, strict=True)
    assert summary.patient_warnings == {}
    got = _targets(summary)
    for pid, values in reference.items():  # the same numbers (a decimal comma becomes a point)
        assert {k: float(v) if v else None for k, v in got[pid].items()} == \
            {k: float(v) if v else None for k, v in values.items()}
    assert note in _all_warnings(summary)


def test_unknown_separator_says_what_it_found(release, tmp_path):
    src = _copy(release, tmp_path)
    _rewrite_csv(src / "Task 1" / "HECKTOR_2025_Training_Task_1.csv", delimiter="|")
    with pytest.raises(HecktorError, match=r"no 'PatientID' column \(columns: PatientID\|Age\|.*reads as one column"):
        _convert(src, tmp_path)


# -- section 4: no tracebacks ----------------------------------------------------------------------------------

def _deny_listing(monkeypatch, folder: Path) -> None:
    """Make ``folder`` unreadable: chmod where that binds (not root), else refuse listing it as the OS would."""
    if os.geteuid() != 0:
        folder.chmod(0)
        return
    real_iterdir = Path.iterdir

    def iterdir(self):
        if self == folder:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)


def test_unreadable_patient_folder_is_a_failed_patient(release, tmp_path, monkeypatch):
    src = _copy(release, tmp_path)
    _deny_listing(monkeypatch, src / "Task 1" / "MDA-005")
    try:
        summary = _convert(src, tmp_path)
        assert "MDA-005" in summary.failed and "cannot be read (Permission denied)" in summary.failed["MDA-005"]
        assert "Task 1/MDA-005" in summary.failed["MDA-005"]
        assert sorted(summary.training) == sorted(set(TASK1) - {"MDA-005"})
        # Its readable copies in Task 2/3 do not make it an unlabelled case behind the user's back.
        assert "MDA-005" not in summary.test
        with pytest.raises(HecktorError, match="MDA-005.*Permission denied"):
            _convert(src, tmp_path, strict=True)
    finally:
        (src / "Task 1" / "MDA-005").chmod(0o755)


def test_unreadable_patient_folder_only_copy(release, tmp_path, monkeypatch):
    src = _copy(release, tmp_path)
    _deny_listing(monkeypatch, src / "Task 1" / "CHUM-002")  # CHUM-002 is in Task 1 only
    try:
        summary = _convert(src, tmp_path)
        assert list(summary.failed) == ["CHUM-002"] and "CHUM-002" not in summary.test
        report = json.loads(summary.report_path.read_text())
        assert report["patients"]["CHUM-002"]["status"] == "failed"
        assert "FAILED CHUM-002: the patient folder" in summary.describe()
    finally:
        (src / "Task 1" / "CHUM-002").chmod(0o755)


@pytest.mark.parametrize("full_at", ["conversion_report.json", "clinical.csv", "splits_final.json", "dataset.json"])
def test_full_disk_while_writing_dataset_files_keeps_the_failure_reasons(release, tmp_path, monkeypatch, capsys,
                                                                         full_at):
    import nnunet_hecktor.fileio as fileio

    src = _copy(release, tmp_path)
    (src / "Task 1" / "CHUP-002" / "CHUP-002__PT.nii.gz").write_bytes(b"not an image")  # one failed patient
    real_replace = os.replace

    def disk_full_at(source, destination):
        if Path(destination).name == full_at:
            raise OSError(28, "No space left on device", str(destination))
        return real_replace(source, destination)

    # A full disk cannot be made here without root mounts: the write of that file fails as the OS would.
    monkeypatch.setattr(fileio.os, "replace", disk_full_at)
    out = tmp_path / "out" / "Dataset540_R"
    code = cli_main(["convert", str(src), "--dataset-id", "540", "--output", str(out), "--quiet", "--num-folds", "2"])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert f"{full_at} (No space left on device)" in err and "unfinished (no dataset.json)" in err
    assert "FAILED CHUP-002:" in err and "PET file is unreadable" in err
    assert not (out / "dataset.json").exists() and not (out / LOCK_NAME).exists()
    assert not list(out.rglob(".tmp-*"))
    # Space freed: the same command finishes the dataset, resuming the converted patients.
    assert cli_main(["convert", str(src), "--dataset-id", "540", "--output", str(out), "--quiet", "--num-folds",
                     "2"]) == 0
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 3


@pytest.mark.parametrize("where, message", [
    ("under a file", "is a file, not a folder"),
    ("under /sys", "no permission to write in|Operation not permitted|Permission denied|Read-only"),
])
def test_unwritable_output_parent_is_a_clear_message(release, tmp_path, capsys, where, message):
    if where == "under a file":
        (tmp_path / "afile").write_text("x")
        out = tmp_path / "afile" / "Dataset540_R"
    else:
        if not Path("/sys").is_dir():
            pytest.skip("no /sys")
        out = Path("/sys/nnunet-hecktor-test/Dataset540_R")
    code = cli_main(["convert", str(release), "--dataset-id", "540", "--output", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and "cannot create the output folder" in err
    import re
    assert re.search(message, err), err


# -- section 4: one writer at a time -----------------------------------------------------------------------------

_HOLDER = textwrap.dedent("""
    import sys, time
    from nnunet_hecktor.dataset_conversion.lock import OutputLock
    with OutputLock(sys.argv[1], "nnunet-hecktor convert (first run)"):
        print("locked", flush=True)
        time.sleep(120)
""")


def test_second_convert_on_one_folder_is_refused_naming_the_first(release, tmp_path, capsys):
    out = tmp_path / "out" / "Dataset540_R"
    first = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "locked"
        code = cli_main(["convert", str(release), "--dataset-id", "540", "--output", str(out), "--quiet"])
        err = capsys.readouterr().err
        assert code == 1 and "Traceback" not in err
        holder = f"pid {first.pid} on host {socket.gethostname()}"
        assert f"another 'nnunet-hecktor convert' is writing {out}: {holder}" in err
        assert "started 20" in err and "(first run)" in err
        assert not (out / "imagesTr").exists(), "the second run wrote nothing"
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)


def test_stale_lock_is_taken_over_with_a_warning(release, tmp_path, capsys):
    out = tmp_path / "out" / "Dataset540_R"
    out.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    (out / LOCK_NAME).write_text(json.dumps({"pid": dead_pid, "host": socket.gethostname(),
                                             "started": "2026-01-01T00:00:00+00:00", "command": "killed run"}))
    assert cli_main(["convert", str(release), "--dataset-id", "540", "--output", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "stale lock" in err and f"pid {dead_pid}" in err
    report = json.loads((out / "conversion_report.json").read_text())
    assert any("took over the lock" in w and str(dead_pid) in w for w in report["warnings"])
    assert not (out / LOCK_NAME).exists()


def test_lock_of_another_host_is_not_taken_over(release, tmp_path):
    out = tmp_path / "out" / "Dataset540_R"
    out.mkdir(parents=True)
    (out / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "other-node-17", "started": "2026-01-01T00:00:00"}))
    with pytest.raises(HecktorError, match=rf"pid 1 on host other-node-17.*delete {out / LOCK_NAME}"):
        _convert(release, tmp_path)


def test_lock_is_released_when_the_run_fails(release, tmp_path):
    src = _copy(release, tmp_path)
    for pet in src.rglob("*__PT.nii.gz"):
        pet.write_bytes(b"broken")  # every patient fails: the run raises after writing the report
    with pytest.raises(HecktorError, match="no patient could be converted"):
        _convert(src, tmp_path)
    out = tmp_path / "out" / "Dataset540_R"
    assert (out / "conversion_report.json").is_file() and not (out / LOCK_NAME).exists()
    assert sorted(_convert(release, tmp_path).training) == TASK1  # the next run is not blocked


# -- section 4: files others can read ---------------------------------------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_converted_dataset_respects_the_umask(release, tmp_path, umask):
    before = snapshot(release)
    previous = os.umask(umask)
    try:
        summary = _convert(release, tmp_path)
    finally:
        os.umask(previous)
    assert snapshot(release) == before
    files = [p for p in summary.output_dir.rglob("*") if p.is_file()]
    assert len(files) > 10
    modes = {stat.S_IMODE(p.stat().st_mode) for p in files}
    assert modes == {0o666 & ~umask}, {oct(m) for m in modes}
    folders = {stat.S_IMODE(p.stat().st_mode) for p in summary.output_dir.rglob("*") if p.is_dir()}
    assert folders == {0o777 & ~umask}


def test_cli_console_names_what_was_left_out(release, tmp_path, capsys):
    src = _copy(release, tmp_path)
    path = src / "Task 1" / "HECKTOR_2025_Training_Task_1.csv"
    rows = list(csv.DictReader(path.open()))
    line = next(i for i, r in enumerate(rows) if r["PatientID"] == "MDA-004") + 2
    text = path.read_text().splitlines()
    cells = next(csv.reader([text[line - 1]]))
    cells[list(rows[0]).index("Age")] = "unknown age"
    text[line - 1] = ",".join(cells)
    path.write_text("\n".join(text) + "\n")
    (src / "Task 1" / "CHUP-002" / "CHUP-002.nii.gz").unlink()
    out = tmp_path / "out" / "Dataset540_R"
    assert cli_main(["convert", str(src), "--dataset-id", "540", "--output", str(out)]) == 0
    captured = capsys.readouterr()
    assert "HECKTOR release layout" in captured.out
    assert "1 Task 1 patients have no label file: CHUP-002" in captured.out
    assert "3 training cases" in captured.out and "2 without label" in captured.out
    assert f"warning: MDA-004: {path}: line {line}: column 'Age': value 'unknown age' not usable" in captured.out
    assert "warning: CHUP-002: no label file in the Task 1 folder" in captured.out
    assert "Traceback" not in captured.err


def test_windows_1252_csv_is_read_with_a_warning(release, tmp_path):
    src = _copy(release, tmp_path)
    path = src / "Task 1" / "HECKTOR_2025_Training_Task_1.csv"
    lines = path.read_text().splitlines()
    path.write_bytes(("\n".join([lines[0] + ",Hôpital"] + [line + ",Genève" for line in lines[1:]]) + "\n")
                     .encode("cp1252"))
    summary = _convert(src, tmp_path, strict=True)
    assert sorted(summary.training) == TASK1 and "read as Windows-1252" in _all_warnings(summary)
    rows = list(csv.DictReader((summary.output_dir / "clinical.csv").open(encoding="utf-8")))
    assert {r["Hôpital"] for r in rows if r["PatientID"] in TASK1} == {"Genève"}


def test_flat_folder_with_a_semicolon_csv(tmp_path):
    cohort = make_cohort(tmp_path / "flat", n_patients=3, seed=5, layout="flat", progress=False)
    csvs = list(cohort.out_dir.glob("*.csv"))
    assert csvs
    for path in csvs:
        _rewrite_csv(path, delimiter=";")
    summary = convert_dataset(cohort.out_dir, dataset_id=541, name="F", output=tmp_path / "Dataset541_F",
                              progress=False, strict=True)
    assert "semicolon-separated" in _all_warnings(summary)
    rows = list(csv.DictReader((summary.output_dir / "clinical.csv").open()))
    assert len(rows) == 3 and all(r["Age"] for r in rows)
