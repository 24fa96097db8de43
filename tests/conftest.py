from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import plugins

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


@pytest.fixture
def fresh_plugins():
    """Plugin state is process-global: start and end the test with freshly loaded plugins."""
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in an empty folder so results/ and leaderboards/ land in tmp."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def real_data_dir() -> Path | None:
    """The data folder CI points at, if it holds real files."""
    candidate = Path(os.environ.get("BENCH_DATA_DIR", SHARED_DATA))
    return candidate if (candidate / "mnist").is_dir() else None


@pytest.fixture(autouse=True)
def _keep_data_dir_env():
    """`bench run --data-dir` exports BENCH_DATA_DIR for plugins; in-process CLI tests must not
    leak it into later tests."""
    before = os.environ.get("BENCH_DATA_DIR")
    yield
    if before is None:
        os.environ.pop("BENCH_DATA_DIR", None)
    else:
        os.environ["BENCH_DATA_DIR"] = before
