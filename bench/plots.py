"""Leaderboard plots, written next to the leaderboard as PNG and SVG by the ``plots`` reporter.

- ``<suite>.<scale>.nll-kl`` and ``.nll-mi``: every row's test NLL against its KL or MI, with
  the Pareto front in the metrics' registered directions, axes fitted to the points (at least
  half a nat wide, so estimator noise near a ceiling does not look like an effect) with their
  units, and the estimator's ceiling (MI: log N) where its settings give one;
- ``.au``: active units per row, as a fraction of D, each bar outlined and labelled with its
  count (a row with none shows ``0 / D``);
- ``.curves``: validation KL, MI and AU (fraction of D) per epoch (numbered from 1, as the logs)
  from each run's ``epochs.jsonl``, which show when (and whether) a model collapses.

Every row of a board has a colour (its objective) and marker (its model) pair of its own, the
same in every figure, and the figures are made tall and wide enough for their legend.

The per-epoch curves read each run's ``epochs.jsonl`` from the folders of the board's records
(:attr:`bench.leaderboard.Leaderboard.records`), the same path any reporter has.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.files import atomic_write
from bench.formats import as_number, count_text, epoch_number
from bench.hookspecs import hookimpl
from bench.leaderboard import (
    CEILING,
    CI_HIGH,
    OUT_OF,
    ROW_KEY,
    Column,
    Leaderboard,
    interval_half_width,
    record_key,
    row_label,
)
from bench.records import EPOCH_LOG, RunRecord, read_epoch_log
from bench.specs import ReporterSpec

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


FORMATS = ("png", "svg")
CURVES = (("kl", "nats"), ("mi", "nats"), ("au", "active units"))  # per-epoch validation


def remember_results_dir(path: Path) -> None:
    """Deprecated, no effect: a board carries its records and their run folders."""
    warnings.warn(
        "bench.plots.remember_results_dir is deprecated and has no effect: leaderboards carry "
        "their run records and folders (Leaderboard.records)",
        DeprecationWarning,
        stacklevel=2,
    )


def remember_run_dirs(suite: str, scale: str, dirs: Iterable[Path]) -> None:
    """Deprecated, no effect: a board carries its records and their run folders."""
    warnings.warn(
        "bench.plots.remember_run_dirs is deprecated and has no effect: leaderboards carry "
        "their run records and folders (Leaderboard.records)",
        DeprecationWarning,
        stacklevel=2,
    )


def _row_of(board: Leaderboard) -> Callable[[RunRecord], dict[str, Any] | None]:
    """Finds a record's row: same data set, model and fingerprint, and the same objective
    (tuned boards show it as ``objective [trial N]``)."""
    rows: dict[tuple, list[dict[str, Any]]] = {}
    for r in board.table.iter_rows(named=True):
        rows.setdefault((r["dataset"], r["model"], r["fingerprint"]), []).append(r)

    def find(record: RunRecord) -> dict[str, Any] | None:
        dataset, model, objective, fp = record_key(record)
        for r in rows.get((dataset, model, fp), []):
            if r["objective"] == objective or r["objective"].startswith(f"{objective} ["):
                return r
        return None

    return find


def _find_runs(board: Leaderboard) -> list[tuple[RunRecord, Path, dict[str, Any]]]:
    """Finished runs of the board's rows whose folder has a per-epoch log, with their row."""
    row_of = _row_of(board)
    out = []
    for record in board.records:
        run_dir = record.run_dir
        if not record.finished or run_dir is None or not (run_dir / EPOCH_LOG).exists():
            continue
        row = row_of(record)
        if row is not None:
            out.append((record, run_dir, row))
    return out


def _has(board: Leaderboard, *names: str) -> bool:
    cols = board.table.columns
    return board.table.height > 0 and all(f"{n}_mean" in cols for n in names)


