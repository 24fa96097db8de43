"""Fixtures for the throughput benchmarks (``pytest tests/benchmarks --benchmark-only``).

Every registered model is benchmarked on the data set and parameters of its first ``smoke``
cell in the ``collapse`` suite (small models, no data files), with small fixed batches, so a
model another plugin registers is picked up without editing this folder. ``BENCH_DEVICE``
picks the device (default: CUDA when available); ``BENCH_THREADS`` sets torch's CPU threads.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch

from bench import plugins
from bench.errors import DataError
from bench.runner import RunOptions, resolve_device
from bench.throughput.workloads import Workload, find_workloads, load_workload

SCALE = "smoke"


def registered_models() -> list[str]:
    return plugins.registries().models.names()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "model_name" in metafunc.fixturenames:
        metafunc.parametrize("model_name", registered_models())


@pytest.fixture(scope="session")
def device() -> torch.device:
    if threads := os.environ.get("BENCH_THREADS"):
        torch.set_num_threads(int(threads))
    return resolve_device(os.environ.get("BENCH_DEVICE", "auto"))


@pytest.fixture(scope="session")
def run_options(device, tmp_path_factory) -> RunOptions:
    return RunOptions(results_dir=tmp_path_factory.mktemp("results"), device=device)


@pytest.fixture(scope="session")
def workloads() -> dict[str, Workload]:
    found, _ = find_workloads(SCALE)
    return {w.model: w for w in found}


@pytest.fixture
def workload(model_name, workloads, run_options) -> tuple[Workload, Any]:
    """The model's workload and its loaded data (skips when no data set is available)."""
    if model_name not in workloads:
        pytest.skip(f"{model_name}: no data set of its kind is registered")
    try:
        return load_workload(workloads[model_name], run_options)
    except DataError as exc:
        pytest.skip(str(exc))
