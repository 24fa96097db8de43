"""Training one cell: set-up or resume, epochs, validation and model selection, the record.

:class:`CellTraining` holds what the parts share; each method is one part of the run, in the
order :func:`train_cell` calls them.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from bench import plugins
from bench.errors import BenchError, PluginError, StopRun
from bench.methods import Method, MethodStep, TrainingBudget, assemble, build_objective
from bench.records import (
    RECORD_FILE,
    SCHEMA_VERSION,
    atomic_torch_save,
    atomic_write_text,
    device_name,
    git_commit,
    machine_info,
    package_versions,
    previous_path,
    read_epoch_log,
    set_aside,
    write_record,
)
from bench.runner import cell as parts
from bench.runner import failures
from bench.runner.compiled import compile_seconds, fresh_compile_cache
from bench.runner.options import (
    RunOptions,
    accel_settings,
    compile_kwargs,
    device_flags,
    synchronize,
)
from bench.runner.preflight import check_cell_model
from bench.runner.step import (
    NAN_CHECK_EVERY,
    DivergedError,
    FiniteCheck,
    TrainStep,
    epoch_means,
    eval_log_likelihood,
)
from bench.specs import MetricValue, resolve_params
from bench.suites import Cell, fingerprint, resolved_settings

PROGRESS_UPDATES_PER_EPOCH = 50  # a progress-bar update costs a lock and a redraw request
CHECKPOINT_FILE = "checkpoint.pt"  # what a resumed run continues from


def truncate_log(path: Path, keep_epochs: int) -> None:
    """Drop log lines past the checkpoint we resume from (they will be produced again), and
    a last line cut off by a kill."""
    if not path.exists():
        return
    kept = [e for e in read_epoch_log(path) if e["epoch"] < keep_epochs]
    atomic_write_text(path, "".join(json.dumps(e) + "\n" for e in kept))


def fresh_state() -> dict[str, Any]:
    """The loop's counters; saved in every checkpoint, so a resumed run continues them."""
    return {
        "epoch": 0,
        "step": 0,
        "best": math.inf,
        "best_epoch": -1,
        "bad": 0,
        "decays": 0,
        "bad_lr": 0,
        "decaying": False,  # a sticky decay (Budget.lr_decay_sticky) has started
        "stop_reason": None,
        "train_time": 0.0,
        "train_cpu_time": 0.0,
        "train_examples": 0,
        "compile_time": 0.0,  # of train_time: seconds spent compiling inside training epochs
    }


