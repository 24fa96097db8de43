"""The ``bench throughput`` command: options, the settings they make, and the run."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from bench.hookspecs import hookimpl
from bench.throughput.budget import TimeBudget, process_age
from bench.throughput.presets import PRESETS, Preset
from bench.throughput.report import PARTS, run_all, summary_lines, write_report
from bench.throughput.workloads import COLLAPSE_SUITE, Settings

# Beside the leaderboards of the user's runs; the committed reference figures in leaderboards/
# are written with --out.
DEFAULT_OUT = "results/leaderboards/throughput-{device}.json"
# Options whose value goes into :class:`Settings` as it is.
PASSED = (
    "channels_last",
    "tf32",
    "warmup",
    "repeats",
    "train_batch",
    "eval_batch",
    "iw_samples",
    "iw_ref_examples",
    "overhead_epochs",
    "jobs",
    "jobs_suite",
    "jobs_scale",
)


def _count(name: str, help: str | None = None, default: int | None = None, low: int = 1) -> Any:
    """An integer option of at least ``low``; its default is shown when it has one."""
    return click.option(
        name,
        default=default,
        show_default=default is not None,
        type=click.IntRange(min=low),
        help=help,
    )


def _options(*decorators: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Several click options as one decorator, listed in ``--help`` in the order given."""

    def apply(f: Any) -> Any:
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


_what = _options(
    click.option(
        "--preset",
        type=click.Choice(sorted(PRESETS)),
        default=None,
        help="a named set of option values (options given here win): "
        + "; ".join(f"{name}: {p.description}" for name, p in PRESETS.items()),
    ),
    click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N"),
    click.option("--models", default=None, help="comma-separated models (default: all registered)"),
    click.option(
        "--scale",
        default="paper",
        show_default=True,
        help="take each model's data set, parameters and batch sizes from this scale of "
        "the collapse suite (then its other scales, then model defaults)",
    ),
    click.option(
        "--parts",
        default="all",
        show_default=True,
        help=f"comma-separated subset of {', '.join(PARTS)}",
    ),
)
_speed = _options(
    click.option(
        "--amp/--no-amp", default=True, show_default=True, help="also measure with bf16 autocast"
    ),
    click.option(
        "--compile",
        "compile_mode",
        default=None,
        metavar="MODE",
        help="also measure torch.compile (MODE: default, reduce-overhead, max-autotune or "
        "a backend; 'off' to skip) [default: default on CUDA, off on the CPU]",
    ),
    click.option("--channels-last", is_flag=True, help="NHWC layout for image batches and convs"),
    click.option("--tf32", is_flag=True, help="allow TF32 in the fp32 configurations (CUDA)"),
    _count("--threads", "torch CPU threads"),
)
_timing = _options(
    _count("--warmup", "untimed calls before each measurement", default=3, low=0),
    click.option(
        "--min-time",
        default=None,
        type=float,
        help="seconds per timing window [default: 0.5 CPU, 1.0 CUDA]",
    ),
    _count("--repeats", "timing windows per measurement (the median is reported)", default=3),
    _count("--train-batch", "training batch size [default: the workload's]"),
    _count(
        "--eval-batch", "evaluation batch size [default: the workload's; at most 100 on the CPU]"
    ),
)
_iw = _options(
    _count("--iw-samples", default=500),
    _count("--iw-examples", "examples in the batched IW-NLL call [default: 100 CPU, 500 CUDA]"),
    _count(
        "--iw-ref-examples",
        "most examples the per-example reference scores [default: all of the batch]",
    ),
    click.option(
        "--iw-budget",
        default=None,
        type=float,
        help="seconds for the reference loop, and the most a batched call may take twice "
        "[default: 10 CPU, 30 CUDA]",
    ),
)
_overhead = _options(
    click.option(
        "--overhead-model",
        default=None,
        help="model for the overhead benchmark [default: the fastest to train, else the first]",
    ),
    _count("--overhead-epochs", default=2),
    _count("--overhead-examples", "training examples per epoch [default: 5000 CPU, 50000 CUDA]"),
    _count("--overhead-repeats", "runner / plain loop pairs [default: 5 CPU, 3 CUDA]"),
    _count("--jobs", "compare a suite run with --jobs N against --jobs 1 (1: skip)", default=2),
    click.option("--jobs-suite", default=COLLAPSE_SUITE, show_default=True),
    click.option("--jobs-scale", default="smoke", show_default=True),
)
_output = _options(
    click.option(
        "--budget-s",
        default=None,
        type=click.FloatRange(min=1),
        help="stop within this many seconds: the most informative parts run first, parts "
        "that would not fit are left out and listed in the report",
    ),
    click.option("--data-dir", default=None, help="data sets folder [env BENCH_DATA_DIR]"),
    click.option(
        "--synthetic-data",
        is_flag=True,
        help="measure a model whose data set is missing on a stand-in of the same kind "
        "(e.g. digits, text-synthetic) instead of stopping with an error",
    ),
    click.option(
        "--out",
        default=None,
        help=f"JSON file [default: {DEFAULT_OUT.format(device='<cpu|cuda>')}]",
    ),
)


