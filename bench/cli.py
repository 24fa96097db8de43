"""The ``bench`` command line. User errors print one line and exit with code 2.

Each command imports what it needs when it runs: ``bench --help``, ``bench ls`` and
``bench show`` never import torch (see tests/test_startup.py).
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

import click

from bench import plugins
from bench.diskerrors import DiskError, disk_error
from bench.errors import BenchError
from bench.names import path_error
from bench.output import safe_std_streams
from bench.ray_cli import ray_options
from bench.secrets import HIDDEN, PASSWORD_HINT, redact, redact_argv
from bench.selection import filter_options
from bench.signals import exit_code, stopping_on_signals


@click.group(invoke_without_command=True)
@click.version_option(package_name="collapse-bench")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Benchmark latent-variable collapse in VAEs."""
    if ctx.invoked_subcommand is None:  # `bench` alone: the help, not an error
        click.echo(ctx.get_help())


class Kind(click.ParamType):
    """A kind of item, singular or plural (``model`` or ``models``), given as ``canonical``
    wants it: one grammar for ``bench ls`` and ``bench show``."""

    name = "kind"

    def __init__(self, plurals: tuple[str, ...], canonical: str) -> None:
        self.plurals, self.canonical = plurals, canonical  # canonical: "plural" or "singular"

    def convert(self, value: str, param: Any, ctx: Any) -> str:
        word = value.lower()
        plural = word if word in self.plurals else word + "s"
        if plural not in self.plurals:
            from bench.registry import suggest

            shown = ", ".join(self.plurals)
            hint = suggest(plural, self.plurals)
            self.fail(f"{value!r}{hint} is not one of {shown} (singular or plural)", param, ctx)
        return plural if self.canonical == "plural" else plural[:-1]

    def get_metavar(self, param: Any, ctx: Any = None) -> str:
        return "{" + "|".join(p[:-1] for p in self.plurals) + "}"


@cli.command()
@click.option("--suite", "suite_name", required=True, help="registered suite or a .toml file")
@click.option("--scale", default=None, help="smoke, quick or paper (default: the suite's)")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N")
@click.option("--data-dir", default=None, help="data sets folder [env BENCH_DATA_DIR]")
@click.option("--results-dir", default=None, help="run folders [env BENCH_RESULTS_DIR; ./results]")
@click.option(
    "--leaderboard-dir",
    default=None,
    help="[env BENCH_LEADERBOARD_DIR; <results>/leaderboards]",
)
@click.option("--resume", is_flag=True, help="continue a killed suite; finished runs are kept")
@click.option("--overwrite", is_flag=True, help="discard earlier results of this suite and scale")
@click.option("--quiet", is_flag=True, help="no progress bar or per-epoch lines")
@click.option("--fail-fast", is_flag=True, help="stop at the first run that fails")
@click.option(
    "--jobs",
    default=None,
    type=click.IntRange(min=1),
    help="cells trained at once, each in its own process on the same device",
)
@click.option("--amp", is_flag=True, help="bf16 autocast in training and evaluation")
@click.option("--fp32-eval", is_flag=True, help="with --amp: evaluate in fp32")
@click.option("--tf32", is_flag=True, help="allow TF32 matmuls/convolutions/RNNs (CUDA)")
@click.option(
    "--deterministic",
    is_flag=True,
    help="deterministic algorithms only (torch.use_deterministic_algorithms, cuBLAS workspace)",
)
@click.option(
    "--compile",
    "compile_mode",
    is_flag=False,
    flag_value="default",
    default=None,
    metavar="[MODE]",
    help="torch.compile the train step and evaluation decoder; "
    "MODE: default, reduce-overhead (CUDA graphs), max-autotune, or a backend name",
)
@click.option("--channels-last", is_flag=True, help="NHWC layout for image batches and convs")
@click.option(
    "--threads",
    default=None,
    type=click.IntRange(min=1),
    help="torch CPU threads (per job with --jobs; default: cores / jobs)",
)
@click.option(
    "--devices",
    default=None,
    metavar="LIST",
    help="devices the --jobs workers take in turn, e.g. cuda:0,cuda:1 (--jobs defaults to one "
    "per device)",
)
@ray_options
@click.option("--list", "list_cells", is_flag=True, help="print the cells and their budgets; exit")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="override budget.*, eval.*, model.*, objective.* or dataset.* for this run "
    "(repeatable), e.g. budget.epochs=2 or model.mlp-vae.latent_dim=8",
)
@click.option("--keep-checkpoints", is_flag=True, help="keep checkpoint.pt of finished runs")
@filter_options
def run(**options: Any) -> None:
    """Train and evaluate every cell of a suite (or those -k and the filters select), then
    write its leaderboard.

    Exit code 0 when every run finished, 1 when any failed or diverged or the disk could not
    be written, 2 on bad input (nothing trains), 130 when interrupted, 143 on SIGTERM, 129 on
    SIGHUP (`--resume` continues).
    """
    if not (options["quiet"] or options["list_cells"]):
        starting(options["suite_name"], options["scale"])
    from bench.run_command import RunArgs, run_command

    run_command(RunArgs(**options))


