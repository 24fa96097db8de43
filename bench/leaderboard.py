"""Aggregate run records into a leaderboard (polars).

- **Rows** compare like with like: one row per data set, model, objective and fingerprint of the
  resolved parameters, budget and eval settings (:func:`bench.suites.resolved_settings`); seeds
  average only within a row. Rows of one model with different parameters name the values
  that differ, e.g. ``mlp-vae (latent_dim=32)``.
- **Columns** come from the metric registry: every metric with a scalar value is a column titled
  with its ``label`` and read in its ``direction``; a suite's ``columns`` choose and order them.
- Estimator settings and data notes are kept **per data set**, with the rows they apply to.
- A value within its metric's ``ceiling_margin`` of the ``ceiling`` its settings give (MI: log N)
  is flagged as saturated.

The rules are documented for plugin authors in docs/plugins.md ("Leaderboard columns").
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import plugins
from bench.errors import BenchError, ConfigError, print_warning
from bench.formats import param_text
from bench.records import RunRecord
from bench.records import load_records as read_records
from bench.registry import suggest
from bench.suites import SETTING_PARTS, Budget, EvalSettings

if TYPE_CHECKING:  # polars where a board is built: plugins (reporters, plots) load without it
    import polars as pl

LEADERBOARD_DIR_ENV = "BENCH_LEADERBOARD_DIR"
KEYS = ["dataset", "model", "objective"]  # the names a row shows
ROW_KEY = [*KEYS, "fingerprint"]  # what makes two runs seeds of one row
# Default column order: these first (when recorded), then other metrics by name, then the
# record's own columns. "IW" titles mark the importance-weighted estimates; "bound" the
# single-sample figures the skip-VAE paper reports.
DEFAULT_ORDER = (
    "nll",
    "nll_bound",
    "kl",
    "mi",
    "mi_train",
    "au",
    "probe_acc",
    "probe_z_acc",
    "probe_active_acc",
    "ppl",
    "ppl_bound",
)
# Metrics that carry the same number as another: records written before ``nll_bound`` existed
# show their ``neg_elbo`` there, and by default ``neg_elbo`` gets no column beside it.
SAME_VALUE = {"nll_bound": "neg_elbo"}
CEILING, CEILING_MARGIN, OUT_OF = "ceiling", "ceiling_margin", "of"
# Per metric: seeds with a value, and the 95% interval of the mean (bench.intervals).
SEEDS_N, CI_LOW, CI_HIGH = "n", "ci_low", "ci_high"
HIDDEN_SETTINGS = {CEILING, CEILING_MARGIN}  # shown as the flag, not in the settings lines


@dataclass(frozen=True)
class Column:
    """A leaderboard column: a metric (or a record field) with its title and direction."""

    name: str
    title: str
    direction: str  # "min" or "max"
    description: str = ""
    integer: bool = False  # every recorded value is an int (a count: AU, dimensions)

    @property
    def arrow(self) -> str:
        return "↓" if self.direction == "min" else "↑"


# Columns that come from the run record rather than from a metric.
RECORD_COLUMNS = {
    "train_examples_per_s": Column(
        "train_examples_per_s", "Train ex/s", "max", "training examples per second (speed)"
    )
}


@dataclass
class Leaderboard:
    suite: str
    scale: str
    # One row per ROW_KEY: model_label, objective_label, seeds, <m>_mean, <m>_std, <m>_n,
    # <m>_ci_low, <m>_ci_high (95% interval), and where a metric's settings give them
    # <m>_ceiling, <m>_saturated, <m>_of; then "<part>.<param>"; with a baseline (see
    # bench.baselines) "baseline" and <m>_diff, _diff_low, _diff_high, _diff_n, _poi.
    table: pl.DataFrame
    columns: list[Column]
    # dataset -> column name -> (settings all its rows share, [(other settings, which rows)]);
    # "which rows" is empty when a text applies to every row of the data set.
    settings: dict[str, dict[str, tuple[str, list[tuple[str, str]]]]] = field(default_factory=dict)
    # dataset -> [(data notes and split sizes, which rows)]
    notes: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    devices: list[str] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    runs: int = 0
    wall_time_s: float = 0.0
    # Every record the board was built from (finished or not), each knowing its run folder
    # (``record.run_dir``, None for a record that came from elsewhere): what a reporter needs
    # to draw curves or write a page per run.
    records: list[RunRecord] = field(default_factory=list)

    @property
    def datasets(self) -> list[str]:
        if self.table.height == 0:
            return []
        return list(dict.fromkeys(self.table["dataset"].to_list()))

    def records_of(self, row: Mapping[str, Any]) -> list[RunRecord]:
        """The finished records (seeds) behind a row of :attr:`table`."""
        key = tuple(row[k] for k in ROW_KEY)
        return [r for r in self.records if r.finished and record_key(r) == key]


def load_records(
    results_dir: Path, suite: str, scale: str, warn: Callable[[str], None] | None = None
) -> list[RunRecord]:
    """Every run record of a suite and scale, each knowing its run folder; a damaged record is
    skipped and named through ``warn`` (default: a line on stderr). ``bench run --resume``
    re-runs such runs."""
    folder = results_dir / suite / scale
    if not folder.is_dir():
        raise BenchError(f"no results for suite {suite!r} at scale {scale!r} in {folder}")
    return read_records(folder, warn or print_warning)


# ---- columns --------------------------------------------------------------------------------


def check_columns(names: Iterable[str]) -> None:
    """A suite's ``columns`` must name registered metrics or record columns."""
    known = set(plugins.registries().metrics.names()) | set(RECORD_COLUMNS)
    for name in names:
        if name not in known:
            raise ConfigError(
                f"columns: {name!r} is not a metric{suggest(name, known)}; "
                f"known: {', '.join(sorted(known))}"
            )


