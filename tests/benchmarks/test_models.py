"""A training step, an evaluation step and IW-NLL at K=500, on fixed batches, per model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from bench.contract import reparameterize
from bench.estimators import iw_log_likelihood
from bench.runner import TrainStep, build_model, make_optimizer, seed_everything, synchronize
from bench.throughput.workloads import (
    Workload,
    build_objective,
    default_objective,
    fixed_batch,
)

TRAIN_BATCH = 32
EVAL_BATCH = 64
IW_BATCH = 4
IW_SAMPLES = 500


def time_calls(
    benchmark: Any,
    fn: Callable[[], None],
    w: Workload,
    x: Any,
    device: torch.device,
    rounds: int | None = None,
    **info: Any,
) -> None:
    """Warm ``fn`` up (lazy initialisation, allocator), time it (``rounds`` rounds, or as many
    as pytest-benchmark likes), and put examples/s (``x`` per call, from the median round) and
    what ran into the saved JSON's ``extra_info``."""
    fn()
    if rounds is None:
        benchmark(fn)
    else:
        benchmark.pedantic(fn, rounds=rounds, iterations=1)
    examples = len(x)
    benchmark.extra_info["examples_per_call"] = examples
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None:
        benchmark.extra_info["examples_per_s"] = examples / stats.stats.median
        benchmark.extra_info["examples_per_s_mean"] = examples / stats.stats.mean
    benchmark.extra_info.update(model=w.model, dataset=w.dataset, device=str(device), **info)


def _model(w, data, device):
    seed_everything(0)
    return build_model(w.cell(default_objective()), data, device)


@pytest.mark.benchmark(group="train-step")
def test_train_step(benchmark, workload, device):
    w, data = workload
    x = fixed_batch(data.train, TRAIN_BATCH)
    model = _model(w, data, device).train()
    cell = w.cell(default_objective())
    step = TrainStep(
        model, make_optimizer(cell, model), build_objective(cell, 100), w.grad_clip, device
    )
    gen = torch.Generator(device=device).manual_seed(0)

    def fn() -> None:
        step(x, 0, gen)
        synchronize(device)

    time_calls(benchmark, fn, w, x, device)


@pytest.mark.benchmark(group="eval-step")
def test_eval_step(benchmark, workload, device):
    """One posterior pass over a batch: encode, one z, log p(x|z) (per-epoch validation)."""
    w, data = workload
    x = fixed_batch(data.test, EVAL_BATCH)
    model = _model(w, data, device).eval()

    @torch.no_grad()
    def fn() -> None:
        mu, logvar = model.encode(x)
        model.log_likelihood(x, reparameterize(mu, logvar, 1))
        synchronize(device)

    time_calls(benchmark, fn, w, x, device)


@pytest.mark.benchmark(group="iw-nll-k500")
def test_iw_nll_k500(benchmark, workload, device):
    w, data = workload
    x = fixed_batch(data.test, IW_BATCH)
    model = _model(w, data, device).eval()

    def fn() -> None:
        iw_log_likelihood(model, x, IW_SAMPLES)
        synchronize(device)

    time_calls(benchmark, fn, w, x, device, rounds=5, iw_samples=IW_SAMPLES)
