"""The whole report: the machine, every part asked for over every workload, the headline
lines the command prints, and the JSON file."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from bench.throughput.iw import iw_speedup
from bench.throughput.jobs import suite_jobs
from bench.throughput.measure import (
    data_pipeline_rate,
    eval_batch_size,
    eval_row,
    row_estimate,
    train_row,
)
from bench.throughput.reference import harness_overhead, overhead_estimate
from bench.throughput.workloads import (
    Settings,
    Workload,
    config_label,
    find_workloads,
    load_workload,
    train_batch_sizes,
)

PARTS = ("train", "eval", "data", "iw", "overhead", "jobs")


def machine_description(device: Any) -> dict[str, Any]:
    import os
    import platform

    import torch

    from bench.records import device_name, git_commit, machine_info, package_versions

    info = machine_info()
    info.pop("hostname", None)  # not useful in a committed file
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    out = {
        "device": str(device),
        "device_name": device_name(device),
        "cpu": cpu,
        "usable_cores": cores,
        "torch_threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "packages": package_versions(),
        "git_commit": git_commit(),
        **info,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        out["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        out["cuda"] = torch.version.cuda
    return out


def run_all(
    s: Settings, models: list[str] | None, scale: str, parts: set[str], overhead_model: str | None
) -> dict[str, Any]:
    """Every part in ``parts`` for every model's workload (``models``: all registered), in the
    order of :func:`plan`; under a time budget, parts that would not fit are left out."""
    from bench.runner import RunOptions

    opts = RunOptions(
        results_dir=Path(tempfile.gettempdir()),
        device=s.device,
        data_dir=s.data_dir,
        channels_last=s.channels_last,
    )
    workloads, skipped = find_workloads(scale, models)
    report = _header(s, scale, parts, skipped)
    loaded = _load_all(workloads, opts, s, report["skipped"])
    report["models"] = [_model_entry(w) for w, _ in loaded]
    for part, estimate, run in plan(loaded, s, parts, report, overhead_model, opts):
        if s.budget.allows(part, estimate()):
            run()
    report["budget"] = s.budget.summary()
    return report


Part = tuple[str, Callable[[], float], Callable[[], None]]

DATA_PIPELINE_GUESS_S = 5.0
# Seconds a smoke-sized cell takes in a --jobs comparison (start-up, training, evaluation;
# 25 s measured on the 2-core CPU).
JOBS_CELL_GUESS_S = {"cuda": 8.0, "cpu": 25.0}


def plan(
    loaded: list[tuple[Workload, Any]],
    s: Settings,
    parts: set[str],
    report: dict[str, Any],
    overhead_model: str | None,
    opts: Any,
) -> Iterator[Part]:
    """The parts of a run, most informative first: each model's eager fp32 training rate, its
    other configurations at the workload's batch, the runner against the plain loop, IW-NLL,
    the other batch sizes, ``--jobs``, evaluation rates and the data pipeline last. Each is
    ``(name, estimate of its seconds, run)``; estimates are taken when the part is reached."""
    steps = _PlanSteps(loaded, s, report, opts)
    if "train" in parts:
        yield from steps.training_at_workload_batch()
    if "overhead" in parts and loaded:
        yield steps.harness_overhead(overhead_model)
    if "iw" in parts:
        yield from steps.iw_nll()
    if "train" in parts:
        yield from steps.training_at_other_batches()
    if "jobs" in parts and s.jobs > 1:
        yield steps.jobs()
    if "eval" in parts:
        yield from steps.evaluation()
    if "data" in parts:
        yield from steps.data_pipelines()


class _PlanSteps:
    """The parts of each step of :func:`plan`. A step's parts are made when the plan reaches
    it, after the parts before it have run: the overhead's workload is the fastest measured,
    and a data pipeline compares with the training rate measured first."""

    def __init__(
        self, loaded: list[tuple[Workload, Any]], s: Settings, report: dict[str, Any], opts: Any
    ) -> None:
        self.loaded, self.s, self.report, self.opts = loaded, s, report, opts
        self.entries = {e["model"]: e for e in report["models"]}
        self.batches = {w.model: train_batch_sizes(w, s) for w, _ in loaded}

    def measured(
        self, kind: str, w: Workload, data: Any, amp: bool, compiled: bool, n: int
    ) -> Part:
        """A train or eval row at batch ``n``; train rows name their batch (it varies)."""
        s = self.s
        row = partial(train_row if kind == "train" else eval_row, w, data, s, amp, compiled, n)
        batch = f" batch {n}" if kind == "train" else ""
        return (
            f"{w.model} {kind} {config_label(amp, compiled)}{batch}",
            partial(row_estimate, w, kind, n, compiled, s),
            partial(_append, self.entries[w.model]["results"], row),
        )

    def training_at_workload_batch(self) -> Iterator[Part]:
        """Every model's first configuration (eager fp32), then every model's others, all at
        the workload's own batch size."""
        for w, data in self.loaded:
            yield self.measured("train", w, data, *self.s.configs[0], self.batches[w.model][0])
        for w, data in self.loaded:
            for amp, compiled in self.s.configs[1:]:
                yield self.measured("train", w, data, amp, compiled, self.batches[w.model][0])

    def harness_overhead(self, overhead_model: str | None) -> Part:
        """The runner against the plain loop, on ``overhead_model`` or the fastest model."""
        s, report = self.s, self.report
        w, data = _overhead_workload(self.loaded, report["models"], overhead_model)

        def overhead() -> None:
            # Default speed settings for both sides: the overhead is the harness's, not a
            # layout's.
            opts = replace(self.opts, channels_last=False)
            report["harness_overhead"] = harness_overhead(w, data, s, opts)

        return "harness overhead", lambda: overhead_estimate(w, data, s), overhead

    def iw_nll(self) -> Iterator[Part]:
        """Each model's batched IW-NLL against the per-example reference."""
        s, report = self.s, self.report
        for w, data in self.loaded:
            n_configs = sum(1 for _, c in s.configs if s.iw_compile or not c)

            def iw(w: Workload = w, data: Any = data) -> None:
                result = iw_speedup(w, data, s)
                if result is not None:
                    report["iw_nll"].append(result)

            # At least a few seconds for each of the pilot, the reference and each config.
            yield f"{w.model} IW-NLL", lambda n=n_configs: 3.0 * (3 + n), iw

    def training_at_other_batches(self) -> Iterator[Part]:
        """Every configuration at each model's other batch sizes."""
        for w, data in self.loaded:
            for n in self.batches[w.model][1:]:
                for amp, compiled in self.s.configs:
                    yield self.measured("train", w, data, amp, compiled, n)

    def jobs(self) -> Part:
        """A suite run ``--jobs`` at a time against one at a time."""
        s, report = self.s, self.report

        def jobs() -> None:
            report["jobs"] = suite_jobs(s, s.jobs)

        return f"--jobs {s.jobs} vs --jobs 1", lambda: jobs_estimate(s), jobs

    def evaluation(self) -> Iterator[Part]:
        """Every configuration's evaluation rate, at each model's evaluation batch."""
        for w, data in self.loaded:
            n = eval_batch_size(w, self.s)
            for amp, compiled in self.s.configs:
                yield self.measured("eval", w, data, amp, compiled, n)

    def data_pipelines(self) -> Iterator[Part]:
        """Each model's data pipeline, with its headroom over the fp32 training rate."""
        for w, data in self.loaded:

            def pipeline(w: Workload = w, data: Any = data) -> None:
                entry = self.entries[w.model]
                pipe = data_pipeline_rate(w, data, self.s)
                train_fp32 = _fp32_train_rates([entry]).get(w.model)
                if train_fp32:
                    pipe["headroom_vs_training"] = pipe["examples_per_s"] / train_fp32
                entry["data_pipeline"] = pipe

            yield f"{w.model} data pipeline", lambda: DATA_PIPELINE_GUESS_S, pipeline


