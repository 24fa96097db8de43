"""The listener that feeds one tracker, and what every tracker is told: the run's name and tags,
its settings, each epoch's logged numbers, and the record's."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bench.formats import epoch_number, is_finite_number
from bench.listener import EpochResult, Listener

if TYPE_CHECKING:
    from bench.records import RunRecord
    from bench.runner.loop import CellTraining
    from bench.suites import Cell

TAGS = ("suite", "scale", "dataset", "model", "objective", "seed")


class Tracker(Protocol):
    """What a tracker does with a run: ``start`` (the run's name is ``cell.run_id``),
    ``epoch`` (the epoch log line's numbers), ``end`` (the record), ``close``."""

    name: str

    def start(self, cell: Cell, run_dir: Path) -> None: ...

    def epoch(self, epoch: int, values: dict[str, float]) -> None: ...

    def end(self, record: RunRecord) -> None: ...

    def close(self) -> None: ...


def tags(cell: Cell) -> dict[str, str]:
    """What every tracker tags a run with."""
    return {k: str(getattr(cell, k)) for k in TAGS}


def settings(cell: Cell) -> dict[str, Any]:
    """The run's resolved settings, flat: ``model.hidden``, ``budget.lr``, ..."""
    from bench.suites import resolved_settings

    resolved = resolved_settings(cell.as_dict())
    return {f"{part}.{k}": v for part, values in resolved.items() for k, v in values.items()}


def scalars(entry: dict[str, Any]) -> dict[str, float]:
    """The numbers of an epoch log line (the epoch's number, from 1, is the step)."""
    return {k: float(v) for k, v in entry.items() if k != "epoch" and is_finite_number(v)}


def record_scalars(record: RunRecord) -> dict[str, float]:
    """The record's test metrics (``test/<metric>``) and its times and speed."""
    out = {f"test/{k}": float(v) for k in record.metrics if is_finite_number(v := record.value(k))}
    for k in (
        "epochs_trained",
        "best_epoch",
        "wall_time_s",
        "train_time_s",
        "train_examples_per_s",
    ):
        value = getattr(record, k)
        if is_finite_number(value):
            out[f"run/{k}"] = float(value)
    return out


class TrackerListener(Listener):
    """Feeds one tracker from a run's events. The tracker's first failure is one line through
    the run's warnings, then the tracker is dropped for the rest of the run: a tracker never
    stops training."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.dropped = False

    def _guard(self, run: CellTraining, what: str, call: Any) -> None:
        if self.dropped:
            return
        try:
            call()
        except Exception as exc:  # the tracker's server, disk or package: never the run's
            self.dropped = True
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            run.opts.warn(
                f"{run.cell.run_id}: {self.tracker.name} tracker stopped at {what} "
                f"({type(exc).__name__}: {first}); training goes on without it"
            )
            self._close()

    def _close(self) -> None:
        with contextlib.suppress(Exception):  # already failing: its first error was reported
            self.tracker.close()

    def on_run_start(self, run: CellTraining) -> None:
        self._guard(run, "the run's start", lambda: self.tracker.start(run.cell, run.run_dir))

    def on_epoch_end(self, run: CellTraining, result: EpochResult) -> None:
        values = scalars(result.entry)
        number = epoch_number(result.epoch)  # the step: epochs from 1, as the logs count them
        self._guard(run, f"epoch {number}", lambda: self.tracker.epoch(number, values))

    def on_run_end(self, run: CellTraining, record: RunRecord) -> None:
        self._guard(run, "the run's end", lambda: self.tracker.end(record))
        if not self.dropped:
            self._close()


def tracker_listeners(
    targets: list[tuple[str, str | None]], cell: Cell, run_dir: Path
) -> list[Listener]:
    """A listener per tracker named in ``BENCH_LOG_TO``."""
    out: list[Listener] = []
    for name, where in targets:
        if name == "tensorboard":
            from bench.trackers.tensorboard_tracker import TensorBoardTracker

            out.append(TrackerListener(TensorBoardTracker(where)))
        elif name == "mlflow":
            from bench.trackers.mlflow_tracker import MlflowTracker

            out.append(TrackerListener(MlflowTracker(where)))
    return out
