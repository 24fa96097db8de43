"""Built-in leaderboard writers: markdown, CSV and Parquet.

``<suite>.md`` etc. hold the most recent leaderboard of a suite; ``<suite>.<scale>.*`` keep one
per scale so a smoke run never overwrites a quick or paper leaderboard.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.baselines import BASELINE, DIFF, HIGH, LOW, POI, N, headline
from bench.formats import as_number, digits_for, duration_text, is_integer, number_text
from bench.hookspecs import hookimpl
from bench.leaderboard import OUT_OF, Column, Leaderboard, interval_half_width
from bench.records import atomic_write, atomic_write_text
from bench.specs import ReporterSpec

if TYPE_CHECKING:  # polars where a file is written: the plugin loads without it
    import polars as pl

TEXT_COLUMNS_BEFORE = [("tuning", "Tuning budget")]
TEXT_COLUMNS_AFTER = [("params", "Tuned values")]
SATURATED = "⚑"
SINGLE_SEED = "†"  # marks a row averaged over one seed
SIGNIFICANT = "*"  # a difference whose 95% interval excludes zero
DIFFERENCE_LEGEND = (
    "- Against the baseline (a table under each data set whose group names one): Δ = row − "
    "baseline over the seeds both ran (the same seed sees the same data subset), ± half the "
    f"width of the 95% t-interval of the per-seed differences; {SIGNIFICANT} where that "
    "interval excludes zero; P = the probability of improvement (rliable: the chance that a "
    "run of the row beats a run of the baseline in the metric's direction), given with 3 or "
    "more seeds a side. docs/comparing.md explains them."
)
FIXED_DIGITS = {"train_examples_per_s": 0}


def _targets(board: Leaderboard, out_dir: Path, suffix: str) -> list[Path]:
    return [out_dir / f"{board.suite}{suffix}", out_dir / f"{board.suite}.{board.scale}{suffix}"]


def cell_text(row: dict[str, Any], col: Column) -> str:
    """A row's value of a column: the mean over seeds ± its 95% interval (see
    :func:`interval_text`) in the one format of its quantity (:mod:`bench.formats`: counts
    without decimals, ``/ D`` for counts out of D), and the saturation flag."""
    mean, std = as_number(row.get(f"{col.name}_mean")), as_number(row.get(f"{col.name}_std"))
    if mean is None:
        return "–"
    of = as_number(row.get(f"{col.name}_{OUT_OF}"))
    # A count that all seeds agree on has no decimals.
    whole = is_count(row, col) and is_integer(mean) and not std
    if col.name in FIXED_DIGITS:
        digits = FIXED_DIGITS[col.name]
    else:
        digits = 0 if whole else digits_for(mean)
    text = number_text(mean, digits) + interval_text(row, col, digits)
    if of is not None:
        text += f" / {number_text(of, 0)}"
    if row.get(f"{col.name}_saturated"):
        text += f" {SATURATED}"
    return text


def is_count(row: dict[str, Any], col: Column) -> bool:
    """Whether a column holds counts (AU, dimensions): an integer metric, or one out of D."""
    return col.integer or as_number(row.get(f"{col.name}_{OUT_OF}")) is not None


def interval_text(row: dict[str, Any], col: Column, digits: int) -> str:
    """`` ± h``, ``h`` half the width of the row's 95% Student-t interval over its seeds;
    nothing for a row of one seed, which has no interval."""
    half = interval_half_width(row, col.name)
    return "" if half is None else f" ± {number_text(half, digits)}"


def difference_text(row: dict[str, Any], col: Column) -> str:
    """A row's difference from its baseline in one metric: ``+d ± h``, ``*`` where the 95%
    interval excludes zero, and ``P p`` (probability of improvement) with 3+ seeds a side."""
    m = col.name
    diff = as_number(row.get(f"{m}_{DIFF}"))
    if diff is None:
        return "–"
    digits = 0 if is_count(row, col) and is_integer(diff) else FIXED_DIGITS.get(m, digits_for(diff))
    text = f"{diff:+.{digits}f}"
    low, high = as_number(row.get(f"{m}_{LOW}")), as_number(row.get(f"{m}_{HIGH}"))
    if low is not None and high is not None:
        text += f" ± {high - diff:.{digits}f}"
        if low > 0 or high < 0:
            text += f" {SIGNIFICANT}"
    poi = as_number(row.get(f"{m}_{POI}"))
    if poi is not None:
        text += f" (P {poi:.2f})"
    return text


def difference_table(board: Leaderboard, rows: list[dict[str, Any]]) -> list[str]:
    """A data set's rows against their baselines (see :data:`DIFFERENCE_LEGEND`): one line per
    row that has a baseline, one column per headline metric; nothing when no row has one."""
    compared = [r for r in rows if r.get(BASELINE)]
    columns = [
        c
        for c in headline(board.columns)
        if any(r.get(f"{c.name}_{DIFF}") is not None for r in rows)
    ]
    if not compared or not columns:
        return []
    header = ["Model", "Objective", "Baseline", "Seeds"]
    header += [f"Δ {c.title} {c.arrow}" for c in columns]
    align = ["---"] * 4 + ["---:"] * len(columns)
    lines = ["", "Against the baseline (seeds: those both rows ran):", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for row in compared:
        seeds = max((row.get(f"{c.name}_{N}") or 0 for c in columns), default=0)
        cells = [row["model_label"], row["objective_label"], row[BASELINE], str(seeds)]
        cells += [difference_text(row, c) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _for(which: str) -> str:
    return f" (for {which})" if which else ""


def _legend(board: Leaderboard) -> list[str]:
    by_direction = {
        d: ", ".join(c.title for c in board.columns if c.direction == d) for d in ("min", "max")
    }
    lines = [
        "- Each row is one data set, model, objective and setting (parameters, budget and eval "
        "settings); values are the mean over its seeds ± half the width of its 95% Student-t "
        "interval (t(0.975, n−1)·s/√n; the std is in the CSV); a row marked "
        f"{SINGLE_SEED} ran one seed, so no interval exists for it. Rows of one model that "
        "differ in a parameter name it, e.g. `mlp-vae (latent_dim=32)`. Rows are sorted by NLL "
        "within each data set.",
        f"- Directions: ↓ lower is better ({by_direction['min'] or 'none'}); ↑ higher is better "
        f"({by_direction['max'] or 'none'}). The same in every table and plot.",
        "- Columns:",
    ]
    lines += [f"  - **{c.title}** {c.arrow} {c.description}".rstrip() for c in board.columns]
    if BASELINE in board.table.columns:
        lines.append(DIFFERENCE_LEGEND)
    flagged = [c.title for c in board.columns if f"{c.name}_saturated" in board.table.columns]
    if flagged:
        lines.append(
            f"- {SATURATED} after a value: within its metric's margin of the largest value its "
            f"estimator can give (the `ceiling` of its settings; MI: log N). The value is "
            f"saturated and does not rank rows ({', '.join(flagged)})."
        )
    return lines


def _dataset_lines(board: Leaderboard, dataset: str) -> list[str]:
    """The data set's notes and the estimator settings of each column, with their rows."""
    lines = [f"- Data: {text}{_for(which)}" for text, which in board.notes.get(dataset, [])]
    titles = {c.name: c.title for c in board.columns}
    for name, (common, varying) in board.settings.get(dataset, {}).items():
        parts = ([common] if common else []) + [f"{t}{_for(w)}" for t, w in varying]
        lines.append(f"- {titles[name]}: " + "; ".join(parts))
    return lines