def column(name: str, records: Sequence[RunRecord] = ()) -> Column:
    """The column of a metric: title and direction from the registry, else from the records
    (a metric whose plugin is no longer installed keeps its recorded direction)."""
    if name in RECORD_COLUMNS:
        return RECORD_COLUMNS[name]
    metrics = plugins.registries().metrics
    if name in metrics:
        spec = metrics.get(name)
        return Column(name, spec.label or name, spec.direction, spec.description)
    direction = next(
        (r.metrics[name].direction or "min" for r in records if name in r.metrics), "min"
    )
    return Column(name, name, direction)


def choose_columns(
    present: Iterable[str], chosen: Sequence[str], records: Sequence[RunRecord] = ()
) -> list[Column]:
    """``chosen`` in its order when a suite gives it, else the default order; only columns
    some row has a value for."""
    present = set(present)
    if chosen:
        names = [n for n in chosen if n in present]
    else:
        twins = {same for name, same in SAME_VALUE.items() if name in present}
        metrics = sorted(present - set(RECORD_COLUMNS) - set(DEFAULT_ORDER) - twins)
        names = [n for n in DEFAULT_ORDER if n in present] + metrics
        names += [n for n in RECORD_COLUMNS if n in present]
    return [column(n, records) for n in names]


# ---- rows -----------------------------------------------------------------------------------


def _scalar(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(settings.items()) if k not in HIDDEN_SETTINGS)


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def record_key(record: RunRecord | Mapping[str, Any]) -> tuple[str, str, str, str]:
    """A record's row: its names and the fingerprint of its resolved settings (records written
    before fingerprints existed get one when read, see :func:`bench.records.migrate`)."""
    record = RunRecord.of(record)
    cell = record.cell
    return cell["dataset"], cell["model"], cell["objective"], record.fingerprint


