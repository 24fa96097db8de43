"""``bench compare A B``: did anything move beyond seed-to-seed noise between two sets of results?

A and B are each a results folder (run folders holding ``record.json``, at any depth: a suite's
scale folder or a whole results root) or a leaderboard file (``.parquet`` or ``.csv``). Rows are
matched by their key (data set, model, objective and the fingerprint of their resolved
settings); for every metric both have, ``B - A`` is given with a 95% interval: paired over the
seeds both ran where both sides have per-seed values and share two seeds or more, else Welch's
interval from the two means, standard deviations and seed counts (a leaderboard file has only
those). ``--fail-on METRIC:THRESHOLD`` turns a significant regression (worse in the metric's
direction, the interval excluding zero, by more than the threshold) into exit code 1, as
pytest-benchmark's ``--benchmark-compare-fail`` does. docs/comparing.md describes it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import BenchError, ConfigError
from bench.formats import as_number
from bench.intervals import Interval, paired_difference, welch_difference

if TYPE_CHECKING:
    import polars as pl

    from bench.leaderboard import Column

BOARD_SUFFIXES = (".parquet", ".csv")
SIGNIFICANT = "*"


@dataclass
class Side:
    """One side of a comparison: its rows (the leaderboard table) and, from run records, each
    row's per-seed values (None for a leaderboard file)."""

    source: str
    table: pl.DataFrame
    columns: dict[str, Column]
    per_seed: dict[tuple, dict[str, dict[int, float]]] | None

    def rows(self) -> dict[tuple, dict[str, Any]]:
        from bench.leaderboard import ROW_KEY

        return {tuple(r[k] for k in ROW_KEY): r for r in self.table.iter_rows(named=True)}


@dataclass(frozen=True)
class Threshold:
    """``--fail-on METRIC:THRESHOLD``: an absolute amount, or a percentage of A's mean."""

    metric: str
    amount: float
    relative: bool = False

    def exceeded(self, diff: float, a_mean: float) -> bool:
        limit = self.amount * abs(a_mean) / 100 if self.relative else self.amount
        return abs(diff) > limit


@dataclass
class MetricDiff:
    """``B - A`` in one metric of one row."""

    metric: str
    direction: str
    a: float
    b: float
    diff: float
    low: float | None
    high: float | None
    n_a: int
    n_b: int
    method: str  # "paired" (over n matched seeds) or "welch"
    matched: int = 0

    @property
    def significant(self) -> bool:
        return Interval(self.diff, 0, self.low, self.high).excludes_zero

    @property
    def worse(self) -> bool:
        """Significantly worse in the metric's direction."""
        return self.significant and (self.diff > 0) == (self.direction == "min")


@dataclass
class RowDiff:
    key: tuple
    label: str
    metrics: list[MetricDiff] = field(default_factory=list)


@dataclass
class Comparison:
    a: str
    b: str
    rows: list[RowDiff]
    only_a: list[str]
    only_b: list[str]
    regressions: list[str] = field(default_factory=list)


# ---- reading a side -------------------------------------------------------------------------


def load_side(path: str | Path) -> Side:
    """A results folder's records or a leaderboard file; a one-line BenchError otherwise."""
    p = Path(path)
    if p.is_file() and p.suffix in BOARD_SUFFIXES:
        return _board_side(p)
    if p.is_dir():
        return _records_side(p)
    if not p.exists():
        raise BenchError(f"{path}: no such file or folder")
    raise BenchError(
        f"{path}: not a results folder or a leaderboard file ({', '.join(BOARD_SUFFIXES)})"
    )


def _records_side(folder: Path) -> Side:
    from bench import leaderboard as lb
    from bench.errors import print_warning
    from bench.records import DamagedRecord, read_record

    records = []
    for path in sorted(folder.rglob("record.json")):
        try:
            records.append(read_record(path))
        except DamagedRecord as exc:
            print_warning(f"skipped {exc}")
    finished = [r for r in records if r.finished]
    if not finished:
        raise BenchError(f"{folder}: no finished run records (record.json) in it")
    board = lb.build(finished, "compare", folder.name, baselines={})
    columns = {c.name: c for c in board.columns}
    return Side(str(folder), board.table, columns, lb.per_seed_values(finished))