@click.command(name="throughput")
@_what
@_speed
@_timing
@_iw
@_overhead
@_output
def throughput_cmd(**options: Any) -> None:
    """Measure training and evaluation speed on this device and write them to JSON."""
    from click.core import ParameterSource
    from rich.console import Console

    # Data loading and warm-ups count against --budget-s, and so do the interpreter's start and
    # imports when this process was started for this command (not when called from another).
    own_process = sys.argv[1:2] == ["throughput"]
    budget = TimeBudget(started=time.perf_counter() - (process_age() if own_process else 0.0))
    console = Console(stderr=True)
    ctx = click.get_current_context()
    given = {n for n in options if ctx.get_parameter_source(n) != ParameterSource.DEFAULT}
    s = settings_from_options(options, log=lambda msg: console.log(msg), given=given)
    budget.seconds = options["budget_s"]
    s.budget = budget
    models = options["models"]
    model_list = [m.strip() for m in models.split(",") if m.strip()] if models else None
    parts = _parse_parts(options["parts"])
    t0 = time.time()
    report = run_all(s, model_list, options["scale"], parts, options["overhead_model"])
    report["wall_time_s"] = time.time() - t0
    path = Path(options["out"] or DEFAULT_OUT.format(device=s.device.type))
    write_report(report, path)
    for line in summary_lines(report):
        click.echo(line)
    click.echo(f"wrote {path} in {report['wall_time_s']:.0f}s")


def settings_from_options(
    o: dict[str, Any], log: Callable[[str], None], given: set[str] | None = None
) -> Settings:
    """The run's settings: the options (``o`` is updated with a ``--preset``'s values for
    those not ``given`` on the command line), with the defaults that depend on the device
    filled in (a GPU affords bigger batches and longer windows; inductor takes minutes on a
    CPU)."""
    import torch

    from bench.runner import RunOptions, check_options, compile_kwargs, resolve_device

    if o["threads"]:
        torch.set_num_threads(o["threads"])
    dev = resolve_device(o["device"])
    cuda = dev.type == "cuda"
    preset = _apply_preset(o, dev.type, given)

    def pick(name: str, cpu: Any, gpu: Any) -> Any:
        return o[name] if o[name] is not None else (gpu if cuda else cpu)

    compile_mode = pick("compile_mode", "off", "default")
    compiled = compile_kwargs(compile_mode) is not None
    check_options(RunOptions(results_dir=Path("."), device=dev, compile=compile_mode))
    s = Settings(
        device=dev,
        configs=_configs(compiled, o["amp"]),
        compile_mode=compile_mode,
        min_time=pick("min_time", 0.5, 1.0),
        eval_batch_cap=None if cuda else 100,
        iw_examples=pick("iw_examples", 100, 500),
        iw_budget_s=pick("iw_budget", 10.0, 30.0),
        overhead_examples=pick("overhead_examples", 5000, 50000),
        overhead_repeats=pick("overhead_repeats", 5, 3),
        data_dir=Path(o["data_dir"]) if o["data_dir"] else None,
        synthetic_data=o["synthetic_data"],
        log=log,
        **{name: o[name] for name in PASSED},
        **(preset.settings if preset is not None else {}),
    )
    s.extra = _recorded_options(o, s)
    return s


def _apply_preset(o: dict[str, Any], device_type: str, given: set[str] | None) -> Preset | None:
    """The ``--preset`` named in ``o``, if any, with its values for ``device_type`` written
    into ``o`` for the options not ``given`` (``None``: all were given, so it only adds its
    settings)."""
    preset = PRESETS[o["preset"]] if o.get("preset") else None
    if preset is not None:
        given = set(o) if given is None else given
        o.update({k: v for k, v in preset.option_values(device_type).items() if k not in given})
    return preset


def _configs(compiled: bool, amp: bool) -> list[tuple[bool, bool]]:
    """The ``(amp, compiled)`` configurations measured: eager fp32 first, then eager AMP (with
    ``--amp``), then the compiled ones (when compiling is on)."""
    return [
        (a, c)
        for c in ([False, True] if compiled else [False])
        for a in ([False, True] if amp else [False])
    ]


def _recorded_options(o: dict[str, Any], s: Settings) -> dict[str, Any]:
    """The options the report's settings record besides those :class:`Settings` lists."""
    return {
        "preset": o.get("preset"),
        "train_batches": list(s.train_batches) if not s.train_batch else [s.train_batch],
        "threads_option": o["threads"],
        "jobs": s.jobs,
        "jobs_suite": s.jobs_suite,
        "jobs_scale": s.jobs_scale,
        "overhead_epochs": s.overhead_epochs,
        "overhead_examples": s.overhead_examples,
        "iw_examples": s.iw_examples,
        "iw_ref_examples": s.iw_ref_examples,
    }


def _parse_parts(value: str) -> set[str]:
    from bench.errors import ConfigError

    parts = {p.strip() for p in value.split(",") if p.strip()}
    if parts == {"all"}:
        return set(PARTS)
    bad = parts - set(PARTS)
    if bad:
        raise ConfigError(
            f"--parts: unknown {', '.join(sorted(bad))}; choose from {', '.join(PARTS)} or all"
        )
    return parts


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(throughput_cmd)
