"""Harness overhead (runner vs a plain loop) and IW-NLL batched vs per-example reference.

Each is one timed round of the whole comparison; the ratio itself goes to ``extra_info``.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.throughput.iw import iw_speedup
from bench.throughput.reference import harness_overhead
from bench.throughput.workloads import Settings, load_workload

OVERHEAD_MODEL = "mlp-skip-vae"


def fp32_eager(device: Any, **kw: Any) -> Settings:
    """Settings that time the one configuration these comparisons use: fp32, not compiled."""
    return Settings(device=device, configs=[(False, False)], **kw)


@pytest.fixture(scope="module")
def mlp_workload(workloads, run_options):
    if OVERHEAD_MODEL not in workloads:
        pytest.skip(f"{OVERHEAD_MODEL} is not registered")
    return load_workload(workloads[OVERHEAD_MODEL], run_options)


@pytest.mark.benchmark(group="harness")
def test_runner_vs_plain_loop(benchmark, mlp_workload, device, run_options):
    w, data = mlp_workload
    s = fp32_eager(device, overhead_epochs=2, overhead_examples=1200, overhead_repeats=3)
    result = benchmark.pedantic(
        harness_overhead, args=(w, data, s, run_options), rounds=1, iterations=1
    )
    benchmark.extra_info.update(
        ratio=result["ratio"],
        median_pair_ratio=result["median_pair_ratio"],
        cpu_time_ratio=result["cpu_time_ratio"],
        ops_per_step=result["ops_per_step"],
        pair_ratios=result["pair_ratios"],
        steps=result["steps"],
        runner_examples_per_s=result["runner_examples_per_s"],
        plain_examples_per_s=result["plain_examples_per_s"],
        model=w.model,
        device=str(device),
    )


@pytest.mark.benchmark(group="harness")
def test_iw_nll_batched_vs_per_example(benchmark, mlp_workload, device):
    w, data = mlp_workload
    s = fp32_eager(
        device, iw_samples=500, iw_examples=100, iw_ref_examples=20, iw_budget_s=10.0, min_time=0.2
    )
    result = benchmark.pedantic(iw_speedup, args=(w, data, s), rounds=1, iterations=1)
    benchmark.extra_info.update(
        speedup=result["speedup_fp32"],
        reference_examples=result["reference_examples"],
        batched_examples=result["batched_examples"],
        model=w.model,
        device=str(device),
    )
