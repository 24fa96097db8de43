"""``bench report``'s work: every result set of a results folder into one site."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import BenchError
from bench.report import sources
from bench.report.site import (
    SiteOptions,
    clear_compare_sets,
    write_board,
    write_compare_set,
    write_front,
)


@dataclass
class Built:
    """What a build wrote: the boards (``suite/scale``) and the front page."""

    boards: list[str] = field(default_factory=list)
    index: Path | None = None


def build_site(
    results_dir: Path,
    site: Path,
    suite: str | None = None,
    scale: str | None = None,
    options: SiteOptions | None = None,
    warn: Callable[[str], None] | None = None,
) -> Built:
    """Write every board found under ``results_dir`` (narrowed by ``suite``/``scale``) to
    ``site``; boards already on the site from other runs of the command stay."""
    options = options or SiteOptions()
    found = sources.result_sets(results_dir, suite, scale)
    if not found:
        what = "".join(f" {k} {v!r}" for k, v in (("suite", suite), ("scale", scale)) if v)
        raise BenchError(f"no run records{what} in {results_dir}")
    built = Built()
    for name, sc in found:
        built.boards += build_one(results_dir, site, name, sc, options, warn)
    write_front(site, options.live)
    built.index = site / "index.html"
    return built


def build_one(
    results_dir: Path,
    site: Path,
    suite: str,
    scale: str,
    options: SiteOptions,
    warn: Callable[[str], None] | None = None,
) -> list[str]:
    """One suite and scale: its board's pages, with its runs in progress."""
    options.running[f"{suite}/{scale}"] = sources.in_progress(results_dir, suite, scale)
    board = sources.build_board(results_dir, suite, scale, warn)
    if board is None:
        return []
    write_board(board, site, options)
    return [f"{suite}/{scale}"]


def add_compare_sets(
    site: Path, others: Sequence[Path], warn: Callable[[str], None] | None = None
) -> int:
    """Boards of other results folders, for the compare page only; returns how many."""
    clear_compare_sets(site)
    count = 0
    for folder in others:
        found = sources.result_sets(folder)
        if not found:
            raise BenchError(f"--compare-with {folder}: no run records there")
        for suite, scale in found:
            board = sources.build_board(folder, suite, scale, warn)
            if board is not None:
                write_compare_set(site, str(folder), board)
                count += 1
    return count
