"""What one cell needs: its data, model, optimizer and metrics, built from the registries."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bench import plugins
from bench.contract import LatentVariableModel
from bench.data import DataSplits, Split, channels_last_split, data_dir, without_labels
from bench.errors import ConfigError
from bench.evaluation import EvalContext, mean_neg_elbo
from bench.runner import failures
from bench.runner.options import RunOptions
from bench.specs import MetricValue, resolve_params
from bench.suites import Cell

# Under CUDA graphs, splits whose batch shapes vary beyond the batch size (text widths) are
# padded to multiples of this, so a run records a handful of graphs rather than one per width.
CUDA_GRAPH_WIDTH_MULTIPLE = 16


def training_batches(split: Split, cudagraphs: bool) -> Split:
    """The split the training loop draws batches from: no labels, and shapes bucketed (a
    split's optional ``padded_to(multiple)``) when the step replays CUDA graphs."""
    split = without_labels(split)
    padded_to = getattr(split, "padded_to", None)
    if cudagraphs and padded_to is not None:
        split = padded_to(CUDA_GRAPH_WIDTH_MULTIPLE)
    return split


def rng_state() -> dict[str, Any]:
    """Every generator's state as tensors and plain values, so that a checkpoint holding it
    loads with ``torch.load(weights_only=True)`` (numpy's state is a tuple with an array,
    which that loader refuses)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": [int(version), list(internal), gauss_next],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    keys = np.asarray(n["keys"], dtype=np.int64).astype(np.uint32)
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


DataCache = dict[tuple[str, str], DataSplits]


def load_data(cell: Cell, opts: RunOptions, cache: DataCache | None = None) -> DataSplits:
    """The cell's data sets on the run's device; from ``cache`` when a process has loaded them
    before (a worker keeps its data for the cells it trains next)."""
    key = (cell.dataset, json.dumps(cell.dataset_params, sort_keys=True))
    if cache is not None and key in cache:
        return cache[key]
    spec = plugins.registries().datasets.get(cell.dataset)
    params = resolve_params(spec.params, cell.dataset_params, f"dataset {cell.dataset!r}")
    # The whole data set moves to the device once; batching and binarization then run there.
    data = spec.load(data_dir(opts.data_dir), **params).to(opts.device)
    if opts.speed.channels_last:
        data = DataSplits(
            data.info,
            *(channels_last_split(s) for s in (data.train, data.valid, data.test)),
            data.num_classes,
            data.notes,
        )
    if cache is not None:
        cache[key] = data
    return data


def subset(split: Split, n: int | None) -> Split:
    return split if n is None or n >= len(split) else split.subset(n)


def build_model(cell: Cell, data: DataSplits, device: torch.device) -> LatentVariableModel:
    spec = plugins.registries().models.get(cell.model)
    params = resolve_params(spec.params, cell.model_params, f"model {cell.model!r}")
    return spec.build(data.info, **params).to(device)


def adam_kwargs(device: torch.device) -> dict[str, Any]:
    """Fused Adam on CUDA: one kernel for all parameters instead of several per parameter
    (on the CPU the plain implementation is kept, so CPU results stay as they were)."""
    return {"fused": True} if device.type == "cuda" else {}


def _device_of(params: list[Any]) -> torch.device:
    for p in params:  # a parameter, or a param-group dict
        tensors = p["params"] if isinstance(p, dict) else [p]
        for t in tensors:
            return t.device
    return torch.device("cpu")


def make_optimizer(
    cell: Cell, model: torch.nn.Module | Iterable[torch.nn.Parameter]
) -> torch.optim.Optimizer:
    """The budget's optimizer over a model's parameters (or over the given parameters)."""
    b = cell.budget
    params = model.parameters() if isinstance(model, torch.nn.Module) else model
    if b.optimizer == "adam":
        params = list(params)
        return torch.optim.Adam(params, lr=b.lr, **adam_kwargs(_device_of(params)))
    if b.optimizer == "sgd":
        return torch.optim.SGD(params, lr=b.lr)
    raise ConfigError(f"budget.optimizer: {b.optimizer!r} is not one of adam, sgd")


# The score every run's epochs are selected by: validation -ELBO, one z sample per example.
SELECTION_METRIC = "neg_elbo"


def evaluate(
    cell: Cell,
    model: LatentVariableModel,
    split: Split,
    device: torch.device,
    metric_names: Iterable[str],
    train: Split | None = None,
    labelled: bool = True,
    log_likelihood: Callable[[Any, Tensor], Tensor] | None = None,
    select: bool = False,
    progress: Callable[[str, int, int | None], None] | None = None,
    on_error: Callable[[str, Exception], None] | None = None,
) -> dict[str, MetricValue]:
    """Compute metrics on ``split``; ``log_likelihood`` may replace the model's (autocast or
    compiled, see :func:`eval_log_likelihood`). ``select`` adds the selection score under
    ``SELECTION_METRIC`` when the names leave it out, from the posterior pass the metrics share
    (no extra pass over the split). ``progress(metric, done, total)`` hears which metric runs,
    and its batches where the context reports them. A metric that raises gets a value of None
    and its error (``on_error(name, exc)`` sees the exception); the others still run."""
    regs = plugins.registries()
    model.eval()
    ctx = EvalContext(
        model,
        split,
        cell.eval,
        device,
        seed=cell.seed,
        train=train,
        log_likelihood=log_likelihood,
    )
    out = {}
    for name in metric_names:
        spec = regs.metrics.get(name)
        if spec.needs_labels and not labelled:
            continue
        if progress is not None:
            progress(name, 0, None)
            ctx.progress = lambda done, total, name=name: progress(name, done, total)
        out[name] = _compute(spec, ctx, on_error)
    if select and (SELECTION_METRIC not in out or out[SELECTION_METRIC].value is None):
        p = ctx.posterior
        out[SELECTION_METRIC] = MetricValue(
            mean_neg_elbo(p), {"z_samples": 1, "n": len(p.mu), "computed": "for selection"}
        )
    return out


def _compute(
    spec: Any, ctx: EvalContext, on_error: Callable[[str, Exception], None] | None
) -> MetricValue:
    """One metric's value; when the metric's own code raises, no value and its error."""
    try:
        return spec.compute(ctx)
    except Exception as exc:
        culprit, _ = failures.blame(exc)
        if culprit is not None and culprit != spec.plugin:
            raise  # another plugin's code (the model's) failed: the run fails, not the metric
        if on_error is not None:
            on_error(spec.name, exc)
        error = {
            "type": type(exc).__name__,
            "message": failures.first_line(exc),
            "plugin": spec.plugin,
            "distribution": spec.distribution,
        }
        return MetricValue(None, {}, error)


def metric_names(cell: Cell, per_epoch: bool) -> list[str]:
    regs = plugins.registries()
    names = list(cell.metrics) or regs.metrics.names()
    if per_epoch:
        names = [n for n in names if regs.metrics.get(n).per_epoch]
    return names
