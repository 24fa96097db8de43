"""Which leaderboards a suite's run records make, and which suites and scales have results.

- Plain runs make the suite's board, ``<suite>.*``: its rows keep their plain names.
- ``--set`` runs make a board of their own, ``<suite>-set.*``, each beside the plain run it
  varies (same cell and seed): there each row names the values that set it apart (e.g.
  ``mlp-skip-vae (budget.epochs=1)`` beside ``mlp-skip-vae (budget.epochs=4)``), and the
  suite's board never changes because a run was tried with other values.

Torch-free (``bench leaderboard`` on a machine without a GPU stack reads records only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from bench import leaderboard as lb
from bench.errors import BenchError
from bench.records import RunRecord, result_sets

SET_SUFFIX = "-set"  # the board of `--set` runs: <suite>-set.md beside <suite>.md
SET_MARK = "__set-"  # what a --set run's id adds to the id of the run it varies


def overridden(record: RunRecord) -> bool:
    """A run made with ``--set`` values (its cell records them)."""
    return bool(record.cell.get("overrides"))


def plain_id(run_id: str) -> str:
    """The run a ``--set`` run varies: its id without the ``__set-<hash>`` suffix
    (:attr:`bench.suites.Cell.run_id`)."""
    return run_id.split(SET_MARK, 1)[0]


def suite_boards(
    records: Sequence[RunRecord], suite: str, scale: str, columns: Sequence[str] = ()
) -> list[lb.Leaderboard]:
    """The suite's board of plain runs and, when there are ``--set`` runs, their board; an
    error when there are no records at all."""
    kept = [RunRecord.of(r) for r in records]
    plain = [r for r in kept if not overridden(r)]
    varied = [r for r in kept if overridden(r)]
    boards = []
    if plain or not varied:
        boards.append(lb.build(plain, suite, scale, columns))
    if varied:
        plain_ids = {plain_id(r.run_id) for r in varied}
        peers = [r for r in plain if r.finished and r.run_id in plain_ids]
        boards.append(lb.build(varied + peers, suite + SET_SUFFIX, scale, columns))
    return boards


def write_boards(boards: Sequence[lb.Leaderboard], out_dir: Path) -> list[str]:
    """Every reporter's files for each board; the paths written."""
    return [path for board in boards for path in lb.write(board, out_dir)]


def results_index(results_dir: Path) -> dict[str, list[str]]:
    """Suite -> the scales with at least one run record under ``results_dir`` (sorted)."""
    out: dict[str, list[str]] = {}
    for suite, scale in result_sets(results_dir):
        out.setdefault(suite, []).append(scale)
    return out


def index_text(results_dir: Path) -> str:
    """``results here: collapse (smoke, quick), remedies (quick)``, or that there are none."""
    index = results_index(results_dir)
    if not index:
        return f"no run records in {results_dir} yet"
    shown = ", ".join(f"{suite} ({', '.join(scales)})" for suite, scales in index.items())
    return f"results in {results_dir}: {shown}"


def load_suite_records(
    results_dir: Path, suite: str, scale: str, warn: Callable[[str], None] | None = None
) -> list[RunRecord]:
    """:func:`bench.leaderboard.load_records`, whose error also lists the suites and scales
    that do have results."""
    try:
        return lb.load_records(results_dir, suite, scale, warn)
    except BenchError as exc:
        raise BenchError(f"{exc}; {index_text(results_dir)}") from None
