"""What ``bench run`` shows while it runs and when it ends.

- a first line as soon as the command starts (``bench.cli``), before torch and the plugins
  load; then a header line: suite, scale, cells, device, data and results folders;
- on a terminal, a suite bar "run k of N" with an ETA from the cells finished so far, a
  training bar per cell (steps, epoch k/E) and an evaluation bar (the metric being computed,
  with the IW-NLL batches);
- log lines (epochs, finished cells) without source locations; when stderr is not a terminal
  they are plain lines with a time stamp, never wrapped;
- a final summary table of the rows this run touched, with the headline columns, and the runs
  that did not finish.

``--list`` prints a suite's cells with their budgets and eval settings instead of running them.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from bench.data import data_dir
from bench.describe import settings_text
from bench.formats import duration_text
from bench.leaderboard import RECORD_COLUMNS, ROW_KEY, Leaderboard, record_key
from bench.records import RECORD_FILE, RunRecord, device_name, read_record
from bench.reporters import cell_text
from bench.runner.options import RunOptions
from bench.suites import Budget, Cell, EvalSettings

HEADLINE_COLUMNS = 6  # the summary shows a board's first six metric columns (AU included)
WIDE = 200  # columns for tables written to a file or a pipe


_duration = duration_text  # one duration format everywhere (bench.formats)


class EtaColumn(ProgressColumn):
    """Time left for the suite task: its deadline, set each time a cell finishes."""

    def render(self, task: Any) -> Text:
        if not task.fields.get("suite"):
            return Text("")
        deadline = task.fields.get("deadline")
        if deadline is None:
            return Text("ETA after the first cell", style="progress.remaining")
        return Text(f"ETA {_duration(deadline - time.time())}", style="progress.remaining")


class RunConsole:
    """The ``bench run`` display. Use as a context manager around the run; pass :meth:`log`,
    :attr:`progress` and :meth:`on_cell` to :class:`~bench.runner.RunOptions`."""

    def __init__(self, quiet: bool = False, err: TextIO | None = None) -> None:
        self.quiet = quiet
        self.err = err or sys.stderr
        self.console = Console(file=self.err, log_path=False)
        self.terminal = self.console.is_terminal
        self.progress: Progress | None = None
        if not quiet and self.terminal:
            self.progress = Progress(
                "{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                EtaColumn(),
                console=self.console,
                transient=True,
            )
        self.suite_task: Any = None
        self.header_text = ""
        self.total = self.done = 0
        self.jobs = 1
        self.durations: list[float] = []

    def __enter__(self) -> RunConsole:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    # ---- lines ------------------------------------------------------------------------------

    def log(self, message: str) -> None:
        if self.quiet:
            return
        self._print_header()
        self._write(message)

    def _write(self, message: str) -> None:
        if self.terminal:
            self.console.log(message)
        else:
            print(f"[{time.strftime('%H:%M:%S')}] {message}", file=self.err, flush=True)

    def header(self, suite: str, scale: str, cells: Sequence[Cell], opts: RunOptions) -> None:
        """The header line, printed at once: what runs where, before the data sets load and
        the models are checked (``bench run`` said it was starting before torch loaded)."""
        self.total, self.jobs = len(cells), opts.jobs
        jobs = f" · {opts.jobs} jobs" if opts.jobs > 1 else ""
        threads = None
        if opts.jobs > 1:  # the workers' threads, not this process's
            from bench.runner.parallel import worker_threads

            threads = worker_threads(opts)
        self.header_text = (
            f"bench run {suite}/{scale}: {len(cells)} cells on "
            f"{device_name(opts.device, threads)}{jobs}"
            f" · data {data_dir(opts.data_dir)} · results {opts.results_dir / suite / scale}"
        )
        if not self.quiet:
            text, self.header_text = self.header_text, ""
            self._write(text)

    def _print_header(self) -> None:
        if self.header_text and not self.quiet:
            text, self.header_text = self.header_text, ""
            self._write(text)
        if self.progress is not None and self.suite_task is None:
            self.suite_task = self.progress.add_task(
                self._suite_text(), total=self.total, suite=True
            )

    # ---- the suite bar ----------------------------------------------------------------------

    def _suite_text(self, run_id: str = "") -> str:
        k = min(self.done + 1, self.total)
        text = f"run {k} of {self.total}" if self.done < self.total else f"{self.total} runs done"
        return f"{text}: {run_id}" if run_id else text

    def on_cell(self, event: str, cell: Cell, record: Mapping[str, Any] | None) -> None:
        """``RunOptions.on_cell``: a cell starts, ends, or was finished before (skip)."""
        if self.terminal:
            self._print_header()
        if event == "start":
            self._update(description=self._suite_text(cell.run_id))
            return
        self.done += 1
        if event == "end" and record is not None:
            # A RunRecord, or any mapping of its JSON fields (callers may pass only these).
            self.durations.append(float(record.get("wall_time_s", 0.0)))
            eta = self.eta()
            # Cells trained elsewhere (--ray) say where.
            host = (record.get("machine") or {}).get("hostname")
            where = f" on {host}" if host and host != platform.node() else ""
            self.log(
                f"run {self.done} of {self.total}: {cell.run_id} {record['status']}{where} in "
                f"{_duration(self.durations[-1])}" + (f"; ETA {_duration(eta)}" if eta else "")
            )
        self._update(
            completed=self.done,
            description=self._suite_text(),
            deadline=None if self.eta() is None else time.time() + (self.eta() or 0.0),
        )

    def eta(self) -> float | None:
        """Seconds left: the mean time of the cells finished in this run, per cell left."""
        if not self.durations:
            return None
        left = self.total - self.done
        return sum(self.durations) / len(self.durations) * left / self.jobs

    def _update(self, **fields: Any) -> None:
        if self.progress is not None and self.suite_task is not None:
            self.progress.update(self.suite_task, **fields)

    # ---- the summary ------------------------------------------------------------------------

    def summary(
        self,
        boards: Leaderboard | Sequence[Leaderboard],
        records: Sequence[RunRecord],
        out: TextIO | None = None,
    ) -> None:
        """The rows this run touched on each board, with the headline columns, and the
        unfinished runs."""
        out = out or sys.stdout
        console = Console(file=out, width=None if out.isatty() else WIDE)
        records = [RunRecord.of(r) for r in records]
        touched = {record_key(r) for r in records if r.finished}
        for board in [boards] if isinstance(boards, Leaderboard) else boards:
            rows = [
                row
                for row in board.table.iter_rows(named=True)
                if tuple(row[k] for k in ROW_KEY) in touched
            ]
            if rows:
                title = f"{board.suite}/{board.scale}: rows of this run"
                console.print(board_table(board, rows, title, HEADLINE_COLUMNS))
        unfinished = [r for r in records if not r.finished]
        if unfinished:
            failed = Table(title="runs that did not finish", title_justify="left")
            for name in ("Run", "Status", "Reason"):
                failed.add_column(name, overflow="fold")
            for r in unfinished:
                failed.add_row(r.run_id, r.status, str(r.reason or ""))
            console.print(failed)


def board_table(
    board: Leaderboard,
    rows: Sequence[Mapping[str, Any]],
    title: str,
    headline: int | None = None,
) -> Table:
    """A table of some of a board's rows: names, seeds and the metric columns (the first
    ``headline`` metrics; every column when None) that any of these rows has a value for."""
    columns = list(board.columns)
    if headline is not None:
        columns = [c for c in columns if c.name not in RECORD_COLUMNS][:headline]
    columns = [c for c in columns if any(cell_text(dict(r), c) != "–" for r in rows)]
    table = Table(title=title, title_justify="left")
    for name in ("Dataset", "Model", "Objective", "Seeds"):
        table.add_column(name)
    for c in columns:
        table.add_column(f"{c.title} {c.arrow}", justify="right")
    for row in rows:
        table.add_row(
            row["dataset"],
            row["model_label"],
            row["objective_label"],
            str(row["seeds"]),
            *(cell_text(dict(row), c) for c in columns),
        )
    return table


# ---- bench run --list ----------------------------------------------------------------------


def _params(cell: Cell) -> str:
    parts = []
    for part in ("dataset", "model", "objective"):
        for k, v in getattr(cell, f"{part}_params").items():
            parts.append(f"{part}.{k}={v}")
    return " ".join(parts)


def _status(run_dir: Path) -> str:
    try:
        return f"[{read_record(run_dir / RECORD_FILE)['status']}] "
    except (OSError, ValueError, KeyError):
        return ""


def listing(suite: str, scale: str, cells: Sequence[Cell], results_dir: Path) -> str:
    """Cells grouped by budget and eval settings, like ``pytest --collect-only``; a cell with
    a record already says its status."""
    lines = [f"{suite}/{scale}: {len(cells)} cell{'s' if len(cells) != 1 else ''}"]
    groups: dict[tuple[str, Budget, EvalSettings], list[Cell]] = {}
    for c in cells:
        groups.setdefault((c.group, c.budget, c.eval), []).append(c)
    folder = results_dir / suite / scale
    for (group, budget, settings), members in groups.items():
        lines += [
            "",
            f"group {group} ({len(members)} cell{'s' if len(members) != 1 else ''})",
            f"  budget: {settings_text(budget)}",
            f"  eval:   {settings_text(settings)}",
        ]
        for c in members:
            params = _params(c) + (f"  (--set {', '.join(c.overrides)})" if c.overrides else "")
            lines.append(
                f"  {_status(folder / c.run_id)}{c.run_id}" + (f"  {params}" if params else "")
            )
    return "\n".join(lines)
