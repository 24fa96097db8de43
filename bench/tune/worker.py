"""A worker: claims trials of one study under the storage's lock, trains each through
:func:`bench.runner.train_cell`, and tells Optuna how it ended.

Any number of workers, on one host or several, share a study: each claim checks the budget
under the lock, so the study ends with exactly ``n_trials`` counted trials. A trial whose worker
died (no heartbeat on PostgreSQL, a dead pid on the journal's host) is failed and queued again;
its retry resumes from the dead trial's checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import plugins
from bench.errors import BenchError, ConfigError
from bench.formats import duration_text, number_text
from bench.suites import Cell
from bench.tune.space import cell_with, search_space, study_budget, suggest_values
from bench.tune.storage import (
    TUNE_DIR,
    Heartbeat,
    OpenedStorage,
    retried_from,
    retry_callback,
    worker_alive,
    worker_id,
)
from bench.tune.targets import Target
from bench.tune.trials import COUNTED_STATUS, TrialReporter, best_epoch, counts, params_text

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from bench.records import RunRecord
    from bench.runner import RunOptions
    from bench.runner.cell import DataCache

TRIAL_SCALE_SUFFIX = "-trials"  # trial cells are labelled <scale>-trials in their records


@dataclass
class TuneSettings:
    n_trials: int = 20
    multi_objective: bool = False
    sampler: str = "tpe"
    pruner: str = "median"
    sampler_seed: int | None = None
    worker_index: int = 0
    poll_s: float = 2.0
    space: dict[str, Any] = field(default_factory=dict)


def make_sampler(settings: TuneSettings, n_trials: int) -> Any:
    import optuna

    seed = None if settings.sampler_seed is None else settings.sampler_seed + settings.worker_index
    startup = max(2, min(10, n_trials // 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant_liar is marked experimental
        if settings.sampler == "tpe":
            return optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=startup, constant_liar=True
            )
        if settings.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed)
        return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(settings: TuneSettings, epochs: int) -> Any:
    import optuna

    if settings.pruner == "median":
        # Steps are epoch numbers (from 1): the first epoch is never pruned.
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)
    if settings.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
    return optuna.pruners.NopPruner()


def same_values(study: optuna.Study, trial: optuna.Trial) -> FrozenTrial | None:
    """A finished or pruned trial of ``study`` with exactly ``trial``'s values, if any."""
    from optuna.trial import TrialState

    ended = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    return next((t for t in ended if t.number != trial.number and t.params == trial.params), None)