def _board_side(path: Path) -> Side:
    import polars as pl

    from bench.leaderboard import ROW_KEY, column

    try:
        table = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path)
    except Exception as exc:  # polars raises several types for a damaged file
        raise BenchError(f"{path}: cannot be read as a leaderboard ({exc})") from None
    missing = [k for k in [*ROW_KEY, "model_label", "objective_label"] if k not in table.columns]
    if missing:
        raise BenchError(f"{path}: not a leaderboard table ({', '.join(missing)} missing)")
    names = [c[: -len("_mean")] for c in table.columns if c.endswith("_mean")]
    return Side(str(path), table, {n: column(n) for n in names}, None)


# ---- comparing ------------------------------------------------------------------------------


def _label(row: Mapping[str, Any]) -> str:
    return f"{row['dataset']} · {row['model_label']} / {row['objective_label']}"


def _seeds(row: Mapping[str, Any], metric: str) -> int:
    n = as_number(row.get(f"{metric}_n"))
    return int(n if n is not None else as_number(row.get("seeds")) or 0)


def metric_diff(
    col: Column,
    a_row: Mapping[str, Any],
    b_row: Mapping[str, Any],
    a_seeds: Mapping[int, float] | None,
    b_seeds: Mapping[int, float] | None,
) -> MetricDiff | None:
    """``B - A`` in one metric: paired over matched seeds (two or more), else Welch's."""
    m = col.name
    a, b = as_number(a_row.get(f"{m}_mean")), as_number(b_row.get(f"{m}_mean"))
    if a is None or b is None:
        return None
    n_a, n_b = _seeds(a_row, m), _seeds(b_row, m)
    matched = len(set(a_seeds or {}) & set(b_seeds or {}))
    if a_seeds and b_seeds and matched >= 2:
        interval, method = paired_difference(b_seeds, a_seeds), "paired"
    else:
        std_a, std_b = as_number(a_row.get(f"{m}_std")), as_number(b_row.get(f"{m}_std"))
        interval, method = welch_difference((a, std_a, n_a), (b, std_b, n_b)), "welch"
    if interval is None:
        return None
    return MetricDiff(
        m,
        col.direction,
        a,
        b,
        interval.mean,
        interval.low,
        interval.high,
        n_a,
        n_b,
        method,
        matched,
    )


def compare(a: Side, b: Side, metrics: Sequence[str] = ()) -> Comparison:
    """Every row both sides have, metric by metric; rows found on one side only listed."""
    a_rows, b_rows = a.rows(), b.rows()
    names = [n for n in a.columns if n in b.columns and (not metrics or n in metrics)]
    out = []
    for key in (k for k in a_rows if k in b_rows):
        row = RowDiff(key, _label(a_rows[key]))
        for name in names:
            a_seeds = (a.per_seed or {}).get(key, {}).get(name)
            b_seeds = (b.per_seed or {}).get(key, {}).get(name)
            d = metric_diff(a.columns[name], a_rows[key], b_rows[key], a_seeds, b_seeds)
            if d is not None:
                row.metrics.append(d)
        out.append(row)
    only_a = [_label(r) for k, r in a_rows.items() if k not in b_rows]
    only_b = [_label(r) for k, r in b_rows.items() if k not in a_rows]
    return Comparison(a.source, b.source, out, only_a, only_b)


def parse_threshold(text: str) -> Threshold:
    """``METRIC:AMOUNT`` or ``METRIC:PERCENT%``; a ConfigError (exit 2) otherwise."""
    metric, sep, amount = text.partition(":")
    relative = amount.endswith("%")
    try:
        value = float(amount.rstrip("%"))
    except ValueError:
        value = -1.0
    if not sep or not metric or not math.isfinite(value) or value < 0:
        raise ConfigError(f"--fail-on {text!r}: expected METRIC:THRESHOLD, e.g. nll:0.5 or nll:1%")
    return Threshold(metric, value, relative)


