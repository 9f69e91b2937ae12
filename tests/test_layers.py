"""The package's layers hold: no import cycles (imports inside functions included) and no import against the
direction entry points -> tasks / predict / evaluate -> dip -> models, data, metrics -> pixels, geometry, errors;
predictors and DIP's fitting know no LightningModule (nor Lightning)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "visionzoo"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str) -> set[str]:
    """Every visionzoo module ``name`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("visionzoo")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("visionzoo") and not node.level:
            for alias in node.names:  # `from visionzoo.models import dla` imports the submodule dla
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
    return {module for module in found if module in MODULES and module != name}


GRAPH = {name: _imports(name) for name in MODULES}


def _cycle() -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for target in sorted(GRAPH[name]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[name] = 2
        return None

    for name in sorted(GRAPH):
        if name not in state and (found := visit(name)):
            return found
    return None


def test_the_import_walk_sees_the_package():
    assert {"visionzoo.models.registry", "visionzoo.models.factory", "visionzoo.pixels"} <= set(MODULES)
    assert "visionzoo.models.registry" in GRAPH["visionzoo.models.factory"]
    assert "visionzoo.models.dla" in GRAPH["visionzoo.models"]  # `from visionzoo.models import dla`


def test_no_import_cycles():
    assert _cycle() is None, " -> ".join(_cycle())


def test_a_cycle_would_be_found(monkeypatch):
    monkeypatch.setitem(GRAPH, "visionzoo.pixels", {"visionzoo.models.registry"})
    monkeypatch.setitem(GRAPH, "visionzoo.models.registry", GRAPH["visionzoo.models.registry"] | {"visionzoo.pixels"})
    assert _cycle() is not None


@pytest.mark.parametrize("layer, forbidden", [
    ("visionzoo.models", ("visionzoo.data", "visionzoo.dip", "visionzoo.tasks", "visionzoo.predict", "visionzoo.evaluate",
                          "visionzoo.run", "visionzoo.progress")),
    ("visionzoo.data", ("visionzoo.models", "visionzoo.tasks", "visionzoo.predict", "visionzoo.evaluate",
                        "visionzoo.run")),
    ("visionzoo.metrics", ("visionzoo.models", "visionzoo.data", "visionzoo.tasks", "visionzoo.predict",
                           "visionzoo.run")),
    ("visionzoo.dip", ("visionzoo.data", "visionzoo.tasks", "visionzoo.predict", "visionzoo.evaluate",
                       "visionzoo.run", "visionzoo.progress")),
    ("visionzoo.predict", ("visionzoo.tasks", "visionzoo.run")),
    ("visionzoo.evaluate", ("visionzoo.tasks", "visionzoo.run")),
    ("visionzoo.pixels", ("visionzoo.",)),
])
def test_layers_import_only_downwards(layer, forbidden):
    offending = {(name, target) for name, targets in GRAPH.items() if name == layer or name.startswith(layer + ".")
                 for target in targets if target.startswith(forbidden)}
    assert not offending, sorted(offending)


def _third_party(name: str) -> set[str]:
    """Top-level names of the packages outside visionzoo that module ``name`` imports."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found - {"visionzoo"}


@pytest.mark.parametrize("layer", ["visionzoo.dip", "visionzoo.predict", "visionzoo.models"])
def test_layers_below_the_tasks_know_no_lightning(layer):
    modules = [name for name in MODULES if name == layer or name.startswith(layer + ".")]
    assert modules
    offending = sorted(name for name in modules if {"lightning", "pytorch_lightning"} & _third_party(name))
    assert not offending, offending
