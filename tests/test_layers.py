"""The library's layers point one way: envs <- core <- algos <- scale <- rendezvous <- book <- commands.

A module may import its own layer's package and any lower layer, never a higher one; the check reads every
import statement (function-level imports included) from the source, so a late import cannot hide a cycle.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "marlpg"
LAYERS = ["envs", "core", "algos", "scale", "rendezvous", "book", "commands"]
COMMANDS = {"commands", "mappo", "coma", "maddpg"}  # the top-level command-line modules


def layer_of(module: str) -> str | None:
    """The layer of a dotted ``marlpg`` module name (None for the package itself)."""
    parts = module.split(".")
    if parts[0] != "marlpg" or len(parts) == 1:
        return None
    head = parts[1]
    return "commands" if head in COMMANDS else head


def imported_modules(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import in the file, relative ones resolved."""
    package = ".".join(("marlpg", *path.relative_to(root).with_suffix("").parts))
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            found.append((node.lineno, module))
            if node.module is None or module == "marlpg":  # from marlpg import algos
                found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_layer():
    for path in SOURCES:
        parts = path.relative_to(PACKAGE).parts
        if parts == ("__init__.py",):
            continue
        name = "commands" if len(parts) == 1 and path.stem in COMMANDS else parts[0]
        assert name in LAYERS, f"{path} is in no layer; put it in one of {LAYERS}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_the_layers(path):
    parts = path.relative_to(PACKAGE).parts
    if parts == ("__init__.py",):
        return
    own = "commands" if len(parts) == 1 else parts[0]
    for line, module in imported_modules(path):
        target = layer_of(module)
        if target is None:
            continue
        assert LAYERS.index(target) <= LAYERS.index(own), (
            f"{path.relative_to(PACKAGE)}:{line} imports {module} ({target}) from the {own} layer; "
            f"imports point down: {' <- '.join(LAYERS)}"
        )


def test_the_check_sees_late_and_relative_upward_imports(tmp_path):
    """The checker itself: imports inside a function of core, absolute and relative, are found."""
    fake = tmp_path / "marlpg"
    (fake / "core").mkdir(parents=True)
    (fake / "core" / "late.py").write_text("def f():\n    from marlpg.algos import mappo\n    from ..book import figures\n")
    modules = [module for _, module in imported_modules(fake / "core" / "late.py", root=fake)]
    assert modules == ["marlpg.algos", "marlpg.book"]
    assert [layer_of(m) for m in modules] == ["algos", "book"]
