"""Hook specifications: what a ``bench`` plugin may implement.

Registration hooks receive a ``register`` callback (the style of simonw/llm) so that a plugin
can register any number of items and the harness knows which plugin each came from. Every hook
here is documented for plugin authors in ``docs/plugins.md``; a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from bench.contract import LatentVariableModel
    from bench.runner.listeners import Listener
    from bench.specs import DatasetSpec, MetricSpec, ModelSpec, ObjectiveSpec, ReporterSpec
    from bench.suites import Cell, Group, Suite

PROJECT = "bench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
"""Marks a plugin's hook implementations: ``@bench.hookimpl`` on a function named after one of
the hooks below (pluggy's ``HookimplMarker("bench")``)."""


@hookspec
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register data sets by calling ``register(DatasetSpec(...))``."""


@hookspec
def register_models(register: Callable[[ModelSpec], None]) -> None:
    """Register latent-variable models by calling ``register(ModelSpec(...))``."""


@hookspec
def register_objectives(register: Callable[[ObjectiveSpec], None]) -> None:
    """Register training objectives (losses, KL schedules) with ``register(ObjectiveSpec(...))``."""


@hookspec
def register_metrics(register: Callable[[MetricSpec], None]) -> None:
    """Register evaluation metrics with ``register(MetricSpec(...))``."""


@hookspec
def register_suites(register: Callable[[Suite], None]) -> None:
    """Register a named suite and its scales with ``register(Suite(...))``."""


@hookspec
def register_suite_groups(register: Callable[[str, str, Group], None]) -> None:
    """Add cells to a suite: ``register(suite_name, scale, Group(...))``.

    Lets several plugins contribute rows (images, text) to one suite such as ``collapse``.
    """


@hookspec
def register_reporters(register: Callable[[ReporterSpec], None]) -> None:
    """Register leaderboard writers (markdown, CSV, plots) with ``register(ReporterSpec(...))``."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``bench`` command-line interface."""


@hookspec
def on_run_start(cell: Cell, run_dir: Path) -> None:
    """Called before a run trains (also when it resumes from a checkpoint)."""


@hookspec
def on_epoch_end(cell: Cell, epoch: int, metrics: dict[str, Any]) -> None:
    """Called after each epoch's validation with that epoch's logged metrics.

    Raise :class:`bench.errors.StopRun` to end the run early (pruning); its status and reason
    are written to the run record.
    """


@hookspec
def run_listeners(cell: Cell, run_dir: Path) -> Listener | list[Listener] | None:
    """Listeners for one run: a :class:`bench.Listener` (or a list of them, or None).

    They hear the run's events (start, training progress, each epoch's validation, a
    method's phase change, evaluation progress, the record) after the built-in listeners, in
    plugin order; see docs/plugins.md ("Listeners").
    """


@hookspec
def on_run_end(
    cell: Cell, record: dict[str, Any], model: LatentVariableModel, run_dir: Path
) -> None:
    """Called once a run's record has been written (finished, failed or pruned).

    ``model`` holds the weights that were evaluated (the best epoch's); plugins may write
    artefacts such as sample grids into ``run_dir``.
    """
