"""Layer rules of the package (docs/reference/layers.md), checked on every import statement.

Every ``.py`` file of the four source folders is parsed (``ast``); every import of another part of
``nnunet_hecktor`` (module level or inside a function, absolute or relative) must go to a lower
layer and must not be one of the forbidden edges. The checker is tested on a planted violation.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Source folder -> the package name it is installed as (setup.cfg: package_dir).
SOURCE_ROOTS = {"nnunet_hecktor": "nnunet_hecktor", "trainers": "nnunet_hecktor.trainers",
                "heads": "nnunet_hecktor.heads", "dataset_conversion": "nnunet_hecktor.dataset_conversion"}

#: Layer of each unit (a subpackage, or a module directly in nnunet_hecktor/). A unit may import
#: units of a strictly lower layer, and itself.
LAYERS: dict[str, int] = {
    # 0: conventions and plumbing that know nothing of images, tasks or models
    "nnunet_hecktor": 0, "nnunet_hecktor.errors": 0, "nnunet_hecktor.schema": 0,
    "nnunet_hecktor.strict_json": 0, "nnunet_hecktor.parallel": 0, "nnunet_hecktor.lazy_exports": 0,
    "nnunet_hecktor.logs": 0, "nnunet_hecktor.checkpoints": 0,
    # 1: image integrity, clinical parsing, nnU-Net environment, pure metrics
    "nnunet_hecktor.image_integrity": 1, "nnunet_hecktor.clinical": 1, "nnunet_hecktor.editions": 1,
    "nnunet_hecktor.nnunet_env": 1,
    "nnunet_hecktor.metrics": 1,
    # 2: file I/O
    "nnunet_hecktor.fileio": 2,
    # 3: image grids and conversion, network heads, label files
    "nnunet_hecktor.dataset_conversion": 3, "nnunet_hecktor.heads": 3, "nnunet_hecktor.label_files": 3,
    "nnunet_hecktor.plots": 3,
    # 4: the stages (never each other)
    "nnunet_hecktor.postprocessing": 4, "nnunet_hecktor.evaluation": 4, "nnunet_hecktor.prognosis": 4,
    "nnunet_hecktor.trainers": 4,
    # 5: inference on new cases (uses postprocessing and the heads, never training code)
    "nnunet_hecktor.prediction": 5,
    # 6-8: applications: the challenge container, synthetic test/demo data (uses the container's
    # input format), the demo (uses everything)
    "nnunet_hecktor.challenge": 6, "nnunet_hecktor.baselines": 6, "nnunet_hecktor.model_folder": 6,
    "nnunet_hecktor.synthetic": 7,
    "nnunet_hecktor.demo": 8,
    # 9-11: command line and entry points
    "nnunet_hecktor.commands": 9, "nnunet_hecktor.cli": 10, "nnunet_hecktor.nnunet_ext_trainers": 10,
    "nnunet_hecktor.challenge.__main__": 11,
}

#: Edges the layer order alone would allow but which are forbidden.
FORBIDDEN: set[tuple[str, str]] = {
    ("nnunet_hecktor.prediction", "nnunet_hecktor.trainers"),  # inference code does not live in training code
    ("nnunet_hecktor.prediction", "nnunet_hecktor.evaluation"),
    ("nnunet_hecktor.prediction", "nnunet_hecktor.prognosis"),
}



def _module_name(path: Path, root: Path, package: str) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def unit_of(module: str) -> str | None:
    """The unit a module belongs to (longest key of :data:`LAYERS` that is a prefix), or None."""
    parts = module.split(".")
    if len(parts) == 1 or (len(parts) == 2 and parts[1].startswith("__") and parts[1] != "__main__"):
        return parts[0] if parts[0] in LAYERS else None  # the package itself, or its __version__
    for n in range(len(parts), 1, -1):
        candidate = ".".join(parts[:n])
        if candidate in LAYERS:
            return candidate
    return None


def imported_modules(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # `from nnunet_hecktor import schema` imports the module nnunet_hecktor.schema
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def layer_violations(roots: dict[Path, str]) -> list[str]:
    """Every import that breaks :data:`LAYERS` or :data:`FORBIDDEN`, as ``file:line: a -> b (why)``."""
    problems = []
    for root, package in roots.items():
        for path in sorted(root.rglob("*.py")):
            module = _module_name(path, root, package)
            source = unit_of(module)
            if source is None:
                problems.append(f"{path}: module {module} belongs to no layer; add it to LAYERS")
                continue
            for line, target_module in imported_modules(path, module):
                if not target_module.startswith("nnunet_hecktor"):
                    continue
                target = unit_of(target_module)
                if target is None or target == source or source.startswith(target + ".") \
                        or target.startswith(source + "."):
                    continue
                edge = (source, target)
                if edge in FORBIDDEN:
                    problems.append(f"{path}:{line}: {source} -> {target} (forbidden edge)")
                elif LAYERS[target] >= LAYERS[source]:
                    problems.append(f"{path}:{line}: {source} (layer {LAYERS[source]}) -> {target} "
                                    f"(layer {LAYERS[target]}): imports must go to a lower layer")
    return problems


def test_package_follows_the_layer_rules():
    roots = {REPO / folder: package for folder, package in SOURCE_ROOTS.items()}
    assert layer_violations(roots) == []


@pytest.mark.parametrize("planted, expected", [
    ("from nnunet_hecktor.evaluation.evaluate import evaluate\n", "layer 1) -> nnunet_hecktor.evaluation (layer 4)"),
    ("def f():\n    from ..prognosis import features\n", "nnunet_hecktor.prognosis (layer 4)"),
    ("import nnunet_hecktor.cli\n", "nnunet_hecktor.cli (layer 10)"),
])
def test_checker_finds_a_planted_violation(tmp_path, planted, expected):
    package = tmp_path / "nnunet_hecktor"
    (package / "metrics").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "metrics" / "__init__.py").write_text("")
    (package / "metrics" / "bad.py").write_text("from nnunet_hecktor import schema\n" + planted)
    problems = layer_violations({package: "nnunet_hecktor"})
    assert len(problems) == 1 and expected in problems[0] and "bad.py:" in problems[0], problems


def test_checker_finds_a_forbidden_edge_and_an_unknown_module(tmp_path):
    package = tmp_path / "nnunet_hecktor"
    (package / "prediction").mkdir(parents=True)
    (package / "prediction" / "x.py").write_text("from nnunet_hecktor.evaluation import evaluate\n")
    (package / "newthing.py").write_text("")
    problems = layer_violations({package: "nnunet_hecktor"})
    assert any("prediction -> nnunet_hecktor.evaluation (forbidden edge)" in p for p in problems), problems
    assert any("newthing" in p and "belongs to no layer" in p for p in problems), problems
