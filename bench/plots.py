"""Leaderboard plots, written next to the leaderboard as PNG and SVG by the ``plots`` reporter.

- ``<suite>.<scale>.nll-kl`` and ``.nll-mi``: every row's test NLL against its KL or MI, with
  the Pareto front (lower NLL, more information) drawn;
- ``.au``: active units per row;
- ``.curves``: validation KL, MI and AU per epoch from each run's ``epochs.jsonl``, which show
  when (and whether) a model collapses.

The per-epoch curves need the run folders. They are found under every results folder this
process has seen (runs that ended here, ``remember_results_dir``), ``BENCH_RESULTS_DIR`` and
``./results``; a caller that knows the exact runs passes them with ``remember_run_dirs``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.hookspecs import hookimpl
from bench.leaderboard import KEYS, Leaderboard
from bench.records import RECORD_FILE, results_root
from bench.specs import ReporterSpec

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from bench.suites import Cell

FORMATS = ("png", "svg")
CURVES = (("val_kl", "KL (nats)"), ("val_mi", "MI (nats)"), ("val_au", "active units"))
_results_dirs: list[Path] = []
_run_dirs: dict[tuple[str, str], list[Path]] = {}


def remember_results_dir(path: Path) -> None:
    """A results folder whose runs the curves may use (``bench leaderboard --results-dir``)."""
    path = Path(path)
    if path not in _results_dirs:
        _results_dirs.append(path)


def remember_run_dirs(suite: str, scale: str, dirs: Iterable[Path]) -> None:
    """Exactly the runs behind a leaderboard (tuned boards: not older best trials)."""
    _run_dirs[(suite, scale)] = [Path(d) for d in dirs]


def _read_record(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return None


def _find_runs(board: Leaderboard) -> list[tuple[dict[str, Any], Path]]:
    """Finished runs of the board's rows that have a per-epoch log."""
    explicit = _run_dirs.get((board.suite, board.scale))
    if explicit is not None:
        candidates, check_rows = explicit, False
    else:
        roots = [*_results_dirs, results_root()]
        seen: set[Path] = set()
        candidates = []
        for root in roots:
            folder = root / board.suite / board.scale
            if folder.is_dir():
                for d in sorted(folder.iterdir()):
                    if d.resolve() not in seen:
                        seen.add(d.resolve())
                        candidates.append(d)
        check_rows = True
    rows = {tuple(r[k] for k in KEYS) for r in board.table.iter_rows(named=True)}
    out = []
    for d in candidates:
        record = _read_record(d)
        if record is None or record.get("status") != "finished":
            continue
        if not (d / "epochs.jsonl").exists():
            continue
        if check_rows and tuple(record["cell"][k] for k in KEYS) not in rows:
            continue
        out.append((record, d))
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


def _datasets(board: Leaderboard) -> list[str]:
    return list(dict.fromkeys(board.table["dataset"].to_list()))


def _style(board: Leaderboard) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Colour by model, marker by objective, the same in every figure."""
    from matplotlib import colormaps

    models = sorted(set(board.table["model"].to_list()))
    objectives = sorted(set(board.table["objective"].to_list()))
    colors = colormaps["tab10"]
    markers = "osD^vP*Xh<>"
    lines = ("-", "--", ":", "-.")

    def style(row: dict[str, Any]) -> dict[str, Any]:
        k = objectives.index(row["objective"])
        return {
            "color": colors(models.index(row["model"]) % 10),
            "marker": markers[k % len(markers)],
            "linestyle": lines[k % len(lines)],
        }

    return style


def _num(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points (x, nll) not dominated by another with x at least as high and nll as low,
    sorted by x. Higher x (KL or MI: information kept) and lower NLL are better."""
    front: list[tuple[float, float]] = []
    best_nll = math.inf
    for x, nll in sorted(points, key=lambda p: (-p[0], p[1])):
        if nll < best_nll:
            front.append((x, nll))
            best_nll = nll
    return sorted(front)


def _draw_tradeoff(fig: Figure, board: Leaderboard, metric: str, label: str) -> None:
    style = _style(board)
    datasets = _datasets(board)
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    for ax, dataset in zip(axes, datasets, strict=True):
        points = []
        for row in _rows(board, dataset):
            x, y = _num(row.get(f"{metric}_mean")), _num(row.get("nll_mean"))
            if x is None or y is None:
                continue
            points.append((x, y))
            xerr, yerr = _num(row.get(f"{metric}_std")), _num(row.get("nll_std"))
            ax.errorbar(
                x,
                y,
                xerr=xerr,
                yerr=yerr,
                markersize=7,
                label=f"{row['model']} / {row['objective']}",
                **{**style(row), "linestyle": "none"},
            )
        front = pareto_front(points)
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
        ax.set_title(dataset)
        ax.set_xlabel(f"{label} ↑ (test)")
        ax.set_ylabel("NLL ↓ (test, nats)")
        ax.grid(alpha=0.3)
    _legend(fig, axes)