def planned(board: Leaderboard) -> list[tuple[str, str]]:
    """(slug, title) of the figures this board gets, in the order they are linked."""
    out = []
    if _has(board, "nll", "mi"):
        out.append(("nll-mi", "NLL vs MI"))
    if _has(board, "nll", "kl"):
        out.append(("nll-kl", "NLL vs KL"))
    if _has(board, "au"):
        out.append(("au", "Active units"))
    if _find_runs(board):
        out.append(("curves", "KL, MI and AU per epoch"))
    return out


def file_stem(board: Leaderboard, slug: str) -> str:
    return f"{board.suite}.{board.scale}.{slug}"


def links(board: Leaderboard) -> list[tuple[str, str]]:
    """(title, PNG file name) for each figure, relative to the leaderboard folder."""
    return [(title, f"{file_stem(board, slug)}.png") for slug, title in planned(board)]


# ---- drawing ----------------------------------------------------------------------------------


def _rows(board: Leaderboard, dataset: str) -> list[dict[str, Any]]:
    return [r for r in board.table.iter_rows(named=True) if r["dataset"] == dataset]


MARKERS = "osD^vP*Xh<>p"
LINES = ("-", "--", ":", "-.")


HUES = 10  # tab10: hues told apart at a glance (tab20's light/dark pairs are not)