class CellTraining:
    """One cell's training run in ``run_dir``."""

    def __init__(self, cell: Cell, run_dir: Path, opts: RunOptions) -> None:
        self.cell, self.run_dir, self.opts = cell, run_dir, opts
        self.device = opts.device
        self.started = time.time()
        self.started_at = datetime.now(UTC).isoformat()
        self.log_path = run_dir / "epochs.jsonl"
        self.ckpt_path = run_dir / CHECKPOINT_FILE
        self.best_path = run_dir / "best.pt"
        self.state = fresh_state()
        self.task: Any = None
        self.compiling = compile_kwargs(opts.compile) is not None
        self.epoch_compile_s = 0.0
        self.failed_metrics: set[str] = set()

    # ---- set-up and resume -------------------------------------------------------------------

    def set_up(self) -> None:
        """Data, model, optimizer and objective; then the checkpoint, when resuming."""
        cell, b, opts = self.cell, self.cell.budget, self.opts
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.data = parts.load_data(cell, opts)
        self.train = parts.subset(self.data.train, b.train_subset)
        self.valid = parts.subset(self.data.valid, b.valid_subset)
        self.test = parts.subset(self.data.test, b.test_subset)
        parts.seed_everything(cell.seed)
        self.model = parts.build_model(cell, self.data, self.device)
        if opts.check_contract:
            check_cell_model(cell, self.model, self.train)
        if opts.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.steps_per_epoch = math.ceil(len(self.train) / b.batch_size)
        self.budget = TrainingBudget(b.epochs, self.steps_per_epoch)
        spec = plugins.registries().objectives.get(cell.objective)
        params = resolve_params(spec.params, cell.objective_params, f"objective {cell.objective!r}")
        self.objective = build_objective(spec, self.budget, params)
        self.method = self.objective if isinstance(self.objective, Method) else None
        if self.method is None:
            self.optimizer = parts.make_optimizer(cell, self.model)
            self.train_step = self.default_step(self.model, self.optimizer, self.objective)
        else:
            built = assemble(
                self.method,
                self.model,
                self.budget,
                lambda group: parts.make_optimizer(cell, group),
                self.train,
                b.batch_size,
                cell.seed,
                b.grad_clip,
                lambda model, opt: self.default_step(model, opt, self.method.loss),
            )
            self.model, self.optimizer, self.train_step = built.model, built.optimizer, built.step
        self.resume()
        plugins.call_each("on_run_start", cell=cell, run_dir=self.run_dir)
        self.per_epoch = parts.metric_names(cell, per_epoch=True)
        self.eval_ll = eval_log_likelihood(self.model, self.device, opts.eval_amp, opts.compile)
        cudagraphs = getattr(self.train_step, "cudagraphs", False)
        self.train_batches = parts.training_batches(self.train, cudagraphs)

    def default_step(self, model: Any, optimizer: Any, objective: Any) -> TrainStep:
        opts = self.opts
        return TrainStep(
            model,
            optimizer,
            objective,
            self.cell.budget.grad_clip,
            self.device,
            amp=opts.amp,
            compile=opts.compile,
            channels_last=opts.channels_last,
        )

    def resume(self) -> None:
        """Continue from this cell's checkpoint, or clear what an earlier attempt left."""
        ckpt = self.load_checkpoint() if self.opts.resume else None
        if ckpt is not None and ckpt.get("cell") == self.cell.as_dict():
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            if self.method is not None:
                self.method.load_state_dict(ckpt["method"])
            self.state.update(ckpt["state"])
            parts.set_rng_state(ckpt["rng"])
            self.opts.log(f"{self.cell.run_id}: resuming at epoch {self.state['epoch']}")
        else:
            self.log_path.unlink(missing_ok=True)
            self.best_path.unlink(missing_ok=True)
        truncate_log(self.log_path, self.state["epoch"])

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The newest checkpoint that loads: ``checkpoint.pt``, else the one it replaced. A
        damaged file is set aside as ``*.corrupt`` with one warning line; None (no checkpoint
        that loads, or best-epoch weights that do not) means training from scratch."""
        paths = [p for p in (self.ckpt_path, previous_path(self.ckpt_path)) if p.exists()]
        for i, path in enumerate(paths):
            try:
                # Onto the CPU: RNG states must be CPU tensors, and Adam's step counters stay
                # on the host (on the GPU each would cost a sync per step); load_state_dict
                # moves the weights and the optimizer's moments to the parameters' device.
                ckpt = torch.load(path, map_location="cpu", weights_only=False)
                if not isinstance(ckpt, dict) or not {"model", "optimizer", "state"} <= set(ckpt):
                    raise ValueError("not a checkpoint")
            except Exception as exc:
                then = "resuming from the previous one" if i + 1 < len(paths) else "from scratch"
                self._damaged(path, exc, then)
                continue
            if ckpt["state"].get("best_epoch", -1) >= 0:
                # The best epoch's weights are what the run evaluates at the end.
                try:
                    torch.load(self.best_path, map_location="cpu", weights_only=True)
                except Exception as exc:
                    self._damaged(self.best_path, exc, "training from scratch")
                    return None
            return ckpt
        return None

    def _damaged(self, path: Path, exc: Exception, then: str) -> None:
        kept = f", kept as {set_aside(path).name}" if path.exists() else ""
        self.opts.warn(
            f"{self.cell.run_id}: {path.name} does not load ({type(exc).__name__}){kept}; {then}"
        )

    # ---- epochs ------------------------------------------------------------------------------

    def run(self) -> tuple[str, str | None]:
        """Train the remaining epochs; returns the status and its reason."""
        b, opts = self.cell.budget, self.opts
        if opts.progress is not None:
            self.task = opts.progress.add_task(
                f"train {self.cell.run_id}",
                total=b.epochs * self.steps_per_epoch,
                completed=self.state["epoch"] * self.steps_per_epoch,
            )
        try:
            # A resumed run that had already stopped (its record not yet written) stays stopped.
            for epoch in range(self.state["epoch"], b.epochs):
                if self.state["stop_reason"]:
                    break
                if self.task is not None:
                    opts.progress.update(
                        self.task, description=f"train {self.cell.run_id} {epoch + 1}/{b.epochs}"
                    )
                loss, kl, n_seen, elapsed = self.train_epoch(epoch)
                score = self.validate(epoch, loss, kl, n_seen, elapsed)
                self.select(epoch, score)
                self.state["stop_reason"] = self.stop_reason()
                self.save_checkpoint(epoch)
                plugins.call_each("on_epoch_end", cell=self.cell, epoch=epoch, metrics=self.entry)
                if self.state["stop_reason"]:
                    opts.log(
                        f"{self.cell.run_id}: stopped after epoch {epoch}: "
                        f"{self.state['stop_reason']}"
                    )
                    break
        except DivergedError as exc:
            return "failed", f"diverged: {exc}"
        except StopRun as exc:
            return exc.status, exc.reason
        finally:
            if self.task is not None:
                opts.progress.remove_task(self.task)
        return "finished", None

    def train_epoch(self, epoch: int) -> tuple[float, float, int, float]:
        """One pass over the training split: mean loss, mean KL, examples and seconds."""
        b, state, device = self.cell.budget, self.state, self.device
        self.model.train()
        # One generator per (seed, epoch): a resumed run replays the same batches and noise.
        gen = torch.Generator(device=device).manual_seed(self.cell.seed * 100_003 + epoch)
        # Per-step results stay on the device and are reduced once per epoch; the loop itself
        # never waits for the device (see FiniteCheck).
        finite = FiniteCheck(device)
        losses: list[Tensor] = []
        kls: list[Tensor] = []
        sizes: list[int] = []
        every = max(1, self.steps_per_epoch // PROGRESS_UPDATES_PER_EPOCH)
        unreported = 0
        beta_sum = 0.0
        t0, cpu0 = time.perf_counter(), time.process_time()
        compiled0 = compile_seconds() if self.compiling else 0.0
        for x, _ in self.train_batches.batches(b.batch_size, shuffle=True, generator=gen):
            beta_sum += self.objective.beta(state["step"])  # the weight this step trains with
            loss, kl = self.train_step(x, state["step"], gen)
            losses.append(loss)
            kls.append(kl)
            sizes.append(len(x))
            state["step"] += 1
            if state["step"] % NAN_CHECK_EVERY == 0 and not finite.check(loss, state["step"]):
                raise DivergedError(f"loss is not finite at step {finite.bad_step}")
            if self.task is not None:
                unreported += 1
                if unreported >= every:
                    self.opts.progress.advance(self.task, unreported)
                    unreported = 0
        if self.task is not None and unreported:
            self.opts.progress.advance(self.task, unreported)
        loss_mean, kl_mean = epoch_means(losses, kls, sizes, device)
        synchronize(device)
        elapsed = time.perf_counter() - t0
        state["train_time"] += elapsed
        # CPU time of this process: on a shared CPU it is what the loop itself cost.
        state["train_cpu_time"] += time.process_time() - cpu0
        state["train_examples"] += sum(sizes)
        self.epoch_compile_s = compile_seconds() - compiled0 if self.compiling else 0.0
        state["compile_time"] += self.epoch_compile_s
        if not math.isfinite(loss_mean):
            raise DivergedError(f"loss is {loss_mean} in epoch {epoch}")
        self.beta_mean = beta_sum / max(1, len(sizes))
        return loss_mean, kl_mean, sum(sizes), elapsed

    # ---- validation and model selection ------------------------------------------------------

    def validate(self, epoch: int, loss: float, kl: float, n_seen: int, elapsed: float) -> float:
        """Per-epoch metrics on the validation split, appended to ``epochs.jsonl``; returns the
        validation -ELBO, which selects the epoch whatever metrics the cell lists."""
        val = parts.evaluate(
            self.cell,
            self.model,
            self.valid,
            self.device,
            self.per_epoch,
            log_likelihood=self.eval_ll,
            select=True,
            on_error=self.metric_failed,
        )
        score = float(val[parts.SELECTION_METRIC].value)
        self.entry: dict[str, Any] = {
            "epoch": epoch,
            "step": self.state["step"],
            "beta": self.beta_mean,  # the mean KL weight over this epoch's steps
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": loss,
            "train_kl": kl,
            "train_examples_per_s": n_seen / max(elapsed, 1e-9),
            # The first epoch pays for compilation; this rate leaves it out.
            "train_examples_per_s_excl_compile": n_seen / max(elapsed - self.epoch_compile_s, 1e-9),
            "compile_s": self.epoch_compile_s,
            "time": time.time() - self.started,
        }
        if isinstance(self.train_step, MethodStep):
            self.entry.update(self.train_step.epoch_log())
        self.entry.update({f"val_{k}": v.value for k, v in val.items()})
        # Ceilings (MI: log N of the validation split) let the curves draw them.
        self.entry.update(
            {
                f"val_{k}_ceiling": v.settings["ceiling"]
                for k, v in val.items()
                if "ceiling" in v.settings
            }
        )
        with self.log_path.open("a") as fh:
            fh.write(json.dumps(self.entry) + "\n")
        self.opts.log(
            f"{self.cell.run_id} epoch {epoch}: loss {loss:.2f}"
            + "".join(
                f", val {k} {v.value:.3f}"
                for k, v in val.items()
                if isinstance(v.value, (int, float))
            )
        )
        return score

    def select(self, epoch: int, score: float) -> None:
        """Keep the weights of the best validation -ELBO; count epochs without improvement;
        decay the rate."""
        b, state = self.cell.budget, self.state
        if score < state["best"]:
            state.update(best=score, best_epoch=epoch, bad=0, bad_lr=0)
            atomic_torch_save(self.model.state_dict(), self.best_path)
        else:
            state["bad"] += 1
            state["bad_lr"] += 1
        if not b.lr_decay:
            return
        triggered = epoch + 1 >= b.lr_decay_after and state["bad_lr"] >= b.lr_decay_patience
        limited = b.max_decays is not None and state["decays"] >= b.max_decays
        if b.lr_decay_sticky:
            # The reference's text schedule: once triggered, the rate decays after every epoch,
            # with no count limit (min_lr ends the run).
            state["decaying"] = state["decaying"] or triggered
            triggered, limited = state["decaying"], False
        if triggered and not limited:
            for g in self.optimizer.param_groups:
                g["lr"] *= b.lr_decay
            state["decays"] += 1
            state["bad_lr"] = 0

    def stop_reason(self) -> str | None:
        """Why training ends before its last epoch, if it does: patience or the rate floor."""
        b, state = self.cell.budget, self.state
        if b.patience is not None and state["bad"] >= b.patience:
            return f"early stop: no better validation -ELBO in {b.patience} epochs"
        lr = self.optimizer.param_groups[0]["lr"]
        if b.min_lr is not None and lr < b.min_lr:
            return f"learning rate {lr:.4g} fell below min_lr {b.min_lr:g}"
        return None

    def save_checkpoint(self, epoch: int) -> None:
        self.state["epoch"] = epoch + 1
        atomic_torch_save(
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "state": self.state,
                "rng": parts.rng_state(),
                "cell": self.cell.as_dict(),
                "method": None if self.method is None else self.method.state_dict(),
            },
            self.ckpt_path,
            keep_previous=True,
        )

    # ---- the record --------------------------------------------------------------------------

    def finish(self, status: str, reason: str | None) -> dict[str, Any]:
        """Test-split metrics of the best weights (finished runs), then the run record."""
        metrics: dict[str, MetricValue] = {}
        eval_time = 0.0
        if status == "finished":
            if self.best_path.exists():
                best = torch.load(self.best_path, map_location=self.device, weights_only=True)
                self.model.load_state_dict(best)
            t0 = time.perf_counter()
            task = None
            if self.opts.progress is not None:
                task = self.opts.progress.add_task(f"eval {self.cell.run_id}", total=None)
            try:
                metrics = parts.evaluate(
                    self.cell,
                    self.model,
                    self.test,
                    self.device,
                    parts.metric_names(self.cell, per_epoch=False),
                    train=self.train,
                    labelled=self.test.labels is not None,
                    log_likelihood=self.eval_ll,
                    progress=None if task is None else self._eval_progress(task),
                    on_error=self.metric_failed,
                )
            finally:
                if task is not None:
                    self.opts.progress.remove_task(task)
            eval_time = time.perf_counter() - t0
        record = self.record(status, reason, metrics, eval_time)
        write_record(self.run_dir / RECORD_FILE, record)
        if status == "finished" and not self.opts.keep_checkpoints:
            # best.pt holds the evaluated weights; the resume checkpoints are no longer needed.
            self.ckpt_path.unlink(missing_ok=True)
            previous_path(self.ckpt_path).unlink(missing_ok=True)
        plugins.call_each(
            "on_run_end", cell=self.cell, record=record, model=self.model, run_dir=self.run_dir
        )
        return record

    def _eval_progress(self, task: Any) -> Callable[[str, int, int | None], None]:
        """Shows the metric being computed, and its batches where it reports them (IW-NLL)."""

        def show(metric: str, done: int, total: int | None) -> None:
            self.opts.progress.update(
                task,
                description=f"eval {self.cell.run_id}: {metric}",
                completed=done,
                total=total,
            )

        return show

    def metric_failed(self, name: str, exc: Exception) -> None:
        """A metric raised: its traceback goes to ``error.log``, one warning per metric."""
        failures.write_traceback(self.run_dir, exc, f"metric {name!r}")
        if name not in self.failed_metrics:
            self.failed_metrics.add(name)
            self.opts.warn(
                f"{self.cell.run_id}: metric {name!r} raised {type(exc).__name__}: {exc}; "
                f"recorded without a value (traceback in {self.run_dir / failures.ERROR_LOG})"
            )

    def fail(self, exc: Exception, logged: BaseException | None = None) -> dict[str, Any]:
        """The run raised: a record with status ``failed`` and the error, the traceback (of
        ``logged`` when given: a remote error that carries the task's traceback) in
        ``error.log``; the suite goes on."""
        error = failures.describe(exc)
        failures.write_traceback(self.run_dir, logged or exc, f"run {self.cell.run_id}")
        reason = failures.reason_text(error)
        self.opts.warn(
            f"{self.cell.run_id}: failed: {reason}; traceback in "
            f"{self.run_dir / failures.ERROR_LOG}"
        )
        record = self.record("failed", reason, {}, 0.0)
        record["error"] = error
        write_record(self.run_dir / RECORD_FILE, record)
        if hasattr(self, "model"):
            try:
                plugins.call_each(
                    "on_run_end",
                    cell=self.cell,
                    record=record,
                    model=self.model,
                    run_dir=self.run_dir,
                )
            except Exception as hook_exc:  # the record stands; the hook's error is logged
                failures.write_traceback(self.run_dir, hook_exc, "on_run_end after the failure")
        return record

    def record(
        self, status: str, reason: str | None, metrics: dict[str, MetricValue], eval_time: float
    ) -> dict[str, Any]:
        state, device = self.state, self.device
        regs = plugins.registries()
        resolved = resolved_settings(self.cell.as_dict())
        return {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.cell.run_id,
            "status": status,
            "reason": reason,
            "cell": self.cell.as_dict(),
            # What the leaderboard compares runs by: the parameters with their defaults.
            "resolved": resolved,
            "fingerprint": fingerprint(resolved),
            "metrics": {
                k: {
                    "value": v.value,
                    "settings": v.settings,
                    "direction": regs.metrics.get(k).direction,
                    **({"error": v.error} if v.error else {}),
                }
                for k, v in metrics.items()
            },
            "epochs_trained": state["epoch"],
            "best_epoch": state["best_epoch"],
            "selected_by": f"val_{parts.SELECTION_METRIC}",
            "stop_reason": state["stop_reason"],
            "steps": state["step"],
            "train_examples_per_s": state["train_examples"] / max(state["train_time"], 1e-9),
            "train_examples_per_s_excl_compile": state["train_examples"]
            / max(state["train_time"] - state["compile_time"], 1e-9),
            "train_time_s": state["train_time"],
            "train_cpu_time_s": state["train_cpu_time"],
            "compile_time_s": state["compile_time"],
            "eval_time_s": eval_time,
            "wall_time_s": time.time() - self.started,
            "accel": accel_settings(self.opts),
            "started_at": self.started_at,
            "finished_at": datetime.now(UTC).isoformat(),
            "device": str(device),
            "device_name": device_name(device),
            "machine": machine_info(),
            "packages": package_versions(),
            "git_commit": git_commit(),
            # A run that failed while setting up has no data yet.
            "split_sizes": {
                k: len(getattr(self, k)) for k in ("train", "valid", "test") if hasattr(self, k)
            },
            "data_notes": self.data.notes if hasattr(self, "data") else None,
            "method_state": (
                None if getattr(self, "method", None) is None else self.method.state_dict()
            ),
        }


def train_cell(cell: Cell, run_dir: Path, opts: RunOptions) -> dict[str, Any]:
    """Train one cell to completion (or failure) and return its record (also written).

    An exception from the cell's code (a plugin's model, objective, data loader or hook)
    ends this cell with status ``failed`` (see :meth:`CellTraining.fail`); a user error
    (:class:`~bench.errors.BenchError` other than a plugin's) and Ctrl-C stop the suite.
    """
    if compile_kwargs(opts.compile) is not None:
        fresh_compile_cache()  # this cell's compilations start from an empty cache
    images = plugins.registries().datasets.get(cell.dataset).kind == "image"
    with device_flags(opts, fixed_shapes=images):
        run = CellTraining(cell, run_dir, opts)
        try:
            run.set_up()
            status, reason = run.run()
            return run.finish(status, reason)
        except BenchError as exc:
            if not isinstance(exc, PluginError):
                raise
            return run.fail(exc)
        except Exception as exc:
            return run.fail(exc)