def starting(suite: str, scale: str | None) -> None:
    """The first line of ``bench run``, before torch, the plugins' models and the checks load
    (seconds on a busy machine): a log under nohup or Slurm shows at once that it started."""
    import time

    what = f"{suite}/{scale}" if scale else f"{suite} (its default scale)"
    message = f"[{time.strftime('%H:%M:%S')}] bench run {what}: starting (loading the harness)"
    click.echo(message, err=True)
    sys.stderr.flush()


@cli.command(name="leaderboard")
@click.option("--suite", "suite_name", required=True)
@click.option("--scale", default=None)
@click.option("--results-dir", default=None)
@click.option(
    "--leaderboard-dir",
    "--out",
    "leaderboard_dir",
    default=None,
    help="output folder, as bench run's [env BENCH_LEADERBOARD_DIR; <results>/leaderboards]",
)
@click.option(
    "--tuned",
    is_flag=True,
    help="re-train each `bench tune` study's best trial over the suite's seeds",
)
@click.option(
    "--multi-objective",
    is_flag=True,
    help="with --tuned: every Pareto point of the NLL-vs-MI studies",
)
@click.option("--storage", default=None, help="with --tuned: the studies' storage, as bench tune")
@click.option("--device", default="auto", show_default=True, help="with --tuned")
@click.option("--data-dir", default=None, help="with --tuned")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="what stdout gets (files are written either way; their paths go to stderr)",
)
@filter_options
def leaderboard_cmd(**options: Any) -> None:
    """Rebuild a suite's leaderboard from its run records (or from its tuning studies), write
    its files and print it; the filters keep some of its rows."""
    from bench.leaderboard_command import LeaderboardArgs, leaderboard_command

    leaderboard_command(LeaderboardArgs(**options))


@cli.command(name="compare")
@click.argument("a")
@click.argument("b")
@click.option(
    "--fail-on",
    multiple=True,
    metavar="METRIC:THRESHOLD",
    help="exit 1 when METRIC is significantly worse in B by more than THRESHOLD "
    "(an amount, or a percentage of A: nll:0.5, nll:1%); repeatable",
)
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts")
@click.option("--metrics", default=None, metavar="LIST", help="compare only these metrics")
def compare_cmd(a: str, b: str, fail_on: tuple[str, ...], as_json: bool, metrics: str | None):
    """Compare two results folders or leaderboards (.parquet, .csv) row by row: B - A per
    metric with a 95% interval, rows matched by their settings' fingerprint.

    Exit code 0, 1 on a regression --fail-on names, 2 on bad input.
    """
    from bench.compare import compare_command

    sys.exit(compare_command(a, b, fail_on, as_json, metrics))


LS_KINDS = ("datasets", "models", "objectives", "metrics", "suites", "reporters")


