"""``bench tune``: registered through the ``register_commands`` hook, like a plugin's command.

One process tunes the studies itself; ``--workers N`` starts N processes of the same command
(``--worker-index`` marks them), or N Ray tasks with ``--ray`` (:mod:`bench.tune.ray`), and
reports once they end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import click

from bench.errors import BenchError
from bench.formats import duration_text, number_text
from bench.hookspecs import hookimpl
from bench.ray_cli import ray_options
from bench.selection import filter_options
from bench.signals import stop_on_signals
from bench.tune.plan import Log, Plan, TuneArgs, check_args, run_here
from bench.tune.space import search_space, study_budget
from bench.tune.storage import STORAGE_ENV, OpenedStorage
from bench.tune.trials import chosen_trials, counts, counts_text, params_text, study_counts

# TuneArgs, Plan, check_args and run_here live in bench.tune.plan (the Ray tasks run them too);
# they are named here as well, where the command that uses them is.
__all__ = [
    "Log",
    "Plan",
    "TuneArgs",
    "check_args",
    "register_commands",
    "report",
    "run_here",
    "run_tune",
    "run_workers",
    "spawn_workers",
    "tune_command",
    "worker_argv",
]


# ---- options --------------------------------------------------------------------------------


def _count_option(flag: str, default: int | None, help: str) -> Callable[..., Any]:
    return click.option(
        flag,
        type=click.IntRange(min=1),
        default=default,
        show_default=default is not None,
        help=help,
    )


def _choice_option(flag: str, choices: Sequence[str]) -> Callable[..., Any]:
    return click.option(flag, type=click.Choice(choices), default=choices[0], show_default=True)


OPTIONS = (
    click.option("--suite", "suite_name", required=True, help="registered suite or a .toml file"),
    click.option("--scale", default=None, help="suite scale (default: the suite's)"),
    _count_option("--n-trials", 20, "finished trials per study, over all workers"),
    click.option(
        "--multi-objective",
        is_flag=True,
        help="minimize validation NLL and maximize MI; keep the Pareto set",
    ),
    click.option(
        "--storage",
        default=None,
        help=f"journal file or postgresql+psycopg://... [env {STORAGE_ENV}; "
        "<results>/tuning/journal.log]",
    ),
    _count_option("--workers", 1, "local worker processes"),
    _choice_option("--sampler", ("tpe", "nsga2", "random")),
    _choice_option("--pruner", ("median", "hyperband", "none")),
    click.option("--sampler-seed", type=int, default=None, help="reproducible sampling"),
    click.option(
        "--space",
        "space_file",
        default=None,
        type=click.Path(dir_okay=False),
        help="TOML file that narrows or fixes parameters",
    ),
    _count_option("--heartbeat", 30, "seconds between heartbeats (PostgreSQL)"),
    _count_option(
        "--grace", None, "seconds without heartbeat before a trial is retried [2 x heartbeat]"
    ),
    click.option("--device", default="auto", show_default=True),
    click.option("--data-dir", default=None),
    click.option("--results-dir", default=None),
    click.option(
        "--threads",
        type=click.IntRange(min=1),
        default=None,
        help="torch CPU threads per worker process (default: cores / workers)",
    ),
    click.option("--quiet", is_flag=True),
    click.option("--worker-index", type=int, default=None, hidden=True),
    ray_options,  # --workers as Ray tasks (see bench.tune.ray)
)


def tune_command() -> click.Command:
    def tune(**options: Any) -> None:
        """Tune a suite's rows with Optuna: one study per (dataset, model, objective)."""
        run_tune(TuneArgs(**options))

    tune = filter_options(tune)
    for option in reversed(OPTIONS):
        tune = option(tune)
    return click.command(name="tune")(tune)


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(tune_command())


# ---- running --------------------------------------------------------------------------------


def run_tune(a: TuneArgs) -> None:
    import optuna

    from bench.runner.ray import ray_placement

    prefix = f"[worker {a.worker_index}] " if a.child else ""

    def log(msg: str) -> None:
        if not a.quiet:
            click.echo(prefix + msg, err=True)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    _stop_on_sigterm()
    ray_placement(a.ray_address, a.gpus_per_cell, a.cpus_per_cell, a.device)  # checked up front
    plan = check_args(a)
    t0 = time.time()
    if a.ray_address is not None:
        from bench.tune.ray import run_on_ray

        run_on_ray(a, plan, log)
    elif a.workers > 1:
        run_workers(a, plan, log)
    else:
        run_here(a, plan, log)
    if not a.child:
        report(a, plan, t0)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _stop_on_sigterm() -> None:
    """SIGTERM and SIGHUP (a scheduler stopping the worker) end the trial like Ctrl-C: queued
    again (see bench.signals; `bench` itself already stops on them, this covers callers of
    run_tune)."""
    previous = stop_on_signals()

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    if previous:
        click.get_current_context().call_on_close(restore)