def jobs_estimate(s: Settings) -> float:
    """Seconds of the ``--jobs`` part: the suite scale once alone, once ``s.jobs`` at a time."""
    from bench import plugins
    from bench.runner import select_cells

    suites = plugins.registries().suites
    if s.jobs_suite not in suites:
        return 0.0  # the part itself reports the missing suite
    _, cells = select_cells(suites.get(s.jobs_suite), s.jobs_scale)
    per_cell = JOBS_CELL_GUESS_S.get(s.device.type, JOBS_CELL_GUESS_S["cpu"])
    return len(cells) * per_cell * (1 + 1 / s.jobs)


def _append(rows: list[dict[str, Any]], row: Callable[[], dict[str, Any]]) -> None:
    rows.append(row())


def _header(
    s: Settings, scale: str, parts: set[str], skipped: list[dict[str, str]]
) -> dict[str, Any]:
    """The report before anything is measured: when, where, with which settings."""
    return {
        "schema_version": 1,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_description(s.device),
        "settings": {
            "scale": scale,
            "configs": [config_label(a, c) for a, c in s.configs],
            "compile_mode": s.compile_mode,
            "channels_last": s.channels_last,
            "tf32": s.tf32,
            "warmup_calls": s.warmup,
            "min_window_s": s.min_time,
            "windows": s.repeats,
            "iw_samples": s.iw_samples,
            "parts": sorted(parts),
            "budget_s": s.budget.seconds,
            "synthetic_data": s.synthetic_data,
            **s.extra,
        },
        "models": [],
        "iw_nll": [],
        "skipped": skipped,
    }


