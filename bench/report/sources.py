"""Where a report's boards come from: every suite and scale with run records in a results folder,
each built into a leaderboard exactly as ``bench leaderboard`` builds it, and the run folders of
runs still in progress (a folder with an epoch log and no record yet)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bench import records
from bench.errors import BenchError
from bench.records import EPOCH_LOG, RECORD_FILE

if TYPE_CHECKING:
    from bench.leaderboard import Leaderboard


def result_sets(
    results_dir: Path, suite: str | None = None, scale: str | None = None
) -> list[tuple[str, str]]:
    """(suite, scale) pairs with at least one run folder (a record, or an epoch log of a run in
    progress), sorted; narrowed by ``suite`` and ``scale`` when given."""
    return [
        (su, sc)
        for su, sc in records.result_sets(results_dir, (RECORD_FILE, EPOCH_LOG))
        if (not suite or su == suite) and (not scale or sc == scale)
    ]


def in_progress(results_dir: Path, suite: str, scale: str) -> list[Path]:
    """Run folders with an epoch log but no record: runs training now (or killed)."""
    folder = results_dir / suite / scale
    return sorted(
        p.parent for p in folder.glob(f"*/{EPOCH_LOG}") if not (p.parent / RECORD_FILE).exists()
    )


def suite_columns(name: str, results_dir: Path) -> tuple[str, ...]:
    """The suite's chosen columns, when the suite is known (registered, or remembered from a
    suite file); else the default order."""
    from bench.suites import get_suite

    try:
        return tuple(get_suite(name, results_dir).columns)
    except BenchError:
        return ()


def build_board(
    results_dir: Path, suite: str, scale: str, warn: Callable[[str], None] | None = None
) -> Leaderboard | None:
    """The leaderboard of a suite and scale, or None while it has no record."""
    from bench import leaderboard as lb

    records = lb.load_records(results_dir, suite, scale, warn)
    if not records:
        return None
    return lb.build(records, suite, scale, suite_columns(suite, results_dir))


def signature(results_dir: Path, suite: str, scale: str) -> tuple:
    """What changes when a run of the set writes its record or an epoch: names, sizes and
    modification times of records and epoch logs."""
    folder = results_dir / suite / scale
    out = []
    for pattern in (f"*/{RECORD_FILE}", f"*/{EPOCH_LOG}"):
        for p in sorted(folder.glob(pattern)):
            try:
                st = p.stat()
            except FileNotFoundError:
                continue  # replaced while we looked: the next look sees the new one
            out.append((str(p.relative_to(folder)), st.st_size, st.st_mtime_ns))
    return tuple(out)
