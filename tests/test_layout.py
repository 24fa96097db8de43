"""The core's shape: nothing under ``bench/`` but the CLI imports the CLI, and no module grows
past one reading (600 lines)."""

from __future__ import annotations

import ast
from pathlib import Path

import bench

ROOT = Path(bench.__file__).parent
MAX_LINES = 600


def modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts)


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` statement in ``path`` names, at any depth (lazy imports too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_only_the_cli_imports_the_cli():
    offenders = [
        str(p.relative_to(ROOT.parent))
        for p in modules()
        if p != ROOT / "cli.py" and "bench.cli" in imported_modules(p)
    ]
    assert offenders == []


def test_the_import_scan_sees_lazy_and_from_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from bench import cli\n\nimport bench.cli as c\n")
    assert "bench.cli" in imported_modules(sample)


def test_no_core_module_is_over_600_lines():
    long = {
        str(p.relative_to(ROOT.parent)): n
        for p in modules()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
