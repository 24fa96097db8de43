"""Several cells at once: a suite scale run with ``--jobs N`` against ``--jobs 1``."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.throughput.workloads import Settings


def suite_jobs(s: Settings, jobs: int) -> dict[str, Any]:
    """Wall time of one suite scale with ``--jobs 1`` and ``--jobs N`` (fresh folders)."""
    import torch

    from bench import plugins
    from bench.runner import RunOptions, run_suite

    suite = plugins.registries().suites.get(s.jobs_suite)
    out: dict[str, Any] = {"suite": s.jobs_suite, "scale": s.jobs_scale, "runs": {}}
    for j in (1, jobs):
        with tempfile.TemporaryDirectory(prefix=f"bench-jobs{j}-") as tmp:
            opts = RunOptions(results_dir=Path(tmp), device=s.device, data_dir=s.data_dir, jobs=j)
            t0 = time.perf_counter()
            _, records = run_suite(suite, s.jobs_scale, opts)
            wall = time.perf_counter() - t0
        examples = sum(r["train_examples_per_s"] * r["train_time_s"] for r in records)
        threads = torch.get_num_threads() if j == 1 else records[0]["accel"]["torch_threads"]
        out["runs"][str(j)] = {
            "jobs": j,
            "cells": len(records),
            "finished": sum(r["status"] == "finished" for r in records),
            "wall_s": wall,
            "cells_per_min": 60 * len(records) / wall,
            "train_examples_per_s": examples / wall,
            "torch_threads_per_process": threads,
        }
        s.log(
            f"suite {s.jobs_suite}/{s.jobs_scale} --jobs {j}: {wall:.1f}s for {len(records)} cells"
        )
    one, many = out["runs"]["1"], out["runs"][str(jobs)]
    out["speedup"] = one["wall_s"] / many["wall_s"]
    out["note"] = "wall time includes process start-up, data loading and evaluation"
    return out
