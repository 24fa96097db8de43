"""The one driver: runs an executor's tasks to the end, whatever the executor, and reports
each cell once. A cell whose task never returned a record gets a ``failed`` one written here,
from what the executor knows of its death."""

from __future__ import annotations

from collections.abc import Iterator

from bench.errors import FailFast
from bench.records import RunRecord
from bench.runner.executors import CellTask, Executor, Outcome
from bench.runner.options import RunOptions
from bench.runner.recording import failed_record

POLL_S = 0.25  # how often the driver relays the tasks' lines while they train


def drive(
    executor: Executor, tasks: list[CellTask], opts: RunOptions
) -> Iterator[tuple[int, RunRecord]]:
    """Yield ``(task index, record)`` as cells end; with ``opts.policy.fail_fast`` stop at the
    first failed one (:class:`~bench.errors.FailFast`), abandoning the others."""
    try:
        executor.start(tasks)
        while executor.busy:
            started, ended = executor.wait(POLL_S)
            _relay(executor, opts)
            for task in started:
                opts.display.on_cell("start", task.cell, None)
            for outcome in ended:
                record = _record(outcome, opts)
                opts.display.on_cell("end", outcome.task.cell, record)
                yield outcome.task.index, record
                if opts.policy.fail_fast and record.status == "failed":
                    raise FailFast(outcome.task.cell.run_id)
    except BaseException:
        executor.stop()
        raise
    finally:
        executor.close()
        _relay(executor, opts)


def _record(outcome: Outcome, opts: RunOptions) -> RunRecord:
    if outcome.record is not None:
        return outcome.record
    task = outcome.task
    assert outcome.error is not None, "an outcome holds a record or an error"
    return failed_record(task.cell, task.run_dir, outcome.error, opts, outcome.logged)


def _relay(executor: Executor, opts: RunOptions) -> None:
    for kind, line in executor.messages():
        (opts.messages.warn if kind == "warn" else opts.messages.log)(line)
