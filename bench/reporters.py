"""Built-in leaderboard writers: markdown, CSV and Parquet.

``<suite>.md`` etc. hold the most recent leaderboard of a suite; ``<suite>.<scale>.*`` keep one
per scale so a smoke run never overwrites a quick or paper leaderboard.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from bench.hookspecs import hookimpl
from bench.leaderboard import KEYS, Leaderboard
from bench.records import atomic_write_text
from bench.specs import ReporterSpec

ARROW = {"min": "↓", "max": "↑"}
SINGLE_SEED = "†"  # marks a row averaged over one seed
TEXT_COLUMNS_BEFORE = [("tuning", "Tuning budget")]
TEXT_COLUMNS_AFTER = [("params", "Tuned values")]


def _targets(board: Leaderboard, out_dir: Path, suffix: str) -> list[Path]:
    return [out_dir / f"{board.suite}{suffix}", out_dir / f"{board.suite}.{board.scale}{suffix}"]


def _fmt(mean: float | None, std: float | None, name: str) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    digits = {"train_examples_per_s": 0, "au": 1}.get(name, 3 if name.startswith("probe") else 2)
    text = f"{mean:.{digits}f}"
    if std is not None and not math.isnan(std):
        text += f" ± {std:.{digits}f}"
    return text


def markdown(board: Leaderboard) -> str:
    lines = [
        f"# Leaderboard: `{board.suite}` (scale `{board.scale}`)",
        "",
        f"- Generated: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} from {board.runs} "
        f"run records; total run wall time {board.wall_time_s / 60:.1f} min",
        f"- Device: {'; '.join(board.devices)}",
        "- Values are mean ± std over seeds; a row marked "
        f"{SINGLE_SEED} ran one seed, so it has no spread. ↓ lower is better, ↑ higher is better. "
        "Rows are sorted by NLL within each data set.",
        "- NLL (IW) and PPL (IW) are importance-weighted (K samples per example); NLL bound "
        "(= −ELBO) and PPL bound (= exp(−ELBO / tokens)) are the single-sample bounds the "
        "skip-VAE paper reports. Probe μ reads posterior means, Probe z one z ~ q(z|x), Probe μ "
        "active the means of the active units only.",
    ]
    for dataset, notes in board.data_notes.items():
        for note in notes:
            lines.append(f"- Data `{dataset}`: {note}")
    for name, title, _ in board.columns:
        for s in board.settings.get(name, []):
            if s:
                lines.append(f"- {title}: {s}")
    lines += ["", ""]
    # Text columns some boards carry (tuned boards: the trial budget and the chosen values).
    before = [(c, t) for c, t in TEXT_COLUMNS_BEFORE if c in board.table.columns]
    after = [(c, t) for c, t in TEXT_COLUMNS_AFTER if c in board.table.columns]
    header = (
        ["Dataset", "Model", "Objective", "Seeds"]
        + [t for _, t in before]
        + [f"{title} {ARROW[d]}" for _, title, d in board.columns]
        + [t for _, t in after]
    )
    lines[-1] = "| " + " | ".join(header) + " |"
    lines.append(
        "|"
        + "|".join(
            ["---"] * (4 + len(before)) + ["---:"] * len(board.columns) + ["---"] * len(after)
        )
        + "|"
    )
    for row in board.table.iter_rows(named=True):
        seeds = str(row["seeds"]) + (f" {SINGLE_SEED}" if row["seeds"] == 1 else "")
        cells = [row[k] for k in KEYS] + [seeds]
        cells += [str(row[c] or "") for c, _ in before]
        cells += [_fmt(row.get(f"{n}_mean"), row.get(f"{n}_std"), n) for n, _, _ in board.columns]
        cells += [str(row[c] or "") for c, _ in after]
        lines.append("| " + " | ".join(cells) + " |")
    plot_links = _plot_links(board)
    if plot_links:
        lines += ["", "Plots: " + " · ".join(f"[{title}]({name})" for title, name in plot_links)]
        lines += ["", f"![{plot_links[0][0]}]({plot_links[0][1]})"]
    if board.failed:
        lines += ["", "Runs that did not finish:", ""]
        lines += [f"- `{f['run_id']}`: {f['status']}: {f['reason']}" for f in board.failed]
    return "\n".join(lines) + "\n"


def _plot_links(board: Leaderboard) -> list[tuple[str, str]]:
    """The figures the ``plots`` reporter writes beside this board (none when it is disabled)."""
    from bench import plugins

    if "plots" not in plugins.registries().reporters:
        return []
    from bench.plots import links

    return links(board)


def _write_markdown(board: Leaderboard, out_dir: Path) -> list[str]:
    text = markdown(board)
    paths = _targets(board, out_dir, ".md")
    for p in paths:
        atomic_write_text(p, text)
    return [str(p) for p in paths]


def _frame(board: Leaderboard) -> pl.DataFrame:
    return board.table.with_columns(
        pl.lit(board.suite).alias("suite"), pl.lit(board.scale).alias("scale")
    )


def _write_csv(board: Leaderboard, out_dir: Path) -> list[str]:
    text = _frame(board).write_csv()
    paths = _targets(board, out_dir, ".csv")
    for p in paths:
        atomic_write_text(p, text)
    return [str(p) for p in paths]


def _write_parquet(board: Leaderboard, out_dir: Path) -> list[str]:
    paths = _targets(board, out_dir, ".parquet")
    frame = _frame(board)
    for p in paths:
        tmp = p.with_name(f".{p.name}.tmp")
        frame.write_parquet(tmp)
        tmp.replace(p)
    return [str(p) for p in paths]


@hookimpl
def register_reporters(register):
    register(ReporterSpec("markdown", _write_markdown, "leaderboards/<suite>.md"))
    register(ReporterSpec("csv", _write_csv, "leaderboards/<suite>.csv"))
    register(ReporterSpec("parquet", _write_parquet, "leaderboards/<suite>.parquet"))
