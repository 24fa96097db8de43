"""The data folder as a newcomer meets it: one message naming every data set that is missing,
with the flag, the variable and the page that says where to get the files; tests that follow
BENCH_DATA_DIR and BENCH_REFERENCE_DIR; the docs page; what git ignores."""

from __future__ import annotations

import importlib
from pathlib import Path

from bench.data import DATA_DOCS, data_hint, missing_data_message
from tests.helpers.cli import assert_user_error

ROOT = Path(__file__).resolve().parents[1]


def test_one_message_names_every_missing_data_set(capsys, fresh_plugins, workdir, monkeypatch):
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    empty = workdir / "empty"
    empty.mkdir()
    assert_user_error(
        capsys,
        ["run", "--suite", "collapse", "--scale", "quick", "--data-dir", str(empty)],
        f"2 data sets cannot be read from {empty}",
        "mnist: MNIST not found",
        "ptb: PTB files not found",
        "--data-dir or BENCH_DATA_DIR",
        DATA_DOCS,
    )


def test_the_hint_is_said_once():
    hint = data_hint()
    text = missing_data_message({"a": f"A missing; {hint}", "b": "B damaged"}, Path("/d"))
    assert text.count(hint) == 1 and text.endswith(hint)
    assert "a: A missing | b: B damaged" in text


def test_the_data_page_covers_every_first_party_data_set_and_is_in_the_nav(fresh_plugins):
    from bench import plugins

    page = (ROOT / DATA_DOCS).read_text()
    for spec in plugins.registries().datasets:
        if spec.distribution.startswith("collapse-bench"):
            assert f"`{spec.name}`" in page
    assert "BENCH_DATA_DIR" in page and "BENCH_REFERENCE_DIR" in page and "SHA256SUMS" in page
    assert "data.md" in (ROOT / "mkdocs.yml").read_text()


def test_tests_find_data_and_reference_files_through_the_environment(monkeypatch, tmp_path):
    import tests.helpers.data as where

    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BENCH_REFERENCE_DIR", str(tmp_path / "ref"))
    try:
        importlib.reload(where)
        data, reference = tmp_path / "data", tmp_path / "ref"
        assert (data, reference) == (where.DATA_ROOT, where.REFERENCE)
    finally:
        monkeypatch.undo()
        importlib.reload(where)


def test_the_built_site_is_ignored():
    assert "/site/" in (ROOT / ".gitignore").read_text().splitlines()
