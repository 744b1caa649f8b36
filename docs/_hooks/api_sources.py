"""The package's import layout as a folder: for the API reference (an MkDocs hook) and for mypy.

setup.cfg installs four top-level folders as one namespace (``trainers/`` as
``nnunet_hecktor.trainers``, ...). mkdocstrings and mypy read sources by import path, so this lays
out ``<out>/nnunet_hecktor`` as a copy of the sources with setup.cfg's ``package_dir`` mapping
(copies, since both resolve links back to the original folders).

As a hook it writes ``build/api_src`` before the pages are rendered (mkdocs.yml points the Python
handler there). As a script, ``python docs/_hooks/api_sources.py OUT`` writes ``OUT/nnunet_hecktor``
(CI type-checks that with mypy).
"""

from __future__ import annotations

import configparser
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def lay_out_package(out: Path, repo: Path = REPO) -> Path:
    """Copy the sources into ``out/nnunet_hecktor`` with setup.cfg's package mapping; return that folder."""
    parser = configparser.ConfigParser()
    parser.read(repo / "setup.cfg")
    mapping = {}
    for line in parser["options"]["package_dir"].strip().splitlines():
        package, _, folder = (part.strip() for part in line.partition("="))
        mapping[package] = folder
    shutil.rmtree(out, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    root = out / "nnunet_hecktor"
    shutil.copytree(repo / mapping["nnunet_hecktor"], root, ignore=ignore)
    for package, folder in mapping.items():
        if package != "nnunet_hecktor":
            shutil.copytree(repo / folder, root / package.split(".", 1)[1], ignore=ignore)
    return root


def _first(handler):
    """Run this hook before the plugins' ``on_config`` (mkdocstrings looks up its ``paths`` there, so
    ``build/api_src`` must exist by then, also on a fresh checkout)."""
    try:
        from mkdocs.plugins import event_priority
    except ImportError:  # used as a script, without MkDocs
        return handler
    return event_priority(100)(handler)


@_first
def on_config(config):
    lay_out_package(Path(config["docs_dir"]).resolve().parent / "build" / "api_src")
    return config


if __name__ == "__main__":
    print(lay_out_package(Path(sys.argv[1]).resolve()))
