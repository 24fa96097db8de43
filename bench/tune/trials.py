"""One trial seen from outside the worker loop: the listener that reports its epochs to
Optuna, its best epoch, and how trials are counted and shown."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import StopRun
from bench.formats import epoch_number, number_text, param_text
from bench.listener import EpochResult, Listener
from bench.suites import Cell

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from bench.records import RunRecord
    from bench.runner import CellTraining, RunOptions
    from bench.tune.storage import OpenedStorage

# How a trial ended, kept in its user attrs; only these count towards --n-trials.
COUNTED_STATUS = ("finished", "pruned", "failed")


@dataclass(eq=False)
class TrialReporter(Listener):
    """The trial's listener: reports each epoch to the trial and prunes via StopRun; in
    multi-objective studies, the final validation NLL and MI."""

    trial: optuna.Trial
    cell: Cell
    multi: bool
    opts: RunOptions
    pruner_name: str
    final: dict[str, float] = field(default_factory=dict)  # validation NLL and MI (multi)

    def on_epoch_end(self, run: CellTraining, result: EpochResult) -> None:
        # Reported under the epoch's number (from 1), as the logs, plots and dashboard show it.
        epoch = epoch_number(result.epoch)
        value = result.entry.get("val_neg_elbo")
        if value is None:
            raise StopRun("no validation -ELBO was logged (metric neg_elbo missing)", "failed")
        if not math.isfinite(value):
            raise StopRun(f"diverged: validation -ELBO is {value} after epoch {epoch}", "failed")
        if self.multi:
            return  # Optuna prunes single-objective studies only
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            raise StopRun(
                f"pruned by the {self.pruner_name} pruner after epoch {epoch} "
                f"(validation -ELBO {number_text(value)})",
                "pruned",
            )

    def on_run_end(self, run: CellTraining, record: RunRecord) -> None:
        if not record.finished or not self.multi:
            return
        from bench.runner import evaluate

        # The trade-off is tuned on validation data (the run's subset of it); the test split
        # stays for leaderboards.
        parts = run.parts
        out = evaluate(run.cell, parts.model, parts.valid, self.opts.device, ["nll", "mi"])
        self.final = {k: float(v.value) for k, v in out.items()}


def best_epoch(run_dir: Path) -> dict[str, float]:
    """The logged validation metrics of the epoch with the lowest finite validation -ELBO."""
    path = run_dir / "epochs.jsonl"
    if not path.exists():
        return {}
    best: dict[str, float] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        v = entry.get("val_neg_elbo")
        if (
            isinstance(v, (int, float))
            and math.isfinite(v)
            and (not best or v < best["val_neg_elbo"])
        ):
            best = {
                k: entry[k]
                for k in entry
                if k.startswith("val_") and isinstance(entry[k], (int, float))
            }
    return best


def counts(trials: Sequence[FrozenTrial]) -> dict[str, int]:
    """Trials by outcome; ``lost`` are those whose worker died (they were retried)."""
    from optuna.trial import TrialState

    out = {"finished": 0, "pruned": 0, "failed": 0, "running": 0, "waiting": 0, "lost": 0}
    by_state = {
        TrialState.COMPLETE: "finished",
        TrialState.PRUNED: "pruned",
        TrialState.RUNNING: "running",
        TrialState.WAITING: "waiting",
    }
    for t in trials:
        if t.state in by_state:
            out[by_state[t.state]] += 1
        elif t.user_attrs.get("status") == "failed":  # ran and failed (diverged...): counts
            out["failed"] += 1
        else:  # its worker died or was interrupted; the trial was queued again
            out["lost"] += 1
    out["done"] = out["finished"] + out["pruned"] + out["failed"]
    return out


def study_counts(name: str, store: OpenedStorage) -> dict[str, int]:
    """:func:`counts` of a study by name; all zero when it does not exist yet."""
    import optuna

    try:
        study = optuna.load_study(study_name=name, storage=store.storage)
    except KeyError:
        return counts([])
    return counts(study.get_trials(deepcopy=False))


def counts_text(c: Mapping[str, int], finished: bool = True) -> str:
    """``"N trials (F finished, P pruned, X failed[, L lost and retried])"``."""
    shown = [f"{c['finished']} finished"] if finished else []
    shown += [f"{c['pruned']} pruned", f"{c['failed']} failed"]
    if c["lost"]:
        shown.append(f"{c['lost']} lost and retried")
    return f"{c['done']} trials ({', '.join(shown)})"


def chosen_trials(study: optuna.Study, multi: bool) -> list[FrozenTrial]:
    """The best trial, or the Pareto set of a multi-objective study; none before one finished."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return []
    if multi:
        return sorted(study.best_trials, key=lambda t: t.number)
    return [study.best_trial]


def params_text(params: Mapping[str, Any]) -> str:
    """Searched values without their section: ``latent_dim=8, lam=0.5``."""
    return ", ".join(f"{k.split('.', 1)[1]}={param_text(v)}" for k, v in params.items())
