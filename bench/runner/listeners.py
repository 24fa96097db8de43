"""Listeners: what happens around a run's loop, in the spirit of Lightning's callbacks.

The loop (:mod:`bench.runner.loop`) trains and validates; everything else is a listener:
model selection, learning-rate decay, early stopping, the epoch log, checkpoints, console
lines and bars, the plugins' ``on_*`` hooks, tuning's pruning. Listeners hear the events in
list order; the built-in ones come first (:func:`default_listeners`), then those plugins add
through the ``run_listeners`` hook, then the caller's.

The three decisions (``"select"``, ``"lr_decay"``, ``"early_stop"``) are taken only while the
run's training method does not hold them (:meth:`bench.Method.holds`); when the method's
:meth:`~bench.Method.phase` changes, selection starts afresh (best epoch, bad-epoch counts).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bench import plugins
from bench.files import atomic_torch_save
from bench.formats import epoch_number, metric_text, number_text
from bench.listener import DECISIONS, EpochResult, Listener
from bench.records import EPOCH_LOG, RunRecord
from bench.runner.checkpoints import BEST_WEIGHTS, save_checkpoint

if TYPE_CHECKING:
    from bench.runner.loop import CellTraining

SELECT, LR_DECAY, EARLY_STOP = DECISIONS
__all__ = ["DECISIONS", "EpochResult", "Listener", "default_listeners", "plugin_listeners"]


# ---- the three decisions -------------------------------------------------------------------


class BestEpoch(Listener):
    """Keeps the weights of the best validation -ELBO in ``best.pt``, which the final
    evaluation uses; counts the epochs without improvement."""

    def on_epoch_end(self, run: CellTraining, result: EpochResult) -> None:
        state = run.state
        if run.holds(SELECT):
            return
        if result.score < state.best:
            state.best, state.best_epoch, state.bad, state.bad_lr = result.score, result.epoch, 0, 0
            atomic_torch_save(run.parts.model.state_dict(), run.run_dir / BEST_WEIGHTS)
        else:
            state.bad += 1
            state.bad_lr += 1

    def on_phase_change(self, run: CellTraining, phase: Any) -> None:
        (run.run_dir / BEST_WEIGHTS).unlink(missing_ok=True)


class LrDecay(Listener):
    """Multiplies the learning rate by ``budget.lr_decay`` after ``lr_decay_patience`` bad
    epochs (from epoch ``lr_decay_after``, at most ``max_decays`` times); the sticky schedule
    of the reference text code decays after every epoch once triggered."""

    def on_epoch_end(self, run: CellTraining, result: EpochResult) -> None:
        b, state = run.cell.budget, run.state
        if not b.lr_decay or run.holds(LR_DECAY):
            return
        triggered = result.epoch + 1 >= b.lr_decay_after and state.bad_lr >= b.lr_decay_patience
        limited = b.max_decays is not None and state.decays >= b.max_decays
        if b.lr_decay_sticky:
            # Once triggered, the rate decays after every epoch with no count limit (min_lr
            # ends the run).
            state.decaying = state.decaying or triggered
            triggered, limited = state.decaying, False
        if triggered and not limited:
            for g in run.parts.optimizer.param_groups:
                g["lr"] *= b.lr_decay
            state.decays += 1
            state.bad_lr = 0


class EarlyStopping(Listener):
    """Ends training after ``budget.patience`` epochs without a better validation -ELBO, or
    once the learning rate is under ``budget.min_lr``."""

    def on_epoch_end(self, run: CellTraining, result: EpochResult) -> None:
        if run.holds(EARLY_STOP):
            return
        lr = run.parts.optimizer.param_groups[0]["lr"]
        run.state.stop_reason = stop_reason(run.cell.budget, run.state.bad, lr)


def stop_reason(budget: Any, bad_epochs: int, lr: float) -> str | None:
    """Why training ends before its last epoch, if it does: patience or the rate floor."""
    if budget.patience is not None and bad_epochs >= budget.patience:
        return f"early stop: no better validation -ELBO in {budget.patience} epochs"
    if budget.min_lr is not None and lr < budget.min_lr:
        return f"learning rate {lr:.4g} fell below min_lr {budget.min_lr:g}"
    return None


# ---- what the run leaves behind ------------------------------------------------------------


class EpochLog(Listener):
    """Appends each epoch's entry to ``epochs.jsonl``."""

    def on_epoch_end(self, run: CellTraining, result: EpochResult) -> None:
        with (run.run_dir / EPOCH_LOG).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(result.entry) + "\n")


