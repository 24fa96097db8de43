"""Trackers: each run's epochs and record streamed to TensorBoard or MLflow (built-in plugin
``trackers``, off unless asked for).

``bench run --log-to tensorboard[=DIR] --log-to mlflow[=URI]`` sets ``BENCH_LOG_TO`` (e.g.
``tensorboard,mlflow=http://127.0.0.1:5000``), which ``--jobs`` workers inherit and Ray tasks
receive with the driver's other ``BENCH_*`` settings; every run then gets a listener per tracker
through the ``run_listeners`` hook, like any plugin's. A tracker that fails (its server stops
answering) is named in one line and dropped for the rest of that run; training goes on.

This module is light (``bench --help`` loads it): the trackers' packages load when a run starts.
See docs/report.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import ConfigError, print_warning
from bench.hookspecs import hookimpl
from bench.trackers.targets import LOG_TO_ENV, TRACKERS, check_installed, parse

__all__ = ["LOG_TO_ENV", "TRACKERS", "check_installed", "parse"]

if TYPE_CHECKING:
    import click

    from bench.listener import Listener
    from bench.suites import Cell


@hookimpl
def run_listeners(cell: Cell, run_dir: Path) -> list[Listener] | None:
    value = os.environ.get(LOG_TO_ENV, "")
    if not value.strip():
        return None
    try:
        targets = parse(value)
    except ConfigError as exc:  # set by hand to something unknown: say so, train anyway
        print_warning(f"{LOG_TO_ENV}: {exc}; no tracker for {cell.run_id}")
        return None
    from bench.trackers.listener import tracker_listeners

    return tracker_listeners(targets, cell, run_dir)


@hookimpl
def register_commands(cli: click.Group) -> Any:
    from bench.trackers.command import add_log_to

    add_log_to(cli)
