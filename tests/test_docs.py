"""The documentation: the site builds with warnings as errors, its reference covers every public
name, the format pages list every key the code accepts, and their Python examples run."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.leaderboard import DEFAULT_ORDER, RECORD_COLUMNS, column
from bench.suites import Budget, EvalSettings, Group
from bench.tune.space import BUDGET_PARAMS, RANGE_KEYS, SECTIONS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)
# Modules with a reference page (docs/reference/<last part>.md), each rendered whole.
REFERENCE = (
    "bench.specs",
    "bench.contract",
    "bench.data",
    "bench.evaluation",
    "bench.testing",
    "bench.methods",
    "bench.blocks",
    "bench.likelihoods",
    "bench.objectives",
    "bench.suites",
    "bench.estimators",
    "bench.hookspecs",
    "bench.errors",
    "bench.records",
    "bench.listener",
    "bench.leaderboard",
)


def public_names(module_name: str) -> list[str]:
    """``__all__``, or the classes and functions the module defines without a leading _."""
    module = importlib.import_module(module_name)
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and obj.__module__ == module_name
    ]


@pytest.mark.slow
def test_site_builds_strict_and_its_reference_covers_every_public_name(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    missing = []
    for module_name in REFERENCE:
        page = (site / "reference" / module_name.split(".")[-1] / "index.html").read_text()
        missing += [
            f"{module_name}.{name}"
            for name in public_names(module_name)
            if f'id="{module_name}.{name}"' not in page
        ]
    assert not missing, f"public names missing from the reference: {missing}"
    import bench
    from bench import plugins

    top = (DOCS / "reference" / "bench.md").read_text()
    assert not [n for n in bench.__all__ if f"`bench.{n}`" not in top]
    # The registered-items page is generated: every first-party model with its parameters.
    registry = (site / "registry" / "index.html").read_text()
    for spec in plugins.registries().models:
        if spec.distribution.startswith("collapse-bench"):
            assert f'<h3 id="{spec.name}">' in registry
            assert all(f"<code>{p}</code>" in registry for p in spec.params)


def test_every_module_with_a_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    for module_name in REFERENCE:
        page = DOCS / "reference" / f"{module_name.split('.')[-1]}.md"
        assert f"::: {module_name}" in page.read_text()
        assert f"reference/{page.name}" in nav


def test_suites_page_lists_every_key():
    doc = (DOCS / "suites.md").read_text()
    keys = ["name", "description", "columns", "group"]
    for cls in (Group, Budget, EvalSettings):
        keys += [f.name for f in dataclasses.fields(cls)]
    keys = [k for k in keys if k not in {"plugin", "distribution"}]  # filled in, never written
    assert not [k for k in keys if f"| `{k}` |" not in doc]


def test_tuning_page_lists_every_space_key():
    doc = (DOCS / "tuning.md").read_text()
    keys = [f"[{s}]" for s in SECTIONS] + sorted(RANGE_KEYS) + sorted(BUDGET_PARAMS)
    assert not [k for k in keys if f"`{k}`" not in doc]


def test_leaderboards_page_lists_the_default_columns_in_order(fresh_plugins):
    doc = (DOCS / "leaderboards.md").read_text()
    rows = re.findall(r"^\| ([^|]+) \| `(\w+)` \| (.) ", doc, re.M)
    expected = [column(name) for name in (*DEFAULT_ORDER, *RECORD_COLUMNS)]
    assert [(t.strip(), m, a) for t, m, a in rows] == [(c.title, c.name, c.arrow) for c in expected]


@pytest.mark.parametrize("page", ["plugins.md", "testing.md"])
def test_python_examples_run(page):
    namespace: dict = {}
    blocks = [body for lang, body in FENCE.findall((DOCS / page).read_text()) if lang == "python"]
    assert blocks
    for body in blocks:
        exec(compile(body, f"{page} example", "exec"), namespace)
