"""Timing: examples/s with warm-up and device synchronisation, FLOP counts, and the training,
evaluation and data-pipeline rates of one workload."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.throughput.workloads import (
    Settings,
    Workload,
    build_objective,
    config_label,
    default_objective,
    fixed_batch,
    new_model,
)


def measure(
    fn: Callable[[], Any],
    examples: int,
    device: Any,
    warmup: int = 3,
    min_time: float = 0.5,
    repeats: int = 3,
) -> dict[str, Any]:
    """examples/s of ``fn`` (which handles ``examples`` examples per call).

    ``warmup`` untimed calls (compilation, allocator, autotuning), then ``repeats`` windows
    of at least ``min_time`` seconds each, synchronising the device before reading a clock.
    Reports the median window and the best."""
    from bench.runner import synchronize

    for _ in range(warmup):
        fn()
    synchronize(device)
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    one = time.perf_counter() - t0
    calls = max(1, math.ceil(min_time / max(one, 1e-6)))
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        synchronize(device)
        rates.append(examples * calls / (time.perf_counter() - t0))
    return {
        "examples_per_s": statistics.median(rates),
        "best_examples_per_s": max(rates),
        "calls_per_window": calls,
        "windows": repeats,
    }


def count_flops(fn: Callable[[], Any]) -> int | None:
    """FLOPs of one call, as counted by ``torch.utils.flop_counter`` (matmuls, convolutions,
    attention; elementwise work and ops without a formula are not counted)."""
    try:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            fn()
        return int(counter.get_total_flops())
    except Exception:  # a model with ops the counter cannot trace: report no count
        return None


def tflops(flops_per_example: float | None, rate: float) -> float | None:
    if not flops_per_example:
        return None
    return flops_per_example * rate / 1e12


def _timed_row(
    mode: str,
    fn: Callable[[], Any],
    n: int,
    flops: int | None,
    amp: bool,
    compiled: bool,
    s: Settings,
) -> dict[str, Any]:
    """One row of the report: ``fn`` (a batch of ``n``) timed under the settings' TF32."""
    from bench.runner import tf32_enabled

    with tf32_enabled(s.tf32):
        r = measure(fn, n, s.device, s.warmup, s.min_time, s.repeats)
    r.update(
        mode=mode,
        config=config_label(amp, compiled),
        amp=amp,
        compile=compiled,
        batch_size=n,
        flops_per_example=None if flops is None else flops / n,
    )
    r["tflops"] = tflops(r["flops_per_example"], r["examples_per_s"])
    return r


def train_rates(w: Workload, data: Any, s: Settings) -> list[dict[str, Any]]:
    """Training examples/s of :class:`bench.runner.TrainStep` on a fixed batch, per config."""
    import torch

    from bench.runner import TrainStep, make_optimizer

    n = s.train_batch or w.batch_size
    x = fixed_batch(data.train, n)
    n = len(x)
    cell = w.cell(default_objective())
    rows = []
    flops = None
    for amp, compiled in s.configs:
        model = new_model(w, data, s)
        model.train()
        step = TrainStep(
            model,
            make_optimizer(cell, model),
            build_objective(cell, 100),
            w.grad_clip,
            s.device,
            amp=amp,
            compile=s.compile_mode if compiled else None,
            channels_last=s.channels_last,
        )
        gen = torch.Generator(device=s.device).manual_seed(0)
        counter = iter(range(10**9))

        def fn(step=step, gen=gen, counter=counter) -> Any:
            return step(x, next(counter), gen)

        if flops is None and not compiled:
            flops = count_flops(fn)
        rows.append(_timed_row("train", fn, n, flops, amp, compiled, s))
        s.log(f"{w.model} train {rows[-1]['config']}: {rows[-1]['examples_per_s']:.0f} examples/s")
    return rows


def eval_rates(w: Workload, data: Any, s: Settings) -> list[dict[str, Any]]:
    """Evaluation examples/s of one posterior pass (encode, one z, log p(x|z)) on a fixed
    batch, as the per-epoch validation runs it, per config."""
    import torch

    from bench.contract import reparameterize
    from bench.runner import eval_log_likelihood

    n = s.eval_batch or min(w.eval_batch_size, s.eval_batch_cap or w.eval_batch_size)
    x = fixed_batch(data.test, n)
    n = len(x)
    rows = []
    flops = None
    for amp, compiled in s.configs:
        model = new_model(w, data, s)
        model.eval()
        ll = eval_log_likelihood(model, s.device, amp, s.compile_mode if compiled else None)
        ll = ll or model.log_likelihood

        @torch.no_grad()
        def fn(model=model, ll=ll) -> Any:
            mu, logvar = model.encode(x)
            return ll(x, reparameterize(mu, logvar, 1))

        if flops is None and not compiled:
            flops = count_flops(fn)
        rows.append(_timed_row("eval", fn, n, flops, amp, compiled, s))
        s.log(f"{w.model} eval {rows[-1]['config']}: {rows[-1]['examples_per_s']:.0f} examples/s")
    return rows


def data_pipeline_rate(w: Workload, data: Any, s: Settings) -> dict[str, Any]:
    """examples/s of the training data pipeline alone: a shuffled epoch of batches with
    binarization, as the runner draws them (on the data's device, no training)."""
    import torch

    from bench.data import without_labels
    from bench.runner import synchronize

    split = without_labels(data.train)
    n = s.train_batch or w.batch_size
    gen = torch.Generator(device=s.device).manual_seed(0)

    def epoch() -> int:
        seen = 0
        for x, _ in split.batches(n, shuffle=True, generator=gen):
            seen += len(x)
        return seen

    epoch()  # warm-up
    synchronize(s.device)
    t0 = time.perf_counter()
    seen = epoch()
    synchronize(s.device)
    dt = time.perf_counter() - t0
    return {
        "examples_per_s": seen / max(dt, 1e-9),
        "examples": seen,
        "batch_size": n,
        "split_type": type(split).__name__,
    }