def markdown(board: Leaderboard) -> str:
    lines = [
        f"# Leaderboard: `{board.suite}` (scale `{board.scale}`)",
        "",
        f"- Generated: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} from {board.runs} "
        f"run records; total run wall time {duration_text(board.wall_time_s)}",
        f"- Device: {'; '.join(board.devices)}",
        *_legend(board),
    ]
    # Text columns some boards carry (tuned boards: the trial budget and the chosen values).
    before = [(c, t) for c, t in TEXT_COLUMNS_BEFORE if c in board.table.columns]
    after = [(c, t) for c, t in TEXT_COLUMNS_AFTER if c in board.table.columns]
    for dataset in board.datasets:
        rows = [r for r in board.table.iter_rows(named=True) if r["dataset"] == dataset]
        # A column no row of this data set has (PPL on images, the probe on text) is left out.
        columns = [c for c in board.columns if any(cell_text(r, c) != "–" for r in rows)]
        header = (
            ["Model", "Objective", "Seeds"]
            + [t for _, t in before]
            + [f"{c.title} {c.arrow}" for c in columns]
            + [t for _, t in after]
        )
        align = ["---"] * (3 + len(before)) + ["---:"] * len(columns) + ["---"] * len(after)
        lines += ["", f"## {dataset}", "", *_dataset_lines(board, dataset), ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
        for row in rows:
            seeds = str(row["seeds"]) + (f" {SINGLE_SEED}" if row["seeds"] == 1 else "")
            cells = [row["model_label"], row["objective_label"], seeds]
            cells += [str(row[c] or "") for c, _ in before]
            cells += [cell_text(row, c) for c in columns]
            cells += [str(row[c] or "") for c, _ in after]
            lines.append("| " + " | ".join(cells) + " |")
        lines += difference_table(board, rows)
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
    import polars as pl

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
        atomic_write(p, frame.write_parquet)
    return [str(p) for p in paths]


@hookimpl
def register_reporters(register):
    register(ReporterSpec("markdown", _write_markdown, "leaderboards/<suite>.md"))
    register(ReporterSpec("csv", _write_csv, "leaderboards/<suite>.csv"))
    register(ReporterSpec("parquet", _write_parquet, "leaderboards/<suite>.parquet"))
