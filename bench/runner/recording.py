"""The record of a run, from what its loop knows; and of a run that failed, from what the
driver knows (the cell, its folder and the error), with no training object."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from bench import plugins
from bench.data import subset_record
from bench.formats import epoch_number
from bench.provenance import device_name, git_commit, machine_info, package_versions
from bench.records import (
    RECORD_FILE,
    SELECTED_BY,
    MetricResult,
    RunError,
    RunRecord,
    write_record,
)
from bench.runner.options import accel_settings
from bench.specs import MetricValue
from bench.suites import Cell, fingerprint, resolved_settings

if TYPE_CHECKING:
    from bench.runner.loop import CellTraining
    from bench.runner.options import RunOptions
    from bench.runner.parts import CellParts


def _metric(name: str, v: MetricValue) -> MetricResult:
    direction = plugins.registries().metrics.get(name).direction
    return MetricResult(v.value, v.settings, direction, v.error or None)


def _identity(cell: Cell) -> dict[str, Any]:
    """What every record of ``cell`` says about it, whatever became of the run."""
    resolved = resolved_settings(cell.as_dict())
    return {
        "run_id": cell.run_id,
        "cell": cell.as_dict(),
        "resolved": resolved,
        "fingerprint": fingerprint(resolved),
    }


def _provenance(device: torch.device) -> dict[str, Any]:
    return {
        "finished_at": datetime.now(UTC).isoformat(),
        "device": str(device),
        "device_name": device_name(device),
        "machine": machine_info(),
        "packages": package_versions(),
        "git_commit": git_commit(),
    }


def _subsets(parts: CellParts) -> dict[str, dict[str, Any]]:
    """How each split the run used was drawn from the data set's (bench.data.subset_record)."""
    data = parts.data
    return {
        name: subset_record(getattr(data, name), getattr(parts, name))
        for name in ("train", "valid", "test")
    }


def run_record(
    run: CellTraining,
    status: str,
    reason: str | None,
    metrics: dict[str, MetricValue],
    eval_time: float,
    error: RunError | None = None,
) -> RunRecord:
    """The record of ``run`` as it stands (a run that failed while setting up has no parts)."""
    state, parts = run.state, run.parts
    return RunRecord(
        **_identity(run.cell),
        status=status,
        reason=reason,
        metrics={k: _metric(k, v) for k, v in metrics.items()},
        epochs_trained=state.epoch,
        best_epoch=epoch_number(state.best_epoch) if state.best_epoch >= 0 else 0,
        selected_by=SELECTED_BY,
        stop_reason=state.stop_reason,
        steps=state.step,
        train_examples_per_s=state.train_examples / max(state.train_time, 1e-9),
        train_examples_per_s_excl_compile=state.train_examples
        / max(state.train_time - state.compile_time, 1e-9),
        train_time_s=state.train_time,
        train_cpu_time_s=state.train_cpu_time,
        compile_time_s=state.compile_time,
        eval_time_s=eval_time,
        wall_time_s=time.time() - run.started,
        accel=accel_settings(run.opts),
        started_at=run.started_at,
        **_provenance(run.opts.device),
        split_sizes={}
        if parts is None
        else {"train": len(parts.train), "valid": len(parts.valid), "test": len(parts.test)},
        subsets={} if parts is None else _subsets(parts),
        data_notes=None if parts is None else parts.data.notes,
        method_state=None if parts is None or parts.method is None else parts.method.record_state(),
        error=error,
        source=run.run_dir / RECORD_FILE,
    )


def failed_record(
    cell: Cell,
    run_dir: Path,
    exc: BaseException,
    opts: RunOptions,
    logged: BaseException | None = None,
) -> RunRecord:
    """A ``failed`` record for a cell whose run never returned one (its worker died, Ray lost
    it, its task raised outside the run), written with the traceback in ``error.log``."""
    from bench.runner import failures

    error = failures.describe(exc)
    failures.write_traceback(run_dir, logged or exc, f"run {cell.run_id}")
    opts.messages.warn(
        f"{cell.run_id}: failed: {error.reason}; traceback in {run_dir / failures.ERROR_LOG}"
    )
    now = datetime.now(UTC).isoformat()
    record = RunRecord(
        **_identity(cell),
        status="failed",
        reason=error.reason,
        accel=accel_settings(opts),
        started_at=now,
        **_provenance(opts.device),
        error=error,
        source=run_dir / RECORD_FILE,
    )
    write_record(run_dir / RECORD_FILE, record)
    return record