class Checkpointing(Listener):
    """Saves the resume checkpoint after every epoch (after the decisions above)."""

    def on_epoch_end(self, run: CellTraining, result: EpochResult) -> None:
        run.state.epoch = result.epoch + 1
        save_checkpoint(run)


class EpochLines(Listener):
    """One log line per epoch, and one when the run stops early."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log

    def on_epoch_end(self, run: CellTraining, result: EpochResult) -> None:
        # Epochs counted from 1 and values in their one format (bench.formats), as in the
        # tables and plots: AU as "2 / 8", not "2.000".
        values = "".join(
            f", val {k} {metric_text(v.value, v.settings)}"
            for k, v in result.metrics.items()
            if isinstance(v.value, (int, float))
        )
        number = epoch_number(result.epoch)
        self.log(
            f"{run.cell.run_id} epoch {number} of {run.cell.budget.epochs}: "
            f"loss {number_text(result.entry['train_loss'])}" + values
        )
        if run.state.stop_reason:
            self.log(f"{run.cell.run_id}: stopped after epoch {number}: {run.state.stop_reason}")


class PluginHooks(Listener):
    """The plugins' ``on_run_start``, ``on_epoch_end`` and ``on_run_end`` hooks."""

    def on_run_start(self, run: CellTraining) -> None:
        plugins.call_each("on_run_start", cell=run.cell, run_dir=run.run_dir)

    def on_epoch_end(self, run: CellTraining, result: EpochResult) -> None:
        plugins.call_each("on_epoch_end", cell=run.cell, epoch=result.epoch, metrics=result.entry)

    def on_run_end(self, run: CellTraining, record: RunRecord) -> None:
        model = None if run.parts is None else run.parts.model
        plugins.call_each(
            "on_run_end", cell=run.cell, record=record, model=model, run_dir=run.run_dir
        )


class ProgressBars(Listener):
    """The training bar (steps, epoch k/E) and the evaluation bar (the metric being computed)
    of a run, on a rich ``Progress``."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.task: Any = None

    def on_run_start(self, run: CellTraining) -> None:
        per_epoch, epochs = run.parts.steps_per_epoch, run.cell.budget.epochs
        self.task = self.progress.add_task(
            f"train {run.cell.run_id}",
            total=epochs * per_epoch,
            completed=run.state.epoch * per_epoch,
        )

    def on_train_progress(self, run: CellTraining, steps: int) -> None:
        epoch = run.state.step // max(1, run.parts.steps_per_epoch)
        self.progress.update(
            self.task,
            advance=steps,
            description=f"train {run.cell.run_id} {min(epoch + 1, run.cell.budget.epochs)}"
            f"/{run.cell.budget.epochs}",
        )

    def on_eval_progress(
        self, run: CellTraining, metric: str, done: int, total: int | None
    ) -> None:
        if self.task is not None:
            self.progress.update(
                self.task,
                description=f"eval {run.cell.run_id}: {metric}",
                completed=done,
                total=total,
            )

    def on_run_end(self, run: CellTraining, record: RunRecord) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None


def default_listeners(run: CellTraining) -> list[Listener]:
    """The built-in listeners of a run, in the order they hear each event."""
    out: list[Listener] = [BestEpoch(), LrDecay(), EarlyStopping(), EpochLog(), Checkpointing()]
    out.append(EpochLines(run.opts.messages.log))
    if run.opts.display.progress is not None:
        out.append(ProgressBars(run.opts.display.progress))
    out.append(PluginHooks())
    return out


def plugin_listeners(run: CellTraining) -> list[Listener]:
    """Listeners plugins add to this run through the ``run_listeners`` hook."""
    out: list[Listener] = []
    for given in plugins.call_each("run_listeners", cell=run.cell, run_dir=run.run_dir):
        if given is None:
            continue
        out.extend(given if isinstance(given, (list, tuple)) else [given])
    return out