@cli.command(name="ls")
@click.argument("kind", type=Kind(LS_KINDS, "plural"))
@click.option("--params", "with_params", is_flag=True, help="also each item's parameters")
def ls_cmd(kind: str, with_params: bool) -> None:
    """List registered items with the plugin and distribution they came from
    (`bench show KIND NAME` for one item in full)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from bench.describe import params_short

    regs = plugins.registries()
    table = Table(show_lines=False)
    extra = {
        "datasets": "splits (train / valid / test)",
        "models": "data",
        "metrics": "direction",
        "suites": "scales",
    }.get(kind)
    params = with_params and kind in ("datasets", "models", "objectives")
    columns = ["name", "description"] + ([extra] if extra else []) + (["params"] if params else [])
    for col in columns + ["plugin", "distribution"]:
        table.add_column(col, overflow="fold")
    for item in getattr(regs, kind):
        row = [item.name, item.description]
        if kind == "datasets":
            row.append(f"{item.sizes} ({item.kind})")
        elif kind == "models":
            row.append(", ".join(item.kinds))
        elif kind == "metrics":
            row.append("higher is better" if item.direction == "max" else "lower is better")
        elif kind == "suites":
            row.append(
                ", ".join(f"{s} ({len(item.groups.get(s, []))} groups)" for s in item.scales)
            )
        if params:
            row.append(params_short(item.params))
        row += [item.plugin, item.distribution]
        table.add_row(*(escape(str(cell)) for cell in row))  # `E[z|x]` is text, not markup
    Console(width=200).print(table)


SHOW_KINDS = ("models", "objectives", "datasets", "metrics", "suites", "runs")


@cli.command(name="show")
@click.argument("kind", type=Kind(SHOW_KINDS, "singular"))
@click.argument("name")
@click.option("--results-dir", default=None, help="for runs [env BENCH_RESULTS_DIR; ./results]")
def show_cmd(kind: str, name: str, results_dir: str | None) -> None:
    """One registered item in full: parameters with defaults, validity bounds, tuning ranges
    and help (models, objectives, data sets); direction (metrics); scales and groups (suites).
    `bench show run ID` prints a run's record: settings, metrics, epochs and error."""
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 200)
    if kind == "run":
        from bench.records import results_root
        from bench.run_view import describe_run, find_run

        console.print(describe_run(find_run(results_root(results_dir), name)))
        return
    from bench.describe import describe

    console.print(describe(kind, name))


@cli.command(name="rm")
@click.argument("runs", nargs=-1)
@click.option("--suite", "suite_name", default=None, help="the runs of this suite")
@click.option("--scale", default=None, help="...at this scale (default: every scale)")
@click.option("--set-only", is_flag=True, help="only runs made with --set values")
@click.option("--results-dir", default=None, help="[env BENCH_RESULTS_DIR; ./results]")
@click.option("--yes", is_flag=True, help="remove them (without it, only list them)")
@filter_options
def rm_cmd(results_dir: str | None, **options: Any) -> None:
    """Remove run folders: RUN ids (or suite/scale/id), or a suite's runs (--suite, --scale,
    --set-only, the filters). Lists them and removes nothing unless --yes is given."""
    from bench.records import results_root
    from bench.run_removal import RemoveArgs, remove_runs

    remove_runs(RemoveArgs(results_dir=results_root(results_dir), **options), click.echo)


@cli.command(name="plugins")
def plugins_cmd() -> None:
    """List plugins, their distributions, the hooks they implement and whether they work;
    exit code 1 if any failed to load or to register its items."""
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for col in ("plugin", "distribution", "hooks", "status"):
        table.add_column(col, overflow="fold")
    rows = plugins.plugin_info()
    for row in rows:
        status = row["status"]
        shown = f"[red]{status}[/red]" if status.startswith("failed") else status
        table.add_row(row["name"], row["distribution"], ", ".join(row["hooks"]), shown)
    Console(width=200).print(table)
    failed = [r["name"] for r in rows if r["status"].startswith("failed")]
    if failed:
        click.echo(f"{len(failed)} plugin(s) failed: {', '.join(failed)}", err=True)
        sys.exit(1)


