"""The web report: a static site of every leaderboard (built-in plugin ``report``).

- ``bench report [--suite NAME] [--out DIR]`` writes the site of every suite and scale with
  results (``--serve``: serve it and rebuild it as runs finish);
- ``bench run --report`` writes the suite's pages at the end of the run, through the ``report``
  reporter, which is otherwise idle (``BENCH_REPORT=1`` turns it on for ``bench leaderboard``
  too).

It reads boards as any reporter does (``Leaderboard.records``, ``record.run_dir``,
``record.epoch_log``, ``board.records_of(row)``). This module is light: the click commands,
the pages and torch load when used. See docs/report.md.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.hookspecs import hookimpl
from bench.report.request import REPORT_ENV, SITE_DIR, request, requested
from bench.specs import ReporterSpec

__all__ = ["REPORT_ENV", "SITE_DIR", "request", "requested", "write_report"]

if TYPE_CHECKING:
    import click

    from bench.leaderboard import Leaderboard


def write_report(board: Leaderboard, out_dir: Path) -> list[str]:
    """The ``report`` reporter: the board's pages under ``<out_dir>/site`` (when requested)."""
    if not requested():
        return []
    from bench.report.site import write_board

    paths = write_board(board, out_dir / SITE_DIR)
    print(f"report: {paths[0]}", file=sys.stderr)
    return paths


@hookimpl
def register_reporters(register: Callable[[ReporterSpec], None]) -> None:
    register(
        ReporterSpec(
            "report",
            write_report,
            "web report, leaderboards/site/ (with bench run --report or BENCH_REPORT=1; "
            "bench report builds every suite's)",
        )
    )


@hookimpl
def register_commands(cli: click.Group) -> Any:
    from bench.report.command import add_commands

    add_commands(cli)
