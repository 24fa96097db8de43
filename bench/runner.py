"""Trains and evaluates suite cells, writing per-epoch logs, checkpoints and run records.

Layout of a run folder (``<results>/<suite>/<scale>/<run_id>/``): ``epochs.jsonl`` (one line
per epoch, appended), ``checkpoint.pt`` (latest epoch, for ``--resume``), ``best.pt`` (best
validation -ELBO, evaluated at the end) and ``record.json`` (written last, atomically; its
presence marks the run finished).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bench import plugins
from bench.contract import LatentVariableModel, reparameterize
from bench.data import DataSplits, Split, channels_last_split, data_dir, without_labels
from bench.errors import BenchError, ConfigError, StopRun
from bench.estimators import gaussian_kl_per_dim
from bench.evaluation import EvalContext
from bench.records import (
    RECORD_FILE,
    SCHEMA_VERSION,
    atomic_torch_save,
    device_name,
    git_commit,
    machine_info,
    package_versions,
    read_record,
    write_record,
)
from bench.specs import MetricValue, resolve_params
from bench.suites import Cell, Suite, expand

NAN_CHECK_EVERY = 100  # steps between divergence checks (read a step late: no host sync)
PROGRESS_UPDATES_PER_EPOCH = 50  # a progress-bar update costs a lock and a redraw request
# torch.compile modes; any other string given as ``compile`` names a backend ("aot_eager"...).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class DivergedError(Exception):
    """The training loss became NaN or infinite."""


def resolve_device(name: str | None) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"--device: {name!r} is not a torch device (try cpu, cuda, cuda:1)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def select_cells(suite: Suite, scale: str | None) -> tuple[str, list[Cell]]:
    scale = scale or suite.default_scale
    if scale not in suite.scales:
        raise ConfigError(
            f"suite {suite.name!r} has no scale {scale!r}; scales: {', '.join(suite.scales)}"
        )
    groups = suite.groups.get(scale, [])
    if not groups:
        raise ConfigError(f"suite {suite.name!r} has no cells at scale {scale!r}")
    return scale, expand(suite.name, scale, groups)


def validate_cells(cells: Iterable[Cell]) -> None:
    """Fail before any training if a name or parameter is wrong anywhere in the suite."""
    regs = plugins.registries()
    for c in cells:
        ds = regs.datasets.get(c.dataset)
        model = regs.models.get(c.model)
        obj = regs.objectives.get(c.objective)
        for m in c.metrics:
            regs.metrics.get(m)
        if ds.kind not in model.kinds:
            raise ConfigError(
                f"group {c.group!r}: model {c.model!r} takes {'/'.join(model.kinds)} data, "
                f"dataset {c.dataset!r} is {ds.kind}"
            )
        resolve_params(ds.params, c.dataset_params, f"dataset {c.dataset!r}")
        resolve_params(model.params, c.model_params, f"model {c.model!r}")
        resolve_params(obj.params, c.objective_params, f"objective {c.objective!r}")


@dataclass
class RunOptions:
    results_dir: Path
    device: torch.device
    data_dir: Path | None = None
    resume: bool = False
    progress: Any = None  # a rich Progress, or None
    log: Callable[[str], None] = lambda msg: None
    data_cache: dict[tuple[str, str], DataSplits] = field(default_factory=dict)
    # Speed options, all off by default so results stay fp32 and bit-reproducible.
    amp: bool = False  # bf16 autocast in training (and evaluation, unless amp_eval is False)
    amp_eval: bool | None = None  # None: follow ``amp``
    tf32: bool = False  # allow TF32 matmuls and convolutions on CUDA
    compile: bool | str | None = None  # True or a mode in COMPILE_MODES, or a backend name
    channels_last: bool = False  # NHWC memory format for 4-D image batches and conv weights
    jobs: int = 1  # run_suite: cells trained at once, each in its own process
    threads: int | None = None  # torch intra-op threads per --jobs worker (None: cores / jobs)

    @property
    def eval_amp(self) -> bool:
        return self.amp if self.amp_eval is None else self.amp_eval


def load_data(cell: Cell, opts: RunOptions) -> DataSplits:
    key = (cell.dataset, json.dumps(cell.dataset_params, sort_keys=True))
    if key not in opts.data_cache:
        spec = plugins.registries().datasets.get(cell.dataset)
        params = resolve_params(spec.params, cell.dataset_params, f"dataset {cell.dataset!r}")
        # The whole data set moves to the device once; batching and binarization then run there.
        data = spec.load(data_dir(opts.data_dir), **params).to(opts.device)
        if opts.channels_last:
            data = DataSplits(
                data.info,
                *(channels_last_split(s) for s in (data.train, data.valid, data.test)),
                data.num_classes,
                data.notes,
            )
        opts.data_cache[key] = data
    return opts.data_cache[key]


# ---- speed: synchronisation, autocast, TF32, torch.compile, channels-last -------------------


def synchronize(device: torch.device) -> None:
    """Wait for queued device work; timings on CUDA are meaningless without it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on the device (a no-op context when disabled)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@contextlib.contextmanager
