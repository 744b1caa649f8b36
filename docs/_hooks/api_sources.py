"""MkDocs hook: the package's import layout for the API reference.

setup.cfg installs four top-level folders as one namespace (``trainers/`` as
``nnunet_hecktor.trainers``, ...). mkdocstrings reads sources by import path, so this hook lays out
``build/api_src/nnunet_hecktor`` as a copy of the sources (the same mapping as setup.cfg's
``package_dir``; copies, since the loader resolves links back to the original folders) before the
pages are rendered; mkdocs.yml points the Python handler at it.
"""

from __future__ import annotations

import configparser
import shutil
from pathlib import Path


def on_config(config):
    repo = Path(config["docs_dir"]).resolve().parent
    parser = configparser.ConfigParser()
    parser.read(repo / "setup.cfg")
    mapping = {}
    for line in parser["options"]["package_dir"].strip().splitlines():
        package, _, folder = (part.strip() for part in line.partition("="))
        mapping[package] = folder
    out = repo / "build" / "api_src"
    shutil.rmtree(out, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    root = out / "nnunet_hecktor"
    shutil.copytree(repo / mapping["nnunet_hecktor"], root, ignore=ignore)
    for package, folder in mapping.items():
        if package != "nnunet_hecktor":
            shutil.copytree(repo / folder, root / package.split(".", 1)[1], ignore=ignore)
    return config
