"""``--jobs N``: cells trained at once in worker processes that share one device, or take the
``--devices`` in turn."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from bench import plugins
from bench.errors import ConfigError, FailFast
from bench.estimators import DEVICE_SHARE_ENV
from bench.runner.loop import CellTraining, train_cell
from bench.runner.options import RunOptions, speed_options, use_device
from bench.suites import Cell

_WORKER_OPTS: RunOptions | None = None
WATCH_INTERVAL_S = 0.5  # how often a worker checks that the parent process is still alive


def _in_process_plugins(cells: list[Cell]) -> list[str]:
    """Plugins a spawned worker would not see: those registered in this process only."""
    from importlib import metadata

    loadable = {m.rsplit(".", 1)[-1] for m in plugins.BUILTIN_PLUGINS}
    loadable |= {ep.name for ep in metadata.entry_points(group=plugins.ENTRY_POINT_GROUP)}
    regs = plugins.registries()
    used = set()
    for c in cells:
        used.add(regs.datasets.get(c.dataset).plugin)
        used.add(regs.models.get(c.model).plugin)
        used.add(regs.objectives.get(c.objective).plugin)
        used.update(regs.metrics.get(m).plugin for m in (c.metrics or regs.metrics.names()))
    pm = plugins.get_plugin_manager()
    for hook in ("on_run_start", "on_epoch_end", "on_run_end"):
        used.update(impl.plugin_name for impl in getattr(pm.hook, hook).get_hookimpls())
    return sorted(p for p in used if p and p not in loadable)


def _worker_threads(opts: RunOptions) -> int:
    """CPU threads per worker: the cores this process may use, shared among the jobs."""
    if opts.threads:
        return opts.threads
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // opts.jobs)


def _exit_with(parent_pid: int) -> None:
    """End this worker when the ``bench`` process that started it is gone (``kill -9`` gives
    it no chance to stop its workers)."""

    def watch() -> None:
        while True:
            time.sleep(WATCH_INTERVAL_S)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # the pid was reused by another user's process
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _worker_init(settings: dict[str, Any], queue: Any, started: Any) -> None:
    global _WORKER_OPTS
    _exit_with(settings.pop("parent_pid"))
    torch.set_num_threads(settings.pop("threads"))
    with started.get_lock():  # the n-th worker takes the n-th device, round the list
        n = started.value
        started.value += 1
    devices = settings.pop("devices")
    settings["device"] = torch.device(devices[n % len(devices)])
    # Evaluation sizes its memory by how many processes share the device.
    os.environ[DEVICE_SHARE_ENV] = str(settings.pop("device_share"))
    use_device(settings["device"])  # cuda:N: events and streams must not land on device 0
    _WORKER_OPTS = RunOptions(
        log=lambda msg: queue.put(("log", msg)),
        warn=lambda msg: queue.put(("warn", msg)),
        **settings,
    )
    if len(devices) > 1:
        _WORKER_OPTS.log(f"worker {n + 1} trains on {settings['device']}")


def _worker_train(cell: Cell, run_dir: str) -> dict[str, Any]:
    assert _WORKER_OPTS is not None, "worker was not initialised"
    return train_cell(cell, Path(run_dir), _WORKER_OPTS)


def _worker_context() -> Any:
    """A fork server that has imported torch, the runner and the plugin modules (but never
    touched CUDA) forks the workers: those imports happen once, not once per worker. Plain
    spawn where there is no fork server. A preload that fails to import is skipped."""
    import multiprocessing
    from importlib import metadata

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    blocked = plugins.disabled_plugins()
    modules = [
        ep.module
        for ep in metadata.entry_points(group=plugins.ENTRY_POINT_GROUP)
        if ep.name not in blocked
    ]
    # torch._dynamo: imported by every optimizer's constructor (seconds); sklearn: the core
    # depends on it (probe metric, digits); both are slow first imports otherwise paid per job.
    heavy = [
        "torch",
        "torch._dynamo",
        "sklearn.datasets",
        "sklearn.linear_model",
        "bench.runner.loop",
    ]
    ctx.set_forkserver_preload([*heavy, *dict.fromkeys(modules)])
    return ctx


def run_parallel(
    todo: list[tuple[int, Cell, Path]], opts: RunOptions
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Train cells in ``opts.jobs`` worker processes sharing ``opts.device`` (or taking the
    ``opts.devices`` in turn: with two GPUs and four jobs, two workers on each).

    Workers start from a fork server or by spawning, never by forking this process, so CUDA
    works in them; each worker loads plugins from entry points, loads its data once and keeps
    it for the cells it trains after. Each cell seeds itself and writes its own run folder, so
    results equal those of ``--jobs 1``.
    """
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    local = _in_process_plugins([c for _, c, _ in todo])
    if local:
        raise ConfigError(
            f"--jobs {opts.jobs}: plugin(s) {', '.join(local)} were registered in this process "
            "only, and worker processes load plugins from entry points; install them as a "
            "package or use --jobs 1"
        )
    ctx = _worker_context()
    queue = ctx.Queue()
    settings = {
        "results_dir": opts.results_dir,
        "devices": [str(d) for d in opts.devices or [opts.device]],
        "data_dir": opts.data_dir,
        "resume": opts.resume,
        **speed_options(opts),
        "keep_checkpoints": opts.keep_checkpoints,
        "threads": _worker_threads(opts),
        "parent_pid": os.getpid(),
    }
    n_workers = min(opts.jobs, len(todo))
    settings["device_share"] = math.ceil(n_workers / len(settings["devices"]))
    opts.log(
        f"training {len(todo)} cells in {n_workers} processes on {', '.join(settings['devices'])} "
        f"({settings['threads']} CPU threads each)"
    )

    def drain() -> None:
        while True:
            try:
                kind, msg = queue.get_nowait()
            except Exception:  # queue.Empty; the name differs between queue implementations
                return
            (opts.warn if kind == "warn" else opts.log)(msg)

    run_dirs = {i: run_dir for i, _, run_dir in todo}
    pool = ProcessPoolExecutor(
        n_workers,
        mp_context=ctx,
        initializer=_worker_init,
        initargs=(settings, queue, ctx.Value("i", 0)),
    )
    try:
        futures = {
            pool.submit(_worker_train, cell, str(run_dir)): (i, cell) for i, cell, run_dir in todo
        }
        for _, cell, _ in todo[:n_workers]:
            opts.on_cell("start", cell, None)  # roughly: the pool takes cells in order
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            drain()
            for fut in done:
                i, cell = futures[fut]
                try:
                    # A cell's own failure comes back as a record; a user error is raised here
                    # as with --jobs 1.
                    record = fut.result()
                except BrokenProcessPool as exc:
                    # A worker died outright (killed, out of memory, a crash in native code).
                    record = CellTraining(cell, run_dirs[i], opts).fail(exc)
                opts.on_cell("end", cell, record)
                yield i, record
                if opts.fail_fast and record["status"] == "failed":
                    raise FailFast(cell.run_id)
    except BaseException:
        # Fail as fast as --jobs 1 would: stop the workers we started instead of waiting for
        # their current cells (their checkpoints let --resume continue them).
        workers = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in workers:
            proc.terminate()
        raise
    finally:
        pool.shutdown(wait=True)
        drain()
