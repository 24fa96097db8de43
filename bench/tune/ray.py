"""``bench tune --ray [ADDRESS]``: the ``--workers`` as Ray tasks placed on the cluster.

Each task is one worker, as ``bench tune`` runs it here (see :mod:`bench.tune.worker`), holding
``--gpus-per-cell`` GPUs and ``--cpus-per-cell`` CPUs while it trains its trials one at a time.
The workers share the study's storage, so today's guarantees hold: the claim lock keeps each
study at exactly ``--n-trials`` trials, and a dead worker's trial is queued again (heartbeats on
PostgreSQL; on the journal file, a process check that sees one machine only, which is why a
cluster of several machines needs PostgreSQL). Ray starts the task of a dead node again elsewhere.

Only ``--ray`` imports this module: Ray is optional.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from bench.errors import ConfigError
from bench.runner.ray import (
    NODE_RETRIES,
    connected,
    forwarded_env,
    get,
    ray_placement,
    resources,
)
from bench.tune.plan import Log, Plan, TuneArgs, check_args, run_here
from bench.tune.storage import STORAGE_ENV


def tune_task(args: TuneArgs, index: int) -> None:
    """One worker on this node: trials of each study in turn until every study holds its own."""
    a = dataclasses.replace(args, worker_index=index)

    def log(msg: str) -> None:  # Ray shows a task's stderr on the driver
        if not a.quiet:
            print(f"[worker {index}] {msg}", file=sys.stderr, flush=True)

    run_here(a, check_args(a), log)


def run_on_ray(a: TuneArgs, plan: Plan, log: Log) -> None:
    """``--workers`` tasks on the cluster; returns once all studies hold their trials."""
    place = ray_placement(a.ray_address, a.gpus_per_cell, a.cpus_per_cell)
    assert place is not None
    store = plan.store
    with connected(place.address) as ray:
        cpus, gpus = resources(ray, place)
        hosts = {n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")}
        if store.kind == "journal" and len(hosts) > 1:
            raise ConfigError(
                f"--ray: the cluster spans {len(hosts)} machines and the journal file finds dead "
                f"workers on its own machine only; give a PostgreSQL --storage (or {STORAGE_ENV})"
            )
        # What a task needs, resolved here: folders as absolute paths, the storage itself (a
        # task argument, never a command line or the cluster's recorded environment).
        task_args = dataclasses.replace(
            a,
            storage=str(Path(store.description).resolve())
            if store.kind == "journal"
            else a.storage or os.environ.get(STORAGE_ENV),
            suite_name=_absolute(a.suite_name) if a.suite_name.endswith(".toml") else a.suite_name,
            space_file=_absolute(a.space_file),
            results_dir=str(plan.results_dir.resolve()),
            data_dir=_absolute(a.data_dir),
            workers=1,
            ray_address=None,
            gpus_per_cell=None,
            cpus_per_cell=1.0,
        )
        task = ray.remote(tune_task).options(
            num_cpus=cpus,
            num_gpus=gpus,
            max_retries=NODE_RETRIES,
            runtime_env={"env_vars": forwarded_env()},
        )
        studies = ", ".join(t.study_name(a.multi_objective) for t in plan.targets)
        log(
            f"tuning {studies} in {store.description} with {a.workers} workers on Ray "
            f"({cpus:g} CPUs and {gpus:g} GPUs each)"
        )
        pending = [task.remote(task_args, i) for i in range(a.workers)]
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                get(ray, done[0])  # a worker's error is raised here
        except BaseException:
            # Cancelled workers die; their trials are queued again by the next worker to come.
            for ref in pending:
                ray.cancel(ref, force=True)
            raise


def _absolute(path: str | None) -> str | None:
    """A path given on this machine, as the tasks must read it: absolute."""
    return str(Path(path).resolve()) if path else path
