"""``bench run --ray [ADDRESS]``: each cell a Ray task; the driver writes every result.

A task asks the cluster for ``cpus_per_cell`` CPUs and ``gpus_per_cell`` GPUs (0.25 packs four
cells on a GPU), trains its cell in a work folder and returns the record, the epoch log and the
small files of the run; the driver writes them into the run folder. Each result is thus written
once, by one process, however often Ray retried the task.

When every node sees the results folder (the driver leaves a token in it that tasks look for),
the work folder is ``.ray/<suite>/<scale>/<run id>`` there: checkpoints outlive a node, and the
task Ray retries elsewhere after its node died resumes from the last one. Otherwise the work
folder is in a temporary folder on the task's node, and a retried cell starts again. Either way
it ends in ``<suite>/<scale>/<run id>``, as run folders do, for the plugins that look.

Ray is optional (``pip install 'collapse-bench[ray]'``); only ``--ray`` imports this module.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from bench.diskerrors import DiskError
from bench.errors import BenchError, ConfigError, print_warning
from bench.files import atomic_write_bytes, atomic_write_text
from bench.ray_cli import LOCAL
from bench.ray_cli import ray_options as ray_options  # defined there, torch-free (bench --help)
from bench.records import RECORD_FILE, write_record
from bench.runner.checkpoints import CHECKPOINT_FILE
from bench.runner.executors import CellTask, Outcome
from bench.runner.loop import train_cell
from bench.runner.options import (
    Messages,
    Placement,
    Policy,
    RayPlacement,
    RunOptions,
    SpeedOptions,
)
from bench.runner.parallel import require_loadable
from bench.secrets import has_secret
from bench.signals import stop_on_signals, stopping_on_signals
from bench.suites import Cell

WORK_DIR = ".ray"  # in the results folder: <suite>/<scale>/<run id> work folders, and tokens
TOKEN_FILE = "token"
TASK_FILE = "task.json"  # the node training the cell now, for people watching a shared folder
SMALL_FILE_BYTES = 64 * 2**20  # larger files stay on the task's node unless the folder is shared
NODE_RETRIES = 3  # how often a cell whose node died is started again elsewhere
ENV_PREFIX = "BENCH_"  # the driver's settings the tasks get (data and cache folders, plugins)
# A URL with a user (and password) in it is never sent: the cluster records task settings.
CREDENTIALS = re.compile(r"://[^/@\s]*@")

_DATA_CACHE: dict[Any, Any] = {}  # a Ray worker keeps its data sets for the cells it trains next
_THREADS_SET = False


def ray_placement(
    address: str | None, gpus_per_cell: float | None, cpus_per_cell: float, device: str = "auto"
) -> RayPlacement | None:
    """The options of :func:`ray_options`; None without ``--ray``."""
    if address is None:
        if gpus_per_cell is not None or cpus_per_cell != 1.0:
            raise ConfigError("--gpus-per-cell and --cpus-per-cell apply with --ray")
        return None
    if device != "auto":
        raise ConfigError(
            f"--device {device} with --ray: each cell runs where Ray puts it, on a GPU when it "
            "holds one (--gpus-per-cell)"
        )
    return RayPlacement(None if address == LOCAL else address, gpus_per_cell, cpus_per_cell)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--ray needs Ray, an optional dependency: pip install 'collapse-bench[ray]'"
        ) from None
    return ray


@contextlib.contextmanager
def connected(address: str | None) -> Iterator[Any]:
    """Ray, connected to ``address`` (None: a new local instance; "auto": the running cluster).

    A connection made before (a test's cluster, a notebook) is used as it is and left open.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING}
    if address is None:
        kwargs["include_dashboard"] = False
    with stopping_on_signals():  # the handlers from before come back after
        try:
            ray.init(address=address, **kwargs)
        except ConnectionError as exc:
            raise ConfigError(f"--ray {address}: {exc}") from None
        # ray.init makes SIGTERM exit at once (sys.exit): the driver stops as on Ctrl-C.
        stop_on_signals()
        try:
            yield ray
        finally:
            ray.shutdown()


def forwarded_env() -> dict[str, str]:
    """The driver's ``BENCH_*`` settings, which the tasks get on every node (not credentials:
    each node sets its own, or, for ``bench tune``, the storage URL travels as a task argument)."""
    return {
        k: v
        for k, v in os.environ.items()
        if k.startswith(ENV_PREFIX) and not CREDENTIALS.search(v) and not has_secret(v)
    }


def resources(ray: Any, place: RayPlacement) -> tuple[float, float]:
    """CPUs and GPUs per cell; refused when no node of the cluster could ever run a cell."""
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    gpus = place.gpus_per_cell
    if gpus is None:
        gpus = 1.0 if any(r.get("GPU", 0) >= 1 for r in nodes) else 0.0
    cpus = place.cpus_per_cell
    if not any(r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus for r in nodes):
        raise ConfigError(
            f"--ray: no node of the cluster has {cpus:g} CPUs and {gpus:g} GPUs for a cell "
            f"(nodes: {', '.join(_node_text(r) for r in nodes) or 'none'})"
        )
    return cpus, gpus


def _node_text(res: dict[str, float]) -> str:
    return f"{res.get('CPU', 0):g} CPUs/{res.get('GPU', 0):g} GPUs"


# ---- the task ------------------------------------------------------------------------------


def train_task(
    cell: Cell, settings: dict[str, Any], work_dir: str, token: str, log: Any
) -> dict[str, Any]:
    """Train one cell on this node; what the driver needs to write its run folder."""
    import ray

    global _THREADS_SET
    if not _THREADS_SET:  # Ray reuses a worker for later cells of the same shape
        torch.set_num_threads(settings["threads"])
        _THREADS_SET = True
    token_path = Path(settings["work_root"]) / TOKEN_FILE
    shared = token_path.is_file() and token_path.read_text(encoding="utf-8") == token
    scratch = None if shared else Path(tempfile.mkdtemp(prefix="bench-"))
    work = Path(work_dir) if scratch is None else scratch / cell.suite / cell.scale / cell.run_id
    work.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    node = ray.get_runtime_context().get_node_id()
    atomic_write_text(work / TASK_FILE, json.dumps({"host": host, "node": node}) + "\n")
    opts = _task_options(settings, log, torch.device("cuda" if ray.get_gpu_ids() else "cpu"))
    try:
        record = train_cell(cell, work, opts, cache=_DATA_CACHE)
        files, large = _returned_files(work)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return {"record": record, "files": files, "large": large, "shared": shared, "host": host}


def _task_options(settings: dict[str, Any], log: Any, device: torch.device) -> RunOptions:
    speed = settings.get("speed") or SpeedOptions()
    if isinstance(speed, dict):  # the keywords, as drivers before SpeedOptions sent them
        speed = SpeedOptions(**speed)
    return RunOptions(
        Path(settings["work_root"]),
        data_dir=settings["data_dir"],
        placement=Placement(device),
        speed=speed,
        # The work folder holds only this run's checkpoints; the driver ran no preflight (the
        # data may be on the nodes only), so the run checks the model contract itself.
        policy=Policy(
            resume=True, keep_checkpoints=settings["keep_checkpoints"], check_contract=True
        ),
        messages=Messages(
            log=lambda msg: log.put(("log", msg)) if log is not None else None,
            warn=lambda msg: log.put(("warn", msg)) if log is not None else print_warning(msg),
        ),
    )


def _returned_files(work: Path) -> tuple[dict[str, bytes], list[str]]:
    """The run's small files (sent back with the record) and the names of the large ones."""
    files: dict[str, bytes] = {}
    large: list[str] = []
    for rel, path in run_files(work):
        if rel == CHECKPOINT_FILE:  # only for resuming, which a finished run will not
            continue
        if path.stat().st_size <= SMALL_FILE_BYTES:
            files[rel] = path.read_bytes()
        else:
            large.append(rel)
    return files, large


def run_files(work: Path) -> Iterator[tuple[str, Path]]:
    """The files of a work folder that belong in the run folder: neither the record (sent as
    data) nor the task's note, nor temporary files of writes cut short."""
    for path in sorted(p for p in work.rglob("*") if p.is_file()):
        rel = path.relative_to(work).as_posix()
        if rel not in (RECORD_FILE, TASK_FILE) and not path.name.startswith("."):
            yield rel, path


# ---- the driver ----------------------------------------------------------------------------


def store(result: dict[str, Any], run_dir: Path, work: Path, log: Any) -> None:
    """Write a task's results into its run folder; the record last, so a record means done."""
    for rel, data in result["files"].items():
        atomic_write_bytes(run_dir / rel, data)
    if result["shared"]:  # the rest (checkpoint, large files) moves: same file system
        for rel, path in run_files(work):
            if rel not in result["files"]:
                (run_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, run_dir / rel)
    elif result["large"]:
        log(
            f"{result['record'].run_id}: {', '.join(result['large'])} left out: over "
            f"{SMALL_FILE_BYTES >> 20} MiB and the results folder is not shared with "
            f"{result['host']}"
        )
    write_record(run_dir / RECORD_FILE, result["record"])
    shutil.rmtree(work, ignore_errors=True)


class CellLost(RuntimeError):
    """Ray could not keep a cell's task alive (its node or worker died every time)."""


class RayCluster:
    """Cells as Ray tasks on the cluster of ``opts.placement.ray``; the driver's node writes
    every run folder from what the tasks return."""

    def __init__(self, opts: RunOptions) -> None:
        self.opts = opts
        self.stack = contextlib.ExitStack()
        self.ray: Any = None
        self.queue: Any = None
        self.refs: dict[Any, CellTask] = {}
        self.pending: list[Any] = []
        self.ray_dir = Path()

    @property
    def busy(self) -> bool:
        return bool(self.pending)

    def start(self, tasks: list[CellTask]) -> None:
        opts, place = self.opts, self.opts.placement.ray
        assert place is not None
        require_loadable(
            [t.cell for t in tasks],
            "--ray",
            "Ray workers load plugins from entry points; install them as a package on every node",
        )
        first = tasks[0].cell
        self.ray_dir = opts.results_dir.resolve() / WORK_DIR / first.suite / first.scale
        self.ray = ray = self.stack.enter_context(connected(place.address))
        cpus, gpus = resources(ray, place)
        token = secrets.token_hex(16)
        atomic_write_text(self.ray_dir / TOKEN_FILE, token)
        settings = {
            "work_root": str(self.ray_dir),
            "data_dir": Path(opts.data_dir).resolve() if opts.data_dir else None,
            "speed": opts.speed,
            "keep_checkpoints": opts.policy.keep_checkpoints,
            "threads": opts.placement.threads or max(1, int(cpus)),
        }
        task = ray.remote(train_task).options(
            num_cpus=cpus,
            num_gpus=gpus,
            max_retries=NODE_RETRIES,
            runtime_env={"env_vars": forwarded_env()},
        )
        self.queue = self._log_queue()
        cluster = ray.cluster_resources()
        opts.log(
            f"training {len(tasks)} cells on Ray ({cluster.get('CPU', 0):g} CPUs, "
            f"{cluster.get('GPU', 0):g} GPUs; {cpus:g} CPUs and {gpus:g} GPUs per cell)"
        )
        for t in tasks:
            work = self.ray_dir / t.cell.run_id
            if not opts.policy.resume:
                shutil.rmtree(work, ignore_errors=True)
            # The run folder exists from the start, so a rerun after a killed driver asks for
            # --resume as it would after a plain run.
            t.run_dir.mkdir(parents=True, exist_ok=True)
            self.refs[task.remote(t.cell, settings, str(work), token, self.queue)] = t
        self.pending = list(self.refs)

    def _log_queue(self) -> Any:
        """The queue the tasks send their lines to; it lives on the driver's node, which
        outlives any worker node."""
        from ray.util.queue import Queue
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = self.ray.get_runtime_context().get_node_id()
        return Queue(
            actor_options={
                "num_cpus": 0,
                "scheduling_strategy": NodeAffinitySchedulingStrategy(here, soft=False),
            }
        )

    def wait(self, timeout: float) -> tuple[list[CellTask], list[Outcome]]:
        done, self.pending = self.ray.wait(self.pending, num_returns=1, timeout=timeout)
        return [], [self._outcome(ref) for ref in done]

    def _outcome(self, ref: Any) -> Outcome:
        """A task's record; an error outside the run, or a cell Ray lost, is an outcome the
        driver records as failed; a user error (:class:`BenchError`) stops the suite as in
        ``--jobs 1``."""
        ray, task = self.ray, self.refs[ref]
        try:
            result = get(ray, ref)
        except (BenchError, DiskError):
            raise
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, Exception) else exc
            return Outcome(task, error=cause, logged=exc)
        except ray.exceptions.RayError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            lost = CellLost(f"Ray lost the cell after {NODE_RETRIES} retries ({first})")
            return Outcome(task, error=lost, logged=exc)
        store(result, task.run_dir, self.ray_dir / task.cell.run_id, self.opts.log)
        return Outcome(task, result["record"].with_(source=task.run_dir / RECORD_FILE))

    def messages(self) -> list[tuple[str, str]]:
        if self.queue is None:
            return []
        with contextlib.suppress(Exception):  # the queue is gone once the suite is over
            return list(self.queue.get_nowait_batch(self.queue.qsize()))
        return []

    def stop(self) -> None:
        for ref in self.pending:  # fail fast; the work folders keep their checkpoints
            with contextlib.suppress(Exception):
                self.ray.cancel(ref, force=True)
        self.pending = []

    def close(self) -> None:
        lines = self.messages()
        for kind, line in lines:
            (self.opts.warn if kind == "warn" else self.opts.log)(line)
        if self.queue is not None:
            with contextlib.suppress(Exception):
                self.queue.shutdown()
            self.queue = None
        with contextlib.suppress(OSError):  # only folders no cell left work in
            (self.ray_dir / TOKEN_FILE).unlink()
            for folder in (self.ray_dir, self.ray_dir.parent, self.ray_dir.parent.parent):
                folder.rmdir()
        self.stack.close()


def get(ray: Any, ref: Any) -> Any:
    """``ray.get``; a user error (:class:`BenchError`) in the task is raised as itself, so the
    command prints its one line. Other errors keep the task's traceback."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, (BenchError, DiskError)):  # the task met the user's problem
            raise exc.cause from None
        raise
