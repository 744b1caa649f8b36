"""The README's and docs' shell examples run as written; their relative links point at files.

An example is run when the line before its ```bash fence is ``<!-- docs-test: run -->``: the cheap
ones (``--help``, ``--version``, a synthetic cohort of test-size patients and its conversion). Each
runs with ``bash -e`` in a fresh folder, with this interpreter's ``bin`` folder first on PATH (the
installed ``nnunet-hecktor`` and ``nnUNetv2_*`` scripts).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MARKER = "<!-- docs-test: run -->"
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]



def marked_examples(page: Path) -> list[tuple[str, str]]:
    """``(id, script)`` of every ```bash block preceded by :data:`MARKER` in ``page``."""
    lines = page.read_text(encoding="utf-8").splitlines()
    examples = []
    for i, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        if i + 1 >= len(lines) or lines[i + 1].strip() != "```bash":
            raise AssertionError(f"{page}:{i + 1}: {MARKER} must be followed directly by a ```bash fence")
        end = next(j for j in range(i + 2, len(lines)) if lines[j].strip() == "```")
        examples.append((f"{page.relative_to(REPO)}:{i + 2}", "\n".join(lines[i + 2:end])))
    return examples


EXAMPLES = [example for page in PAGES for example in marked_examples(page)]


def test_readme_has_runnable_examples():
    assert any(name.startswith("README.md") for name, _ in EXAMPLES)


@pytest.mark.parametrize("name, script", EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_marked_example_runs(name, script, tmp_path):
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
               OMP_WAIT_POLICY="PASSIVE")
    result = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"{name} failed:\n{script}\n--- stdout\n{result.stdout[-3000:]}\n" \
                                   f"--- stderr\n{result.stderr[-3000:]}"


def test_relative_links_point_at_files():
    missing = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text):
            if re.match(r"^[a-z]+:", target):
                continue  # http(s), mailto
            path = (page.parent / target).resolve()
            if not path.exists():
                missing.append(f"{page.relative_to(REPO)} -> {target}")
    assert missing == []
