"""What ``bench throughput`` measures: one workload per model, and the settings of a run."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.throughput.budget import TimeBudget

COLLAPSE_SUITE = "collapse"


@dataclass
class Workload:
    """A model with the data set, parameters and batch sizes it is benchmarked with."""

    model: str
    kind: str
    datasets: list[str]  # candidates in order; the first that loads is used
    dataset_params: dict[str, Any]
    model_params: dict[str, Any]
    batch_size: int
    eval_batch_size: int
    iw_samples: int
    grad_clip: float | None
    lr: float
    source: str

    @property
    def dataset(self) -> str:
        return self.datasets[0]

    def cell(self, objective: str, **changes: Any) -> Any:
        """A runner :class:`~bench.suites.Cell` for this workload (scale ``throughput``)."""
        from bench.suites import Budget, Cell, EvalSettings

        budget = changes.pop("budget", None) or Budget(
            epochs=1, batch_size=self.batch_size, lr=self.lr, grad_clip=self.grad_clip
        )
        return Cell(
            suite="throughput",
            scale="throughput",
            group="bench",
            dataset=self.dataset,
            model=self.model,
            objective=objective,
            seed=changes.pop("seed", 0),
            dataset_params=dict(self.dataset_params),
            model_params=dict(self.model_params),
            objective_params={},
            metrics=changes.pop("metrics", ("neg_elbo",)),
            budget=budget,
            eval=changes.pop("eval", None)
            or EvalSettings(iw_samples=self.iw_samples, batch_size=self.eval_batch_size),
        )


def find_workloads(
    scale: str, models: Iterable[str] | None = None, suite: str = COLLAPSE_SUITE
) -> tuple[list[Workload], list[dict[str, str]]]:
    """One workload per model: its first cell in ``suite`` at ``scale`` (then at the suite's
    other scales), else its default parameters on a registered data set of its kind.

    Returns the workloads and the models skipped (with the reason)."""
    from bench import plugins

    regs = plugins.registries()
    cells = _suite_cells(suite, scale)
    out, skipped = [], []
    for name in models or regs.models.names():
        spec = regs.models.get(name)
        cell = next((c for c in cells if c.model == name), None)
        same_kind = [d.name for d in regs.datasets if d.kind in spec.kinds]
        if cell is not None:
            out.append(_from_cell(cell, same_kind, suite))
        elif same_kind:
            out.append(_from_defaults(name, same_kind))
        else:
            skipped.append({"model": name, "reason": f"no data set of kind {spec.kinds}"})
    return out, skipped


def _suite_cells(suite: str, scale: str) -> list[Any]:
    """The suite's cells at ``scale`` first, then at its other scales (none if it lacks it)."""
    from bench import plugins
    from bench.suites import expand

    regs = plugins.registries()
    if suite not in regs.suites:
        return []
    s = regs.suites.get(suite)
    scales = [scale] + [x for x in s.scales if x != scale] if scale in s.scales else []
    cells = []
    for sc in scales:
        cells += expand(s.name, sc, s.groups.get(sc, []))
    return cells


def _from_cell(cell: Any, same_kind: list[str], suite: str) -> Workload:
    from bench import plugins

    return Workload(
        model=cell.model,
        kind=plugins.registries().datasets.get(cell.dataset).kind,
        datasets=[cell.dataset] + [d for d in same_kind if d != cell.dataset],
        dataset_params=dict(cell.dataset_params),
        model_params=dict(cell.model_params),
        batch_size=cell.budget.batch_size,
        eval_batch_size=cell.eval.batch_size,
        iw_samples=cell.eval.iw_samples,
        grad_clip=cell.budget.grad_clip,
        lr=cell.budget.lr,
        source=f"{suite}/{cell.scale} group {cell.group}",
    )


def _from_defaults(model: str, same_kind: list[str]) -> Workload:
    from bench import plugins

    return Workload(
        model=model,
        kind=plugins.registries().datasets.get(same_kind[0]).kind,
        datasets=same_kind,
        dataset_params={},
        model_params={},
        batch_size=50,
        eval_batch_size=500,
        iw_samples=500,
        grad_clip=5.0,
        lr=1e-3,
        source="model defaults (no suite cell)",
    )


