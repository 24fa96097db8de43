"""``bench show run ID``: one run's record in full (settings, metrics, epochs, error), and
finding run folders by id under a results folder (also what ``bench rm`` removes).

Torch-free, like every ``bench show``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from rich.console import Group as Renderables
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bench.errors import BenchError, UnknownNameError
from bench.formats import duration_text, metric_text, param_text
from bench.records import EPOCH_LOG, RECORD_FILE, RunRecord, read_epoch_log, read_record
from bench.registry import suggest

# Epoch-log fields shown first, in this order; the other validation values follow by name,
# then these.
EPOCH_FIRST = ("train_loss", "val_neg_elbo", "val_kl", "val_mi", "val_au")
EPOCH_LAST = ("lr", "time")


def run_folders(results_dir: Path) -> Iterator[Path]:
    """Every run folder (one holding a record) of every suite and scale under ``results_dir``."""
    if results_dir.is_dir():
        yield from sorted(p.parent for p in results_dir.glob(f"*/*/*/{RECORD_FILE}"))


def find_run(results_dir: Path, run: str) -> Path:
    """The folder of run ``run``: a run id, ``suite/scale/run id`` or a run folder's path; an
    error naming the candidates when the id is unknown or held by several suites or scales."""
    given = Path(run)
    if (given / RECORD_FILE).is_file():
        return given
    found = [p for p in run_folders(results_dir) if _names(p, results_dir, run)]
    if len(found) == 1:
        return found[0]
    if found:
        where = ", ".join(str(p.relative_to(results_dir)) for p in found)
        raise BenchError(f"run {run!r} is in several suites or scales: {where}; name one")
    known = [p.name for p in run_folders(results_dir)]
    if not known:
        raise BenchError(f"no runs in {results_dir} (--results-dir or BENCH_RESULTS_DIR)")
    raise UnknownNameError(f"no run {run!r} in {results_dir}{suggest(run, known)}")


def _names(folder: Path, results_dir: Path, run: str) -> bool:
    return run in (folder.name, folder.relative_to(results_dir).as_posix())


def _words(values: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={param_text(v)}" for k, v in values.items()) or "–"


def _summary_lines(record: RunRecord, folder: Path) -> list[Any]:
    cell = record.cell
    lines: list[Any] = [
        Text(f"run {record.run_id}", style="bold"),
        f"suite {cell.get('suite')}, scale {cell.get('scale')}, group {cell.get('group')}: "
        f"{cell.get('dataset')} × {cell.get('model')} × {cell.get('objective')}, "
        f"seed {cell.get('seed')}",
        f"folder: {folder}",
        f"status: {record.status}" + (f" ({record.reason})" if record.reason else ""),
    ]
    if cell.get("overrides"):
        lines.append(f"--set: {', '.join(cell['overrides'])}")
    trained = f"{record.epochs_trained} epochs"
    if record.best_epoch > 0:
        trained += f", best epoch {record.best_epoch} by {record.selected_by}"
    if record.stop_reason:
        trained += f"; {record.stop_reason}"
    lines.append(f"trained: {trained}")
    lines.append(
        f"time: {duration_text(record.wall_time_s)} wall (training "
        f"{duration_text(record.train_time_s)}, evaluation {duration_text(record.eval_time_s)})"
        f" on {record.device_name or record.device or '?'}"
    )
    return lines


def _settings_table(record: RunRecord) -> Table:
    table = Table(title="settings (resolved)", title_justify="left", box=None)
    table.add_column("part")
    table.add_column("values", overflow="fold")
    for part, values in record.resolved.items():
        table.add_row(part, escape(_words(values)))
    return table


def _metrics_table(record: RunRecord) -> Table:
    table = Table(title="metrics (test split)", title_justify="left", box=None)
    for col in ("metric", "value", "settings"):
        table.add_column(col, overflow="fold")
    for name, m in record.metrics.items():
        value = metric_text(m.value, m.settings) if m.error is None else f"error: {m.error}"
        table.add_row(name, escape(value), escape(_words(m.settings)))
    return table


def _epochs_table(log: list[dict[str, Any]], record: RunRecord) -> Table:
    """One line per epoch, numbered from 1 as in the logs and plots, AU out of D."""
    numbers = {k for e in log for k, v in e.items() if isinstance(v, (int, float))}
    names = [k for k in EPOCH_FIRST if k in numbers]
    names += sorted(
        k for k in numbers - set(names) if k.startswith("val_") and not k.endswith("_ceiling")
    )
    names += [k for k in EPOCH_LAST if k in numbers]
    of = {f"val_{k}": m.settings.get("of") for k, m in record.metrics.items()}
    table = Table(title="epochs", title_justify="left", box=None)
    table.add_column("epoch", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for entry in log:
        cells = []
        for name in names:
            value = entry.get(name)
            if value is None:
                cells.append("–")
            elif name == "time":
                cells.append(duration_text(value))
            elif name == "lr":
                cells.append(param_text(float(value)))
            else:
                cells.append(metric_text(value, {"of": of.get(name)}))
        table.add_row(str(entry["epoch"]), *cells)
    return table


def describe_run(folder: Path) -> Renderables:
    """Everything ``bench show run`` prints about the run in ``folder``."""
    record = RunRecord.from_json(read_record(folder / RECORD_FILE), folder / RECORD_FILE)
    parts: list[Any] = _summary_lines(record, folder)
    parts += ["", _settings_table(record), "", _metrics_table(record)]
    log = read_epoch_log(folder / EPOCH_LOG)
    if log:
        parts += ["", _epochs_table(log, record)]
    if record.error is not None:
        e = record.error
        origin = f" in plugin {e.plugin} ({e.distribution})" if e.plugin else ""
        parts += ["", Text(f"error{origin}: {e.type}: {e.message}", style="red")]
        parts.append(f"traceback: {folder / e.log}")
    # Plain strings are text (paths, reasons), never rich markup.
    return Renderables(*(Text(p) if isinstance(p, str) else p for p in parts))
