"""The runner: trains and evaluates a suite's cells and writes one record per run.

- ``options``: :class:`RunOptions` (device, folders, speed options), their checks and the
  process-wide math flags they set (TF32, determinism, cuDNN autotuning).
- ``compiled``: ``torch.compile`` per cell, batch dimension dynamic, a loud recompile limit.
- ``suite``: a suite's cells at one scale, validated up front, then trained in order.
- ``cell``: a cell's data, model, optimizer and metrics, built from the registries.
- ``loop``: one cell's training run (set-up/resume, epochs, validation/selection, record).
- ``step``: the training step itself, which never waits for the device.
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
from bench.runner.loop import CellTraining, train_cell
from bench.runner.options import (
    COMPILE_MODES,
    RayPlacement,
    RunOptions,
    accel_settings,
    autocast,
    check_options,
    compile_kwargs,
    compile_label,
    resolve_device,
    synchronize,
    tf32_enabled,
)
from bench.runner.step import FiniteCheck, TrainStep, eval_log_likelihood
from bench.runner.suite import kept_record, run_suite, select_cells, validate_cells

__all__ = [
    "COMPILE_MODES",
    "CellTraining",
    "DivergedError",
    "FiniteCheck",
    "RayPlacement",
    "RunOptions",
    "TrainStep",
    "accel_settings",
    "autocast",
    "build_model",
    "check_options",
    "compile_kwargs",
    "compile_label",
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
