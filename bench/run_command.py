"""``bench run`` once its options are parsed: the cells it chooses, the run options they make,
the suite trained, and its leaderboard written.

The command line (:mod:`bench.cli`) imports this module when ``bench run`` runs, so that
``bench --help`` does not pay for torch and the runner.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click
import torch

from bench import leaderboard as lb
from bench.boards import suite_boards, write_boards
from bench.console import RunConsole, listing
from bench.data import DATA_DIR_ENV
from bench.diskerrors import disk_error
from bench.errors import BenchError
from bench.formats import duration_text
from bench.names import check_path
from bench.records import RunRecord, results_root
from bench.runner import RunOptions, resolve_device, run_suite, select_cells, validate_cells
from bench.runner.preflight import check_writable
from bench.runner.ray import ray_placement
from bench.selection import CellFilter, apply_overrides
from bench.suites import Cell, Suite, get_suite


@dataclass(frozen=True)
class RunArgs:
    """``bench run``'s options as given (one field per option, same names)."""

    suite_name: str
    scale: str | None
    device: str
    data_dir: str | None
    results_dir: str | None
    leaderboard_dir: str | None
    resume: bool
    overwrite: bool
    quiet: bool
    fail_fast: bool
    jobs: int | None
    amp: bool
    fp32_eval: bool
    tf32: bool
    deterministic: bool
    compile_mode: str | None
    channels_last: bool
    threads: int | None
    devices: str | None
    ray_address: str | None
    gpus_per_cell: float | None
    cpus_per_cell: float
    list_cells: bool
    overrides: tuple[str, ...]
    keep_checkpoints: bool
    cell_filter: CellFilter


def run_command(a: RunArgs) -> None:
    """Train the chosen cells (or list them), then write the leaderboard; exit code 1 when a
    run did not finish."""
    suite, scale, cells = chosen_cells(a)
    if a.list_cells:
        click.echo(listing(suite.name, scale, cells, results_root(a.results_dir)))
        return
    t0 = time.time()
    show = RunConsole(a.quiet)
    opts = run_options(a, show)
    board_dir = lb.leaderboard_dir(a.leaderboard_dir, opts.results_dir)
    outputs = [(opts.results_dir / suite.name / scale, "results folder")]
    outputs.append((board_dir, "leaderboard folder"))
    for folder, what in outputs:  # before the header: a bad folder is one line, nothing else
        check_writable(folder, what)
    show.header(suite.name, scale, cells, opts)
    try:
        with show:
            scale, records = run_suite(suite, scale, opts, overwrite=a.overwrite, cells=cells)
        report(suite, scale, opts, records, board_dir, show, t0)
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP (bench.signals)
        board_of_finished_runs(opts.results_dir, suite, scale, board_dir)
        raise
    except Exception as exc:
        disk = disk_error(exc, opts.results_dir)
        if disk is None:
            raise
        # The disk, not a run, failed: the runs that finished still get their board.
        disk.board = board_of_finished_runs(opts.results_dir, suite, scale, board_dir)
        raise disk from None


def chosen_cells(a: RunArgs) -> tuple[Suite, str, list[Cell]]:
    """The suite, its scale and the cells the filters and ``--set`` make of it, checked."""
    if a.resume and a.overwrite:
        raise BenchError("--resume and --overwrite exclude each other")
    if a.fp32_eval and not a.amp:
        raise BenchError("--fp32-eval only applies with --amp")
    for value, option in (
        (a.data_dir, "--data-dir"),
        (a.results_dir, "--results-dir"),
        (a.leaderboard_dir, "--leaderboard-dir"),
    ):
        check_path(value, option)  # a name over 255 bytes: one line, before plugins see it
    if a.data_dir:
        # Plugins may shape a suite's rows by the files present (the paper scale's Yahoo rows)
        # when they load, which get_suite triggers; they read the folder from the environment.
        os.environ[DATA_DIR_ENV] = str(a.data_dir)
    suite = get_suite(a.suite_name, results_root(a.results_dir))
    scale, cells = select_cells(suite, a.scale)
    cells = apply_overrides(a.cell_filter.apply(cells, f"{suite.name}/{scale}"), a.overrides)
    lb.check_columns(suite.columns)
    validate_cells(cells)
    return suite, scale, cells


def run_options(a: RunArgs, show: RunConsole) -> RunOptions:
    if a.devices and a.device != "auto":
        raise BenchError("--device and --devices exclude each other")
    device_list = (
        tuple(resolve_device(d.strip()) for d in a.devices.split(",")) if a.devices else ()
    )
    jobs = a.jobs or len(device_list) or 1
    place = ray_placement(a.ray_address, a.gpus_per_cell, a.cpus_per_cell, a.device)
    if a.threads and jobs == 1:
        torch.set_num_threads(a.threads)
    return RunOptions(
        results_dir=results_root(a.results_dir),
        device=device_list[0] if device_list else resolve_device(a.device),
        data_dir=Path(a.data_dir) if a.data_dir else None,
        resume=a.resume,
        progress=show.progress,
        log=show.log,
        on_cell=show.on_cell,
        keep_checkpoints=a.keep_checkpoints,
        amp=a.amp,
        amp_eval=False if a.fp32_eval else None,
        tf32=a.tf32,
        deterministic=a.deterministic,
        compile=a.compile_mode,
        channels_last=a.channels_last,
        jobs=jobs,
        threads=a.threads,
        devices=device_list,
        ray=place,
        fail_fast=a.fail_fast,
    )


def report(
    suite: Suite,
    scale: str,
    opts: RunOptions,
    records: list[RunRecord],
    board_dir: Path,
    show: RunConsole,
    t0: float,
) -> None:
    """The leaderboard of every finished run of the suite and scale, the summary, one line;
    exit code 1 when a run of this invocation did not finish."""
    records_all = lb.load_records(opts.results_dir, suite.name, scale)
    boards = suite_boards(records_all, suite.name, scale, suite.columns)  # --set runs apart
    written = [lb.write(board, board_dir) for board in boards]
    shown = [next((p for p in ps if p.endswith(".md")), ", ".join(ps)) for ps in written]
    show.summary(boards, records)  # its last table names each run that did not finish
    unfinished = [r for r in records if not r.finished]
    where = "Ray" if opts.ray else ", ".join(map(str, opts.devices or [opts.device]))
    click.echo(
        f"{len(records)} runs ({len(unfinished)} not finished) of {suite.name}/{scale} on "
        f"{where}{f' ({opts.jobs} jobs)' if opts.jobs > 1 else ''} in "
        f"{duration_text(time.time() - t0)}; "
        f"leaderboard{'s' if len(shown) > 1 else ''}: {', '.join(shown)}"
    )
    if unfinished:
        click.echo(f"exit code 1: {len(unfinished)} of {len(records)} runs did not finish")
        sys.exit(1)


def board_of_finished_runs(results_dir: Path, suite: Suite, scale: str, out: Path) -> str | None:
    """After Ctrl-C (or a full disk): the leaderboard of the runs that did finish, if any (best
    effort); returns its markdown file, None when none was written."""
    try:
        records = lb.load_records(results_dir, suite.name, scale, warn=lambda msg: None)
        if any(r.finished for r in records):
            paths = write_boards(suite_boards(records, suite.name, scale, suite.columns), out)
            return next((p for p in paths if p.endswith(".md")), None)
    except Exception:  # nothing more to save; the interrupt message follows
        pass
    return None
