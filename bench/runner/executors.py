"""Where cells train: the executor protocol, and the executor that trains them in this
process. ``--jobs`` (:mod:`bench.runner.parallel`) and ``--ray`` (:mod:`bench.runner.ray`)
implement the same protocol; :func:`bench.runner.driver.drive` runs any of them."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bench.records import RunRecord
from bench.runner.cell import DataCache
from bench.runner.loop import train_cell
from bench.runner.options import RunOptions
from bench.suites import Cell


@dataclass(frozen=True)
class CellTask:
    """One cell to train: its place in the suite's order, the cell, its run folder."""

    index: int
    cell: Cell
    run_dir: Path


@dataclass(frozen=True)
class Outcome:
    """A task that ended: the record its run returned, or, when it never returned one (its
    process died, its node was lost, it raised outside the run), the error, and the exception
    whose traceback ``error.log`` should show (``logged``: a remote error carrying the task's
    traceback). The driver writes the failed record for the latter."""

    task: CellTask
    record: RunRecord | None = None
    error: BaseException | None = None
    logged: BaseException | None = None


class Executor(Protocol):
    """Trains cells somewhere. The driver calls :meth:`start` once, then :meth:`wait` while
    :attr:`busy`, relaying :meth:`messages` after each; :meth:`stop` abandons the work now
    (fail fast, Ctrl-C; checkpoints stay for ``--resume``); :meth:`close` always ends it.

    A user error (:class:`~bench.errors.BenchError`) met by a task is raised from
    :meth:`wait`, as it would be in this process."""

    @property
    def busy(self) -> bool: ...

    def start(self, tasks: list[CellTask]) -> None: ...

    def wait(self, timeout: float) -> tuple[list[CellTask], list[Outcome]]:
        """The tasks that started and those that ended since the last call."""
        ...

    def messages(self) -> list[tuple[str, str]]:
        """``("log" | "warn", line)`` from the tasks since the last call."""
        ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


class InProcess:
    """Cells one after another in this process, keeping loaded data sets for the next cell."""

    def __init__(self, opts: RunOptions, cache: DataCache | None = None) -> None:
        self.opts = opts
        self.cache: DataCache = {} if cache is None else cache
        self.queue: deque[CellTask] = deque()
        self.current: CellTask | None = None

    @property
    def busy(self) -> bool:
        return bool(self.queue) or self.current is not None

    def start(self, tasks: list[CellTask]) -> None:
        self.queue.extend(tasks)

    def wait(self, timeout: float) -> tuple[list[CellTask], list[Outcome]]:
        # Two calls per cell: the first announces it, the second trains it, so the driver
        # reports the start before the (long) training.
        if self.current is None:
            self.current = self.queue.popleft()
            return [self.current], []
        task, self.current = self.current, None
        record = train_cell(task.cell, task.run_dir, self.opts, cache=self.cache)
        return [], [Outcome(task, record)]

    def messages(self) -> list[tuple[str, str]]:
        return []  # lines go straight to the console here

    def stop(self) -> None:
        self.queue.clear()
        self.current = None

    def close(self) -> None:
        pass
