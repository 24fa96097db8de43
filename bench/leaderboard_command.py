"""``bench leaderboard`` once its options are parsed: the boards a suite's records (or its
tuning studies) make, written by every reporter, and shown on stdout as a table, JSON or CSV.

Files go to the leaderboard folder as after ``bench run``; stdout gets the boards themselves
(``--format table`` on a terminal, ``json`` or ``csv`` for scripts) and stderr says where the
files are, so ``bench leaderboard --format json | jq`` reads clean JSON.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import click

from bench import leaderboard as lb
from bench.boards import load_suite_records, suite_boards, write_boards
from bench.names import check_name
from bench.records import results_root
from bench.selection import CellFilter
from bench.suites import Suite, get_suite

FORMATS = ("table", "json", "csv")


@dataclass(frozen=True)
class LeaderboardArgs:
    """``bench leaderboard``'s options as given."""

    suite_name: str
    scale: str | None
    results_dir: str | None
    leaderboard_dir: str | None
    tuned: bool
    multi_objective: bool
    storage: str | None
    device: str
    data_dir: str | None
    cell_filter: CellFilter | None
    output_format: str = "table"


def leaderboard_command(a: LeaderboardArgs, out: TextIO | None = None) -> None:
    """Build, write and show the suite's boards."""
    results = results_root(a.results_dir)
    suite = get_suite(a.suite_name, results)
    boards = _tuned_boards(a, suite, results) if a.tuned else _plain_boards(a, suite, results)
    paths = write_boards(boards, lb.leaderboard_dir(a.leaderboard_dir, results))
    show_boards(boards, a.output_format, out or sys.stdout)
    markdown = [p for p in paths if p.endswith(".md")]
    click.echo(f"wrote {len(paths)} files: {', '.join(markdown) or ', '.join(paths)} ...", err=True)


def _plain_boards(a: LeaderboardArgs, suite: Suite, results: Path) -> list[lb.Leaderboard]:
    scale = check_name(a.scale or suite.default_scale, "--scale")
    records = load_suite_records(results, suite.name, scale)
    if a.cell_filter:
        a.cell_filter.check_names([r.cell for r in records], f"{suite.name}/{scale}")
        records = [r for r in records if a.cell_filter.matches(r.run_id, r.cell)]
    return suite_boards(records, suite.name, scale, suite.columns)


def _tuned_boards(a: LeaderboardArgs, suite: Suite, results: Path) -> list[lb.Leaderboard]:
    from bench.console import RunConsole
    from bench.runner import RunOptions, resolve_device
    from bench.tune import tuned_leaderboard

    # Plain lines, never wrapped, when stderr is a file or a pipe (as `bench run` logs).
    log = RunConsole().log
    opts = RunOptions(
        results_dir=results,
        device=resolve_device(a.device),
        data_dir=Path(a.data_dir) if a.data_dir else None,
        log=log,
    )
    board = tuned_leaderboard(
        suite, a.scale, a.storage, opts, a.multi_objective, log=log, cell_filter=a.cell_filter
    )
    return [board]


# ---- showing boards -------------------------------------------------------------------------


def show_boards(boards: list[lb.Leaderboard], output_format: str, out: TextIO) -> None:
    """The boards on ``out`` in one of :data:`FORMATS`."""
    if output_format == "json":
        out.write(json.dumps([board_json(b) for b in boards], indent=1) + "\n")
    elif output_format == "csv":
        out.write(boards_csv(boards))
    else:
        _print_tables(boards, out)
    out.flush()


def _print_tables(boards: list[lb.Leaderboard], out: TextIO) -> None:
    from rich.console import Console

    from bench.console import WIDE, board_table

    console = Console(file=out, width=None if out.isatty() else WIDE)
    for board in boards:
        for dataset in board.datasets:
            rows = [r for r in board.table.iter_rows(named=True) if r["dataset"] == dataset]
            title = f"{board.suite}/{board.scale}: {dataset}"
            console.print(board_table(board, rows, title))


def _plain(value: Any) -> Any:
    """JSON-ready: NaN and infinities as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def board_json(board: lb.Leaderboard) -> dict[str, Any]:
    """A board for scripts: its columns (name, title, direction) and, per row, the names, the
    seeds and each column's mean, std, ``of`` and saturation flag."""
    rows = []
    for row in board.table.iter_rows(named=True):
        entry: dict[str, Any] = {k: row[k] for k in ("dataset", "model", "objective", "seeds")}
        entry["model_label"], entry["objective_label"] = row["model_label"], row["objective_label"]
        for c in board.columns:
            values = {
                key: _plain(row.get(f"{c.name}_{key}"))
                for key in ("mean", "std", lb.OUT_OF, "saturated")
                if row.get(f"{c.name}_{key}") is not None
            }
            if values:
                entry[c.name] = values
        rows.append(entry)
    return {
        "suite": board.suite,
        "scale": board.scale,
        "columns": [
            {"name": c.name, "title": c.title, "direction": c.direction} for c in board.columns
        ],
        "rows": rows,
    }


def boards_csv(boards: list[lb.Leaderboard]) -> str:
    """The boards' tables as the CSV reporter writes them (suite and scale as columns)."""
    import polars as pl

    frames = [
        b.table.with_columns(pl.lit(b.suite).alias("suite"), pl.lit(b.scale).alias("scale"))
        for b in boards
    ]
    return pl.concat(frames, how="diagonal_relaxed").write_csv()
