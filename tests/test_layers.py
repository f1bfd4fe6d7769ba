"""The layering of DESIGN.md, checked on the source: who may import whom.

Layers, top to bottom: cli -> {suite, report, repro} -> {results, registry} -> algos. Two rules
are checked here on every import statement, at any nesting level (a lazy import inside a function
counts as much as one at the top), and on ``importlib.import_module`` / ``__import__`` calls
with a literal name:

- nothing under ``maxbench/algos/`` imports ``maxbench.cli``, ``maxbench.suite``,
  ``maxbench.report``, ``maxbench.results`` or ``maxbench.repro``;
- nothing under ``maxbench/`` imports ``maxbench.cli`` except ``maxbench/__main__.py``.

The import collector is tested on synthetic sources first, so that a collector that finds nothing
cannot make the layer checks pass vacuously.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "maxbench"

#: Packages that no module under maxbench/algos may import.
ABOVE_ALGOS = (
    "maxbench.cli",
    "maxbench.suite",
    "maxbench.report",
    "maxbench.results",
    "maxbench.repro",
)

#: The only module allowed to import maxbench.cli (``python -m maxbench``).
CLI_IMPORTERS = {PACKAGE / "__main__.py"}


def _module_name(path: Path) -> str:
    """``maxbench/algos/s2ac/sampler.py`` -> ``maxbench.algos.s2ac.sampler``."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve_relative(module: str | None, level: int, importer: str, is_package: bool) -> str:
    """The absolute module a ``from <dots><module> import ...`` statement in ``importer`` names."""
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def imported_modules(
    source: str, importer: str = "maxbench.x", is_package: bool = False
) -> set[str]:
    """Every module name the source imports, wherever the import is written.

    ``from a.b import c`` yields both ``a.b`` and ``a.b.c`` (``c`` may be a sub-module, as in
    ``from maxbench import cli``); relative imports are resolved against ``importer``;
    ``importlib.import_module("x")`` and ``__import__("x")`` with a literal name yield ``x``.
    """
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = _resolve_relative(node.module, node.level, importer, is_package)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func):
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                names.add(first.value)
    return names


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def _names(package: str, names: set[str]) -> set[str]:
    """The names that are ``package`` or inside it."""
    return {name for name in names if name == package or name.startswith(package + ".")}


def _sources(folder: Path) -> list[Path]:
    files = sorted(folder.rglob("*.py"))
    assert files, f"no Python files under {folder}"
    return files


def _imports_of(path: Path) -> set[str]:
    return imported_modules(path.read_text(), _module_name(path), path.name == "__init__.py")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import maxbench.cli", "maxbench.cli"),
        ("import maxbench.results.layout as layout", "maxbench.results"),
        ("from maxbench.cli import console", "maxbench.cli"),
        ("from maxbench import cli", "maxbench.cli"),
        ("from maxbench import report as r", "maxbench.report"),
        ("def f():\n    from maxbench.suite import model\n", "maxbench.suite"),
        (
            "class A:\n    def f(self):\n        if x:\n            import maxbench.repro\n",
            "maxbench.repro",
        ),
        (
            "try:\n    pass\nexcept ImportError:\n    from maxbench.results import loader\n",
            "maxbench.results",
        ),
        ("import importlib\nimportlib.import_module('maxbench.cli')", "maxbench.cli"),
        ("m = __import__('maxbench.suite.runner')", "maxbench.suite"),
        ("from ...results import layout", "maxbench.results"),
        ("from ... import cli", "maxbench.cli"),
    ],
)
def test_the_collector_finds_every_kind_of_import(source: str, expected: str) -> None:
    """Imports at the top, in functions, methods, branches, handlers, dynamic and relative."""
    names = imported_modules(source, importer="maxbench.algos.s2ac.sampler")
    assert _names(expected, names), f"{expected!r} not found in {sorted(names)}"


def test_the_collector_does_not_confuse_similar_names() -> None:
    """``maxbench.results_extra`` or a string in a docstring is not ``maxbench.results``."""
    source = '"""Uses maxbench.cli."""\nimport maxbench.results_extra\nx = "maxbench.suite"\n'
    names = imported_modules(source)
    assert not any(_names(package, names) for package in ABOVE_ALGOS), sorted(names)


def test_algos_import_nothing_from_the_layers_above() -> None:
    """algos -> {cli, suite, report, results, repro} is forbidden (DESIGN.md, issue 15)."""
    offences = [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in _sources(PACKAGE / "algos")
        for package in ABOVE_ALGOS
        for name in sorted(_names(package, _imports_of(path)))
    ]
    assert not offences, "\n".join(offences)


def test_nothing_imports_the_cli_but_main() -> None:
    """The CLI is the top: only ``python -m maxbench`` (``__main__.py``) imports it."""
    offences = [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in _sources(PACKAGE)
        if path not in CLI_IMPORTERS
        for name in sorted(_names("maxbench.cli", _imports_of(path)))
    ]
    assert not offences, "\n".join(offences)
    assert all(_names("maxbench.cli", _imports_of(path)) for path in CLI_IMPORTERS)


def test_the_reproductions_live_in_repro() -> None:
    """The entropy check's report, the multi-goal reproduction and their commands left algos."""
    moved = ("entropy_report", "multigoal", "multigoal_plots", "commands")
    assert all((PACKAGE / "repro" / f"{name}.py").is_file() for name in moved)
    left = [p for p in (PACKAGE / "algos").rglob("*.py") if p.stem in moved]
    assert not left, left