def run_workers(a: TuneArgs, plan: Plan, log: Log) -> None:
    """``--workers N``: N processes of this command; fails if a study is left unfinished."""
    store = plan.store
    studies = ", ".join(t.study_name(a.multi_objective) for t in plan.targets)
    log(f"tuning {studies} in {store.description}")
    url = a.storage if store.kind != "journal" else None
    code = spawn_workers(a.workers, worker_argv(a, plan), url, log, a.threads)
    unfinished = [
        t.study_name(a.multi_objective)
        for t in plan.targets
        if study_counts(t.study_name(a.multi_objective), store)["done"]
        < study_budget(search_space(t, plan.space), a.n_trials)
    ]
    if code != 0 and unfinished:
        raise BenchError(
            f"a worker exited with code {code}; unfinished: {', '.join(unfinished)}; "
            "run the same command again to continue"
        )
    if code != 0:
        log(f"a worker exited with code {code}; the others finished its trials")


def worker_argv(a: TuneArgs, plan: Plan) -> list[str]:
    """The options a worker process gets: this command's, resolved (never a storage URL)."""
    argv = ["--suite", a.suite_name, "--scale", plan.scale, "--n-trials", str(a.n_trials)]
    argv += ["--sampler", a.sampler, "--pruner", a.pruner, "--heartbeat", str(a.heartbeat)]
    argv += ["--device", a.device, "--results-dir", str(plan.results_dir)]
    argv += a.cell_filter.argv()
    for flag, val in (
        ("--threads", a.threads),
        ("--sampler-seed", a.sampler_seed),
        ("--space", a.space_file),
        ("--grace", a.grace),
        ("--data-dir", a.data_dir),
    ):
        if val is not None:
            argv += [flag, str(val)]
    if a.multi_objective:
        argv.append("--multi-objective")
    if a.quiet:
        argv.append("--quiet")
    if plan.store.kind == "journal":
        argv += ["--storage", plan.store.description]
    return argv


def spawn_workers(
    n: int, argv: list[str], storage_url: str | None, log: Log, threads: int | None = None
) -> int:
    """N local worker processes running ``bench tune argv``; returns the worst exit code."""
    from bench.estimators import DEVICE_SHARE_ENV

    env = dict(os.environ)
    if storage_url:
        env[STORAGE_ENV] = storage_url  # through the environment: never on a command line
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    else:
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n)))
    env[DEVICE_SHARE_ENV] = str(n)  # each worker's evaluation takes 1/n of the GPU's memory
    command = [sys.executable, "-m", "bench.cli", "tune", *argv, "--workers", "1"]
    procs = [subprocess.Popen([*command, "--worker-index", str(i)], env=env) for i in range(n)]
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


# ---- reporting ------------------------------------------------------------------------------


def report(a: TuneArgs, plan: Plan, t0: float) -> None:
    """One line per study (its trials and best result), then where the studies are."""
    import optuna

    store = plan.store
    for target in plan.targets:
        name = target.study_name(a.multi_objective)
        study = optuna.load_study(study_name=name, storage=store.storage)
        line = f"{name}: {counts_text(counts(study.get_trials(deepcopy=False)))}"
        chosen = chosen_trials(study, a.multi_objective)
        if chosen and not a.multi_objective:
            best = chosen[0]
            params = params_text(best.params)
            line += f"; best val -ELBO {number_text(best.value)} (trial {best.number}: {params})"
        elif chosen:
            line += f"; Pareto set: trials {', '.join(str(t.number) for t in chosen)}"
        click.echo(line)
    click.echo(
        f"{len(plan.targets)} studies in {store.description} on "
        f"{'Ray' if a.ray_address is not None else plan.device} in "
        f"{duration_text(time.time() - t0)}; {dashboard_hint(store)}"
    )


def dashboard_hint(store: OpenedStorage) -> str:
    """How to look at the studies: optuna-dashboard where it is installed, else its extra."""
    import shutil

    shown = store.description if store.kind == "journal" else "<storage URL>"
    if shutil.which("optuna-dashboard"):
        return f"open them with: optuna-dashboard {shown}"
    return (
        "pip install 'collapse-bench[dashboard]' adds optuna-dashboard to look at them; "
        "`bench leaderboard --tuned` re-trains the best trials"
    )
