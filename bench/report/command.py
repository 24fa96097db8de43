"""``bench report`` and ``bench run --report``: the click side of the report (no torch, no
polars at import, as every command module)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from bench.command_options import add_option
from bench.report.request import SITE_DIR, request


def add_commands(cli: click.Group) -> None:
    """``bench report``, and ``--report`` on ``bench run`` (once, however often the hook
    runs in one process)."""
    cli.add_command(report_cmd)
    report = click.Option(
        ["--report"],
        is_flag=True,
        expose_value=False,
        callback=_report_flag,
        help="also write the web report of the suite (<leaderboard dir>/site/)",
    )
    add_option(cli, "run", report)


def _report_flag(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    request(bool(value))  # every `bench run` sets it: an earlier in-process run's is not kept
    return value


def site_size(site: Path) -> tuple[int, int]:
    """Files and bytes under the site folder."""
    files = [p for p in site.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


@click.command(name="report")
@click.option("--suite", "suite_name", default=None, help="one suite (default: every one found)")
@click.option("--scale", default=None, help="one scale (default: every one found)")
@click.option("--results-dir", default=None, help="run folders [env BENCH_RESULTS_DIR; ./results]")
@click.option(
    "--out", "out_dir", default=None, help="site folder [default: <leaderboard dir>/site]"
)
@click.option(
    "--compare-with",
    multiple=True,
    metavar="DIR",
    help="another results folder, offered on the compare page (repeatable)",
)
@click.option("--no-media", is_flag=True, help="no sample grids or sentences (loads no weights)")
@click.option("--serve", is_flag=True, help="serve the site; rebuild it as runs finish")
@click.option("--host", default="127.0.0.1", show_default=True, help="with --serve")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--interval", default=2.0, show_default=True, type=click.FloatRange(min=0.1), help="seconds"
)
def report_cmd(
    suite_name: str | None,
    scale: str | None,
    results_dir: str | None,
    out_dir: str | None,
    compare_with: tuple[str, ...],
    no_media: bool,
    serve: bool,
    host: str,
    port: int,
    interval: float,
) -> None:
    """Write the web report: a static site (no network needed to view it) of every suite and
    scale with results: leaderboards with sortable tables and interactive plots, a page per
    row with its curves, settings, records and samples, and a compare page."""
    from bench import leaderboard as lb
    from bench.errors import print_warning
    from bench.records import results_root
    from bench.report.build import add_compare_sets, build_site
    from bench.report.site import SiteOptions

    results = results_root(results_dir)
    site = Path(out_dir) if out_dir else lb.leaderboard_dir() / SITE_DIR
    options = SiteOptions(media=not no_media, live=serve)
    watcher = None
    if serve:
        from bench.report.serve import Watcher

        watcher = Watcher(results, site, options, suite_name, scale, click.echo)
        watcher.prime()  # what the build below writes: the watcher rebuilds what changes next
    t0 = time.perf_counter()
    add_compare_sets(site, [Path(d) for d in compare_with], print_warning)
    built = build_site(results, site, suite_name, scale, options, print_warning)
    files, size = site_size(site)
    click.echo(
        f"report: {len(built.boards)} boards ({', '.join(built.boards)}) in "
        f"{time.perf_counter() - t0:.1f}s; {files} files, {size / 1e6:.2f} MB: {built.index}"
    )
    if watcher is not None:
        from bench.report.serve import serve as serve_site

        serve_site(watcher, host, port, interval, click.echo)