def _style(board: Leaderboard) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Colour by objective, marker and line by model (with their parameters): every row of a
    board has a (colour, marker) pair of its own (the remedies board's 28 rows included), and
    keeps it in every figure, so a row is recognised from one plot to the next. The colours are
    ten clearly different hues; the eleventh objective on starts again at the first hue with
    the next markers. Past the markers, the pairs are handed out row by row."""
    from matplotlib import colormaps

    table = board.table
    labels = zip(table["objective_label"].to_list(), table["model_label"].to_list(), strict=True)
    pairs = sorted(set(labels))
    objectives = sorted({o for o, _ in pairs})
    models = sorted({m for _, m in pairs})
    colors = colormaps["tab10"]
    by_objective = math.ceil(len(objectives) / HUES) * len(models) <= len(MARKERS)

    def style(row: dict[str, Any]) -> dict[str, Any]:
        if by_objective:
            o, m = objectives.index(row["objective_label"]), models.index(row["model_label"])
            c, m = o % HUES, o // HUES * len(models) + m
        else:
            i = pairs.index((row["objective_label"], row["model_label"]))
            c, m = i % HUES, i // HUES
        return {
            "color": colors(c),
            "marker": MARKERS[m % len(MARKERS)],
            "linestyle": LINES[m % len(LINES)],
        }

    return style


def pareto_front(
    points: list[tuple[float, float]], higher_x_is_better: bool = True
) -> list[tuple[float, float]]:
    """Points (x, nll) not dominated by another point with an x at least as good and an NLL at
    least as low, sorted by x. For KL and MI (information kept) higher x is better."""
    sign = -1.0 if higher_x_is_better else 1.0
    front: list[tuple[float, float]] = []
    best_nll = math.inf
    for x, nll in sorted(points, key=lambda p: (sign * p[0], p[1])):
        if nll < best_nll:
            front.append((x, nll))
            best_nll = nll
    return sorted(front)


def _column(board: Leaderboard, name: str) -> Column:
    return next(c for c in board.columns if c.name == name)


def _ceilings(rows: list[dict[str, Any]], metric: str) -> list[float]:
    return sorted({v for r in rows if (v := as_number(r.get(f"{metric}_{CEILING}"))) is not None})


def _draw_ceiling(ax: Axes, value: float, title: str, vertical: bool) -> None:
    """The estimator's ceiling as a dotted line; its label sits on a white box above the
    markers, so no point hides it."""
    line = ax.axvline if vertical else ax.axhline
    line(value, color="0.3", linestyle=":", linewidth=1.2, label=f"{title} ceiling (log N)")
    text = f"log N = {value:.2f}"
    box = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}
    where = {"fontsize": 7, "color": "0.3", "zorder": 10, "bbox": box}
    if vertical:
        ax.annotate(
            text, (value, 0.99), xycoords=("data", "axes fraction"), va="top", ha="right",
            rotation=90, **where,
        )  # fmt: skip
    else:
        ax.annotate(text, (0.01, value), xycoords=("axes fraction", "data"), va="bottom", **where)


# A panel plots this estimate instead where every row of its data set has one: MI over more
# examples than the test split, whose higher ceiling leaves room to rank the rows.
WIDER = {"mi": "mi_train"}


def _draw_tradeoff(fig: Figure, board: Leaderboard, chosen: str) -> None:
    nll = _column(board, "nll")
    style = _style(board)
    datasets = board.datasets
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    for ax, dataset in zip(axes, datasets, strict=True):
        rows = _rows(board, dataset)
        wider = WIDER.get(chosen)
        every = wider and all(as_number(r.get(f"{wider}_mean")) is not None for r in rows)
        metric = wider if every else chosen
        col = _column(board, metric)
        points = _draw_points(ax, rows, metric, style)
        _draw_front(ax, pareto_front(points, col.direction == "max"))
        xs, min_span = [x for x, _ in points], MIN_SPAN.get(UNITS.get(metric), 0.0)
        low, high = fitted_limits(xs, min_span)
        # A ceiling near the points is shown (how close they are to saturation); a far one is
        # named under the axis rather than squeezing the points together.
        near = [v for v in _ceilings(rows, metric) if v - high <= 0.5 * (high - low)]
        low, high = fitted_limits(xs + near, min_span)
        ax.set_xlim(low, high)
        beyond = [v for v in _ceilings(rows, metric) if not low <= v <= high]
        for value in _ceilings(rows, metric):
            if low <= value <= high:
                _draw_ceiling(ax, value, col.title, vertical=True)
        ax.set_title(dataset)
        note = "; ".join(f"ceiling log N = {v:.2f} off the axis" for v in beyond)
        split = "train" if metric == "mi_train" else "test"
        ax.set_xlabel(axis_label(col, split) + (f"\n{note}" if note else ""))
        ax.set_ylabel(axis_label(nll))
        ax.grid(alpha=0.3)
    _legend(fig, axes)


# Units of the quantities on the figures' axes: nats per example (image, sentence, document).
UNITS = {
    "nll": "nats",
    "nll_bound": "nats",
    "neg_elbo": "nats",
    "recon": "nats",
    "kl": "nats",
    "mi": "nats",
    "mi_train": "nats",
}
# The narrowest span an axis in this unit shows: estimator noise of a few hundredths of a nat
# near the MI ceiling must not look like an effect.
MIN_SPAN = {"nats": 0.5}


def axis_label(col: Column, split: str = "test") -> str:
    """``NLL (IW) ↓ (nats per example, test)``: title, direction, unit and split."""
    unit = UNITS.get(col.name)
    return f"{col.title} {col.arrow} ({f'{unit} per example, ' if unit else ''}{split})"


def fitted_limits(values: list[float], min_span: float = 0.0) -> tuple[float, float]:
    """Axis limits around ``values`` with a margin, at least ``min_span`` wide (centred on
    the values); (0, 1) without values."""
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    span = max(high - low, min_span, 1e-9 if high == low == 0 else abs(high) * 1e-3)
    middle = (low + high) / 2
    low, high = min(low, middle - span / 2), max(high, middle + span / 2)
    margin = 0.08 * (high - low)
    return low - margin, high + margin


def _draw_points(
    ax: Axes, rows: list[dict[str, Any]], metric: str, style: Callable[..., dict[str, Any]]
) -> list[tuple[float, float]]:
    """Each row at (metric, NLL) with its 95% interval over seeds as error bars (the std
    for a table without intervals); returns the points."""

    points = []
    for row in rows:
        x, y = as_number(row.get(f"{metric}_mean")), as_number(row.get("nll_mean"))
        if x is None or y is None:
            continue
        points.append((x, y))
        xerr, yerr = (
            interval_half_width(row, m)
            if f"{m}_{CI_HIGH}" in row
            else as_number(row.get(f"{m}_std"))
            for m in (metric, "nll")
        )
        ax.errorbar(
            x,
            y,
            xerr=xerr,
            yerr=yerr,
            markersize=7,
            label=row_label(row),
            **{**style(row), "linestyle": "none"},
        )
    return points


def _draw_front(ax: Axes, front: list[tuple[float, float]]) -> None:
    """The Pareto front: a dashed line through its points, or a ring round a lone one."""
    if len(front) > 1:
        ax.plot(
            *zip(*front, strict=True),
            color="0.4",
            linestyle="--",
            linewidth=1,
            zorder=0,
            label="Pareto front",
        )
    elif front:
        ax.scatter(
            *zip(*front, strict=True),
            s=200,
            facecolors="none",
            edgecolors="0.4",
            label="Pareto front",
        )


def _legend(fig: Figure, axes: Iterable[Axes]) -> None:
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(
            handles.values(),
            handles.keys(),
            loc="outside right center",
            fontsize=8,
            ncols=legend_columns(len(handles)),
        )


LEGEND_ROWS = 18  # entries per legend column before another column starts
LEGEND_ROW_IN = 0.2  # inches per legend row at font size 8 (with spacing)
LEGEND_COLUMN_IN = 2.6  # inches per legend column (the longest row labels)


def legend_columns(entries: int) -> int:
    return max(1, math.ceil(entries / LEGEND_ROWS))


def legend_size(board: Leaderboard) -> tuple[float, float]:
    """(width, height) in inches the legend of a board's figures needs: one entry per row,
    plus the Pareto front and a ceiling. The figure is made at least this tall, so a legend
    is never cut off."""
    entries = board.table.height + 2
    columns = legend_columns(entries)
    return LEGEND_COLUMN_IN * columns, LEGEND_ROW_IN * math.ceil(entries / columns) + 0.9


def _bar_names(rows: list[dict[str, Any]]) -> tuple[list[str], str]:
    """One short line per bar (each bar's count says its D), and what every bar shares, for
    the panel's title: the model when all rows have one, and D when all have the same."""
    models = {r["model_label"] for r in rows}
    dims = {as_number(r.get(f"au_{OUT_OF}")) for r in rows}
    shared = [next(iter(models))] if len(models) == 1 else []
    if len(dims) == 1 and None not in dims:
        shared.append(f"D={next(iter(dims)):g}")
    names = [r["objective_label"] if len(models) == 1 else row_label(r) for r in rows]
    return names, ", ".join(shared)


def _draw_au(fig: Figure, board: Leaderboard) -> None:
    col = _column(board, "au")
    style = _style(board)
    datasets = board.datasets
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    for ax, dataset in zip(axes, datasets, strict=True):
        rows = [r for r in _rows(board, dataset) if as_number(r.get("au_mean")) is not None]
        for i, row in enumerate(rows):
            of = as_number(row.get(f"au_{OUT_OF}"))
            scale = of or 1.0
            # The 95% interval the table prints (none for one seed), as on the trade-off plots.
            half = interval_half_width(row, "au")
            # An outline and the count above each bar: a row with no active unit shows "0 / D"
            # on a visible baseline rather than nothing.
            bars = ax.bar(
                i,
                row["au_mean"] / scale,
                yerr=None if half is None else half / scale,
                color=style(row)["color"],
                edgecolor="0.2",
                linewidth=0.8,
                capsize=3,
            )
            mean = row["au_mean"]
            shown = count_text(int(mean) if float(mean).is_integer() else mean, of)
            ax.bar_label(bars, [shown], fontsize=7, padding=2)
            # The row's marker on the baseline: a bar of zero is still seen, and two bars of
            # one colour are told apart as in the other figures.
            look = style(row)
            ax.plot(
                i, 0, marker=look["marker"], color=look["color"], markeredgecolor="0.2",
                markersize=6, clip_on=False, zorder=5, linestyle="none",
            )  # fmt: skip
        names, shared = _bar_names(rows)
        ax.set_xticks(range(len(rows)), names, rotation=90, fontsize=7)  # side by side
        ax.set_xlim(-0.6, max(len(rows), 1) - 0.4)
        ax.set_title(f"{dataset} ({shared})" if shared else dataset)
        fraction = all(as_number(r.get(f"au_{OUT_OF}")) for r in rows)
        ax.set_ylabel(
            f"{col.title} {col.arrow} " + ("(fraction of D, test)" if fraction else "(test)")
        )
        if fraction:
            ax.set_ylim(0, 1.12)  # room for the counts above full bars
        ax.grid(axis="y", alpha=0.3)


def au_size(board: Leaderboard) -> tuple[float, float]:
    """Inches for the AU figure: a panel per data set, wide enough for its bars, and tall
    enough for the longest bar name under the bars (written upright)."""
    rows = {d: _rows(board, d) for d in board.datasets}
    width = 1.0 + sum(max(3.5, 0.38 * len(r) + 1.0) for r in rows.values())
    longest = max((len(n) for r in rows.values() for n in _bar_names(r)[0]), default=0)
    return max(width, 4.5), 3.8 + 0.065 * longest


def _epoch_log(run_dir: Path) -> list[dict[str, Any]]:
    return read_epoch_log(run_dir / EPOCH_LOG)


def _epoch_ticks(ax: Axes, epochs: int) -> None:
    """Whole epochs only, and a sensible span even for a single epoch."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlim(0.5, max(epochs, 1) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _draw_curves(fig: Figure, board: Leaderboard) -> None:
    runs = _find_runs(board)
    # One line per leaderboard row: the mean over its seeds.
    series: dict[tuple, list[tuple[list[dict[str, Any]], dict[str, Any]]]] = {}
    rows: dict[tuple, dict[str, Any]] = {}
    for record, run_dir, row in runs:
        key = tuple(row[k] for k in ROW_KEY)
        rows[key] = row
        series.setdefault(key, []).append((_epoch_log(run_dir), record))
    datasets = [d for d in board.datasets if any(k[0] == d for k in series)]
    axes = fig.subplots(len(datasets), len(CURVES), squeeze=False)
    style = _style(board)
    titles = {c.name: f"{c.title} {c.arrow}" for c in board.columns}
    for row_axes, dataset in zip(axes, datasets, strict=True):
        longest = 1
        ceilings: dict[str, set[float]] = {}
        for key, runs_of_row in series.items():
            if key[0] == dataset:
                logs = [log for log, _ in runs_of_row]
                n = _draw_row_curves(row_axes, rows[key], logs, style, ceilings)
                longest = max(longest, n)
        for ax, (metric, unit) in zip(row_axes, CURVES, strict=True):
            far = _curve_ceilings(ax, sorted(ceilings.get(metric, ())), titles.get(metric, metric))
            unit = "fraction of D" if metric == "au" else unit
            ax.set_title(f"{dataset}: validation {titles.get(metric, metric)} ({unit})", fontsize=9)
            ax.set_xlabel(
                "epoch (from 1)" + "".join(f"\nlog N = {v:.2f} off the axis" for v in far)
            )
            _epoch_ticks(ax, longest)
            # Nats kept and units active are measured from zero, over half a nat at least:
            # estimator noise of a few thousandths must not look like an effect.
            low, high = ax.get_ylim()
            low = min(0.0, low)
            high = 1.05 if metric == "au" and high <= 1.05 else max(high, low + MIN_SPAN["nats"])
            ax.set_ylim(low, high)
            ax.grid(alpha=0.3)
    _legend(fig, axes.ravel())


def _curve_ceilings(ax: Axes, values: list[float], title: str) -> list[float]:
    """Draws the ceilings near the curves (how close they come to saturation), as the
    trade-off plots do; returns the far ones, named under the axis rather than squeezing the
    curves against zero."""
    low, high = ax.dataLim.y0, ax.dataLim.y1
    span = max(high - low, MIN_SPAN["nats"])
    far = [v for v in values if v - high > 0.5 * span]
    for value in values:
        if value not in far:
            _draw_ceiling(ax, value, title, vertical=False)
    return far


def _draw_row_curves(
    row_axes: Any,
    row: dict[str, Any],
    logs: list[list[dict[str, Any]]],
    style: Callable[..., dict[str, Any]],
    ceilings: dict[str, set[float]],
) -> int:
    """One row's mean curve over its seeds on each axis; collects the ceilings the logs give.
    Returns the epochs every seed reached."""
    d = as_number(row.get(f"au_{OUT_OF}"))  # AU as a fraction of D where the record gives D
    n = min(len(log) for log in logs)
    for ax, (metric, _) in zip(row_axes, CURVES, strict=True):
        name = f"val_{metric}"
        values = [[float(log[i][name]) for log in logs if name in log[i]] for i in range(n)]
        xs = [epoch_number(i) for i, v in enumerate(values) if v]  # from 1, as the logs
        ys = [sum(v) / len(v) for v in values if v]
        if metric == "au" and d:
            ys = [y / d for y in ys]
        if ys:
            ax.plot(xs, ys, markersize=3, linewidth=1.2, label=row_label(row), **style(row))
        for entry in (e for log in logs for e in log):
            if f"{name}_{CEILING}" in entry:
                ceilings.setdefault(metric, set()).add(float(entry[f"{name}_{CEILING}"]))
    return n


def _save(fig: Figure, out_dir: Path, stem: str) -> list[str]:
    import matplotlib

    paths = []
    for fmt in FORMATS:
        path = out_dir / f"{stem}.{fmt}"
        # No dates and fixed ids: re-plotting the same board gives the same SVG bytes.
        metadata = {"Date": None} if fmt == "svg" else {"Software": None}

        def save(tmp: Path, fmt: str = fmt, metadata: dict = metadata) -> None:
            with matplotlib.rc_context({"svg.hashsalt": "collapse-bench"}):
                fig.savefig(tmp, format=fmt, dpi=120, metadata=metadata)

        atomic_write(path, save)
        paths.append(str(path))
        # The layout is settled by the first save; the other formats reuse it (half the time).
        fig.set_layout_engine("none")
    return paths


def write_plots(board: Leaderboard, out_dir: Path) -> list[str]:
    """Draw every figure in :func:`planned`; returns the files written."""
    from matplotlib.figure import Figure

    out_dir.mkdir(parents=True, exist_ok=True)
    width = max(1, len(board.datasets))
    legend_w, legend_h = legend_size(board)
    paths: list[str] = []
    for slug, title in planned(board):
        if slug == "curves":
            rows = max(1, len({row["dataset"] for _, _, row in _find_runs(board)}))
            fig = Figure(figsize=(11.5 + legend_w, max(3.6 * rows, legend_h)), layout="constrained")
            _draw_curves(fig, board)
        elif slug == "au":
            fig = Figure(figsize=au_size(board), layout="constrained")
            _draw_au(fig, board)
        else:
            size = (0.5 + 4.5 * width + legend_w, max(4.6, legend_h))
            fig = Figure(figsize=size, layout="constrained")
            _draw_tradeoff(fig, board, {"nll-kl": "kl", "nll-mi": "mi"}[slug])
        fig.suptitle(f"{board.suite} ({board.scale}): {title}")
        paths += _save(fig, out_dir, file_stem(board, slug))
    return paths


@hookimpl
def register_reporters(register: Callable[[ReporterSpec], None]) -> None:
    register(
        ReporterSpec(
            "plots",
            write_plots,
            "PNG+SVG: NLL vs KL and vs MI with Pareto front, AU, per-epoch KL/MI/AU curves",
        )
    )
