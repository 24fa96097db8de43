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
    train_batch_sizes,
)


def measure(
    fn: Callable[[], Any],
    examples: int,
    device: Any,
    warmup: int = 3,
    min_time: float = 0.5,
    repeats: int = 3,
    deadline: float | None = None,
) -> dict[str, Any]:
    """examples/s of ``fn`` (which handles ``examples`` examples per call).

    ``warmup`` untimed calls (compilation, allocator, autotuning), then ``repeats`` windows
    of at least ``min_time`` seconds each, synchronising the device before reading a clock.
    Reports the median window and the best. With a ``deadline`` (``time.perf_counter``) the
    warm-up stops early and fewer windows are timed (at least one) rather than run past it."""

    def left() -> float:
        return math.inf if deadline is None else deadline - time.perf_counter()

    first = _warm_up(fn, device, warmup, left)
    one = _seconds(fn, device)
    calls = max(1, math.ceil(min_time / max(one, 1e-6)))
    windows = repeats
    if deadline is not None:
        windows = min(repeats, int(left() // (calls * max(one, 1e-6))))
    rates = [examples / max(one, 1e-9)] if windows < 1 else []  # out of time: that call
    rates += [examples * calls / _seconds(fn, device, calls) for _ in range(windows)]
    if windows < 1:
        windows, calls = 1, 1
    return {
        "examples_per_s": statistics.median(rates),
        "best_examples_per_s": max(rates),
        "calls_per_window": calls,
        "windows": windows,
        "first_call_s": one if first is None else first,
        "call_s": examples / max(rates),
    }


def _seconds(fn: Callable[[], Any], device: Any, calls: int = 1) -> float:
    """Wall seconds of ``calls`` calls of ``fn``, read once the device has finished them."""
    from bench.runner import synchronize

    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    synchronize(device)
    return time.perf_counter() - t0


def _warm_up(
    fn: Callable[[], Any], device: Any, warmup: int, left: Callable[[], float]
) -> float | None:
    """Up to ``warmup`` untimed calls, fewer when ``left()`` seconds would not hold four more
    of the last; the first's seconds (None when there was none)."""
    first = None
    for _ in range(warmup):
        dt = _seconds(fn, device)
        first = dt if first is None else first
        if left() < 4 * dt:
            break
    return first


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
    w: Workload,
    mode: str,
    fn: Callable[[], Any],
    n: int,
    amp: bool,
    compiled: bool,
    s: Settings,
) -> dict[str, Any]:
    """One row of the report: ``fn`` (a batch of ``n``) timed under the settings' TF32, its
    FLOPs counted on the eager fp32 configuration of the same batch and reused for the rest."""
    from bench.runner import tf32_enabled

    with tf32_enabled(s.tf32):
        r = measure(fn, n, s.device, s.warmup, s.min_time, s.repeats, s.budget.deadline)
        key = (w.model, mode, n)
        # Counting runs one more call: only when it fits the time left.
        if key not in s.flops and not compiled and s.budget.left() > 2 * r["call_s"]:
            s.flops[key] = count_flops(fn)
    flops = s.flops.get(key)
    s.budget.learn_call(w.model, mode, n, r["call_s"])
    if compiled:
        s.budget.learn_compile(max(0.0, r["first_call_s"] - r["call_s"]))
    r.update(
        mode=mode,
        config=config_label(amp, compiled),
        amp=amp,
        compile=compiled,
        batch_size=n,
        flops_per_example=None if flops is None else flops / n,
    )
    r["tflops"] = tflops(r["flops_per_example"], r["examples_per_s"])
    s.log(f"{w.model} {mode} {r['config']} batch {n}: {r['examples_per_s']:.0f} examples/s")
    return r


def row_estimate(w: Workload, mode: str, n: int, compiled: bool, s: Settings) -> float:
    """Seconds a row is expected to take, from the calls timed so far (0 when none was)."""
    t = s.budget.call_estimate(w.model, mode, n) or 0.0
    cost = (s.warmup + 2) * t + s.repeats * max(s.min_time, t)
    return cost + (s.budget.compile_estimate(s.device.type) if compiled else 0.0)


def train_row(
    w: Workload, data: Any, s: Settings, amp: bool, compiled: bool, n: int
) -> dict[str, Any]:
    """Training examples/s of :class:`bench.runner.TrainStep` on a fixed batch of ``n``."""
    import torch

    from bench.runner import TrainStep, make_optimizer
    from bench.runner.compiled import fresh_compile_cache

    x = fixed_batch(data.train, n)
    cell = w.cell(default_objective())
    if compiled:
        fresh_compile_cache()  # each configuration compiles afresh: no shared recompile limit
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

    def fn() -> Any:
        return step(x, next(counter), gen)

    return _timed_row(w, "train", fn, len(x), amp, compiled, s)


def eval_row(
    w: Workload, data: Any, s: Settings, amp: bool, compiled: bool, n: int
) -> dict[str, Any]:
    """Evaluation examples/s of one posterior pass (encode, one z, log p(x|z)) on a fixed
    batch of ``n``, as the per-epoch validation runs it."""
    import torch

    from bench.contract import reparameterize
    from bench.runner import eval_log_likelihood
    from bench.runner.compiled import fresh_compile_cache

    x = fixed_batch(data.test, n)
    if compiled:
        fresh_compile_cache()
    model = new_model(w, data, s)
    model.eval()
    ll = eval_log_likelihood(model, s.device, amp, s.compile_mode if compiled else None)
    ll = ll or model.log_likelihood

    @torch.no_grad()
    def fn() -> Any:
        mu, logvar = model.encode(x)
        return ll(x, reparameterize(mu, logvar, 1))

    return _timed_row(w, "eval", fn, len(x), amp, compiled, s)


def eval_batch_size(w: Workload, s: Settings) -> int:
    return s.eval_batch or min(w.eval_batch_size, s.eval_batch_cap or w.eval_batch_size)


def data_pipeline_rate(w: Workload, data: Any, s: Settings) -> dict[str, Any]:
    """examples/s of the training data pipeline alone: a shuffled epoch of batches with
    binarization, as the runner draws them (on the data's device, no training)."""
    import torch

    from bench.data import without_labels
    from bench.runner import synchronize

    split = without_labels(data.train)
    n = train_batch_sizes(w, s)[0]
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
