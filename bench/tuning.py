"""Hyperparameter tuning with Optuna: one study per (suite, scale, dataset, model, objective).

Search spaces come from the :class:`~bench.specs.Param` ranges that models and objectives
declare. A value a suite group sets explicitly is fixed; a TOML space file (``--space``) narrows,
fixes or re-opens any parameter and may add the learning rate (``[budget] lr``).

Trials train through :func:`bench.runner.train_cell`. A temporary in-process plugin reports the
validation -ELBO after every epoch (``trial.report``) and prunes through
:class:`~bench.errors.StopRun`. Runs that diverge are recorded as failed trials with the reason.

Storage: Optuna's journal file under ``<results>/tuning/`` by default (safe for several processes
on one host), or PostgreSQL (``--storage postgresql+psycopg://...`` or ``BENCH_TUNE_STORAGE``)
for workers on several machines, with heartbeats so that a dead worker's trial is retried.

Every worker claims trials under a lock (``flock`` on the journal, an advisory lock on
PostgreSQL), so any number of workers end a study with exactly ``--n-trials`` finished trials.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bench import plugins
from bench.errors import BenchError, ConfigError, StopRun
from bench.hookspecs import hookimpl
from bench.registry import suggest
from bench.specs import Param
from bench.suites import Budget, Cell, Group, Suite

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial

    from bench.leaderboard import Leaderboard
    from bench.runner import RunOptions

STORAGE_ENV = "BENCH_TUNE_STORAGE"
TUNE_DIR = "tuning"
JOURNAL_FILE = "journal.log"
TRIAL_SCALE_SUFFIX = "-trials"  # trial cells are labelled <scale>-trials in their records
TUNED_SUFFIX = "-tuned"  # re-trained best trials form the suite <suite>-tuned
SECTIONS = ("model", "objective", "budget")
# Budget fields a space file may open for search; none is searched unless a file asks.
BUDGET_PARAMS: dict[str, Param] = {
    "lr": Param(1e-3, 1e-4, 1e-2, log=True, help="learning rate"),
    "batch_size": Param(50, 16, 256, log=True, step=1, help="batch size"),
}
RANGE_KEYS = {"low", "high", "log", "step", "choices"}
# How a trial ended, kept in its user attrs; only these count towards --n-trials.
COUNTED_STATUS = ("finished", "pruned", "failed")


# ---- storage --------------------------------------------------------------------------------


def redact(url: str) -> str:
    """A storage URL fit to print or record: the password replaced by ``***``."""
    if "://" not in url:
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparsable: keep the scheme only, never the credentials
        return url.split("://", 1)[0] + "://***"


def _scrub(text: str, url: str) -> str:
    """Remove the password of ``url`` from an error message, whatever the driver put in it."""
    try:
        from sqlalchemy.engine import make_url

        password = make_url(url).password
    except Exception:
        password = None
    if password:
        text = text.replace(str(password), "***")
    return text.replace(url, redact(url))


@dataclass
class OpenedStorage:
    """An Optuna storage plus what the workers need around it."""

    storage: Any  # optuna.storages.BaseStorage
    description: str  # printable: a path or a redacted URL
    kind: str  # "journal" or "postgresql"
    lock_path: Path | None = None  # journal only
    heartbeat_interval: int | None = None

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Held while a worker inspects the study and claims a trial (one claim at a time)."""
        if self.kind == "journal":
            assert self.lock_path is not None
            with self.lock_path.open("a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
            return
        from sqlalchemy import text

        # A session-level advisory lock: the server drops it if the worker dies holding it.
        lock_id = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        conn = self.storage.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_id})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_id})
        finally:
            conn.close()


