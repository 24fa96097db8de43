"""One cell's run: its parts, trained and validated epoch by epoch; its listeners decide the
rest (selection, decay, stopping, logs, checkpoints); it ends with the record.

:func:`train_cell` is the whole of it: set up (or resume), :meth:`CellTraining.run`, then
:meth:`CellTraining.finish` or, if the cell's code raised, :meth:`CellTraining.fail`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from bench import plugins
from bench.diskerrors import disk_error
from bench.errors import BenchError, DivergedError, PluginError, StopRun
from bench.files import atomic_write_text
from bench.formats import epoch_number
from bench.records import EPOCH_LOG, RECORD_FILE, RunRecord, read_epoch_log, write_record
from bench.runner import cell as build
from bench.runner import failures
from bench.runner.checkpoints import (
    BEST_WEIGHTS,
    CHECKPOINT_FILE,
    drop_resume_files,
    load_checkpoint,
)
from bench.runner.compiled import compile_seconds, fresh_compile_cache
from bench.runner.listeners import EpochResult, Listener, default_listeners, plugin_listeners
from bench.runner.options import RunOptions, compile_kwargs, device_flags, synchronize
from bench.runner.parts import CellParts, build_parts
from bench.runner.recording import run_record
from bench.runner.state import LoopState
from bench.runner.step import NAN_CHECK_EVERY, FiniteCheck, epoch_means
from bench.specs import MetricValue
from bench.suites import Cell

__all__ = ["CHECKPOINT_FILE", "CellTraining", "train_cell", "truncate_log"]

PROGRESS_UPDATES_PER_EPOCH = 50  # a progress-bar update costs a lock and a redraw request


def truncate_log(path: Path, keep_epochs: int) -> None:
    """Drop log lines past the checkpoint we resume from (they will be produced again), and
    a last line cut off by a kill."""
    if not path.exists():
        return
    kept = [e for e in read_epoch_log(path) if e["epoch"] <= keep_epochs]  # numbered from 1
    atomic_write_text(path, "".join(json.dumps(e) + "\n" for e in kept))


@dataclass(frozen=True)
class EpochTraining:
    """One pass over the training split, as the epoch log reports it."""

    loss: float
    kl: float
    examples: int
    seconds: float
    compile_seconds: float
    beta: float  # the mean KL weight over the epoch's steps


class CellTraining:
    """One cell's run in ``run_dir``: ``parts`` (built by :meth:`set_up`), ``state`` (the
    checkpointed counters) and ``listeners`` (built-in, then plugins', then ``listeners``)."""

    def __init__(
        self,
        cell: Cell,
        run_dir: Path,
        opts: RunOptions,
        listeners: Iterable[Listener] = (),
        cache: build.DataCache | None = None,
    ) -> None:
        self.cell, self.run_dir, self.opts, self.cache = cell, run_dir, opts, cache
        self.started = time.time()
        self.started_at = datetime.now(UTC).isoformat()
        self.state = LoopState()
        self.parts: CellParts | None = None
        self.own_listeners = list(listeners)
        self.listeners: list[Listener] = []
        self.failed_metrics: set[str] = set()
        self.compiling = compile_kwargs(opts.speed.compile) is not None

    def holds(self, decision: str) -> bool:
        """Whether the run's training method holds off ``decision`` now."""
        method = None if self.parts is None else self.parts.method
        return method is not None and method.holds(decision)

    def emit(self, event: str, *args: Any) -> None:
        for listener in self.listeners:
            getattr(listener, event)(self, *args)

    # ---- set-up and resume -------------------------------------------------------------------

    def set_up(self) -> None:
        """The parts; then the checkpoint, when resuming; then the listeners hear the start."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.parts = build_parts(self.cell, self.opts, self.cache)
        self.resume()
        self.listeners = [*default_listeners(self), *plugin_listeners(self), *self.own_listeners]
        self.emit("on_run_start")

    def resume(self) -> None:
        """Continue from this cell's checkpoint, or clear what an earlier attempt left."""
        parts = self.parts
        ckpt = load_checkpoint(self.run_dir, self.opts.warn) if self.opts.policy.resume else None
        if ckpt is not None and ckpt.get("cell") == self.cell.as_dict():
            parts.model.load_state_dict(ckpt["model"])
            parts.optimizer.load_state_dict(ckpt["optimizer"])
            if parts.method is not None:
                parts.method.load_state_dict(ckpt["method"])
            self.state = LoopState.from_dict(ckpt["state"])
            build.set_rng_state(ckpt["rng"])
            self.opts.log(f"{self.cell.run_id}: resuming at epoch {self.state.epoch + 1}")
        else:
            (self.run_dir / EPOCH_LOG).unlink(missing_ok=True)
            (self.run_dir / BEST_WEIGHTS).unlink(missing_ok=True)
        truncate_log(self.run_dir / EPOCH_LOG, self.state.epoch)

    # ---- epochs ------------------------------------------------------------------------------

    def run(self) -> tuple[str, str | None]:
        """Train the remaining epochs; returns the status and its reason."""
        try:
            # A resumed run that had already stopped (its record not yet written) stays stopped.
            for epoch in range(self.state.epoch, self.cell.budget.epochs):
                if self.state.stop_reason:
                    break
                result = self.validate(epoch, self.train_epoch(epoch))
                self.watch_phase()
                self.emit("on_epoch_end", result)
                if self.state.stop_reason:
                    break
        except DivergedError as exc:
            return "failed", f"diverged: {exc}"
        except StopRun as exc:
            return exc.status, exc.reason
        # A method that never reached its final phase (an autoencoder that never became a VAE)
        # trained something other than its row says.
        unfinished = None if self.parts.method is None else self.parts.method.unfinished()
        if unfinished:
            return "failed", unfinished
        return "finished", None

    def watch_phase(self) -> None:
        """A method that entered a new phase restarts selection (and its listeners hear it)."""
        method = self.parts.method
        phase = None if method is None else method.phase()
        if phase != self.state.phase:
            self.state.phase = phase
            self.state.restart_selection()
            self.emit("on_phase_change", phase)

    def train_epoch(self, epoch: int) -> EpochTraining:
        """One pass over the training split."""
        parts, state, device = self.parts, self.state, self.opts.device
        parts.model.train()
        # One generator per (seed, epoch): a resumed run replays the same batches and noise.
        gen = torch.Generator(device=device).manual_seed(self.cell.seed * 100_003 + epoch)
        # Per-step results stay on the device and are reduced once per epoch; the loop itself
        # never waits for the device (see FiniteCheck).
        finite = FiniteCheck(device)
        losses: list[Tensor] = []
        kls: list[Tensor] = []
        sizes: list[int] = []
        every = max(1, parts.steps_per_epoch // PROGRESS_UPDATES_PER_EPOCH)
        beta_sum = 0.0
        t0, cpu0 = time.perf_counter(), time.process_time()
        compiled0 = compile_seconds() if self.compiling else 0.0
        batches = parts.train_batches.batches(
            self.cell.budget.batch_size, shuffle=True, generator=gen
        )
        for x, _ in batches:
            beta_sum += parts.objective.beta(state.step)  # the weight this step trains with
            loss, kl = parts.step(x, state.step, gen)
            losses.append(loss)
            kls.append(kl)
            sizes.append(len(x))
            state.step += 1
            if state.step % NAN_CHECK_EVERY == 0 and not finite.check(loss, state.step):
                raise DivergedError(f"loss is not finite at step {finite.bad_step}")
            if len(sizes) % every == 0:
                self.emit("on_train_progress", every)
        loss_mean, kl_mean = epoch_means(losses, kls, sizes, device)
        synchronize(device)
        elapsed = time.perf_counter() - t0
        compile_s = compile_seconds() - compiled0 if self.compiling else 0.0
        state.train_time += elapsed
        # CPU time of this process: on a shared CPU it is what the loop itself cost.
        state.train_cpu_time += time.process_time() - cpu0
        state.train_examples += sum(sizes)
        state.compile_time += compile_s
        if not math.isfinite(loss_mean):
            raise DivergedError(f"loss is {loss_mean} in epoch {epoch + 1}")
        beta = beta_sum / max(1, len(sizes))
        return EpochTraining(loss_mean, kl_mean, sum(sizes), elapsed, compile_s, beta)

    def validate(self, epoch: int, trained: EpochTraining) -> EpochResult:
        """Per-epoch metrics on the validation split, and the validation -ELBO, which selects
        the epoch whatever metrics the cell lists."""
        parts = self.parts
        val = build.evaluate(
            self.cell,
            parts.model,
            parts.valid,
            self.opts.device,
            parts.per_epoch_metrics,
            log_likelihood=parts.eval_log_likelihood,
            select=True,
            on_error=self.metric_failed,
        )
        entry = self.epoch_entry(epoch, trained)
        entry.update({f"val_{k}": v.value for k, v in val.items()})
        # Ceilings (MI: log N of the validation split) let the curves draw them.
        entry.update(
            {
                f"val_{k}_ceiling": v.settings["ceiling"]
                for k, v in val.items()
                if "ceiling" in v.settings
            }
        )
        return EpochResult(epoch, float(val[build.SELECTION_METRIC].value), val, entry)

    def epoch_entry(self, epoch: int, t: EpochTraining) -> dict[str, Any]:
        return {
            "epoch": epoch_number(epoch),  # from 1, as the logs and tables count them
            "step": self.state.step,
            "beta": t.beta,
            "lr": self.parts.lr,
            "train_loss": t.loss,
            "train_kl": t.kl,
            "train_examples_per_s": t.examples / max(t.seconds, 1e-9),
            # The first epoch pays for compilation; this rate leaves it out.
            "train_examples_per_s_excl_compile": t.examples
            / max(t.seconds - t.compile_seconds, 1e-9),
            "compile_s": t.compile_seconds,
            "time": time.time() - self.started,
            **self.parts.extra_epoch_log(),
        }

    def metric_failed(self, name: str, exc: Exception) -> None:
        """A metric raised: its traceback goes to ``error.log``, one warning per metric naming
        its plugin and distribution (the record names them too)."""
        failures.write_traceback(self.run_dir, exc, f"metric {name!r}")
        if name not in self.failed_metrics:
            self.failed_metrics.add(name)
            spec = plugins.registries().metrics.get(name)
            self.opts.warn(
                f"{self.cell.run_id}: metric {name!r} of plugin {spec.plugin!r} "
                f"({spec.distribution}) raised {type(exc).__name__}: "
                f"{failures.first_line(exc)}; recorded without a value (traceback in "
                f"{self.run_dir / failures.ERROR_LOG})"
            )

    # ---- the end -----------------------------------------------------------------------------

    def finish(self, status: str, reason: str | None) -> RunRecord:
        """Test-split metrics of the best weights (finished runs), then the record."""
        metrics: dict[str, MetricValue] = {}
        t0 = time.perf_counter()
        if status == "finished":
            metrics = self.evaluate_test()
        record = run_record(self, status, reason, metrics, time.perf_counter() - t0)
        write_record(self.run_dir / RECORD_FILE, record)
        if status == "finished" and not self.opts.policy.keep_checkpoints:
            drop_resume_files(self.run_dir)
        self.emit("on_run_end", record)
        return record

    def evaluate_test(self) -> dict[str, MetricValue]:
        parts, best = self.parts, self.run_dir / BEST_WEIGHTS
        if best.exists():
            parts.model.load_state_dict(
                torch.load(best, map_location=self.opts.device, weights_only=True)
            )
        return build.evaluate(
            self.cell,
            parts.model,
            parts.test,
            self.opts.device,
            parts.final_metrics,
            train=parts.train,
            labelled=parts.test.labels is not None,
            log_likelihood=parts.eval_log_likelihood,
            progress=lambda metric, done, total: self.emit("on_eval_progress", metric, done, total),
            on_error=self.metric_failed,
        )

    def fail(self, exc: Exception) -> RunRecord:
        """The run raised: a ``failed`` record with the error, the traceback in
        ``error.log``; the listeners still hear the end; the suite goes on."""
        error = failures.describe(exc)
        failures.write_traceback(self.run_dir, exc, f"run {self.cell.run_id}")
        self.opts.warn(
            f"{self.cell.run_id}: failed: {error.reason}; traceback in "
            f"{self.run_dir / failures.ERROR_LOG}"
        )
        record = run_record(self, "failed", error.reason, {}, 0.0, error=error)
        write_record(self.run_dir / RECORD_FILE, record)
        try:
            self.emit("on_run_end", record)
        except Exception as hook_exc:  # the record stands; the listener's error is logged
            failures.write_traceback(self.run_dir, hook_exc, "on_run_end after the failure")
        return record


def train_cell(
    cell: Cell,
    run_dir: Path,
    opts: RunOptions,
    listeners: Iterable[Listener] = (),
    cache: build.DataCache | None = None,
) -> RunRecord:
    """Train one cell to completion (or failure) and return its record (also written).

    ``listeners`` hear the run after the built-in and the plugins' ones; ``cache`` keeps data
    sets between the cells one process trains. An exception from the cell's code (a plugin's
    model, objective, data loader or listener) ends this cell with status ``failed`` (see
    :meth:`CellTraining.fail`); a user error (:class:`~bench.errors.BenchError` other than a
    plugin's), a full or read-only disk (:class:`~bench.diskerrors.DiskError`) and Ctrl-C
    stop the suite.
    """
    if compile_kwargs(opts.speed.compile) is not None:
        fresh_compile_cache()  # this cell's compilations start from an empty cache
    images = plugins.registries().datasets.get(cell.dataset).kind == "image"
    with device_flags(opts, fixed_shapes=images):
        run = CellTraining(cell, run_dir, opts, listeners, cache)
        try:
            run.set_up()
            return run.finish(*run.run())
        except BenchError as exc:
            if not isinstance(exc, PluginError):
                raise
            return _failed(run, exc)
        except Exception as exc:
            return _failed(run, exc)


def _failed(run: CellTraining, exc: Exception) -> RunRecord:
    """The run's failure, unless the disk failed (no run would do better there): then a
    :class:`~bench.diskerrors.DiskError` stops the suite, and ``--resume`` continues."""
    disk = disk_error(exc, run.run_dir)
    if disk is None:
        try:
            return run.fail(exc)
        except OSError as fail_exc:  # writing the failure met the disk error
            disk = disk_error(fail_exc, run.run_dir)
            if disk is None:
                raise
    raise disk from None
