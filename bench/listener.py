"""What a run's listeners are: the base class plugins and callers subclass, and the epoch result
they hear. Torch-free, so a plugin module can define listeners without loading torch; the
built-in ones live in :mod:`bench.runner.listeners`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.records import RunRecord
    from bench.runner.loop import CellTraining

# The runner's decisions a training method may hold (bench.Method.holds).
DECISIONS = ("select", "lr_decay", "early_stop")


@dataclass
class EpochResult:
    """One epoch as the listeners see it: the validation score that selects epochs (-ELBO),
    the validation metrics, and ``entry``, the line the epoch log gets."""

    epoch: int
    score: float
    metrics: dict[str, Any]  # name -> MetricValue on the validation split
    entry: dict[str, Any] = field(default_factory=dict)


class Listener:
    """Hears one run's events; override the ones you need. ``run`` is the
    :class:`~bench.runner.CellTraining` (``run.cell``, ``run.run_dir``, ``run.parts``,
    ``run.state``, ``run.holds(decision)``). Raising :class:`bench.StopRun` from
    :meth:`on_epoch_end` ends the run with that status."""

    def on_run_start(self, run: CellTraining) -> None:
        """The parts are built (and the checkpoint loaded, when resuming)."""

    def on_train_progress(self, run: CellTraining, steps: int) -> None:
        """``steps`` more training steps are done (about 50 calls an epoch)."""

    def on_epoch_end(self, run: CellTraining, result: EpochResult) -> None:
        """An epoch was trained and validated."""

    def on_phase_change(self, run: CellTraining, phase: Any) -> None:
        """The training method entered ``phase``; selection starts afresh."""

    def on_eval_progress(
        self, run: CellTraining, metric: str, done: int, total: int | None
    ) -> None:
        """The final evaluation computes ``metric`` (its batches, where it reports them)."""

    def on_run_end(self, run: CellTraining, record: RunRecord) -> None:
        """The record is written (finished, failed or stopped)."""