def tf32_enabled(enabled: bool) -> Iterator[None]:
    """Allow TF32 on CUDA inside the block and restore the previous flags afterwards.

    Off leaves PyTorch's own defaults alone; the flags do nothing on the CPU.
    """
    if not enabled:
        yield
        return
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def compile_kwargs(value: bool | str | None) -> dict[str, str] | None:
    """``torch.compile`` keyword arguments for a ``compile`` option, or None when off."""
    if value is None or value is False or value in ("", "off", "none", "false"):
        return None
    if value is True or value == "default":
        return {}
    if value in COMPILE_MODES:
        return {"mode": str(value)}
    return {"backend": str(value)}


def compile_label(value: bool | str | None) -> str | None:
    kw = compile_kwargs(value)
    if kw is None:
        return None
    return kw.get("mode") or kw.get("backend") or "default"


def _uses_cudagraphs(kw: dict[str, str] | None) -> bool:
    return kw is not None and kw.get("mode") == "reduce-overhead"


def eval_log_likelihood(
    model: LatentVariableModel, device: torch.device, amp: bool, compile: bool | str | None
) -> Callable[[Any, Tensor], Tensor] | None:
    """A faster ``log_likelihood`` for evaluation (autocast and/or compiled), returning fp32;
    None when both are off so evaluation calls the model itself."""
    kw = compile_kwargs(compile)
    if not amp and kw is None:
        return None
    fn = model.log_likelihood
    if kw is not None:
        # K chunks and the last batch change shape: compile for dynamic sizes up front.
        fn = torch.compile(fn, dynamic=True, **kw)
    cudagraphs = _uses_cudagraphs(kw)

    def log_likelihood(x: Any, z: Tensor) -> Tensor:
        if cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        with autocast(device, amp):
            out = fn(x, z)
        # Cloned under CUDA graphs: the next replay would overwrite the graph's output.
        return out.float().clone() if cudagraphs else out.float()

    return log_likelihood


