"""What ``bench tune``'s arguments are and resolve to, and working on the studies in this
process; shared by the command (:mod:`bench.tune.command`) and its Ray tasks
(:mod:`bench.tune.ray`), each of which runs :func:`run_here`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import plugins
from bench.selection import CellFilter
from bench.tune.space import check_space, load_space_file
from bench.tune.storage import OpenedStorage, open_storage
from bench.tune.targets import Target, select_targets

if TYPE_CHECKING:
    import torch

Log = Callable[[str], None]


@dataclass(frozen=True)
class TuneArgs:
    """The command's options as given (one field per option, same names)."""

    suite_name: str
    scale: str | None
    cell_filter: CellFilter  # -k, --dataset, --model, --objective, --seed: the rows to tune
    n_trials: int
    multi_objective: bool
    storage: str | None
    workers: int
    sampler: str
    pruner: str
    sampler_seed: int | None
    space_file: str | None
    heartbeat: int
    grace: int | None
    device: str
    data_dir: str | None
    results_dir: str | None
    threads: int | None
    quiet: bool
    worker_index: int | None
    ray_address: str | None = None
    gpus_per_cell: float | None = None
    cpus_per_cell: float = 1.0

    @property
    def child(self) -> bool:
        """Started by ``--workers N``: the parent reports."""
        return self.worker_index is not None


@dataclass
class Plan:
    """What the arguments resolve to; every user error is found before any trial runs."""

    scale: str
    targets: list[Target]
    space: dict[str, Any]
    results_dir: Path
    device: torch.device
    store: OpenedStorage


def check_args(a: TuneArgs) -> Plan:
    from bench.records import results_root
    from bench.runner import resolve_device
    from bench.suites import get_suite

    suite = get_suite(a.suite_name)
    scale, targets = select_targets(suite, a.scale, a.cell_filter)
    space = load_space_file(Path(a.space_file)) if a.space_file else {}
    check_space(space, targets, a.space_file or "--space")
    results_dir = results_root(a.results_dir)
    if a.multi_objective:
        regs = plugins.registries()
        for m in ("nll", "mi"):
            regs.metrics.get(m)
    device = resolve_device(a.device)
    store = open_storage(a.storage, results_dir, a.heartbeat, a.grace)  # fails fast on a bad URL
    return Plan(scale, targets, space, results_dir, device, store)


def run_here(a: TuneArgs, plan: Plan, log: Log) -> None:
    """This process works on each study in turn until it holds its trials."""
    import torch

    from bench.runner import RunOptions
    from bench.tune.worker import TuneSettings, Worker

    if a.threads:
        torch.set_num_threads(a.threads)
    settings = TuneSettings(
        n_trials=a.n_trials,
        multi_objective=a.multi_objective,
        sampler=a.sampler,
        pruner=a.pruner,
        sampler_seed=a.sampler_seed,
        worker_index=a.worker_index or 0,
        poll_s=min(2.0, a.heartbeat / 2),
        space=plan.space,
    )
    opts = RunOptions(
        results_dir=plan.results_dir,
        device=plan.device,
        data_dir=Path(a.data_dir) if a.data_dir else None,
        log=lambda msg: None,
    )
    for target in plan.targets:
        Worker(target, settings, plan.store, opts, plan.results_dir, log).run()