def load_workload(w: Workload, opts: Any, stand_ins: bool = True) -> tuple[Workload, Any]:
    """Load the workload's data set; with ``stand_ins``, else the first other candidate (a
    registered data set of the same kind, e.g. one that needs no files) that loads. Returns
    the workload naming the data set used."""
    from bench.errors import DataError
    from bench.runner import load_data

    errors = []
    for i, name in enumerate(w.datasets if stand_ins else w.datasets[:1]):
        cand = replace(w, datasets=[name], dataset_params=w.dataset_params if i == 0 else {})
        try:
            return cand, load_data(cand.cell(default_objective()), opts)
        except DataError as exc:
            errors.append(f"{name}: {exc}")
    hint = "" if stand_ins else " (--synthetic-data measures it on a stand-in data set instead)"
    raise DataError(f"no data set for {w.model} could be loaded: " + "; ".join(errors) + hint)


def default_objective() -> str:
    from bench import plugins

    regs = plugins.registries()
    return "elbo" if "elbo" in regs.objectives else regs.objectives.names()[0]


def build_objective(cell: Any, steps_per_epoch: int) -> Any:
    from bench import plugins
    from bench.methods import TrainingBudget
    from bench.methods import build_objective as build
    from bench.specs import resolve_params

    spec = plugins.registries().objectives.get(cell.objective)
    params = resolve_params(spec.params, cell.objective_params, cell.objective)
    return build(spec, TrainingBudget(cell.budget.epochs, steps_per_epoch), params)


def new_model(w: Workload, data: Any, s: Settings) -> Any:
    """The workload's model, freshly seeded, on the settings' device and memory layout."""
    import torch

    from bench.runner import build_model, seed_everything

    seed_everything(0)
    model = build_model(w.cell(default_objective()), data, s.device)
    if s.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def middle_batch(split: Any, size: int) -> tuple[int, Any]:
    """The middle batch of ``size`` in the split's unshuffled batching, and its first index.

    For text, which is batched by length, that is sentences of the median length rather than
    the shortest ones a first batch would hold."""
    size = max(1, min(size, len(split)))
    middle = (len(split) // size) // 2
    for i, (x, _) in enumerate(split.batches(size)):
        if i == middle:
            return middle * size, x
    raise ValueError("empty split")


def fixed_batch(split: Any, n: int) -> Any:
    """``n`` examples of a split as one batch, fixed (same pixels every call): the middle
    batch, so text is timed on median-length sentences (see :func:`middle_batch`)."""
    return middle_batch(split, n)[1]


LARGE_BATCH_FACTOR = 4  # "large": the power of two at least this many times the workload's


def train_batch_sizes(w: Workload, s: Settings) -> list[int]:
    """The batch sizes a workload is trained at: ``--train-batch``, else each entry of
    ``s.train_batches`` (a number, "workload" for its own, "large" for a GPU-sized one)."""
    if s.train_batch:
        return [s.train_batch]
    out = []
    for b in s.train_batches:
        if b == "workload":
            n = w.batch_size
        elif b == "large":
            n = 1 << math.ceil(math.log2(LARGE_BATCH_FACTOR * w.batch_size))
        else:
            n = int(b)
        if n not in out:
            out.append(n)
    return out


def config_label(amp: bool, compiled: bool) -> str:
    return "+".join(["bf16" if amp else "fp32"] + (["compile"] if compiled else []))


@dataclass
class Settings:
    """What to measure and how long; see ``bench throughput --help``."""

    device: Any
    configs: list[tuple[bool, bool]]  # (amp, compile)
    compile_mode: str = "default"
    channels_last: bool = False
    tf32: bool = False
    warmup: int = 3
    min_time: float = 0.5
    repeats: int = 3
    train_batch: int | None = None  # one batch size for every model (None: train_batches)
    train_batches: tuple[int | str, ...] = ("workload",)  # see train_batch_sizes
    eval_batch: int | None = None
    eval_batch_cap: int | None = None  # on the CPU: keep slow models' calls to about a second
    iw_samples: int = 500
    iw_examples: int = 100
    iw_ref_examples: int | None = None  # None: every example of the batch
    iw_budget_s: float = 10.0
    overhead_epochs: int = 2
    overhead_examples: int = 5000
    overhead_repeats: int = 3
    jobs: int = 2
    jobs_suite: str = COLLAPSE_SUITE
    jobs_scale: str = "smoke"
    data_dir: Path | None = None
    synthetic_data: bool = False  # stand-in data sets when a workload's own is missing
    budget: TimeBudget = field(default_factory=TimeBudget)
    iw_compile: bool = True  # also time IW-NLL with the compiled configurations
    flops: dict[tuple[str, str, int], int | None] = field(default_factory=dict)  # per batch
    log: Callable[[str], None] = lambda msg: None
    extra: dict[str, Any] = field(default_factory=dict)
