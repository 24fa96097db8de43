"""A leaderboard as the site shows it: plain data (JSON-ready) read from the board's public
fields, the same way any reporter reads them.

The texts of the cells are :func:`bench.reporters.cell_text`'s, so a value, its spread or
interval and its ⚑ flag read as in the Markdown leaderboard; the numbers beside them are what
the tables sort by and the plots draw.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bench.baselines import BASELINE, DIFF, headline
from bench.formats import as_number
from bench.leaderboard import CEILING, OUT_OF, Column, Leaderboard, interval_half_width
from bench.reporters import (
    DIFFERENCE_LEGEND,
    SATURATED,
    SINGLE_SEED,
    TEXT_COLUMNS_AFTER,
    TEXT_COLUMNS_BEFORE,
    cell_text,
    difference_text,
)

if TYPE_CHECKING:
    from bench.records import RunRecord

SLUG = re.compile(r"[^A-Za-z0-9._-]+")


def slug(text: str) -> str:
    """A file name made of ``text``: letters, digits, ``.``, ``_`` and ``-`` only."""
    return SLUG.sub("-", text).strip("-") or "x"


def board_key(board: Leaderboard) -> str:
    return f"{board.suite}/{board.scale}"


def board_slug(suite: str, scale: str) -> str:
    return f"{slug(suite)}.{slug(scale)}"


def row_id(row: dict[str, Any]) -> str:
    """A row's file name: data set, model, objective and settings fingerprint (unique)."""
    return slug(f"{row['dataset']}__{row['model']}__{row['objective']}__{row['fingerprint']}")


def number(value: Any) -> float | None:
    """A finite number or None: what the pages sort and plot."""
    return as_number(value, finite=True)


def column_data(c: Column) -> dict[str, Any]:
    return {
        "name": c.name,
        "title": c.title,
        "direction": c.direction,
        "arrow": c.arrow,
        "description": c.description,
    }


def value_data(row: dict[str, Any], c: Column) -> dict[str, Any]:
    """One cell: its text as the Markdown has it, the mean that sorts and plots, the spread
    drawn as an error bar (the 95% Student-t interval over seeds, as the Markdown's ±; none
    for one seed), D for counts and the saturation flag."""
    mean, std = number(row.get(f"{c.name}_mean")), number(row.get(f"{c.name}_std"))
    spread = interval_half_width(row, c.name) or 0.0
    return {
        "text": cell_text(row, c),
        "mean": mean,
        "std": std,
        "lo": None if mean is None else mean - spread,
        "hi": None if mean is None else mean + spread,
        "of": number(row.get(f"{c.name}_{OUT_OF}")),
        "ceiling": number(row.get(f"{c.name}_{CEILING}")),
        "saturated": bool(row.get(f"{c.name}_saturated")),
    }


def row_data(board: Leaderboard, row: dict[str, Any]) -> dict[str, Any]:
    records = sorted(board.records_of(row), key=lambda r: int(r.cell.get("seed", 0)))
    return {
        "id": row_id(row),
        "dataset": row["dataset"],
        "model": row["model"],
        "objective": row["objective"],
        "fingerprint": row["fingerprint"],
        "model_label": row["model_label"],
        "objective_label": row["objective_label"],
        "label": f"{row['model_label']} / {row['objective_label']}",
        "seeds": int(row["seeds"]),
        "seed_list": [int(r.cell.get("seed", 0)) for r in records],
        "runs": [r.run_id for r in records],
        "values": {c.name: value_data(row, c) for c in board.columns},
        "baseline": row.get(BASELINE) or "",
        "diffs": {
            c.name: difference_text(row, c)
            for c in headline(board.columns)
            if row.get(f"{c.name}_{DIFF}") is not None
        },
        "before": {n: _text(row.get(n)) for n, _ in TEXT_COLUMNS_BEFORE if n in row},
        "after": {n: _text(row.get(n)) for n, _ in TEXT_COLUMNS_AFTER if n in row},
    }


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _for(which: str) -> str:
    return f" (for {which})" if which else ""


def dataset_lines(board: Leaderboard, dataset: str) -> tuple[list[str], list[str]]:
    """The data set's notes and each column's estimator settings, as in the Markdown."""
    notes = [f"{text}{_for(which)}" for text, which in board.notes.get(dataset, [])]
    titles = {c.name: c.title for c in board.columns}
    settings = []
    for name, (common, varying) in board.settings.get(dataset, {}).items():
        parts = ([common] if common else []) + [f"{t}{_for(w)}" for t, w in varying]
        settings.append(f"{titles.get(name, name)}: " + "; ".join(parts))
    return notes, settings


def dataset_data(board: Leaderboard, dataset: str) -> dict[str, Any]:
    rows = [
        row_data(board, r) for r in board.table.iter_rows(named=True) if r["dataset"] == dataset
    ]
    # A column no row of this data set has (PPL on images) is left out, as in the Markdown.
    shown = [
        c.name for c in board.columns if any(r["values"][c.name]["mean"] is not None for r in rows)
    ]
    notes, settings = dataset_lines(board, dataset)
    diff_columns = [
        c.name for c in headline(board.columns) if any(c.name in r["diffs"] for r in rows)
    ]
    return {
        "name": dataset,
        "columns": shown,
        "diff_columns": diff_columns,
        "notes": notes,
        "settings": settings,
        "rows": rows,
    }


def latest(records: list[RunRecord]) -> str:
    """When the newest run ended (``YYYY-MM-DD HH:MM UTC``), or "" when no record says."""
    stamps = sorted(r.finished_at for r in records if r.finished_at)
    if not stamps:
        return ""
    try:
        when = datetime.fromisoformat(str(stamps[-1]).replace("Z", "+00:00"))
    except ValueError:
        return str(stamps[-1])
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def board_data(board: Leaderboard) -> dict[str, Any]:
    """Everything the board's pages, the index and the compare page show of it."""
    return {
        "key": board_key(board),
        "slug": board_slug(board.suite, board.scale),
        "suite": board.suite,
        "scale": board.scale,
        "devices": list(board.devices),
        "date": latest(board.records),
        "runs": board.runs,
        "finished": sum(r.finished for r in board.records),
        "wall_time_s": board.wall_time_s,
        "columns": [column_data(c) for c in board.columns],
        "before": [[n, t] for n, t in TEXT_COLUMNS_BEFORE if n in board.table.columns],
        "after": [[n, t] for n, t in TEXT_COLUMNS_AFTER if n in board.table.columns],
        "datasets": [dataset_data(board, d) for d in board.datasets],
        "failed": [dict(f) for f in board.failed],
        "marks": {"saturated": SATURATED, "single_seed": SINGLE_SEED},
        # What the differences against a baseline mean: the Markdown's words, without its "- ".
        "difference_legend": DIFFERENCE_LEGEND.removeprefix("- "),
    }
