"""Fixtures every test module may use. Shared functions and constants are in tests/helpers."""

from __future__ import annotations

import os

import pytest

from bench import plugins


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


@pytest.fixture
def one_thread():
    """Torch on one thread: the test machine's two cores are shared by several jobs, and
    torch's spinning OpenMP pool only slows things down under contention. Modules that train
    use it for every test (``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    import torch  # here, not at the top: collecting the tests need not load torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