def _flat_params(resolved: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {f"{part}.{k}": v for part in SETTING_PARTS for k, v in resolved.get(part, {}).items()}


def _differing(rows: list[dict[str, Any]], prefixes: Sequence[str]) -> list[str]:
    """Parameter columns with the given prefixes whose values differ among ``rows``."""
    keys = sorted({k for r in rows for k in r if k.startswith(tuple(prefixes))})
    return [k for k in keys if len({json.dumps(r.get(k), sort_keys=True) for r in rows}) > 1]


# Budget and eval fields: a model or objective parameter of the same name keeps its part in a
# label, so kl-anneal's warm-up reads `objective.epochs=2`, never like `budget.epochs=1`.
_SETTING_FIELDS = {f.name for kind in (Budget, EvalSettings) for f in dataclasses.fields(kind)}


def _param_label(key: str) -> str:
    """A parameter as a label names it: model and objective parameters bare, the rest (and a
    parameter named like a budget or eval field) with their part."""
    part, name = key.split(".", 1)
    bare = part in ("model", "objective") and name not in _SETTING_FIELDS
    return name if bare else key


def _labels(params: dict[tuple, dict[str, Any]]) -> dict[tuple, tuple[str, str]]:
    """(model label, objective label) per row: the name, plus the values that tell the row
    apart from rows of the same model (or objective) on the same data set."""

    def named(name: str, bits: list[str]) -> str:
        return f"{name} ({', '.join(bits)})" if bits else name

    def values(key: tuple, peers: list[tuple], prefixes: Sequence[str]) -> list[str]:
        diff = _differing([params[k] for k in peers], prefixes)
        short = [_param_label(k) for k in diff]
        return [f"{s}={param_text(params[key].get(k))}" for s, k in zip(short, diff, strict=True)]

    out = {}
    for key in params:
        ds, model, objective, _ = key
        same_model = [k for k in params if k[0] == ds and k[1] == model]
        same_cell = [k for k in same_model if k[2] == objective]
        same_objective = [k for k in params if k[0] == ds and k[2] == objective]
        model_bits = values(key, same_model, ["model."])
        model_bits += values(key, same_cell, ["dataset.", "budget.", "eval."])
        out[key] = (
            named(model, model_bits),
            named(objective, values(key, same_objective, ["objective."])),
        )
    return out


def _param_frame(params: dict[tuple, dict[str, Any]]) -> pl.DataFrame:
    """Parameters as columns; a column whose values do not share one type is text."""
    import polars as pl

    names = sorted({k for p in params.values() for k in p})
    data: dict[str, list[Any]] = {k: [key[i] for key in params] for i, k in enumerate(ROW_KEY)}
    for name in names:
        values = [p.get(name) for p in params.values()]
        kinds = {type(v) for v in values if v is not None}
        if kinds <= {int, float} and kinds != {int, float}:
            data[name] = values
        elif kinds == {int, float}:
            data[name] = [None if v is None else float(v) for v in values]
        else:
            data[name] = [None if v is None else _value_text(v) for v in values]
    return pl.DataFrame(data, strict=False)


@dataclass
class _Rows:
    """What the finished records give, per row key: one dict per run, the parameters, the
    metrics' estimator settings and the data notes."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    params: dict[tuple, dict[str, Any]] = field(default_factory=dict)
    settings: dict[tuple, dict[str, dict[str, Any]]] = field(default_factory=dict)
    notes: dict[tuple, str] = field(default_factory=dict)
    groups: dict[tuple, set[str]] = field(default_factory=dict)  # the suite groups of a row
    fractional: set[str] = field(default_factory=set)  # metrics with a value that is no int

    def add(self, r: RunRecord) -> None:
        key = record_key(r)
        self.params.setdefault(key, _flat_params(r.resolved))
        self.groups.setdefault(key, set()).add(str(r.cell.get("group", "")))
        row: dict[str, Any] = dict(zip(ROW_KEY, key, strict=True))
        row["seed"] = r.cell.get("seed", 0)
        if _scalar(r.train_examples_per_s):
            row["train_examples_per_s"] = float(r.train_examples_per_s)
        settings = self.settings.setdefault(key, {})
        for name, m in r.metrics.items():
            if not _scalar(m.value):
                continue
            row[name] = float(m.value)
            if not isinstance(m.value, int):
                self.fractional.add(name)
            settings.setdefault(name, m.settings)
            for extra in (CEILING, OUT_OF):
                if _scalar(m.settings.get(extra)):
                    row[f"{name}_{extra}"] = float(m.settings[extra])
        for name, same in SAME_VALUE.items():
            if name not in row and same in row:
                row[name] = row[same]
                settings[name] = settings[same]
                if same in self.fractional:
                    self.fractional.add(name)
        self.notes.setdefault(key, _data_note(r))
        self.runs.append(row)

    def per_seed(self) -> dict[tuple, dict[str, dict[int, float]]]:
        """Row key -> metric -> seed -> value (what paired differences match seeds by)."""
        out: dict[tuple, dict[str, dict[int, float]]] = {}
        for run in self.runs:
            values = out.setdefault(tuple(run[k] for k in ROW_KEY), {})
            for name, value in run.items():
                if name not in ROW_KEY and name != "seed" and value is not None:
                    values.setdefault(name, {})[run["seed"]] = value
        return out

    def present(self) -> set[str]:
        """Metric and record columns some run has a value for."""
        names = {k for row in self.runs for k in row if k not in ROW_KEY and k != "seed"}
        return {k for k in names if not k.endswith((f"_{CEILING}", f"_{OUT_OF}"))}


def per_seed_values(
    records: Sequence[RunRecord | Mapping[str, Any]],
) -> dict[tuple, dict[str, dict[int, float]]]:
    """Row key -> metric -> seed -> value of the finished ``records``, as the board reads
    them (``bench compare`` pairs seeds with it)."""
    rows = _Rows()
    for r in records:
        record = RunRecord.of(r)
        if record.finished:
            rows.add(record)
    return rows.per_seed()


def _data_note(r: RunRecord) -> str:
    """The data set's notes and the split sizes the run used."""
    sizes, text = r.split_sizes, r.data_notes or ""
    if sizes:
        order = ["train", "valid", "test", *sorted(set(sizes) - {"train", "valid", "test"})]
        shown = " / ".join(_split_text(k, sizes[k], r.subsets.get(k)) for k in order if k in sizes)
        text += ("; " if text else "") + "splits as run: " + shown
    return text


def _split_text(name: str, size: int, subset: Mapping[str, Any] | None) -> str:
    """``valid 5,000 of 10,000 (random, stratified by label, seed 2718)`` for a subset the
    record describes, else ``valid 5,000``."""
    if not subset or "seed" not in subset or not _scalar(subset.get("of")):
        return f"{name} {size:,}"
    how = f"{subset.get('sample', 'random')}, seed {subset['seed']}"
    return f"{name} {size:,} of {int(subset['of']):,} ({how})"


def build(
    records: Sequence[RunRecord | Mapping[str, Any]],
    suite: str,
    scale: str,
    columns: Sequence[str] = (),
    baselines: Mapping[str, Mapping[str, str]] | None = None,
) -> Leaderboard:
    """The leaderboard of ``records``; ``columns`` (a suite's choice) picks and orders them.
    ``baselines`` (group name -> ``Group.baseline``; by default the suite's own) adds the
    paired differences of :mod:`bench.baselines`. The board keeps the records (and through
    them the run folders) for its reporters."""
    from bench.baselines import suite_baselines

    if not records:
        raise BenchError(f"no finished runs for suite {suite!r} at scale {scale!r}")
    kept = [RunRecord.of(r) for r in records]
    finished = [r for r in kept if r.finished]
    rows = _Rows()
    for r in finished:
        rows.add(r)
    cols = [
        c if c.name in rows.fractional or c.name in RECORD_COLUMNS else replace(c, integer=True)
        for c in choose_columns(rows.present(), columns, finished)
    ]
    board = Leaderboard(
        suite=suite,
        scale=scale,
        table=_table(rows, cols),
        columns=cols,
        devices=sorted({r.device_name or r.device or "?" for r in kept}),
        failed=[
            {"run_id": r.run_id, "status": r.status, "reason": r.reason}
            for r in kept
            if not r.finished
        ],
        runs=len(kept),
        wall_time_s=sum(r.wall_time_s for r in kept),
        records=kept,
    )
    if baselines is None:
        baselines = suite_baselines(suite, scale, finished)
    if baselines and board.table.height:
        board.table = _with_differences(board.table, rows, cols, baselines)
    board.settings, board.notes = _per_dataset(board, rows.settings, rows.notes)
    return board


def _with_differences(
    table: pl.DataFrame, rows: _Rows, cols: list[Column], baselines: Mapping[str, Any]
) -> pl.DataFrame:
    """``table`` with each row's paired differences from its baseline (bench.baselines)."""
    import polars as pl

    from bench.baselines import differences

    labels = {_key(r): row_label(r) for r in table.iter_rows(named=True)}
    found = differences(labels, rows.per_seed(), rows.groups, rows.params, cols, baselines)
    if not found:
        return table
    frame = pl.DataFrame(
        [{**dict(zip(ROW_KEY, k, strict=True)), **v} for k, v in found.items()],
        infer_schema_length=None,
    )
    # Joined in the table's own order (its rows are sorted by NLL within each data set).
    joined = table.with_row_index("_order").join(frame, on=ROW_KEY, how="left")
    return joined.sort("_order").drop("_order")


def _table(rows: _Rows, cols: list[Column]) -> pl.DataFrame:
    """One line per row key: the aggregates over seeds, labels and parameters, sorted by NLL
    within each data set."""
    import polars as pl

    if not rows.runs:
        return pl.DataFrame(schema={k: pl.String for k in ROW_KEY})
    labels = _labels(rows.params)
    table = _aggregate(pl.DataFrame(rows.runs, infer_schema_length=None), cols, rows.settings)
    keys = [_key(r) for r in table.iter_rows(named=True)]
    table = table.with_columns(
        pl.Series("model_label", [labels[k][0] for k in keys]),
        pl.Series("objective_label", [labels[k][1] for k in keys]),
    )
    table = table.join(_param_frame(rows.params), on=ROW_KEY, how="left")
    first = [*ROW_KEY, "model_label", "objective_label", "seeds"]
    table = table.select(first + [c for c in table.columns if c not in first])
    sort_col = "nll_mean" if "nll_mean" in table.columns else "model"
    return table.sort(["dataset", sort_col, "model", "objective"], nulls_last=True)


def _key(row: dict[str, Any]) -> tuple:
    return tuple(row[k] for k in ROW_KEY)


def _aggregate(
    df: pl.DataFrame, cols: list[Column], settings: dict[tuple, dict[str, dict[str, Any]]]
) -> pl.DataFrame:
    import polars as pl

    aggs = [pl.len().alias("seeds")]
    for c in cols:
        aggs += [pl.col(c.name).mean().alias(f"{c.name}_mean")]
        aggs += [pl.col(c.name).std().alias(f"{c.name}_std")]
        aggs += [pl.col(c.name).count().alias(f"{c.name}_{SEEDS_N}")]
        for extra in (CEILING, OUT_OF):
            if f"{c.name}_{extra}" in df.columns:
                aggs.append(pl.col(f"{c.name}_{extra}").first())
    table = _with_intervals(df.group_by(ROW_KEY).agg(aggs), cols)
    for c in cols:
        if f"{c.name}_{CEILING}" not in table.columns:
            continue
        margins = [
            float(settings.get(_key(r), {}).get(c.name, {}).get(CEILING_MARGIN, 0.0))
            for r in table.iter_rows(named=True)
        ]
        close = pl.col(f"{c.name}_mean") >= pl.col(f"{c.name}_{CEILING}") - pl.Series(margins)
        table = table.with_columns(close.alias(f"{c.name}_saturated"))
    return table


def _with_intervals(table: pl.DataFrame, cols: list[Column]) -> pl.DataFrame:
    """``<m>_ci_low`` and ``<m>_ci_high``: the 95% Student-t interval of each mean over its
    ``<m>_n`` seeds (bench.intervals); null for one seed, where no interval exists."""
    import polars as pl

    from bench.intervals import t_quantile

    for c in cols:
        n = table[f"{c.name}_{SEEDS_N}"].to_list()
        quantile = [t_quantile(k - 1) if k >= 2 else None for k in n]
        table = table.with_columns(pl.Series("_t", quantile, dtype=pl.Float64))
        half = pl.col("_t") * pl.col(f"{c.name}_std") / pl.col(f"{c.name}_{SEEDS_N}").sqrt()
        table = table.with_columns(
            (pl.col(f"{c.name}_mean") - half).alias(f"{c.name}_{CI_LOW}"),
            (pl.col(f"{c.name}_mean") + half).alias(f"{c.name}_{CI_HIGH}"),
        ).drop("_t")
    return table


def interval_half_width(row: Mapping[str, Any], metric: str) -> float | None:
    """Half the width of a row's 95% interval of ``metric`` (None with one seed): what
    tables print after ``±`` and plots draw as error bars."""
    mean, high = row.get(f"{metric}_mean"), row.get(f"{metric}_{CI_HIGH}")
    if not _scalar(mean) or not _scalar(high) or high != high:  # high != high: NaN
        return None
    return float(high) - float(mean)


def row_label(row: dict[str, Any]) -> str:
    return f"{row['model_label']} / {row['objective_label']}"


def which_rows(subset: list[dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    """Names for ``subset`` of a data set's ``rows``: a model when all its rows are in it,
    else model / objective; empty when ``subset`` is every row."""
    if len(subset) == len(rows):
        return ""
    parts: list[str] = []
    for model in dict.fromkeys(r["model_label"] for r in subset):
        mine = [r for r in subset if r["model_label"] == model]
        if len(mine) == sum(r["model_label"] == model for r in rows):
            parts.append(model)
        else:
            parts += [row_label(r) for r in mine]
    return ", ".join(parts)


def _settings_line(
    per_row: list[tuple[dict[str, Any], dict[str, Any]]], rows: list[dict[str, Any]]
) -> tuple[str, list[tuple[str, str]]]:
    """Settings shared by all rows, and the rest grouped with the rows they apply to."""
    shown = [({k: v for k, v in s.items() if k not in HIDDEN_SETTINGS}, r) for s, r in per_row]
    keys = sorted({k for s, _ in shown for k in s})
    common = {
        k: shown[0][0].get(k)
        for k in keys
        if len({json.dumps(s.get(k), sort_keys=True) for s, _ in shown}) == 1
        and len(shown) == len(rows)
    }
    groups: dict[str, list[dict[str, Any]]] = {}
    for s, r in shown:
        rest = {k: v for k, v in s.items() if k not in common}
        if rest:
            groups.setdefault(_settings_text(rest), []).append(r)
    return _settings_text(common), [(text, which_rows(rs, rows)) for text, rs in groups.items()]


def _per_dataset(
    board: Leaderboard, settings: dict[tuple, dict[str, dict[str, Any]]], notes: dict[tuple, str]
) -> tuple[dict[str, dict[str, Any]], dict[str, list[tuple[str, str]]]]:
    """Settings and notes per data set, with the rows they apply to."""
    out_settings: dict[str, dict[str, Any]] = {}
    out_notes: dict[str, list[tuple[str, str]]] = {}
    for ds in board.datasets:
        rows = [r for r in board.table.iter_rows(named=True) if r["dataset"] == ds]
        by_column = {}
        for c in board.columns:
            per_row = [
                (settings[_key(r)][c.name], r) for r in rows if c.name in settings.get(_key(r), {})
            ]
            common, varying = _settings_line(per_row, rows)
            if common or varying:
                by_column[c.name] = (common, varying)
        out_settings[ds] = by_column
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            if notes.get(_key(r)):
                groups.setdefault(notes[_key(r)], []).append(r)
        out_notes[ds] = [(text, which_rows(rs, rows)) for text, rs in groups.items()]
    return out_settings, out_notes


def write(board: Leaderboard, out_dir: Path) -> list[str]:
    """Every registered reporter writes its output; returns the paths written."""
    from bench.names import NAME_MAX, check_name

    # Reporters name their files after the suite and scale: names, never paths.
    check_name(board.suite, "suite", limit=2 * NAME_MAX)  # <suite>-tuned, too
    check_name(board.scale, "scale")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[str] = []
    for reporter in plugins.registries().reporters:
        paths += reporter.write(board, out_dir)
    return paths


def leaderboard_dir(value: str | Path | None = None, results_dir: Path | None = None) -> Path:
    """The output folder: a given value, else ``BENCH_LEADERBOARD_DIR``, else
    ``<results folder>/leaderboards`` (``./results/leaderboards``): the user's runs never write
    over the reference boards committed in the repository's ``leaderboards/``."""
    default = (results_dir or Path("results")) / "leaderboards"
    return Path(value or os.environ.get(LEADERBOARD_DIR_ENV) or default)