def _legend(fig: Figure, axes: Iterable[Axes]) -> None:
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="outside right center", fontsize=8)


def _draw_au(fig: Figure, board: Leaderboard) -> None:
    style = _style(board)
    datasets = _datasets(board)
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    for ax, dataset in zip(axes, datasets, strict=True):
        rows = [r for r in _rows(board, dataset) if _num(r.get("au_mean")) is not None]
        names = [f"{r['model']}\n{r['objective']}" for r in rows]
        for i, row in enumerate(rows):
            ax.bar(
                i,
                row["au_mean"],
                yerr=_num(row.get("au_std")),
                color=style(row)["color"],
                capsize=3,
            )
        ax.set_xticks(range(len(rows)), names, rotation=45, ha="right", fontsize=7)
        ax.set_title(dataset)
        ax.set_ylabel("active units ↑ (test)")
        ax.grid(axis="y", alpha=0.3)


def _epoch_log(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "epochs.jsonl").read_text().splitlines()
    return [json.loads(ln) for ln in lines if ln.strip()]


def _draw_curves(fig: Figure, board: Leaderboard) -> None:
    from matplotlib.ticker import MaxNLocator

    runs = _find_runs(board)
    # One line per (dataset, group, model, objective): the mean over its seeds.
    series: dict[tuple[str, str, str, str], list[list[dict[str, Any]]]] = {}
    for record, run_dir in runs:
        c = record["cell"]
        series.setdefault((c["dataset"], c["group"], c["model"], c["objective"]), []).append(
            _epoch_log(run_dir)
        )
    datasets = [d for d in _datasets(board) if any(k[0] == d for k in series)]
    axes = fig.subplots(len(datasets), len(CURVES), squeeze=False)
    style = _style(board)
    known_objectives = set(board.table["objective"].to_list())
    groups_per_row: dict[tuple[str, str, str], int] = {}
    for ds, _, model, obj in series:
        groups_per_row[(ds, model, obj)] = groups_per_row.get((ds, model, obj), 0) + 1
    for row_axes, dataset in zip(axes, datasets, strict=True):
        for (ds, group, model, objective), logs in sorted(series.items()):
            if ds != dataset:
                continue
            label = f"{model} / {objective}"
            if groups_per_row[(ds, model, objective)] > 1:
                label += f" ({group})"
            row = {"model": model, "objective": objective}
            st = style(row) if objective in known_objectives else {"marker": "o"}
            for ax, (key, _) in zip(row_axes, CURVES, strict=True):
                n = min(len(log) for log in logs)
                values = [[float(log[i][key]) for log in logs if key in log[i]] for i in range(n)]
                xs = [i + 1 for i, v in enumerate(values) if v]
                ys = [sum(v) / len(v) for v in values if v]
                if ys:
                    ax.plot(xs, ys, markersize=3, linewidth=1.2, label=label, **st)
        for ax, (_, title) in zip(row_axes, CURVES, strict=True):
            ax.set_title(f"{dataset}: validation {title}", fontsize=9)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
    _legend(fig, axes.ravel())


def _save(fig: Figure, out_dir: Path, stem: str) -> list[str]:
    import matplotlib

    paths = []
    for fmt in FORMATS:
        path = out_dir / f"{stem}.{fmt}"
        tmp = out_dir / f".{stem}.{fmt}.tmp"
        # No dates and fixed ids: re-plotting the same board gives the same SVG bytes.
        metadata = {"Date": None} if fmt == "svg" else {"Software": None}
        with matplotlib.rc_context({"svg.hashsalt": "collapse-bench"}):
            fig.savefig(tmp, format=fmt, dpi=120, metadata=metadata)
        tmp.replace(path)
        paths.append(str(path))
        # The layout is settled by the first save; the other formats reuse it (half the time).
        fig.set_layout_engine("none")
    return paths


def write_plots(board: Leaderboard, out_dir: Path) -> list[str]:
    """Draw every figure in :func:`planned`; returns the files written."""
    from matplotlib.figure import Figure

    out_dir.mkdir(parents=True, exist_ok=True)
    width = max(1, len(_datasets(board))) if board.table.height else 1
    paths: list[str] = []
    for slug, title in planned(board):
        if slug == "curves":
            rows = max(1, len({r["cell"]["dataset"] for r, _ in _find_runs(board)}))
            fig = Figure(figsize=(14, 3.6 * rows), layout="constrained")
            _draw_curves(fig, board)
        else:
            fig = Figure(figsize=(3 + 4.5 * width, 4.6), layout="constrained")
            if slug == "au":
                _draw_au(fig, board)
            else:
                metric, label = {"nll-kl": ("kl", "KL"), "nll-mi": ("mi", "MI")}[slug]
                _draw_tradeoff(fig, board, metric, label)
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


@hookimpl
def on_run_end(cell: Cell, record: dict[str, Any], model: Any, run_dir: Path) -> None:
    # <results>/<suite>/<scale>/<run_id>: remember <results> so this run's curves are found.
    remember_results_dir(Path(run_dir).parents[2])
