"""The runner: trains and evaluates a suite's cells and writes one record per run.

- ``options``: :class:`RunOptions` (device, folders, speed options), their checks and the
  process-wide math flags they set (TF32, determinism, cuDNN autotuning).
- ``compiled``: ``torch.compile`` per cell, batch dimension dynamic, a loud recompile limit.
- ``suite``: a suite's cells at one scale, validated up front, then trained in order.
- ``cell``: a cell's data, model, optimizer and metrics, built from the registries.
- ``parts``: :class:`CellParts`, everything a cell trains with, built once.
- ``state``: :class:`LoopState`, the loop's checkpointed counters.
- ``loop``: :class:`CellTraining`, one cell's run (epochs, validation, the end).
- ``listeners``: what happens around the loop (selection, decay, stopping, logs, checkpoints,
  bars, plugin hooks); plugins add theirs through the ``run_listeners`` hook.
- ``checkpoints``, ``recording``, ``failures``: resume files, run records, failed runs.
- ``step``: the training step itself, which never waits for the device.
- ``executors``: the executor protocol and :class:`InProcess`; ``driver``: :func:`drive`, the
  one loop that runs any executor's tasks.
- ``parallel``: ``--jobs N``, cells in worker processes sharing one device (or ``--devices``).
- ``ray``: ``--ray``, cells as Ray tasks on a cluster (imported only then: Ray is optional).
"""

from bench.errors import DivergedError
from bench.runner.cell import (
    build_model,
    evaluate,
    load_data,
    make_optimizer,
    metric_names,
    seed_everything,
)
from bench.runner.driver import drive
from bench.runner.executors import CellTask, Executor, InProcess, Outcome
from bench.runner.listeners import EpochResult, Listener
from bench.runner.loop import CellTraining, train_cell
from bench.runner.options import (
    COMPILE_MODES,
    Display,
    Messages,
    Placement,
    Policy,
    RayPlacement,
    RunOptions,
    SpeedOptions,
    accel_settings,
    autocast,
    check_options,
    compile_kwargs,
    compile_label,
    resolve_device,
    synchronize,
    tf32_enabled,
)
from bench.runner.parts import CellParts, build_parts
from bench.runner.state import LoopState
from bench.runner.step import FiniteCheck, TrainStep, eval_log_likelihood
from bench.runner.suite import kept_record, run_suite, select_cells, validate_cells

__all__ = [
    "COMPILE_MODES",
    "CellParts",
    "CellTask",
    "CellTraining",
    "Display",
    "DivergedError",
    "EpochResult",
    "Executor",
    "FiniteCheck",
    "InProcess",
    "Listener",
    "LoopState",
    "Messages",
    "Outcome",
    "Placement",
    "Policy",
    "RayPlacement",
    "RunOptions",
    "SpeedOptions",
    "TrainStep",
    "accel_settings",
    "autocast",
    "build_model",
    "build_parts",
    "check_options",
    "compile_kwargs",
    "compile_label",
    "drive",
    "eval_log_likelihood",
    "evaluate",
    "load_data",
    "kept_record",
    "make_optimizer",
    "metric_names",
    "resolve_device",
    "run_suite",
    "seed_everything",
    "select_cells",
    "synchronize",
    "tf32_enabled",
    "train_cell",
    "validate_cells",
]