def regressions(result: Comparison, thresholds: Sequence[Threshold]) -> list[str]:
    """One line per significant regression beyond a threshold; a ConfigError for a threshold
    whose metric neither side has."""
    compared = {d.metric for row in result.rows for d in row.metrics}
    lines = []
    for t in thresholds:
        if t.metric not in compared:
            raise ConfigError(
                f"--fail-on {t.metric}: no row has it on both sides; compared: "
                f"{', '.join(sorted(compared)) or 'none'}"
            )
        for row in result.rows:
            for d in row.metrics:
                if d.metric == t.metric and d.worse and t.exceeded(d.diff, d.a):
                    limit = f"{t.amount:g}%" if t.relative else f"{t.amount:g}"
                    lines.append(
                        f"{row.label}: {d.metric} {d.a:.4g} -> {d.b:.4g} ({d.diff:+.4g}, "
                        f"interval [{d.low:.4g}, {d.high:.4g}]), worse by more than {limit}"
                    )
    return lines


# ---- output ---------------------------------------------------------------------------------


def _digits(value: float) -> int:
    return 3 if abs(value) < 1 else 2


def diff_text(d: MetricDiff) -> str:
    """``+d ± h`` and the marker, as the leaderboard's difference tables."""
    digits = _digits(d.diff)
    text = f"{d.diff:+.{digits}f}"
    if d.low is not None and d.high is not None:
        text += f" ± {d.high - d.diff:.{digits}f}"
        if d.significant:
            text += f" {SIGNIFICANT}"
    return text


def text_report(result: Comparison, columns: Mapping[str, Column]) -> str:
    lines = [
        f"A: {result.a}",
        f"B: {result.b}",
        f"Δ = B − A ± half its 95% interval (paired over the seeds both ran, else Welch's); "
        f"{SIGNIFICANT} where the interval excludes zero; ↓/↑: the metric's better direction",
        "",
        "| Row | Metric | A | B | Δ (B − A) | Seeds A/B | |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for row in result.rows:
        for d in row.metrics:
            col = columns[d.metric]
            seeds = f"{d.n_a}/{d.n_b}" + (f", {d.matched} paired" if d.method == "paired" else "")
            verdict = "worse" if d.worse else "better" if d.significant else ""
            a, b = f"{d.a:.{_digits(d.a)}f}", f"{d.b:.{_digits(d.b)}f}"
            lines.append(
                f"| {row.label} | {col.title} {col.arrow} | {a} | {b} | {diff_text(d)} "
                f"| {seeds} | {verdict} |"
            )
    for side, labels in (("A", result.only_a), ("B", result.only_b)):
        if labels:
            lines += ["", f"Only in {side} ({len(labels)}):", *(f"- {x}" for x in labels)]
    if result.regressions:
        lines += ["", f"Regressions ({len(result.regressions)}):"]
        lines += [f"- {x}" for x in result.regressions]
    return "\n".join(lines) + "\n"


def json_report(result: Comparison) -> str:
    rows = []
    for row in result.rows:
        metrics = {}
        for d in row.metrics:
            metrics[d.metric] = {**asdict(d), "significant": d.significant, "worse": d.worse}
            del metrics[d.metric]["metric"]
        dataset, model, objective, fingerprint = row.key
        rows.append(
            {
                "label": row.label,
                "dataset": dataset,
                "model": model,
                "objective": objective,
                "fingerprint": fingerprint,
                "metrics": metrics,
            }
        )
    out = {
        "a": result.a,
        "b": result.b,
        "rows": rows,
        "only_a": result.only_a,
        "only_b": result.only_b,
        "regressions": result.regressions,
    }
    return json.dumps(out, indent=2) + "\n"


def compare_command(
    a: str, b: str, fail_on: Sequence[str], as_json: bool, metrics: str | None
) -> int:
    """What ``bench compare`` prints and its exit code: 1 on a regression ``--fail-on``
    names, else 0 (bad input raises, which the command line turns into exit code 2)."""
    import click

    thresholds = [parse_threshold(t) for t in fail_on]
    chosen = [m.strip() for m in (metrics or "").split(",") if m.strip()]
    side_a, side_b = load_side(a), load_side(b)
    both = [n for n in side_a.columns if n in side_b.columns]
    unknown = [m for m in chosen if m not in both]
    if unknown:
        raise ConfigError(
            f"--metrics: {', '.join(unknown)} not on both sides; they share: {', '.join(both)}"
        )
    result = compare(side_a, side_b, chosen)
    result.regressions = regressions(result, thresholds)
    columns = {**side_b.columns, **side_a.columns}
    click.echo(json_report(result) if as_json else text_report(result, columns), nl=False)
    return 1 if result.regressions else 0
