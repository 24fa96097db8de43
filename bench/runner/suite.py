"""A suite at one scale: its cells, checked up front, trained one by one or ``--jobs`` at a time."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from pathlib import Path

from bench import plugins
from bench.errors import BenchError, ConfigError, FailFast
from bench.locks import results_lock
from bench.names import check_inside, check_name, check_no_links, check_no_links_in
from bench.records import RECORD_FILE, DamagedRecord, RunRecord, read_record, set_aside
from bench.runner.cell import DataCache
from bench.runner.driver import drive
from bench.runner.executors import CellTask, Executor, InProcess
from bench.runner.options import RunOptions, check_options
from bench.runner.preflight import check_cells, check_writable
from bench.specs import resolve_params
from bench.suites import (
    Cell,
    Suite,
    check_group,
    check_group_names,
    check_same_suite,
    expand,
    remember_suite,
)


def select_cells(suite: Suite, scale: str | None) -> tuple[str, list[Cell]]:
    scale = scale or suite.default_scale
    check_name(suite.name, "suite")
    if scale not in suite.scales:
        raise ConfigError(
            f"suite {suite.name!r} has no scale {scale!r}; scales: {', '.join(suite.scales)}"
        )
    check_name(scale, f"suite {suite.name!r}: scale")
    groups = suite.groups.get(scale, [])
    if not groups:
        raise ConfigError(f"suite {suite.name!r} has no cells at scale {scale!r}")
    for g in groups:
        check_group(g, f"suite {suite.name!r} ({scale}), group {g.name!r}")
    check_group_names(groups, f"suite {suite.name!r} ({scale})")
    cells = expand(suite.name, scale, groups)
    if not cells:
        empty = [
            f"group {g.name!r} has no {what}"
            for g in groups
            for what in ("datasets", "models", "objectives", "seeds")
            if not getattr(g, what)
        ]
        raise ConfigError(
            f"suite {suite.name!r} has no cells at scale {scale!r}: {'; '.join(empty)}"
        )
    return scale, cells


def validate_cells(cells: Iterable[Cell]) -> None:
    """Fail before any training if a name or parameter is wrong anywhere in the suite."""
    regs = plugins.registries()
    for c in cells:
        ds = regs.datasets.get(c.dataset)
        model = regs.models.get(c.model)
        obj = regs.objectives.get(c.objective)
        for m in c.metrics:
            regs.metrics.get(m)
        if ds.kind not in model.kinds:
            raise ConfigError(
                f"group {c.group!r}: model {c.model!r} takes {'/'.join(model.kinds)} data, "
                f"dataset {c.dataset!r} is {ds.kind}"
            )
        resolve_params(ds.params, c.dataset_params, f"dataset {c.dataset!r}")
        resolve_params(model.params, c.model_params, f"model {c.model!r}")
        resolve_params(obj.params, c.objective_params, f"objective {c.objective!r}")


def check_run_ids(cells: list[Cell]) -> None:
    """One run folder per cell: two cells with one run id would overwrite each other."""
    seen: dict[str, Cell] = {}
    for c in cells:
        if c.run_id in seen:
            raise ConfigError(
                f"groups {seen[c.run_id].group!r} and {c.group!r} both make run {c.run_id!r}; "
                "each run needs its own folder"
            )
        seen[c.run_id] = c


def output_folder(opts: RunOptions, suite: Suite, scale: str) -> Path:
    """``<results>/<suite>/<scale>``, checked: inside the results folder, and no link on
    the way (the results folder itself may be one)."""
    suite_dir = opts.results_dir / check_name(suite.name, "suite") / check_name(scale, "scale")
    check_no_links(opts.results_dir, suite_dir, "results folder")
    check_inside(opts.results_dir, suite_dir, "results folder")
    return suite_dir


def _holds_results(run_dir: Path) -> bool:
    """A run folder that an earlier run wrote to (not one a failed start left empty)."""
    return any((run_dir / name).exists() for name in (RECORD_FILE, "checkpoint.pt", "epochs.jsonl"))


def kept_record(cell: Cell, run_dir: Path, opts: RunOptions) -> RunRecord | None:
    """With --resume: the record to keep for ``cell``, or None to train it (again). A record
    that does not parse is set aside as ``record.json.corrupt``; one whose run crashed
    (it holds an ``error``) or whose configuration changed is trained again."""
    record_path = run_dir / RECORD_FILE
    if not record_path.exists():
        return None
    try:
        previous = read_record(record_path)
    except DamagedRecord as exc:
        kept = set_aside(record_path)
        opts.warn(f"{exc}; kept as {kept.name}, the run is trained again")
        return None
    if previous.cell != json.loads(json.dumps(cell.as_dict())):
        opts.log(f"{cell.run_id}: configuration changed since the last run; training again")
    elif previous.error is not None:
        opts.log(f"{cell.run_id}: failed last time ({previous.reason}); training again")
    else:
        opts.log(f"{cell.run_id}: already {previous.status}, skipped")
        return previous
    record_path.unlink()
    return None


def run_suite(
    suite: Suite,
    scale: str | None,
    opts: RunOptions,
    overwrite: bool = False,
    cells: list[Cell] | None = None,
) -> tuple[str, list[RunRecord]]:
    """Run every cell of a suite at a scale (or the given ``cells`` of it, filtered or
    overridden); returns the scale and the records produced.

    Before anything is created, every name and value is checked; then the results folder
    must be writable (a caller that writes elsewhere afterwards checks that folder first).
    The results folder is locked for the whole run (:mod:`bench.locks`); every data set is
    loaded and every model checked against the contract before any training.
    A cell that raises ends with status ``failed`` and the others go on, unless
    ``opts.fail_fast``. With ``opts.jobs > 1`` up to that many cells train at once, each in
    its own process on ``opts.device`` (see :mod:`bench.runner.parallel`); with ``opts.ray``
    each cell is a Ray task (see :mod:`bench.runner.ray`). Records come back in cell order
    either way.
    """
    if cells is None:
        scale, cells = select_cells(suite, scale)
    else:
        scale = scale or suite.default_scale
    validate_cells(cells)
    check_run_ids(cells)
    check_options(opts)
    suite_dir = output_folder(opts, suite, scale)
    check_same_suite(suite, opts.results_dir, overwrite)
    check_writable(suite_dir, "results folder")
    with contextlib.ExitStack() as stack:
        # A folder in use is refused at once; a new one is created (and locked) only once the
        # data and models have passed their checks, so a failed start leaves nothing behind.
        locked = suite_dir.exists()
        if locked:
            stack.enter_context(results_lock(suite_dir))
        todo, records = _plan(cells, suite, scale, suite_dir, opts, overwrite)
        cache: DataCache = {}  # what the checks load, training in this process reuses
        if opts.placement.ray is None:  # on Ray the data may live on the workers only
            check_cells([t.cell for t in todo], opts, cache)
        if not locked:
            # Another run may have created the folder meanwhile: lock, then plan again.
            stack.enter_context(results_lock(suite_dir))
            todo, records = _plan(cells, suite, scale, suite_dir, opts, overwrite)
        # Only a start that passed its checks notes the suite (for `bench leaderboard --suite`).
        remember_suite(suite, opts.results_dir)
        for i, cell in enumerate(cells):
            if records[i] is not None:
                opts.display.on_cell("skip", cell, records[i])
        return scale, _train(todo, records, opts, cache)


def _plan(
    cells: list[Cell], suite: Suite, scale: str, suite_dir: Path, opts: RunOptions, overwrite: bool
) -> tuple[list[CellTask], list[RunRecord | None]]:
    """The cells to train (index, cell, run folder) and the records kept from earlier runs."""
    existing = [c for c in cells if _holds_results(suite_dir / c.run_id)]
    if existing and not (opts.resume or overwrite):
        raise BenchError(
            f"results for {suite.name}/{scale} already exist in {suite_dir}; pass --resume to "
            "continue them or --overwrite to start again"
        )
    records: list[RunRecord | None] = [None] * len(cells)
    todo: list[CellTask] = []
    for i, cell in enumerate(cells):
        run_dir = suite_dir / cell.run_id
        check_no_links(suite_dir, run_dir, "run folder")
        check_no_links_in(run_dir, "run folder")
        kept = kept_record(cell, run_dir, opts) if opts.resume else None
        if kept is not None:
            records[i] = kept
            continue
        (run_dir / RECORD_FILE).unlink(missing_ok=True)
        todo.append(CellTask(i, cell, run_dir))
    return todo, records


def executor_for(opts: RunOptions, n_tasks: int, cache: DataCache) -> Executor:
    """Ray with ``--ray``, worker processes with ``--jobs N`` (N > 1, several cells), else
    this process (keeping the data the preflight loaded)."""
    if opts.placement.ray is not None:
        from bench.runner.ray import RayCluster

        return RayCluster(opts)
    if opts.placement.jobs > 1 and n_tasks > 1:
        from bench.runner.parallel import ProcessPool

        return ProcessPool(opts)  # the workers load their own copies of the data
    return InProcess(opts, cache)


def _train(
    todo: list[CellTask], records: list[RunRecord | None], opts: RunOptions, cache: DataCache
) -> list[RunRecord]:
    if todo:
        try:
            for i, record in drive(executor_for(opts, len(todo), cache), todo, opts):
                records[i] = record
        except FailFast as stop:
            left = sum(r is None for r in records)
            opts.warn(f"--fail-fast: {stop} failed; {left} cell(s) not run")
    return [r for r in records if r is not None]
