"""Trains and evaluates suite cells, writing per-epoch logs, checkpoints and run records.

Layout of a run folder (``<results>/<suite>/<scale>/<run_id>/``): ``epochs.jsonl`` (one line
per epoch, appended), ``checkpoint.pt`` (latest epoch, for ``--resume``), ``best.pt`` (best
validation -ELBO, evaluated at the end) and ``record.json`` (written last, atomically; its
presence marks the run finished).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import plugins
from bench.contract import LatentVariableModel, reparameterize
from bench.data import DataSplits, Split, data_dir
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

RESULTS_DIR_ENV = "BENCH_RESULTS_DIR"
NAN_CHECK_EVERY = 100  # steps between the only host syncs in the training loop


class DivergedError(Exception):
    """The training loss became NaN or infinite."""


def resolve_device(name: str | None) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device: {name!r} is not a torch device (try cpu, cuda, cuda:1)") from None
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


def load_data(cell: Cell, opts: RunOptions) -> DataSplits:
    key = (cell.dataset, json.dumps(cell.dataset_params, sort_keys=True))
    if key not in opts.data_cache:
        spec = plugins.registries().datasets.get(cell.dataset)
        params = resolve_params(spec.params, cell.dataset_params, f"dataset {cell.dataset!r}")
        opts.data_cache[key] = spec.load(data_dir(opts.data_dir), **params).to(opts.device)
    return opts.data_cache[key]


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
) -> dict[str, MetricValue]:
    regs = plugins.registries()
    model.eval()
    ctx = EvalContext(model, split, cell.eval, device, seed=cell.seed, train=train)
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
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
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


def train_cell(cell: Cell, run_dir: Path, opts: RunOptions) -> dict[str, Any]:
    """Train one cell to completion (or failure) and return its record (also written)."""
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
    optimizer = make_optimizer(cell, model)
    steps_per_epoch = math.ceil(len(train) / b.batch_size)
    obj_spec = plugins.registries().objectives.get(cell.objective)
    objective = obj_spec.build(
        steps_per_epoch,
        **resolve_params(obj_spec.params, cell.objective_params, f"objective {cell.objective!r}"),
    )

    state = {"epoch": 0, "step": 0, "best": math.inf, "best_epoch": -1, "bad": 0, "decays": 0,
             "bad_lr": 0, "train_time": 0.0, "train_examples": 0}
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
    params = [p for p in model.parameters() if p.requires_grad]
    task = None
    if opts.progress is not None:
        task = opts.progress.add_task(cell.run_id, total=b.epochs * steps_per_epoch,
                                      completed=state["epoch"] * steps_per_epoch)
    status, reason = "finished", None
    try:
        for epoch in range(state["epoch"], b.epochs):
            model.train()
            # One generator per (seed, epoch): a resumed run replays the same batches and noise.
            gen = torch.Generator(device=device).manual_seed(cell.seed * 100_003 + epoch)
            loss_sum = torch.zeros((), device=device)
            kl_sum = torch.zeros((), device=device)
            n_seen = 0
            t0 = time.perf_counter()
            for x, _ in train.batches(b.batch_size, shuffle=True, generator=gen):
                mu, logvar = model.encode(x)
                z = reparameterize(mu, logvar, 1, generator=gen)
                log_px = model.log_likelihood(x, z)[0]
                kl = gaussian_kl_per_dim(mu, logvar)
                loss = objective(log_px, kl, state["step"])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if b.grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, b.grad_clip)
                optimizer.step()
                batch = len(x)
                loss_sum += loss.detach() * batch
                kl_sum += kl.detach().sum()
                n_seen += batch
                state["step"] += 1
                if state["step"] % NAN_CHECK_EVERY == 0 and not torch.isfinite(loss_sum):
                    raise DivergedError(f"loss is {loss_sum.item()} at step {state['step']}")
                if task is not None:
                    opts.progress.advance(task)
            train_loss = float(loss_sum) / max(n_seen, 1)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            elapsed = time.perf_counter() - t0
            state["train_time"] += elapsed
            state["train_examples"] += n_seen
            if not math.isfinite(train_loss):
                raise DivergedError(f"loss is {train_loss} in epoch {epoch}")

            val = evaluate(cell, model, valid, device, per_epoch)
            entry: dict[str, Any] = {
                "epoch": epoch,
                "step": state["step"],
                "beta": objective.beta(state["step"]),
                "lr": optimizer.param_groups[0]["lr"],
                "train_loss": train_loss,
                "train_kl": float(kl_sum) / max(n_seen, 1),
                "train_examples_per_s": n_seen / max(elapsed, 1e-9),
                "time": time.time() - started,
            }
            entry.update({f"val_{k}": v.value for k, v in val.items()})
            with log_path.open("a") as fh:
                fh.write(json.dumps(entry) + "\n")
            opts.log(
                f"{cell.run_id} epoch {epoch}: loss {train_loss:.2f}"
                + "".join(f", val {k} {v.value:.3f}" for k, v in val.items()
                          if isinstance(v.value, (int, float)))
            )

            score = val["neg_elbo"].value if "neg_elbo" in val else train_loss
            if score < state["best"]:
                state.update(best=score, best_epoch=epoch, bad=0, bad_lr=0)
                atomic_torch_save(model.state_dict(), best_path)
            else:
                state["bad"] += 1
                state["bad_lr"] += 1
            if (b.lr_decay and epoch + 1 >= b.lr_decay_after
                    and state["bad_lr"] >= b.lr_decay_patience and state["decays"] < b.max_decays):
                for g in optimizer.param_groups:
                    g["lr"] *= b.lr_decay
                state["decays"] += 1
                state["bad_lr"] = 0
            state["epoch"] = epoch + 1
            atomic_torch_save(
                {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "state": state, "rng": _rng_state(), "cell": cell.as_dict()},
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
            cell, model, test, device, _metric_names(cell, per_epoch=False), train=train,
            labelled=test.labels is not None,
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
            k: {"value": v.value, "settings": v.settings,
                "direction": plugins.registries().metrics.get(k).direction}
            for k, v in metrics.items()
        },
        "epochs_trained": state["epoch"],
        "best_epoch": state["best_epoch"],
        "steps": state["step"],
        "train_examples_per_s": state["train_examples"] / max(state["train_time"], 1e-9),
        "train_time_s": state["train_time"],
        "eval_time_s": eval_time,
        "wall_time_s": time.time() - started,
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
    """Run every cell of a suite at a scale; returns the scale and the records produced."""
    scale, cells = select_cells(suite, scale)
    validate_cells(cells)
    suite_dir = opts.results_dir / suite.name / scale
    existing = [c for c in cells if (suite_dir / c.run_id).exists()]
    if existing and not (opts.resume or overwrite):
        raise BenchError(
            f"results for {suite.name}/{scale} already exist in {suite_dir}; pass --resume to "
            "continue them or --overwrite to start again"
        )
    records = []
    for cell in cells:
        run_dir = suite_dir / cell.run_id
        record_path = run_dir / RECORD_FILE
        if opts.resume and record_path.exists():
            previous = read_record(record_path)
            if previous.get("cell") == json.loads(json.dumps(cell.as_dict())):
                opts.log(f"{cell.run_id}: already finished, skipped")
                records.append(previous)
                continue
            opts.log(f"{cell.run_id}: configuration changed since the last run; training again")
        if record_path.exists():
            record_path.unlink()
        records.append(train_cell(cell, run_dir, opts))
    return scale, records