class Worker:
    """Runs trials of one study until it holds ``n_trials`` finished trials."""

    def __init__(
        self,
        target: Target,
        settings: TuneSettings,
        store: OpenedStorage,
        opts: RunOptions,
        results_dir: Path,
        log: Callable[[str], None],
    ) -> None:
        self.target, self.settings, self.store, self.opts = target, settings, store, opts
        self.log = log
        self.dims = search_space(target, settings.space)
        self.n_trials = study_budget(self.dims, settings.n_trials)
        self.name = target.study_name(settings.multi_objective)
        self.trials_dir = results_dir / TUNE_DIR / target.slug(settings.multi_objective)
        self.results_dir = results_dir
        self.cache: DataCache = {}  # the data sets, loaded once for every trial of this worker

    def run(self) -> dict[str, int]:
        study = self.open_study()
        ran = 0
        while True:
            trial, done = self._claim(study)
            if done:
                break
            if trial is None:
                time.sleep(self.settings.poll_s)
                continue
            self._run_trial(study, trial)
            ran += 1
        c = counts(study.get_trials(deepcopy=False))
        c["ran_here"] = ran
        return c

    # ---- the study ---------------------------------------------------------------------------

    def open_study(self) -> optuna.Study:
        import optuna

        multi = self.settings.multi_objective
        directions = ["minimize", "maximize"] if multi else ["minimize"]
        study = optuna.create_study(
            study_name=self.name,
            storage=self.store.storage,
            sampler=make_sampler(self.settings, self.n_trials),
            pruner=make_pruner(self.settings, self.target.base.budget.epochs),
            directions=directions,
            load_if_exists=True,
        )
        if [d.name.lower() for d in study.directions] != directions:
            raise ConfigError(f"study {self.name!r} exists with other directions")
        if "search_space" not in study.user_attrs:
            self._describe(study)
        return study

    def _describe(self, study: optuna.Study) -> None:
        """What the dashboard shows of a new study: its space, objectives and suite row."""
        c = self.target.base
        study.set_user_attr("search_space", [d.describe() for d in self.dims])
        study.set_user_attr(
            "objectives",
            ["val_nll", "val_mi"] if self.settings.multi_objective else ["val_neg_elbo"],
        )
        for key in ("suite", "scale", "group", "dataset", "model", "objective"):
            study.set_user_attr(key, getattr(c, key))

    # ---- claiming trials ---------------------------------------------------------------------

    def _claim(self, study: optuna.Study) -> tuple[optuna.Trial | None, bool]:
        """(trial, finished): a new or queued trial if the budget allows one."""
        with self.store.lock(self.name):
            self._recover(study)
            c = counts(study.get_trials(deepcopy=False))
            if c["done"] >= self.n_trials:
                return None, True
            if c["waiting"] == 0 and c["done"] + c["running"] >= self.n_trials:
                return None, False  # others hold the remaining trials; watch them
            trial = study.ask()
            trial.set_user_attr("worker", worker_id())
            if self.store.heartbeat_interval:
                self.store.storage.record_heartbeat(trial._trial_id)
            return trial, False

    def _recover(self, study: optuna.Study) -> None:
        """Fail trials whose worker is gone and queue them again (under the claim lock)."""
        from optuna.storages import fail_stale_trials
        from optuna.trial import TrialState

        if self.store.kind == "postgresql":
            fail_stale_trials(study)  # heartbeats; the storage's callback re-queues them
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker = t.user_attrs.get("worker")
            if worker is None:
                # Workers claim and label a trial under this lock, so an unlabelled running
                # trial seen here lost its worker in between (it would never send a heartbeat).
                self._requeue(study, t, "its worker died while claiming it")
            elif self.store.kind == "journal" and worker_alive(worker) is False:
                # The journal has no heartbeats, but it serves one host: the OS knows.
                self._requeue(study, t, f"worker {worker} died")

    def _requeue(self, study: optuna.Study, trial: FrozenTrial, reason: str) -> None:
        from optuna.trial import TrialState

        storage = self.store.storage
        storage.set_trial_user_attr(trial._trial_id, "status", "lost")
        storage.set_trial_user_attr(trial._trial_id, "reason", reason)
        if storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
            retry_callback()(study, storage.get_trial(trial._trial_id))
            self.log(f"{self.name}: trial {trial.number} lost ({reason}); queued again")

    # ---- one trial ---------------------------------------------------------------------------

    def _run_trial(self, study: optuna.Study, trial: optuna.Trial) -> None:
        from optuna.exceptions import UpdateFinishedTrialError

        cell, run_dir, opts = self._prepare(trial)
        twin = same_values(study, trial)
        if twin is not None:
            self._reuse(study, trial, twin)
            return
        reporter = TrialReporter(
            trial, cell, self.settings.multi_objective, opts, self.settings.pruner
        )
        t0 = time.time()
        record = self._train(study, trial, cell, run_dir, opts, reporter)
        if record is None:
            return
        try:
            self._tell(study, trial, record, reporter, run_dir, time.time() - t0)
        except UpdateFinishedTrialError:
            # Another worker declared this trial dead (no heartbeat for the grace period) and
            # queued it again; its retry will stand in for this result.
            self.log(
                f"{self.name} trial {trial.number}: already ended by another worker "
                "(heartbeat lost); result discarded"
            )

    def _reuse(self, study: optuna.Study, trial: optuna.Trial, twin: FrozenTrial) -> None:
        """Tell the result of ``twin``, an ended trial with the same values, without training
        them again (samplers propose a point again, most often in small discrete spaces)."""
        from optuna.trial import TrialState

        for key, value in twin.user_attrs.items():
            if key not in ("worker", "config", "device"):
                trial.set_user_attr(key, value)
        trial.set_user_attr("same_as_trial", twin.number)
        if twin.state == TrialState.COMPLETE:
            study.tell(trial, twin.values if self.settings.multi_objective else twin.value)
        else:
            study.tell(trial, state=TrialState.PRUNED)
        params = params_text(trial.params)
        self.log(
            f"{self.name} trial {trial.number} ({params}): the values of trial {twin.number}; "
            f"its result reused, not trained again"
        )

    def _prepare(self, trial: optuna.Trial) -> tuple[Cell, Path, RunOptions]:
        """The trial's cell, run folder and options; its values recorded on the trial."""
        from bench.records import device_name

        origin = retried_from(self.store.storage.get_trial(trial._trial_id))
        number = trial.number if origin is None else origin
        values = suggest_values(trial, self.dims)
        base = self.target.base
        metrics = tuple(m.name for m in plugins.registries().metrics if m.per_epoch)
        cell = cell_with(
            base,
            values,
            scale=base.scale + TRIAL_SCALE_SUFFIX,
            group=f"{base.group}.trial{number:05d}",
            metrics=metrics,
        )
        run_dir = self.trials_dir / f"trial-{number:05d}"
        # A retried trial continues from its predecessor's checkpoint when the folder is here.
        opts = dataclasses.replace(self.opts, resume=origin is not None)
        trial.set_user_attr("config", values)  # every value, fixed ones too: re-training needs them
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("device", device_name(opts.device))
        return cell, run_dir, opts

    def _train(
        self,
        study: optuna.Study,
        trial: optuna.Trial,
        cell: Cell,
        run_dir: Path,
        opts: RunOptions,
        reporter: TrialReporter,
    ) -> RunRecord | None:
        """The run's record, or None when training raised (the trial then failed)."""
        from bench.runner import train_cell

        storage = self.store.storage
        try:
            with Heartbeat(storage, trial._trial_id, self.store.heartbeat_interval, self.log):
                return train_cell(cell, run_dir, opts, listeners=[reporter], cache=self.cache)
        except BaseException as exc:
            if self._fail(study, trial, exc):
                raise
            return None

    def _fail(self, study: optuna.Study, trial: optuna.Trial, exc: BaseException) -> bool:
        """Training raised: an interruption (Ctrl-C, SIGTERM) or a user error queues the trial
        again (True: raise on); anything else fails it (False)."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        give_back = isinstance(exc, (KeyboardInterrupt, SystemExit, BenchError))
        reason = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        with contextlib.suppress(UpdateFinishedTrialError):
            trial.set_user_attr("status", "interrupted" if give_back else "failed")
            trial.set_user_attr("reason", reason[:500])
            study.tell(trial, state=TrialState.FAIL)
            if give_back:
                retry_callback()(study, self.store.storage.get_trial(trial._trial_id))
        if not give_back:
            self.log(f"{self.name} trial {trial.number}: failed: {reason}")
        return give_back

    def _tell(
        self,
        study: optuna.Study,
        trial: optuna.Trial,
        record: RunRecord,
        reporter: TrialReporter,
        run_dir: Path,
        wall: float,
    ) -> None:
        from optuna.trial import TrialState

        best = best_epoch(run_dir)
        trial.set_user_attr("wall_time_s", round(wall, 3))
        trial.set_user_attr("epochs_trained", record.epochs_trained)
        for key, value in best.items():
            trial.set_user_attr(key, value)
        status, reason = self._outcome(record, best, reporter.final)
        trial.set_user_attr("status", status)
        if reason:
            trial.set_user_attr("reason", reason[:500])
        final = reporter.final
        if status == "finished" and self.settings.multi_objective:
            trial.set_user_attr("val_nll", final["nll"])
            study.tell(trial, [final["nll"], final["mi"]])
            shown = f"val NLL {number_text(final['nll'])}, MI {number_text(final['mi'])}"
        elif status == "finished":
            study.tell(trial, best["val_neg_elbo"])
            shown = f"val -ELBO {number_text(best['val_neg_elbo'])}"
        elif status == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
            shown = reason or "pruned"
        else:
            study.tell(trial, state=TrialState.FAIL)
            shown = f"failed: {reason}"
        params = params_text(trial.params)
        self.log(f"{self.name} trial {trial.number} ({params}): {shown} [{duration_text(wall)}]")

    def _outcome(
        self, record: RunRecord, best: dict[str, float], final: dict[str, float]
    ) -> tuple[str, str | None]:
        """(status, reason): the run's own, or failed when it left nothing finite to tell."""
        status, reason = record.status, record.reason
        multi = self.settings.multi_objective
        if status == "finished" and multi:
            nll, mi = final.get("nll", math.nan), final.get("mi", math.nan)
            if not (math.isfinite(nll) and math.isfinite(mi)):
                status, reason = "failed", f"diverged: validation NLL {nll}, MI {mi}"
        if status == "finished" and not multi and not best:
            status, reason = "failed", "no finite validation -ELBO was logged"
        if status not in COUNTED_STATUS:  # a plugin's own StopRun status ("stopped"...)
            status = "failed"
        return status, reason