def _resume_argv(argv: list[str]) -> list[str]:
    """``bench run``'s arguments that continue it: with ``--resume``, without ``--overwrite``."""
    args = [a for a in argv if a != "--overwrite"]
    return args if "--resume" in args else [*args, "--resume"]


def _shown_command(argv: list[str]) -> tuple[str, str]:
    """``bench argv`` fit to print (passwords shown as ``***``), and what to add after the
    sentence that shows it: where a password was hidden, how to keep it off the line."""
    shown = redact_argv(argv)
    note = "" if shown == argv else f"; the password is shown as {HIDDEN}: {PASSWORD_HINT}"
    return f"bench {shlex.join(shown)}", note


def interrupted_message(argv: list[str]) -> str:
    """What continues an interrupted command: ``bench run`` again with ``--resume``."""
    if argv[:1] == ["run"]:
        command, note = _shown_command(_resume_argv(argv))
        return f"interrupted: {command} continues{note}"
    if argv[:1] == ["tune"]:
        command, note = _shown_command(argv)
        return f"interrupted: the same command ({command}) continues{note}"
    return "interrupted"


def _disk_failed(argv: list[str], disk: DiskError) -> None:
    """A full, read-only or size-limited disk: one line, how to continue, exit code 1."""
    _error(str(disk))
    if argv[:1] == ["run"]:
        command, note = _shown_command(_resume_argv(argv))
        click.echo(f"stopped: {command} continues once the disk can be written{note}", err=True)
    sys.exit(1)


def _error(message: str) -> None:
    """The one line of an error, its passwords hidden (:func:`bench.secrets.redact`)."""
    click.echo(f"error: {redact(message)}", err=True)


def _redacted_excepthook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
    """A traceback no one expected still hides passwords."""
    import traceback

    sys.stderr.write(redact("".join(traceback.format_exception(kind, exc, tb))))


def main(argv: list[str] | None = None) -> None:
    """``bench``: user errors exit 2 in one line; SIGTERM and SIGHUP stop it as Ctrl-C does
    (exit code 128 + the signal); a disk that cannot be written exits 1 in one line; a closed
    or cut-off stdout is no error (:mod:`bench.output`); no password is ever printed."""
    if argv is None:
        sys.excepthook = _redacted_excepthook
    args = list(sys.argv[1:] if argv is None else argv)
    with safe_std_streams(), stopping_on_signals():
        _main(args)


def _main(args: list[str]) -> None:
    try:
        plugins.call_each("register_commands", cli=cli)
        cli.main(args=args, prog_name="bench", standalone_mode=False)
    except click.exceptions.Abort as exc:
        # click turns Ctrl-C (and a stray EOFError) into Abort; tell them apart.
        if isinstance(exc.__cause__, EOFError):
            raise exc.__cause__ from None
        click.echo(interrupted_message(args), err=True)
        sys.exit(exit_code(exc.__cause__ or exc))
    except click.ClickException as exc:
        _error(exc.format_message())
        sys.exit(2)
    except BenchError as exc:
        _error(str(exc))
        sys.exit(2)
    except KeyboardInterrupt as exc:
        click.echo(interrupted_message(args), err=True)
        sys.exit(exit_code(exc))
    except Exception as exc:
        _exit_if_known(args, exc)
        raise  # a bug: its traceback


def _exit_if_known(args: list[str], exc: Exception) -> None:
    """A disk that cannot be written (exit 1) or a path no file system takes (exit 2), each
    in one line."""
    disk = disk_error(exc)
    if disk is not None:
        _disk_failed(args, disk)
    bad_path = path_error(exc)
    if bad_path is not None:
        _error(bad_path)
        sys.exit(2)


if __name__ == "__main__":
    main()
