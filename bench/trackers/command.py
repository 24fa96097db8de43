"""``--log-to`` on ``bench run``: checked when the command line is read (an unknown tracker or
a missing package exits 2 before anything trains), then exported as ``BENCH_LOG_TO`` for this
process and its workers."""

from __future__ import annotations

import os

import click

from bench.command_options import add_option
from bench.errors import ConfigError
from bench.trackers.targets import LOG_TO_ENV, check_installed, parse


def add_log_to(cli: click.Group) -> None:
    log_to = click.Option(
        ["--log-to"],
        multiple=True,
        expose_value=False,
        callback=_log_to,
        metavar="TRACKER[=WHERE]",
        help="stream each run's epochs and record to tensorboard[=DIR] or mlflow[=URI] "
        f"(repeatable) [env {LOG_TO_ENV}]",
    )
    add_option(cli, "run", log_to)


def _log_to(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    if not values:
        return values  # BENCH_LOG_TO, when set, still applies
    try:
        targets = parse(",".join(values))
        check_installed(targets)
    except ConfigError as exc:
        raise click.BadParameter(str(exc).removeprefix("--log-to "), ctx, param) from None
    os.environ[LOG_TO_ENV] = ",".join(f"{n}={w}" if w else n for n, w in targets)
    return values
