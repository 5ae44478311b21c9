"""The import graph shows the architecture: no cycles, and the bottom layers import nothing above them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SOURCE / "slipstream"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def runtime_imports(name: str) -> set[str]:
    """The slipstream modules ``name`` imports when it is imported: module level, outside ``if TYPE_CHECKING:``."""
    tree = ast.parse(MODULES[name].read_text())
    found: set[str] = set()
    for node in tree.body:
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            # `from slipstream.x import y` imports slipstream.x.y when that is a module, else slipstream.x.
            targets = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module for a in node.names
            ]
        for target in targets:
            if target in MODULES and target != name:
                found.add(target)
    return found


GRAPH = {name: runtime_imports(name) for name in MODULES}


def test_the_module_graph_has_no_cycles() -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(GRAPH[name]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert cycles == []


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        # Metric definitions are the bottom layer: prometheus_client only, and how multiprocess increments are
        # written in batches.
        ("slipstream.exporters.metrics", {"slipstream.exporters.deferred"}),
        ("slipstream.exporters.deferred", set()),
        # The settings need the codecs' names and the extras' message, nothing of what they configure.
        ("slipstream.config", {"slipstream.http.codecs", "slipstream.extras"}),
        ("slipstream.extras", set()),
        ("slipstream.record", set()),
    ],
)
def test_bottom_layers_import_nothing_above_them(module: str, allowed: set[str]) -> None:
    assert GRAPH[module] <= allowed


def test_the_root_package_imports_no_module_until_a_name_is_used() -> None:
    assert GRAPH["slipstream"] == set()