def _retry_callback() -> Callable[..., None]:
    from optuna import storages

    # Optuna 4.9 renamed RetryFailedTrialCallback; use whichever this version has.
    cls = (
        getattr(storages, "RetryHeartbeatStaleTrialCallback", None)
        or storages.RetryFailedTrialCallback
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(max_retry=3, inherit_intermediate_values=True)


def _retried_from(trial: FrozenTrial) -> int | None:
    return trial.system_attrs.get("failed_trial")


def open_storage(
    spec: str | None,
    results_dir: Path,
    heartbeat_interval: int = 30,
    grace_period: int | None = None,
) -> OpenedStorage:
    """``spec``: None (journal under ``results_dir``), a journal file path, or a PostgreSQL URL."""
    import optuna

    spec = spec or os.environ.get(STORAGE_ENV) or None
    if spec is None or "://" not in spec:
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        path = Path(spec) if spec else results_dir / TUNE_DIR / JOURNAL_FILE
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # The open-lock is the one optuna-dashboard uses on the same file.
            backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
        except OSError as exc:
            raise ConfigError(f"--storage: cannot use journal file {path}: {exc}") from None
        return OpenedStorage(
            optuna.storages.JournalStorage(backend),
            str(path),
            "journal",
            lock_path=path.with_name(path.name + ".claim-lock"),
        )

    from sqlalchemy import exc as sa_exc
    from sqlalchemy.engine import make_url

    shown = redact(spec)
    try:
        url = make_url(spec)
    except (sa_exc.ArgumentError, ValueError):
        raise ConfigError(f"--storage: cannot parse storage URL {shown!r}") from None
    if url.get_backend_name() != "postgresql":
        raise ConfigError(
            f"--storage: {url.get_backend_name()!r} is not supported; use a journal file path "
            "(one host) or postgresql+psycopg://user:password@host/db (several hosts)"
        )
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")  # the driver this project installs
    if not url.database:
        raise ConfigError(f"--storage: URL {shown!r} names no database")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # heartbeats are marked experimental
            storage = optuna.storages.RDBStorage(
                url.render_as_string(hide_password=False),
                engine_kwargs={"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}},
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=_retry_callback(),
            )
    except (sa_exc.NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"--storage: no driver for {shown!r}: {_scrub(str(exc), spec)}") from None
    except (sa_exc.SQLAlchemyError, OSError) as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise BenchError(f"cannot reach storage {shown}: {_scrub(first, spec)}") from None
    return OpenedStorage(storage, shown, "postgresql", heartbeat_interval=heartbeat_interval)


# ---- targets and search spaces ---------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One leaderboard row to tune: a group's (dataset, model, objective) at its first seed."""

    base: Cell
    group: Group
    with_group: bool = False  # two groups share this row: the group joins the study name

    @property
    def seeds(self) -> tuple[int, ...]:
        return self.group.seeds

    def study_name(self, multi_objective: bool) -> str:
        c = self.base
        row = f"{c.dataset}/{c.model}/{c.objective}"
        name = f"{c.suite}/{c.scale}/" + (f"{c.group}/{row}" if self.with_group else row)
        return name + ("/nll-mi" if multi_objective else "")

    def slug(self, multi_objective: bool) -> str:
        return self.study_name(multi_objective).replace("/", "__")


def select_targets(
    suite: Suite,
    scale: str | None,
    datasets: Sequence[str] = (),
    models: Sequence[str] = (),
    objectives: Sequence[str] = (),
) -> tuple[str, list[Target]]:
    """The suite's rows at ``scale``, filtered; unknown names fail with suggestions."""
    from bench.runner import select_cells, validate_cells

    regs = plugins.registries()
    for name in datasets:
        regs.datasets.get(name)
    for name in models:
        regs.models.get(name)
    for name in objectives:
        regs.objectives.get(name)
    scale, cells = select_cells(suite, scale)
    groups = {g.name: g for g in suite.groups.get(scale, [])}
    chosen = [
        c
        for c in cells
        if (not datasets or c.dataset in datasets)
        and (not models or c.model in models)
        and (not objectives or c.objective in objectives)
    ]
    if not chosen:
        rows = sorted({f"{c.dataset}/{c.model}/{c.objective}" for c in cells})
        raise ConfigError(
            f"suite {suite.name!r} ({scale}) has no row matching the given --dataset/--model/"
            f"--objective; its rows: {', '.join(rows)}"
        )
    validate_cells(chosen)
    firsts: dict[tuple[str, str, str, str], Cell] = {}
    for c in chosen:
        firsts.setdefault((c.group, c.dataset, c.model, c.objective), c)
    rows: dict[tuple[str, str, str], int] = {}
    for _, *row in firsts:
        rows[tuple(row)] = rows.get(tuple(row), 0) + 1
    return scale, [
        Target(base=c, group=groups[c.group], with_group=rows[key[1:]] > 1)
        for key, c in firsts.items()
    ]


@dataclass(frozen=True)
class Dimension:
    """One parameter of a search space: searched over ``distribution`` or fixed at ``value``."""

    name: str  # "model.latent_dim", "objective.lam", "budget.lr"
    distribution: Any = None  # optuna BaseDistribution, None when fixed
    value: Any = None

    def describe(self) -> str:
        d = self.distribution
        if d is None:
            return f"{self.name}={self.value!r}"
        if hasattr(d, "choices"):
            return f"{self.name} in {list(d.choices)}"
        return f"{self.name} in [{d.low}, {d.high}]" + (" log" if d.log else "")


def _distribution(p: Param, where: str) -> BaseDistribution | None:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if p.choices:
        return CategoricalDistribution(list(p.choices))
    if p.low is None or p.high is None:
        return None
    if not p.low <= p.high:
        raise ConfigError(f"{where}: low {p.low} is above high {p.high}")
    if p.log and p.low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {p.low}")
    is_int = isinstance(p.default, int) and not isinstance(p.default, bool)
    if is_int:
        step = int(p.step or 1)
        if p.log and step != 1:
            raise ConfigError(f"{where}: a log range cannot have a step")
        return IntDistribution(int(p.low), int(p.high), log=p.log, step=step)
    if p.log and p.step:
        raise ConfigError(f"{where}: a log range cannot have a step")
    return FloatDistribution(float(p.low), float(p.high), log=p.log, step=p.step)


def load_space_file(path: Path) -> dict[str, Any]:
    """A TOML space file: ``[model]``, ``[objective]``, ``[budget]`` tables, optionally nested by
    name (``[objective.kl-anneal]``). A scalar fixes a parameter; a table with ``low``/``high``
    (``log``, ``step``) or ``choices`` sets its range."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"--space: {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--space: {path}: invalid TOML: {exc}") from None
    for key, value in data.items():
        if key not in SECTIONS:
            raise ConfigError(f"{path}: {key}: unknown section{suggest(key, SECTIONS)}")
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: {key}: expected a table")
    return data


def _is_range(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and set(value) <= RANGE_KEYS


def _overrides(space: Mapping[str, Any], section: str, item: str) -> dict[str, Any]:
    """The generic ``[section]`` entries, then ``[section.<item>]`` ones on top."""
    table = space.get(section, {})
    out = {k: v for k, v in table.items() if not isinstance(v, dict) or _is_range(v)}
    named = table.get(item)
    if isinstance(named, dict) and not _is_range(named):
        out.update(named)
    return out


def check_space(space: Mapping[str, Any], targets: Sequence[Target], where: str) -> None:
    """Every key of the space file names a parameter of some target (typos fail early)."""
    regs = plugins.registries()
    declared: dict[str, dict[str, set[str]]] = {s: {} for s in SECTIONS}
    for t in targets:
        declared["model"].setdefault(t.base.model, set()).update(
            regs.models.get(t.base.model).params
        )
        declared["objective"].setdefault(t.base.objective, set()).update(
            regs.objectives.get(t.base.objective).params
        )
    declared["budget"][""] = set(BUDGET_PARAMS)
    for section, table in space.items():
        known_all = set().union(*declared[section].values()) if declared[section] else set()
        for key, value in table.items():
            if isinstance(value, dict) and not _is_range(value):
                if section == "budget":
                    raise ConfigError(f"{where}: budget.{key}: expected a value or a range")
                names = declared[section].get(key)
                if names is None:
                    raise ConfigError(
                        f"{where}: [{section}.{key}]: no tuned {section} is called {key!r}"
                        f"{suggest(key, declared[section])}"
                    )
                for sub, subval in value.items():
                    if sub not in names:
                        raise ConfigError(
                            f"{where}: {section}.{key}.{sub}: {key} has no parameter {sub!r}"
                            f"{suggest(sub, names)}"
                        )
                    _check_range(subval, f"{where}: {section}.{key}.{sub}")
            elif key not in known_all:
                raise ConfigError(
                    f"{where}: {section}.{key}: no tuned {section} has this parameter"
                    f"{suggest(key, known_all)}"
                )
            else:
                _check_range(value, f"{where}: {section}.{key}")


def _check_range(value: Any, where: str) -> None:
    if isinstance(value, dict):
        bad = set(value) - RANGE_KEYS
        if bad:
            raise ConfigError(
                f"{where}: unknown range key {sorted(bad)[0]!r}; use {sorted(RANGE_KEYS)}"
            )
        if "choices" not in value and not {"low", "high"} <= set(value):
            raise ConfigError(f"{where}: a range needs low and high (or choices)")


def search_space(target: Target, space: Mapping[str, Any]) -> list[Dimension]:
    """The dimensions of a target's study, in a stable order."""
    regs = plugins.registries()
    cell = target.base
    sections: list[tuple[str, Mapping[str, Param], Mapping[str, Any], str]] = [
        ("model", regs.models.get(cell.model).params, cell.model_params, cell.model),
        (
            "objective",
            regs.objectives.get(cell.objective).params,
            cell.objective_params,
            cell.objective,
        ),
        ("budget", BUDGET_PARAMS, {}, ""),
    ]
    dims = []
    for section, params, explicit, item in sections:
        overrides = _overrides(space, section, item)
        for name in sorted(params):
            p = params[name]
            where = f"{section}.{name}"
            if name in overrides:
                value = overrides[name]
                if isinstance(value, dict):
                    if "choices" in value:
                        value = {**value, "choices": tuple(value["choices"])}
                    p = dataclasses.replace(p, **value)
                    if "choices" not in value:
                        p = dataclasses.replace(p, choices=None)
                else:
                    dims.append(Dimension(where, value=value))
                    continue
            elif section == "budget":
                dims.append(Dimension(where, value=getattr(cell.budget, name)))
                continue
            elif name in explicit:  # the suite chose this value: keep it
                dims.append(Dimension(where, value=explicit[name]))
                continue
            dist = _distribution(p, where)
            dims.append(Dimension(where, dist) if dist else Dimension(where, value=p.default))
    return dims


def suggest_values(trial: optuna.Trial, dims: Sequence[Dimension]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    values: dict[str, Any] = {}
    for d in dims:
        dist = d.distribution
        if dist is None:
            values[d.name] = d.value
        elif isinstance(dist, CategoricalDistribution):
            values[d.name] = trial.suggest_categorical(d.name, dist.choices)
        elif isinstance(dist, IntDistribution):
            values[d.name] = trial.suggest_int(
                d.name, dist.low, dist.high, step=dist.step, log=dist.log
            )
        else:
            values[d.name] = trial.suggest_float(
                d.name, dist.low, dist.high, step=dist.step, log=dist.log
            )
    return values


def cell_with(base: Cell, values: Mapping[str, Any], **changes: Any) -> Cell:
    """``base`` with tuned values ("model.x", "objective.y", "budget.z") applied."""
    model, objective, budget = dict(base.model_params), dict(base.objective_params), {}
    for key, value in values.items():
        section, name = key.split(".", 1)
        {"model": model, "objective": objective, "budget": budget}[section][name] = value
    new_budget: Budget = dataclasses.replace(base.budget, **budget) if budget else base.budget
    return dataclasses.replace(
        base, model_params=model, objective_params=objective, budget=new_budget, **changes
    )


# ---- trials ---------------------------------------------------------------------------------


class _TrialReporter:
    """Temporary in-process plugin: reports each epoch to the trial and prunes via StopRun."""

    def __init__(
        self, trial: optuna.Trial, cell: Cell, multi: bool, opts: RunOptions, pruner_name: str
    ) -> None:
        self.trial = trial
        self.cell = cell
        self.multi = multi
        self.opts = opts
        self.pruner_name = pruner_name
        self.final: dict[str, float] = {}

    @hookimpl
    def on_epoch_end(self, cell: Cell, epoch: int, metrics: dict[str, Any]) -> None:
        if cell is not self.cell:
            return
        value = metrics.get("val_neg_elbo")
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
                f"(validation -ELBO {value:.3f})",
                "pruned",
            )

    @hookimpl
    def on_run_end(self, cell: Cell, record: dict[str, Any], model: Any, run_dir: Path) -> None:
        if cell is not self.cell or record["status"] != "finished" or not self.multi:
            return
        from bench.runner import evaluate, load_data

        # The trade-off is tuned on validation data; the test split stays for leaderboards.
        valid = load_data(cell, self.opts).valid
        n = cell.budget.valid_subset
        if n is not None and n < len(valid):
            valid = valid.subset(n)
        out = evaluate(cell, model, valid, self.opts.device, ["nll", "mi"])
        self.final = {k: float(v.value) for k, v in out.items()}


class _Heartbeat:
    """Records a trial's heartbeat every interval so other workers can tell it is alive."""

    def __init__(
        self, storage: Any, trial_id: int, interval: int | None, log: Callable[[str], None]
    ) -> None:
        self.storage, self.trial_id, self.interval, self.log = storage, trial_id, interval, log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeat:
        if self.interval:
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception as exc:  # a blip in the database must not kill the trial
                self.log(f"heartbeat failed: {type(exc).__name__}")

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


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


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed child not yet reaped by its parent) is dead for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


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


def _make_sampler(settings: TuneSettings, n_trials: int) -> Any:
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


def _make_pruner(settings: TuneSettings, epochs: int) -> Any:
    import optuna

    if settings.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if settings.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
    return optuna.pruners.NopPruner()


def study_budget(dims: Sequence[Dimension], n_trials: int) -> int:
    """Trials a study runs: ``n_trials``, or one when nothing is searched."""
    return n_trials if any(d.distribution is not None for d in dims) else 1


def _study_counts(target: Target, multi: bool, store: OpenedStorage) -> dict[str, int]:
    import optuna

    try:
        study = optuna.load_study(study_name=target.study_name(multi), storage=store.storage)
    except KeyError:
        return counts([])
    return counts(study.get_trials(deepcopy=False))


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

    def open_study(self) -> optuna.Study:
        import optuna

        directions = ["minimize", "maximize"] if self.settings.multi_objective else ["minimize"]
        study = optuna.create_study(
            study_name=self.name,
            storage=self.store.storage,
            sampler=_make_sampler(self.settings, self.n_trials),
            pruner=_make_pruner(self.settings, self.target.base.budget.epochs),
            directions=directions,
            load_if_exists=True,
        )
        if [d.name.lower() for d in study.directions] != directions:
            raise ConfigError(f"study {self.name!r} exists with other directions")
        attrs = study.user_attrs
        if "search_space" not in attrs:
            c = self.target.base
            study.set_user_attr("search_space", [d.describe() for d in self.dims])
            study.set_user_attr(
                "objectives",
                ["val_nll", "val_mi"] if self.settings.multi_objective else ["val_neg_elbo"],
            )
            for key in ("suite", "scale", "group", "dataset", "model", "objective"):
                study.set_user_attr(key, getattr(c, key))
        return study

    def _recover(self, study: optuna.Study) -> None:
        """Fail trials whose worker is gone and queue them again (under the claim lock)."""
        from optuna.storages import fail_stale_trials
        from optuna.trial import TrialState

        if self.store.kind == "postgresql":
            fail_stale_trials(study)  # heartbeats; the storage's callback re-queues them
        host = socket.gethostname()
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker = t.user_attrs.get("worker")
            if worker is None:
                # Workers claim and label a trial under this lock, so an unlabelled running
                # trial seen here lost its worker in between (it would never send a heartbeat).
                self._requeue(study, t, "its worker died while claiming it")
            elif self.store.kind == "journal":
                # The journal has no heartbeats, but it serves one host: ask the OS.
                w_host, _, pid = worker.rpartition(":")
                if w_host == host and pid.isdigit() and not _pid_alive(int(pid)):
                    self._requeue(study, t, f"worker {worker} died")

    def _requeue(self, study: optuna.Study, trial: FrozenTrial, reason: str) -> None:
        from optuna.trial import TrialState

        storage = self.store.storage
        storage.set_trial_user_attr(trial._trial_id, "status", "lost")
        storage.set_trial_user_attr(trial._trial_id, "reason", reason)
        if storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
            _retry_callback()(study, storage.get_trial(trial._trial_id))
            self.log(f"{self.name}: trial {trial.number} lost ({reason}); queued again")

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
            trial.set_user_attr("worker", _worker_id())
            if self.store.heartbeat_interval:
                self.store.storage.record_heartbeat(trial._trial_id)
            return trial, False

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

    def _run_trial(self, study: optuna.Study, trial: optuna.Trial) -> None:
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        from bench.runner import train_cell

        storage = self.store.storage
        origin = _retried_from(storage.get_trial(trial._trial_id))
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
        reporter = _TrialReporter(
            trial, cell, self.settings.multi_objective, opts, self.settings.pruner
        )
        plugin_name = f"bench-tune-trial-{os.getpid()}"
        trial.set_user_attr("config", values)  # every value, fixed ones too: re-training needs them
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("device", device_label(opts.device))
        t0 = time.time()
        plugins.register_plugin(reporter, plugin_name)
        try:
            with _Heartbeat(storage, trial._trial_id, self.store.heartbeat_interval, self.log):
                record = train_cell(cell, run_dir, opts)
        except BaseException as exc:
            # Interrupted (Ctrl-C, SIGTERM) or a user error: the trial goes back to the queue.
            give_back = isinstance(exc, (KeyboardInterrupt, SystemExit, BenchError))
            reason = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
            with contextlib.suppress(UpdateFinishedTrialError):
                trial.set_user_attr("status", "interrupted" if give_back else "failed")
                trial.set_user_attr("reason", reason[:500])
                study.tell(trial, state=TrialState.FAIL)
                if give_back:
                    _retry_callback()(study, storage.get_trial(trial._trial_id))
            if give_back:
                raise
            self.log(f"{self.name} trial {trial.number}: failed: {reason}")
            return
        finally:
            plugins.unregister_plugin(plugin_name)
        try:
            self._tell(study, trial, record, reporter, run_dir, time.time() - t0)
        except UpdateFinishedTrialError:
            # Another worker declared this trial dead (no heartbeat for the grace period) and
            # queued it again; its retry will stand in for this result.
            self.log(
                f"{self.name} trial {trial.number}: already ended by another worker "
                "(heartbeat lost); result discarded"
            )

    def _tell(
        self,
        study: optuna.Study,
        trial: optuna.Trial,
        record: dict[str, Any],
        reporter: _TrialReporter,
        run_dir: Path,
        wall: float,
    ) -> None:
        from optuna.trial import TrialState

        status, reason = record["status"], record["reason"]
        best = _best_epoch(run_dir)
        multi = self.settings.multi_objective
        trial.set_user_attr("wall_time_s", round(wall, 3))
        trial.set_user_attr("epochs_trained", record["epochs_trained"])
        for key, value in best.items():
            trial.set_user_attr(key, value)
        if status == "finished" and multi:
            nll, mi = reporter.final.get("nll", math.nan), reporter.final.get("mi", math.nan)
            if not (math.isfinite(nll) and math.isfinite(mi)):
                status, reason = "failed", f"diverged: validation NLL {nll}, MI {mi}"
        if status == "finished" and not multi and not best:
            status, reason = "failed", "no finite validation -ELBO was logged"
        if status not in COUNTED_STATUS:  # a plugin's own StopRun status ("stopped"...)
            status = "failed"
        trial.set_user_attr("status", status)
        if reason:
            trial.set_user_attr("reason", reason[:500])
        if status == "finished" and multi:
            trial.set_user_attr("val_nll", reporter.final["nll"])
            study.tell(trial, [reporter.final["nll"], reporter.final["mi"]])
            shown = f"val NLL {reporter.final['nll']:.3f}, MI {reporter.final['mi']:.3f}"
        elif status == "finished":
            study.tell(trial, best["val_neg_elbo"])
            shown = f"val -ELBO {best['val_neg_elbo']:.3f}"
        elif status == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
            shown = reason or "pruned"
        else:
            study.tell(trial, state=TrialState.FAIL)
            shown = f"failed: {reason}"
        params = ", ".join(f"{k.split('.', 1)[1]}={_short(v)}" for k, v in trial.params.items())
        self.log(f"{self.name} trial {trial.number} ({params}): {shown} [{wall:.1f}s]")


def device_label(device: Any) -> str:
    from bench.records import device_name

    return device_name(device)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _best_epoch(run_dir: Path) -> dict[str, float]:
    """The logged validation metrics of the epoch with the lowest finite validation -ELBO."""
    path = run_dir / "epochs.jsonl"
    if not path.exists():
        return {}
    best: dict[str, float] = {}
    for line in path.read_text().splitlines():
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


# ---- tuned leaderboards ---------------------------------------------------------------------


def _chosen_trials(study: optuna.Study, multi: bool) -> list[FrozenTrial]:
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return []
    if multi:
        return sorted(study.best_trials, key=lambda t: t.number)
    return [study.best_trial]


def tuned_leaderboard(
    suite: Suite,
    scale: str | None,
    storage_spec: str | None,
    opts: RunOptions,
    multi_objective: bool = False,
    log: Callable[[str], None] = lambda msg: None,
) -> Leaderboard:
    """Re-train each study's best trial (or each Pareto point) over the suite's seeds with the
    suite's full metric protocol; the board is ``<suite>-tuned`` at the same scale."""
    from bench import leaderboard as lb
    from bench import plots
    from bench.records import RECORD_FILE, read_record, write_record
    from bench.runner import train_cell

    scale, targets = select_targets(suite, scale)
    store = open_storage(storage_spec, opts.results_dir)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tuned_suite = suite.name + TUNED_SUFFIX
    out_dir = opts.results_dir / tuned_suite / scale
    records, extra_rows, run_dirs, devices = [], [], [], set()
    for target in targets:
        name = target.study_name(multi_objective)
        try:
            study = optuna.load_study(study_name=name, storage=store.storage)
        except KeyError:
            log(f"{name}: no study in {store.description}; row left out (run bench tune)")
            continue
        trials = study.get_trials(deepcopy=False)
        c = counts(trials)
        chosen = _chosen_trials(study, multi_objective)
        if not chosen:
            log(f"{name}: no finished trial yet; row left out")
            continue
        tune_time = sum(t.user_attrs.get("wall_time_s", 0.0) for t in trials)
        devices.update(t.user_attrs["device"] for t in trials if "device" in t.user_attrs)
        for t in chosen:
            values = t.user_attrs.get("config") or {
                **{d.name: d.value for d in search_space(target, {}) if d.distribution is None},
                **t.params,
            }
            label = target.base.objective + (f" [trial {t.number}]" if multi_objective else "")
            for seed in target.seeds:
                cell = cell_with(
                    target.base,
                    values,
                    suite=tuned_suite,
                    group=f"{target.base.group}-t{t.number}",
                    seed=seed,
                )
                run_dir = out_dir / cell.run_id
                record_path = run_dir / RECORD_FILE
                cell_json = json.loads(json.dumps(cell.as_dict()))
                if record_path.exists() and read_record(record_path).get("cell") == cell_json:
                    record = read_record(record_path)
                    log(f"{cell.run_id}: already trained, kept")
                else:
                    record_path.unlink(missing_ok=True)
                    log(f"{cell.run_id}: training trial {t.number} of {name} with seed {seed}")
                    record = train_cell(cell, run_dir, opts)
                write_record(
                    run_dir / "tuning.json",
                    {
                        "study": name,
                        "storage": store.description,
                        "trial": t.number,
                        "params": t.params,
                        "trials": c,
                        "tuning_wall_time_s": tune_time,
                    },
                )
                run_dirs.append(run_dir)
                shown = json.loads(json.dumps(record))
                shown["cell"]["objective"] = label
                records.append(shown)
            extra_rows.append(
                {
                    "dataset": target.base.dataset,
                    "model": target.base.model,
                    "objective": label,
                    "trials": c["done"],
                    "tuning": f"{c['done']} trials ({c['pruned']} pruned, {c['failed']} failed"
                    + (f", {c['lost']} lost and retried" if c["lost"] else "")
                    + f"), {tune_time / 60:.1f} min",
                    "params": ", ".join(
                        f"{k.split('.', 1)[1]}={_short(v)}" for k, v in sorted(t.params.items())
                    ),
                }
            )
    if not records:
        raise BenchError(
            f"no tuned studies for {suite.name}/{scale} in {store.description}; run "
            f"`bench tune --suite {suite.name} --scale {scale}` first"
        )
    board = lb.build(records, tuned_suite, scale)
    import polars as pl

    extra = pl.DataFrame(extra_rows)
    board.table = board.table.join(extra, on=lb.KEYS, how="left")
    board.devices = sorted(set(board.devices) | {f"tuning trials: {d}" for d in devices})
    plots.remember_run_dirs(tuned_suite, scale, run_dirs)
    return board


# ---- the command ----------------------------------------------------------------------------


def _targets_text(targets: Sequence[Target], multi: bool) -> str:
    return ", ".join(t.study_name(multi) for t in targets)


def _spawn_workers(
    n: int, argv: list[str], storage_spec: str | None, log: Callable[[str], None]
) -> int:
    """N local worker processes running the same command; returns the worst exit code."""
    env = dict(os.environ)
    if storage_spec:
        env[STORAGE_ENV] = storage_spec  # through the environment: never on a command line
    threads = max(1, (os.cpu_count() or 1) // n)
    env.setdefault("OMP_NUM_THREADS", str(threads))
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.cli",
                "tune",
                *argv,
                "--workers",
                "1",
                "--worker-index",
                str(i),
            ],
            env=env,
        )
        for i in range(n)
    ]
    log(f"started {n} workers (pids {', '.join(str(p.pid) for p in procs)})")
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()
        raise
    return max(codes, key=lambda c: (c != 0, abs(c)))


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _register_tune(cli: click.Group) -> None:
    @cli.command(name="tune")
    @click.option("--suite", "suite_name", required=True, help="registered suite or a .toml file")
    @click.option("--scale", default=None, help="suite scale (default: the suite's)")
    @click.option("--dataset", "datasets", multiple=True, help="rows to tune (default: all)")
    @click.option("--model", "models", multiple=True, help="rows to tune (default: all)")
    @click.option("--objective", "objectives", multiple=True, help="rows to tune (default: all)")
    @click.option(
        "--n-trials",
        type=click.IntRange(min=1),
        default=20,
        show_default=True,
        help="finished trials per study, over all workers",
    )
    @click.option(
        "--multi-objective",
        is_flag=True,
        help="minimize validation NLL and maximize MI; keep the Pareto set",
    )
    @click.option(
        "--storage",
        default=None,
        help=f"journal file or postgresql+psycopg://... [env {STORAGE_ENV}; "
        "<results>/tuning/journal.log]",
    )
    @click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="local worker processes",
    )
    @click.option(
        "--sampler", type=click.Choice(["tpe", "nsga2", "random"]), default="tpe", show_default=True
    )
    @click.option(
        "--pruner",
        type=click.Choice(["median", "hyperband", "none"]),
        default="median",
        show_default=True,
    )
    @click.option("--sampler-seed", type=int, default=None, help="reproducible sampling")
    @click.option(
        "--space",
        "space_file",
        default=None,
        type=click.Path(dir_okay=False),
        help="TOML file that narrows or fixes parameters",
    )
    @click.option(
        "--heartbeat",
        type=click.IntRange(min=1),
        default=30,
        show_default=True,
        help="seconds between heartbeats (PostgreSQL)",
    )
    @click.option(
        "--grace",
        type=click.IntRange(min=1),
        default=None,
        help="seconds without heartbeat before a trial is retried [2 x heartbeat]",
    )
    @click.option("--device", default="auto", show_default=True)
    @click.option("--data-dir", default=None)
    @click.option("--results-dir", default=None)
    @click.option("--quiet", is_flag=True)
    @click.option("--worker-index", type=int, default=None, hidden=True)
    def tune(
        suite_name,
        scale,
        datasets,
        models,
        objectives,
        n_trials,
        multi_objective,
        storage,
        workers,
        sampler,
        pruner,
        sampler_seed,
        space_file,
        heartbeat,
        grace,
        device,
        data_dir,
        results_dir,
        quiet,
        worker_index,
    ) -> None:
        """Tune a suite's rows with Optuna: one study per (dataset, model, objective)."""
        import optuna

        from bench.records import results_root as _results_dir
        from bench.runner import RunOptions, resolve_device
        from bench.suites import get_suite

        child = worker_index is not None  # started by --workers N: the parent reports
        prefix = f"[worker {worker_index}] " if child else ""

        def log(msg: str) -> None:
            if not quiet:
                click.echo(prefix + msg, err=True)

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        # SIGTERM (a scheduler stopping the worker) ends the trial like Ctrl-C: queued again.
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _raise_interrupt)
            click.get_current_context().call_on_close(
                lambda: signal.signal(signal.SIGTERM, previous)
            )
        suite = get_suite(suite_name)
        scale, targets = select_targets(suite, scale, datasets, models, objectives)
        space = load_space_file(Path(space_file)) if space_file else {}
        check_space(space, targets, space_file or "--space")
        res_dir = _results_dir(results_dir)
        if multi_objective:
            regs = plugins.registries()
            for m in ("nll", "mi"):
                regs.metrics.get(m)
        dev = resolve_device(device)
        store = open_storage(storage, res_dir, heartbeat, grace)  # fails fast on a bad URL
        t0 = time.time()
        if workers > 1:
            argv = [
                "--suite",
                suite_name,
                "--scale",
                scale,
                "--n-trials",
                str(n_trials),
                "--sampler",
                sampler,
                "--pruner",
                pruner,
                "--heartbeat",
                str(heartbeat),
                "--device",
                device,
                "--results-dir",
                str(res_dir),
            ]
            for flag, vals in (
                ("--dataset", datasets),
                ("--model", models),
                ("--objective", objectives),
            ):
                for v in vals:
                    argv += [flag, v]
            for flag, val in (
                ("--sampler-seed", sampler_seed),
                ("--space", space_file),
                ("--grace", grace),
                ("--data-dir", data_dir),
            ):
                if val is not None:
                    argv += [flag, str(val)]
            if multi_objective:
                argv.append("--multi-objective")
            if quiet:
                argv.append("--quiet")
            if store.kind == "journal":
                argv += ["--storage", store.description]
            log(f"tuning {_targets_text(targets, multi_objective)} in {store.description}")
            code = _spawn_workers(workers, argv, storage if store.kind != "journal" else None, log)
            unfinished = [
                t.study_name(multi_objective)
                for t in targets
                if _study_counts(t, multi_objective, store)["done"]
                < study_budget(search_space(t, space), n_trials)
            ]
            if code != 0 and unfinished:
                raise BenchError(
                    f"a worker exited with code {code}; unfinished: {', '.join(unfinished)}; "
                    "run the same command again to continue"
                )
            if code != 0:
                log(f"a worker exited with code {code}; the others finished its trials")
        else:
            settings = TuneSettings(
                n_trials=n_trials,
                multi_objective=multi_objective,
                sampler=sampler,
                pruner=pruner,
                sampler_seed=sampler_seed,
                worker_index=worker_index or 0,
                poll_s=min(2.0, heartbeat / 2),
                space=space,
            )
            opts = RunOptions(
                results_dir=res_dir,
                device=dev,
                data_dir=Path(data_dir) if data_dir else None,
                log=lambda msg: None,
            )
            for target in targets:
                Worker(target, settings, store, opts, res_dir, log).run()
        for target in targets:
            name = target.study_name(multi_objective)
            study = optuna.load_study(study_name=name, storage=store.storage)
            c = counts(study.get_trials(deepcopy=False))
            line = (
                f"{name}: {c['done']} trials ({c['finished']} finished, {c['pruned']} "
                f"pruned, {c['failed']} failed"
            )
            line += f", {c['lost']} lost and retried)" if c["lost"] else ")"
            chosen = _chosen_trials(study, multi_objective)
            if chosen and not multi_objective:
                best = chosen[0]
                params = ", ".join(
                    f"{k.split('.', 1)[1]}={_short(v)}" for k, v in best.params.items()
                )
                line += f"; best val -ELBO {best.value:.3f} (trial {best.number}: {params})"
            elif chosen:
                line += f"; Pareto set: trials {', '.join(str(t.number) for t in chosen)}"
            if not child:
                click.echo(line)
        if not child:
            click.echo(
                f"{len(targets)} studies in {store.description} on {dev} in "
                f"{time.time() - t0:.1f}s; open them with: optuna-dashboard "
                f"{store.description if store.kind == 'journal' else '<storage URL>'}"
            )


@hookimpl
def register_commands(cli: click.Group) -> None:
    _register_tune(cli)
