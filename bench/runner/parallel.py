"""``--jobs N``: cells trained at once in worker processes that share one device, or take the
``--devices`` in turn."""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import torch

from bench import plugins
from bench.errors import ConfigError
from bench.estimators import DEVICE_SHARE_ENV
from bench.records import RunRecord
from bench.runner.cell import DataCache
from bench.runner.executors import CellTask, Outcome
from bench.runner.loop import train_cell
from bench.runner.options import Messages, Placement, RunOptions, use_device
from bench.signals import ignore_stop_signals
from bench.suites import Cell

_WORKER_OPTS: RunOptions | None = None
_WORKER_CACHE: DataCache = {}  # a worker keeps its data sets for the cells it trains next
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
    for hook in ("on_run_start", "on_epoch_end", "on_run_end", "run_listeners"):
        used.update(impl.plugin_name for impl in getattr(pm.hook, hook).get_hookimpls())
    return sorted(p for p in used if p and p not in loadable)


def require_loadable(cells: list[Cell], where: str, hint: str) -> None:
    """Refuse to send cells to other processes that would not find their plugins there."""
    local = _in_process_plugins(cells)
    if local:
        raise ConfigError(
            f"{where}: plugin(s) {', '.join(local)} were registered in this process only, and "
            f"{hint}"
        )


def worker_threads(opts: RunOptions) -> int:
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
    # Ctrl-C and a scheduler's SIGTERM reach the whole process group: the parent handles
    # them and stops its workers (ProcessPool.stop).
    ignore_stop_signals()
    torch.set_num_threads(settings.pop("threads"))
    with started.get_lock():  # the n-th worker takes the n-th device, round the list
        n = started.value
        started.value += 1
    devices = settings.pop("devices")
    device = torch.device(devices[n % len(devices)])
    # Evaluation sizes its memory by how many processes share the device.
    os.environ[DEVICE_SHARE_ENV] = str(settings.pop("device_share"))
    use_device(device)  # cuda:N: events and streams must not land on device 0
    _WORKER_OPTS = RunOptions(
        settings["results_dir"],
        data_dir=settings.get("data_dir"),
        placement=Placement(device),
        speed=settings.get("speed"),
        policy=settings.get("policy"),
        messages=Messages(
            log=lambda msg: queue.put(("log", msg)), warn=lambda msg: queue.put(("warn", msg))
        ),
    )
    if len(devices) > 1:
        _WORKER_OPTS.log(f"worker {n + 1} trains on {device}")


def _worker_train(cell: Cell, run_dir: str) -> RunRecord:
    assert _WORKER_OPTS is not None, "worker was not initialised"
    return train_cell(cell, Path(run_dir), _WORKER_OPTS, cache=_WORKER_CACHE)


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


class ProcessPool:
    """``opts.jobs`` worker processes sharing ``opts.device`` (or taking the ``opts.devices``
    in turn: with two GPUs and four jobs, two workers on each).

    Workers start from a fork server or by spawning, never by forking this process, so CUDA
    works in them; each worker loads plugins from entry points, loads its data once and keeps
    it for the cells it trains after. Each cell seeds itself and writes its own run folder, so
    results equal those of ``--jobs 1``.
    """

    def __init__(self, opts: RunOptions) -> None:
        self.opts = opts
        self.pool: Any = None
        self.queue: Any = None
        self.futures: dict[Any, CellTask] = {}
        self.pending: set[Any] = set()
        self.announced: list[CellTask] = []

    @property
    def busy(self) -> bool:
        return bool(self.pending)

    def start(self, tasks: list[CellTask]) -> None:
        from concurrent.futures import ProcessPoolExecutor

        opts = self.opts
        require_loadable(
            [t.cell for t in tasks],
            f"--jobs {opts.jobs}",
            "worker processes load plugins from entry points; install them as a package or "
            "use --jobs 1",
        )
        ctx = _worker_context()
        self.queue = ctx.Queue()
        devices = [str(d) for d in opts.placement.devices or [opts.device]]
        n_workers = min(opts.placement.jobs, len(tasks))
        settings = {
            "results_dir": opts.results_dir,
            "devices": devices,
            "data_dir": opts.data_dir,
            "speed": opts.speed,
            "policy": opts.policy,
            "threads": worker_threads(opts),
            "parent_pid": os.getpid(),
            "device_share": math.ceil(n_workers / len(devices)),
        }
        opts.log(
            f"training {len(tasks)} cells in {n_workers} processes on {', '.join(devices)} "
            f"({settings['threads']} CPU threads each)"
        )
        self.pool = ProcessPoolExecutor(
            n_workers,
            mp_context=ctx,
            initializer=_worker_init,
            initargs=(settings, self.queue, ctx.Value("i", 0)),
        )
        for task in tasks:
            self.futures[self.pool.submit(_worker_train, task.cell, str(task.run_dir))] = task
        self.pending = set(self.futures)
        self.announced = tasks[:n_workers]  # roughly: the pool takes cells in order

    def wait(self, timeout: float) -> tuple[list[CellTask], list[Outcome]]:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        started, self.announced = self.announced, []
        done, self.pending = wait(self.pending, timeout=timeout, return_when=FIRST_COMPLETED)
        ended = []
        for fut in done:
            task = self.futures[fut]
            try:
                # A cell's own failure comes back as a record; a user error is raised here as
                # with --jobs 1.
                ended.append(Outcome(task, fut.result()))
            except BrokenProcessPool as exc:
                # A worker died outright (killed, out of memory, a crash in native code).
                ended.append(Outcome(task, error=exc))
        return started, ended

    def messages(self) -> list[tuple[str, str]]:
        out = []
        while self.queue is not None:
            try:
                out.append(self.queue.get_nowait())
            except Exception:  # queue.Empty; the name differs between queue implementations
                break
        return out

    def stop(self) -> None:
        """Stop the workers now instead of waiting for their current cells (their checkpoints
        let --resume continue them), as fast as --jobs 1 would stop."""
        if self.pool is None:
            return
        workers = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for proc in workers:
            proc.kill()  # they ignore SIGTERM (see _worker_init)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
