"""A suite at one scale: its cells, checked up front, trained one by one or ``--jobs`` at a time."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench import plugins
from bench.errors import BenchError, ConfigError
from bench.records import RECORD_FILE, read_record
from bench.runner.loop import train_cell
from bench.runner.options import RunOptions, check_options
from bench.specs import resolve_params
from bench.suites import Cell, Suite, expand


def select_cells(suite: Suite, scale: str | None) -> tuple[str, list[Cell]]:
    scale = scale or suite.default_scale
    if scale not in suite.scales:
        raise ConfigError(
            f"suite {suite.name!r} has no scale {scale!r}; scales: {', '.join(suite.scales)}"
        )
    groups = suite.groups.get(scale, [])
    if not groups:
        raise ConfigError(f"suite {suite.name!r} has no cells at scale {scale!r}")
    return scale, expand(suite.name, scale, groups)


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


def run_suite(
    suite: Suite,
    scale: str | None,
    opts: RunOptions,
    overwrite: bool = False,
    cells: list[Cell] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """Run every cell of a suite at a scale (or the given ``cells`` of it, filtered or
    overridden); returns the scale and the records produced.

    With ``opts.jobs > 1`` up to that many cells train at once, each in its own process on
    ``opts.device`` (see :mod:`bench.runner.parallel`); with ``opts.ray`` each cell is a Ray
    task (see :mod:`bench.runner.ray`). Records come back in cell order either way.
    """
    if cells is None:
        scale, cells = select_cells(suite, scale)
    else:
        scale = scale or suite.default_scale
    validate_cells(cells)
    suite_dir = opts.results_dir / suite.name / scale
    existing = [c for c in cells if (suite_dir / c.run_id).exists()]
    if existing and not (opts.resume or overwrite):
        raise BenchError(
            f"results for {suite.name}/{scale} already exist in {suite_dir}; pass --resume to "
            "continue them or --overwrite to start again"
        )
    check_options(opts)
    records: list[dict[str, Any] | None] = [None] * len(cells)
    todo: list[tuple[int, Cell, Path]] = []
    for i, cell in enumerate(cells):
        run_dir = suite_dir / cell.run_id
        record_path = run_dir / RECORD_FILE
        if opts.resume and record_path.exists():
            previous = read_record(record_path)
            if previous.get("cell") == json.loads(json.dumps(cell.as_dict())):
                opts.log(f"{cell.run_id}: already finished, skipped")
                records[i] = previous
                opts.on_cell("skip", cell, previous)
                continue
            opts.log(f"{cell.run_id}: configuration changed since the last run; training again")
        if record_path.exists():
            record_path.unlink()
        todo.append((i, cell, run_dir))
    if opts.ray is not None and todo:
        from bench.runner.ray import run_on_ray

        for i, record in run_on_ray(todo, opts):
            records[i] = record
    elif opts.jobs > 1 and len(todo) > 1:
        from bench.runner.parallel import run_parallel

        for i, record in run_parallel(todo, opts):
            records[i] = record
    else:
        for i, cell, run_dir in todo:
            opts.on_cell("start", cell, None)
            records[i] = train_cell(cell, run_dir, opts)
            opts.on_cell("end", cell, records[i])
    return scale, [r for r in records if r is not None]