class TrainStep:
    """One optimizer step exactly as the runner takes it; ``bench throughput`` times this same
    object, so the benchmark measures what training runs.

    ``step(x, step, generator)`` returns the detached loss and the per-dimension KL (``[B, D]``,
    or its sum under CUDA graphs) as device tensors; nothing in it synchronises with the host.
    The reparameterization noise is drawn from ``generator`` before the forward pass (same
    numbers as drawing it after ``encode``), so a compiled forward sees it as an input.
    """

    def __init__(
        self,
        model: LatentVariableModel,
        optimizer: torch.optim.Optimizer,
        objective: Callable[[Tensor, Tensor, int], Tensor],
        grad_clip: float | None,
        device: torch.device,
        amp: bool = False,
        compile: bool | str | None = None,
        channels_last: bool = False,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.objective = objective
        self.grad_clip = grad_clip
        self.device = device
        self.amp = amp
        self.channels_last = channels_last
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.latent_dim: int | None = getattr(model, "latent_dim", None)
        kw = compile_kwargs(compile)
        self.cudagraphs = _uses_cudagraphs(kw)
        self.forward: Callable[[Any, Tensor], tuple[Tensor, Tensor]] = self._forward
        if kw is not None and self.latent_dim is not None:
            self.forward = torch.compile(self._forward, **kw)

    def _forward(self, x: Any, eps: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.model.encode(x)
        if self.amp:  # the KL and the noise scale stay fp32 under autocast
            mu, logvar = mu.float(), logvar.float()
        # z is formed as [B, D] and then viewed as [1, B, D]: broadcasting mu against [1, B, D]
        # noise would cost two extra reductions in every backward pass.
        z = (mu + eps * torch.exp(0.5 * logvar)).unsqueeze(0)
        log_px = self.model.log_likelihood(x, z)[0]
        kl = gaussian_kl_per_dim(mu, logvar)
        if self.amp:
            log_px = log_px.float()
        return log_px, kl

    def _forward_draw_after(
        self, x: Any, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor]:
        # Models without a ``latent_dim`` attribute: draw the noise once the shape is known.
        mu, logvar = self.model.encode(x)
        if self.amp:
            mu, logvar = mu.float(), logvar.float()
        z = reparameterize(mu, logvar, 1, generator=generator)
        log_px = self.model.log_likelihood(x, z)[0]
        return (log_px.float() if self.amp else log_px), gaussian_kl_per_dim(mu, logvar)

    def __call__(
        self, x: Any, step: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        if self.channels_last and isinstance(x, Tensor) and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        with autocast(self.device, self.amp):
            if self.latent_dim is None:
                log_px, kl = self._forward_draw_after(x, generator)
            else:
                # The same numbers reparameterize() would draw after encode(): [B, D] here.
                eps = torch.randn(
                    (len(x), self.latent_dim), device=self.device, generator=generator
                )
                log_px, kl = self.forward(x, eps)
            loss = self.objective(log_px, kl, step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.optimizer.step()
        # Under CUDA graphs ``kl`` lives in graph memory that the next replay overwrites.
        return loss.detach(), (kl.detach().sum() if self.cudagraphs else kl.detach())


def check_options(opts: RunOptions) -> None:
    """Reject impossible speed options before any training starts."""
    if opts.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {opts.jobs}")
    if opts.threads is not None and opts.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {opts.threads}")
    kw = compile_kwargs(opts.compile)
    if kw and "backend" in kw:
        import torch._dynamo

        known = torch._dynamo.list_backends(exclude_tags=())
        if kw["backend"] not in known:
            raise ConfigError(
                f"--compile {kw['backend']!r}: not a torch.compile mode "
                f"({', '.join(COMPILE_MODES)}) or backend ({', '.join(known)})"
            )
    if _uses_cudagraphs(kw) and opts.device.type != "cuda":
        raise ConfigError("--compile reduce-overhead uses CUDA graphs and needs a CUDA device")


def accel_settings(opts: RunOptions) -> dict[str, Any]:
    """The speed options a run used, written to its record."""
    return {
        "amp": "bf16" if opts.amp else None,
        "amp_eval": "bf16" if opts.eval_amp else None,
        "tf32": opts.tf32,
        "compile": compile_label(opts.compile),
        "channels_last": opts.channels_last,
        "torch_threads": torch.get_num_threads(),
    }


def _subset(split: Split, n: int | None) -> Split:
    return split if n is None or n >= len(split) else split.subset(n)


def build_model(cell: Cell, data: DataSplits, device: torch.device) -> LatentVariableModel:
    spec = plugins.registries().models.get(cell.model)
    params = resolve_params(spec.params, cell.model_params, f"model {cell.model!r}")
    return spec.build(data.info, **params).to(device)


def make_optimizer(cell: Cell, model: torch.nn.Module) -> torch.optim.Optimizer:
    b = cell.budget
    if b.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=b.lr)
    if b.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=b.lr)
    raise ConfigError(f"budget.optimizer: {b.optimizer!r} is not one of adam, sgd")


def evaluate(
    cell: Cell,
    model: LatentVariableModel,
    split: Split,
    device: torch.device,
    metric_names: Iterable[str],
    train: Split | None = None,
    labelled: bool = True,
    log_likelihood: Callable[[Any, Tensor], Tensor] | None = None,
) -> dict[str, MetricValue]:
    """Compute metrics on ``split``; ``log_likelihood`` may replace the model's (autocast or
    compiled, see :func:`eval_log_likelihood`)."""
    regs = plugins.registries()
    model.eval()
    ctx = EvalContext(
        model, split, cell.eval, device, seed=cell.seed, train=train, log_likelihood=log_likelihood
    )
    out = {}
    for name in metric_names:
        spec = regs.metrics.get(name)
        if spec.needs_labels and not labelled:
            continue
        out[name] = spec.compute(ctx)
    return out


def _metric_names(cell: Cell, per_epoch: bool) -> list[str]:
    regs = plugins.registries()
    names = list(cell.metrics) or regs.metrics.names()
    if per_epoch:
        names = [n for n in names if regs.metrics.get(n).per_epoch]
    return names


def _rng_state() -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _truncate_log(path: Path, keep_epochs: int) -> None:
    """Drop log lines past the checkpoint we resume from (they will be produced again)."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    kept = [ln for ln in lines if json.loads(ln)["epoch"] < keep_epochs]
    path.write_text("".join(ln + "\n" for ln in kept))


class _FiniteCheck:
    """Detects a non-finite loss without stalling the device queue.

    Each check starts a non-blocking copy of ``isfinite(loss)`` to the host and reads the copy
    started at the previous check, which the device finished long ago (an event guards it on
    CUDA). Divergence is therefore caught ``NAN_CHECK_EVERY`` steps late at most, and at the
    latest by the end-of-epoch loss, which is read anyway.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.pending: tuple[Tensor, Any, int] | None = None
        self.bad_step = -1

    def check(self, loss: Tensor, step: int) -> bool:
        ok = True
        if self.pending is not None:
            flag, event, at = self.pending
            if event is not None:
                event.synchronize()
            if not bool(flag):
                ok, self.bad_step = False, at
        flag = torch.isfinite(loss)
        event = None
        if self.device.type == "cuda":
            flag = flag.to("cpu", non_blocking=True)
            event = torch.cuda.Event()
            event.record()
        self.pending = (flag, event, step)
        return ok


def _epoch_means(
    losses: list[Tensor], kls: list[Tensor], sizes: list[int], device: torch.device
) -> tuple[float, float]:
    """Example-weighted mean loss and mean summed KL of an epoch, with one host sync."""
    n = sum(sizes)
    if n == 0:
        return 0.0, 0.0
    weights = torch.tensor(sizes, dtype=torch.float32, device=device)
    loss_sum = (torch.stack(losses).float() * weights).sum()
    kl_sum = torch.cat([k.reshape(-1) for k in kls]).float().sum()
    loss_total, kl_total = torch.stack([loss_sum, kl_sum]).tolist()
    return loss_total / n, kl_total / n


def train_cell(cell: Cell, run_dir: Path, opts: RunOptions) -> dict[str, Any]:
    """Train one cell to completion (or failure) and return its record (also written)."""
    with tf32_enabled(opts.tf32):
        return _train_cell(cell, run_dir, opts)


def _train_cell(cell: Cell, run_dir: Path, opts: RunOptions) -> dict[str, Any]:
    started = time.time()
    started_at = datetime.now(UTC).isoformat()
    device = opts.device
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "epochs.jsonl"
    ckpt_path = run_dir / "checkpoint.pt"
    best_path = run_dir / "best.pt"

    data = load_data(cell, opts)
    b = cell.budget
    train = _subset(data.train, b.train_subset)
    valid = _subset(data.valid, b.valid_subset)
    test = _subset(data.test, b.test_subset)

    seed_everything(cell.seed)
    model = build_model(cell, data, device)
    if opts.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(cell, model)
    steps_per_epoch = math.ceil(len(train) / b.batch_size)
    obj_spec = plugins.registries().objectives.get(cell.objective)
    objective = obj_spec.build(
        steps_per_epoch,
        **resolve_params(obj_spec.params, cell.objective_params, f"objective {cell.objective!r}"),
    )

    state = {
        "epoch": 0,
        "step": 0,
        "best": math.inf,
        "best_epoch": -1,
        "bad": 0,
        "decays": 0,
        "bad_lr": 0,
        "train_time": 0.0,
        "train_cpu_time": 0.0,
        "train_examples": 0,
    }
    if opts.resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
    else:
        ckpt = None
    if ckpt is not None and ckpt.get("cell") == cell.as_dict():
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        state.update(ckpt["state"])
        _set_rng_state(ckpt["rng"])
        opts.log(f"{cell.run_id}: resuming at epoch {state['epoch']}")
    else:
        log_path.unlink(missing_ok=True)
        best_path.unlink(missing_ok=True)
    _truncate_log(log_path, state["epoch"])

    plugins.call_each("on_run_start", cell=cell, run_dir=run_dir)
    per_epoch = _metric_names(cell, per_epoch=True)
    train_step = TrainStep(
        model,
        optimizer,
        objective,
        b.grad_clip,
        device,
        amp=opts.amp,
        compile=opts.compile,
        channels_last=opts.channels_last,
    )
    eval_ll = eval_log_likelihood(model, device, opts.eval_amp, opts.compile)
    train_batches = without_labels(train)
    task = None
    progress_every = max(1, steps_per_epoch // PROGRESS_UPDATES_PER_EPOCH)
    if opts.progress is not None:
        task = opts.progress.add_task(
            cell.run_id,
            total=b.epochs * steps_per_epoch,
            completed=state["epoch"] * steps_per_epoch,
        )
    status, reason = "finished", None
    try:
        for epoch in range(state["epoch"], b.epochs):
            model.train()
            # One generator per (seed, epoch): a resumed run replays the same batches and noise.
            gen = torch.Generator(device=device).manual_seed(cell.seed * 100_003 + epoch)
            # Per-step results stay on the device and are reduced once per epoch; the loop
            # itself never waits for the device (see _FiniteCheck).
            finite = _FiniteCheck(device)
            losses: list[Tensor] = []
            kls: list[Tensor] = []
            sizes: list[int] = []
            unreported = 0
            t0 = time.perf_counter()
            cpu0 = time.process_time()
            for x, _ in train_batches.batches(b.batch_size, shuffle=True, generator=gen):
                loss, kl = train_step(x, state["step"], gen)
                losses.append(loss)
                kls.append(kl)
                sizes.append(len(x))
                state["step"] += 1
                if state["step"] % NAN_CHECK_EVERY == 0 and not finite.check(loss, state["step"]):
                    raise DivergedError(f"loss is not finite at step {finite.bad_step}")
                if task is not None:
                    unreported += 1
                    if unreported >= progress_every:
                        opts.progress.advance(task, unreported)
                        unreported = 0
            if task is not None and unreported:
                opts.progress.advance(task, unreported)
            n_seen = sum(sizes)
            train_loss, train_kl = _epoch_means(losses, kls, sizes, device)
            synchronize(device)
            elapsed = time.perf_counter() - t0
            state["train_time"] += elapsed
            # CPU time of this process: on a shared CPU it is what the loop itself cost.
            state["train_cpu_time"] += time.process_time() - cpu0
            state["train_examples"] += n_seen
            if not math.isfinite(train_loss):
                raise DivergedError(f"loss is {train_loss} in epoch {epoch}")

            val = evaluate(cell, model, valid, device, per_epoch, log_likelihood=eval_ll)
            entry: dict[str, Any] = {
                "epoch": epoch,
                "step": state["step"],
                "beta": objective.beta(state["step"]),
                "lr": optimizer.param_groups[0]["lr"],
                "train_loss": train_loss,
                "train_kl": train_kl,
                "train_examples_per_s": n_seen / max(elapsed, 1e-9),
                "time": time.time() - started,
            }
            entry.update({f"val_{k}": v.value for k, v in val.items()})
            with log_path.open("a") as fh:
                fh.write(json.dumps(entry) + "\n")
            opts.log(
                f"{cell.run_id} epoch {epoch}: loss {train_loss:.2f}"
                + "".join(
                    f", val {k} {v.value:.3f}"
                    for k, v in val.items()
                    if isinstance(v.value, (int, float))
                )
            )

            score = val["neg_elbo"].value if "neg_elbo" in val else train_loss
            if score < state["best"]:
                state.update(best=score, best_epoch=epoch, bad=0, bad_lr=0)
                atomic_torch_save(model.state_dict(), best_path)
            else:
                state["bad"] += 1
                state["bad_lr"] += 1
            if (
                b.lr_decay
                and epoch + 1 >= b.lr_decay_after
                and state["bad_lr"] >= b.lr_decay_patience
                and state["decays"] < b.max_decays
            ):
                for g in optimizer.param_groups:
                    g["lr"] *= b.lr_decay
                state["decays"] += 1
                state["bad_lr"] = 0
            state["epoch"] = epoch + 1
            atomic_torch_save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "state": state,
                    "rng": _rng_state(),
                    "cell": cell.as_dict(),
                },
                ckpt_path,
            )
            plugins.call_each("on_epoch_end", cell=cell, epoch=epoch, metrics=entry)
            if b.patience is not None and state["bad"] >= b.patience:
                opts.log(f"{cell.run_id}: early stop after epoch {epoch}")
                break
    except DivergedError as exc:
        status, reason = "failed", f"diverged: {exc}"
    except StopRun as exc:
        status, reason = exc.status, exc.reason
    finally:
        if task is not None:
            opts.progress.remove_task(task)

    metrics: dict[str, MetricValue] = {}
    if status == "finished":
        if best_path.exists():
            model.load_state_dict(torch.load(best_path, map_location=device, weights_only=True))
        eval_t0 = time.perf_counter()
        metrics = evaluate(
            cell,
            model,
            test,
            device,
            _metric_names(cell, per_epoch=False),
            train=train,
            labelled=test.labels is not None,
            log_likelihood=eval_ll,
        )
        eval_time = time.perf_counter() - eval_t0
    else:
        eval_time = 0.0

    record = {
        "schema_version": SCHEMA_VERSION,
        "run_id": cell.run_id,
        "status": status,
        "reason": reason,
        "cell": cell.as_dict(),
        "metrics": {
            k: {
                "value": v.value,
                "settings": v.settings,
                "direction": plugins.registries().metrics.get(k).direction,
            }
            for k, v in metrics.items()
        },
        "epochs_trained": state["epoch"],
        "best_epoch": state["best_epoch"],
        "steps": state["step"],
        "train_examples_per_s": state["train_examples"] / max(state["train_time"], 1e-9),
        "train_time_s": state["train_time"],
        "train_cpu_time_s": state["train_cpu_time"],
        "eval_time_s": eval_time,
        "wall_time_s": time.time() - started,
        "accel": accel_settings(opts),
        "started_at": started_at,
        "finished_at": datetime.now(UTC).isoformat(),
        "device": str(device),
        "device_name": device_name(device),
        "machine": machine_info(),
        "packages": package_versions(),
        "git_commit": git_commit(),
        "split_sizes": {"train": len(train), "valid": len(valid), "test": len(test)},
        "data_notes": data.notes,
    }
    write_record(run_dir / RECORD_FILE, record)
    plugins.call_each("on_run_end", cell=cell, record=record, model=model, run_dir=run_dir)
    return record


def run_suite(
    suite: Suite, scale: str | None, opts: RunOptions, overwrite: bool = False
) -> tuple[str, list[dict[str, Any]]]:
    """Run every cell of a suite at a scale; returns the scale and the records produced.

    With ``opts.jobs > 1`` up to that many cells train at once, each in its own process on
    ``opts.device`` (see :func:`_run_parallel`); records come back in cell order either way.
    """
    scale, cells = select_cells(suite, scale)
    validate_cells(cells)
    suite_dir = opts.results_dir / suite.name / scale
    existing = [c for c in cells if (suite_dir / c.run_id).exists()]
    if existing and not (opts.resume or overwrite):
        raise BenchError(
            f"results for {suite.name}/{scale} already exist in {suite_dir}; pass --resume to "
            "continue them or --overwrite to start again"
        )
    check_options(opts)
    records: list[dict[str, Any] | None] = [None] * len(cells)
    todo: list[tuple[int, Cell, Path]] = []
    for i, cell in enumerate(cells):
        run_dir = suite_dir / cell.run_id
        record_path = run_dir / RECORD_FILE
        if opts.resume and record_path.exists():
            previous = read_record(record_path)
            if previous.get("cell") == json.loads(json.dumps(cell.as_dict())):
                opts.log(f"{cell.run_id}: already finished, skipped")
                records[i] = previous
                continue
            opts.log(f"{cell.run_id}: configuration changed since the last run; training again")
        if record_path.exists():
            record_path.unlink()
        todo.append((i, cell, run_dir))
    if opts.jobs > 1 and len(todo) > 1:
        for i, record in _run_parallel(todo, opts):
            records[i] = record
    else:
        for i, cell, run_dir in todo:
            records[i] = train_cell(cell, run_dir, opts)
    return scale, [r for r in records if r is not None]


# ---- several cells at once (--jobs N) -------------------------------------------------------

_WORKER_OPTS: RunOptions | None = None


def _in_process_plugins(cells: list[Cell]) -> list[str]:
    """Plugins a spawned worker would not see: those registered in this process only."""
    from importlib import metadata

    loadable = {m.rsplit(".", 1)[-1] for m in plugins.BUILTIN_PLUGINS}
    loadable |= {ep.name for ep in metadata.entry_points(group=plugins.ENTRY_POINT_GROUP)}
    regs = plugins.registries()
    used = set()
    for c in cells:
        used.add(regs.datasets.get(c.dataset).plugin)
        used.add(regs.models.get(c.model).plugin)
        used.add(regs.objectives.get(c.objective).plugin)
        used.update(regs.metrics.get(m).plugin for m in (c.metrics or regs.metrics.names()))
    pm = plugins.get_plugin_manager()
    for hook in ("on_run_start", "on_epoch_end", "on_run_end"):
        used.update(impl.plugin_name for impl in getattr(pm.hook, hook).get_hookimpls())
    return sorted(p for p in used if p and p not in loadable)


def _worker_threads(opts: RunOptions) -> int:
    """CPU threads per worker: the cores this process may use, shared among the jobs."""
    if opts.threads:
        return opts.threads
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // opts.jobs)


def _worker_init(settings: dict[str, Any], queue: Any) -> None:
    global _WORKER_OPTS
    torch.set_num_threads(settings.pop("threads"))
    settings["device"] = torch.device(settings["device"])
    _WORKER_OPTS = RunOptions(log=queue.put, **settings)


def _worker_train(cell: Cell, run_dir: str) -> dict[str, Any]:
    assert _WORKER_OPTS is not None, "worker was not initialised"
    return train_cell(cell, Path(run_dir), _WORKER_OPTS)


def _worker_context() -> Any:
    """A fork server that has imported torch, the runner and the plugin modules (but never
    touched CUDA) forks the workers: those imports happen once, not once per worker. Plain
    spawn where there is no fork server. A preload that fails to import is skipped."""
    import multiprocessing
    from importlib import metadata

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    blocked = plugins.disabled_plugins()
    modules = [
        ep.module
        for ep in metadata.entry_points(group=plugins.ENTRY_POINT_GROUP)
        if ep.name not in blocked
    ]
    # torch._dynamo: imported by every optimizer's constructor (seconds); sklearn: the core
    # depends on it (probe metric, digits); both are slow first imports otherwise paid per job.
    heavy = ["torch", "torch._dynamo", "sklearn.datasets", "sklearn.linear_model", "bench.runner"]
    ctx.set_forkserver_preload([*heavy, *dict.fromkeys(modules)])
    return ctx


def _run_parallel(
    todo: list[tuple[int, Cell, Path]], opts: RunOptions
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Train cells in ``opts.jobs`` worker processes sharing ``opts.device``.

    Workers start from a fork server or by spawning, never by forking this process, so CUDA
    works in them; each worker loads plugins from entry points, loads its data once and keeps
    it for the cells it trains after. Each cell seeds itself and writes its own run folder, so
    results equal those of ``--jobs 1``.
    """
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    local = _in_process_plugins([c for _, c, _ in todo])
    if local:
        raise ConfigError(
            f"--jobs {opts.jobs}: plugin(s) {', '.join(local)} were registered in this process "
            "only, and worker processes load plugins from entry points; install them as a "
            "package or use --jobs 1"
        )
    ctx = _worker_context()
    queue = ctx.Queue()
    settings = {
        "results_dir": opts.results_dir,
        "device": str(opts.device),
        "data_dir": opts.data_dir,
        "resume": opts.resume,
        "amp": opts.amp,
        "amp_eval": opts.amp_eval,
        "tf32": opts.tf32,
        "compile": opts.compile,
        "channels_last": opts.channels_last,
        "threads": _worker_threads(opts),
    }
    n_workers = min(opts.jobs, len(todo))
    opts.log(
        f"training {len(todo)} cells in {n_workers} processes on {opts.device} "
        f"({settings['threads']} CPU threads each)"
    )
    task = None
    if opts.progress is not None:
        task = opts.progress.add_task(f"{len(todo)} cells, {n_workers} jobs", total=len(todo))

    def drain() -> None:
        while True:
            try:
                msg = queue.get_nowait()
            except Exception:  # queue.Empty; the name differs between queue implementations
                return
            opts.log(msg)

    pool = ProcessPoolExecutor(
        n_workers, mp_context=ctx, initializer=_worker_init, initargs=(settings, queue)
    )
    try:
        futures = {
            pool.submit(_worker_train, cell, str(run_dir)): (i, cell) for i, cell, run_dir in todo
        }
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            drain()
            for fut in done:
                i, cell = futures[fut]
                record = fut.result()  # a worker's exception is raised here, as with --jobs 1
                opts.log(f"{cell.run_id}: {record['status']} in {record['wall_time_s']:.1f}s")
                if task is not None:
                    opts.progress.advance(task)
                yield i, record
    except BaseException:
        # Fail as fast as --jobs 1 would: stop the workers we started instead of waiting for
        # their current cells (their checkpoints let --resume continue them).
        workers = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in workers:
            proc.terminate()
        raise
    finally:
        pool.shutdown(wait=True)
        drain()
        if task is not None:
            opts.progress.remove_task(task)
