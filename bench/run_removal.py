"""``bench rm``: remove run folders (a run id, a suite's scale, its ``--set`` runs), listing
them first; nothing is deleted without ``--yes``.

A scale's folder is removed under its results lock, so a ``bench run`` in progress there is
never pulled from under its feet. The boards are rebuilt by ``bench leaderboard`` (or the next
``bench run``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError
from bench.locks import results_lock
from bench.records import RECORD_FILE, read_record
from bench.run_view import find_run, run_folders
from bench.selection import CellFilter


@dataclass(frozen=True)
class RemoveArgs:
    """``bench rm``'s options as given."""

    runs: tuple[str, ...]
    suite_name: str | None
    scale: str | None
    set_only: bool
    results_dir: Path
    yes: bool
    cell_filter: CellFilter


def _cell(folder: Path) -> dict:
    try:
        return dict(read_record(folder / RECORD_FILE).get("cell") or {})
    except (OSError, ValueError):
        return {}


def chosen_runs(a: RemoveArgs) -> list[Path]:
    """The run folders the arguments name; an error when they name none."""
    if not a.runs and not a.suite_name:
        raise BenchError("bench rm: name runs (RUN ...) or a suite (--suite, with --scale)")
    if a.runs:
        found = [find_run(a.results_dir, run) for run in a.runs]
    else:
        found = list(run_folders(a.results_dir))
    kept = []
    for folder in dict.fromkeys(found):
        scale_dir = folder.parent
        cell = _cell(folder)
        if a.suite_name and scale_dir.parent.name != a.suite_name:
            continue
        if a.scale and scale_dir.name != a.scale:
            continue
        if a.set_only and not cell.get("overrides"):
            continue
        if a.cell_filter and not a.cell_filter.matches(folder.name, cell):
            continue
        kept.append(folder)
    if not kept:
        what = ", ".join(a.runs) or f"suite {a.suite_name}" + (f", scale {a.scale}" * bool(a.scale))
        raise BenchError(f"bench rm: no runs of {what} match in {a.results_dir}")
    return kept


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def remove_runs(a: RemoveArgs, echo: Callable[[str], None]) -> list[Path]:
    """List the chosen runs; with ``yes``, delete them (each scale under its lock)."""
    folders = chosen_runs(a)
    size = sum(_size(f) for f in folders) / 2**20
    verb = "removing" if a.yes else "would remove"
    echo(f"{verb} {len(folders)} run{'s' if len(folders) != 1 else ''} ({size:.1f} MiB):")
    for folder in folders:
        echo(f"  {_shown(folder, a.results_dir)}")
    if not a.yes:
        echo("nothing removed: run the same command with --yes to remove them")
        return []
    for scale_dir, members in _by_scale(folders).items():
        with results_lock(scale_dir):
            for folder in members:
                shutil.rmtree(folder)
    echo(f"removed {len(folders)} run{'s' if len(folders) != 1 else ''}")
    for scale in sorted({f"{f.parent.parent.name} --scale {f.parent.name}" for f in folders}):
        echo(f"`bench leaderboard --suite {scale}` rebuilds its board")
    return folders


def _shown(folder: Path, results_dir: Path) -> str:
    try:
        return str(folder.relative_to(results_dir))
    except ValueError:  # a run folder given by its path, elsewhere
        return str(folder)


def _by_scale(folders: Sequence[Path]) -> dict[Path, list[Path]]:
    out: dict[Path, list[Path]] = {}
    for folder in folders:
        out.setdefault(folder.parent, []).append(folder)
    return out