def _load_all(
    workloads: list[Workload], opts: Any, s: Settings, skipped: list[dict[str, str]]
) -> list[tuple[Workload, Any]]:
    """Each workload with its data. A missing data set is an error, unless stand-ins were
    asked for (``--synthetic-data``); then a workload none of whose candidates loads goes to
    ``skipped``."""
    from bench.errors import DataError

    loaded: list[tuple[Workload, Any]] = []
    for w in workloads:
        try:
            used, data = load_workload(w, opts, stand_ins=s.synthetic_data)
        except DataError as exc:
            if not s.synthetic_data:
                raise
            skipped.append({"model": w.model, "reason": str(exc)})
            s.log(f"{w.model}: skipped ({exc})")
            continue
        if used.dataset != w.dataset:
            s.log(f"{w.model}: {w.dataset} is missing; measured on {used.dataset} instead")
        loaded.append((used, data))
    return loaded


def _model_entry(w: Workload) -> dict[str, Any]:
    """A workload's entry; the train and eval rows and the data pipeline are added to it."""
    return {
        "model": w.model,
        "dataset": w.dataset,
        "kind": w.kind,
        "source": w.source,
        "model_params": w.model_params,
        "results": [],
    }


def _fp32_train_rates(entries: list[dict[str, Any]]) -> dict[str, float]:
    """Each model's first fp32 (eager) training rate."""
    rates: dict[str, float] = {}
    for e in entries:
        for r in e["results"]:
            if r["mode"] == "train" and r["config"] == "fp32":
                rates.setdefault(e["model"], r["examples_per_s"])
    return rates


def _overhead_workload(
    loaded: list[tuple[Workload, Any]], entries: list[dict[str, Any]], model: str | None
) -> tuple[Workload, Any]:
    """``model``'s workload if it was loaded, else the fastest to train (the fastest step
    exposes per-step overhead most, and keeps this part short)."""
    for w, data in loaded:
        if w.model == model:
            return w, data
    rate = _fp32_train_rates(entries)
    return max(loaded, key=lambda wd: rate.get(wd[0].model, 0.0))


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The headline figures, printed by the command."""
    lines = [f"device: {report['machine']['device_name']}"]
    for entry in report["models"]:
        lines += _model_lines(entry)
    for iw in report["iw_nll"]:
        best = max(iw["configs"], key=lambda r: r["speedup_vs_reference"])
        lines.append(
            f"IW-NLL K={iw['iw_samples']} {iw['model']}: batched fp32 "
            f"{iw['speedup_fp32']:.2f}x the per-example reference; best "
            f"{best['speedup_vs_reference']:.2f}x ({best['config']})"
        )
    if "harness_overhead" in report:
        lines += _overhead_lines(report["harness_overhead"])
    budget = report.get("budget") or {}
    if budget.get("seconds") is not None:
        left_out = [p["part"] for p in budget["left_out"]]
        lines.append(
            f"budget {budget['seconds']:.0f}s: spent {budget['spent_s']:.0f}s"
            + (f"; left out: {', '.join(left_out)}" if left_out else "; nothing left out")
        )
    if "jobs" in report:
        j = report["jobs"]
        n = max(j["runs"], key=int)
        lines.append(
            f"suite {j['suite']}/{j['scale']}: --jobs {n} is {j['speedup']:.2f}x "
            f"--jobs 1 ({j['runs']['1']['wall_s']:.1f}s -> {j['runs'][n]['wall_s']:.1f}s)"
        )
    return lines


def _model_lines(entry: dict[str, Any]) -> list[str]:
    lines = []
    for r in entry["results"]:
        tf = f", {r['tflops']:.3f} TFLOP/s" if r.get("tflops") else ""
        lines.append(
            f"{entry['model']:<20} {r['mode']:<5} {r['config']:<13} "
            f"{r['examples_per_s']:>10.1f} examples/s (batch {r['batch_size']}){tf}"
        )
    if "data_pipeline" in entry:
        p = entry["data_pipeline"]
        head = p.get("headroom_vs_training")
        lines.append(
            f"{entry['model']:<20} data pipeline {p['examples_per_s']:.0f} examples/s"
            + (f" ({head:.0f}x the fp32 training rate)" if head else "")
        )
    return lines


def _overhead_lines(h: dict[str, Any]) -> list[str]:
    lines = [
        f"harness overhead ({h['model']}, {h['steps']} steps x {h['repeats']}): "
        f"runner / plain loop = {h['ratio']:.3f} examples/s, best of each (target >= "
        f"{h['target']}); median of pairs {h['median_pair_ratio']:.3f}, by CPU time "
        f"{h['cpu_time_ratio']:.3f}"
    ]
    ops = h.get("ops_per_step")
    if ops:
        r, p = ops["runner"], ops["plain"]
        lines.append(
            f"ops per training step: runner {r['non_view_ops']:.0f} "
            f"(+{r['ops'] - r['non_view_ops']:.0f} views), plain loop "
            f"{p['non_view_ops']:.0f} (+{p['ops'] - p['non_view_ops']:.0f} views)"
        )
    return lines


def write_report(report: dict[str, Any], path: Path) -> None:
    from bench.records import atomic_write_text

    atomic_write_text(path, json.dumps(report, indent=2, sort_keys=False, default=str) + "\n")
