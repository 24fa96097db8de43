"""The parts of one cell's run, built once: data splits, model, objective or method,
optimizer, training step, evaluation log-likelihood and metric lists."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from bench import plugins
from bench.contract import LatentVariableModel
from bench.data import DataSplits, Split
from bench.methods import Method, MethodStep, TrainingBudget, assemble, build_objective
from bench.runner import cell as build
from bench.runner.options import RunOptions
from bench.runner.preflight import check_cell_model
from bench.runner.step import TrainStep, eval_log_likelihood
from bench.specs import Objective, resolve_params
from bench.suites import Cell
from bench.validation import validation_pass


@dataclass
class CellParts:
    """What a cell trains and evaluates with. ``optimizer`` is a torch optimizer, or a method's
    optimizers seen as one (``param_groups``, ``state_dict``); ``step(x, step, generator)``
    returns the detached loss and KL as device tensors."""

    data: DataSplits
    train: Split
    valid: Split
    test: Split
    model: LatentVariableModel
    objective: Objective | Method
    method: Method | None
    optimizer: Any
    step: TrainStep | MethodStep
    train_batches: Split  # what the loop draws batches from (no labels; padded under graphs)
    eval_log_likelihood: Callable[[Any, Tensor], Tensor] | None
    budget: TrainingBudget
    per_epoch_metrics: list[str]
    final_metrics: list[str]

    @property
    def steps_per_epoch(self) -> int:
        return self.budget.steps_per_epoch

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def extra_epoch_log(self) -> dict[str, float]:
        """A method step's epoch means of its extra scalars (``train_<name>``)."""
        return self.step.epoch_log() if isinstance(self.step, MethodStep) else {}


def build_parts(cell: Cell, opts: RunOptions, cache: build.DataCache | None = None) -> CellParts:
    """Data, model, objective, optimizer and step for ``cell``, seeded by the cell's seed."""
    b = cell.budget
    data = build.load_data(cell, opts, cache)
    train = build.subset(data.train, b.train_subset)
    valid = build.subset(data.valid, b.valid_subset)
    test = build.subset(data.test, b.test_subset)
    build.seed_everything(cell.seed)
    model = build.build_model(cell, data, opts.device)
    if opts.policy.check_contract:
        check_cell_model(cell, model, train)
    if opts.speed.channels_last:
        model = model.to(memory_format=torch.channels_last)
    budget = TrainingBudget(b.epochs, math.ceil(len(train) / b.batch_size))
    spec = plugins.registries().objectives.get(cell.objective)
    params = resolve_params(spec.params, cell.objective_params, f"objective {cell.objective!r}")
    objective = build_objective(spec, budget, params)
    method = objective if isinstance(objective, Method) else None
    model, optimizer, step = _training(cell, opts, model, objective, method, budget, train, valid)
    return CellParts(
        data=data,
        train=train,
        valid=valid,
        test=test,
        model=model,
        objective=objective,
        method=method,
        optimizer=optimizer,
        step=step,
        train_batches=build.training_batches(train, getattr(step, "cudagraphs", False)),
        eval_log_likelihood=eval_log_likelihood(
            model, opts.device, opts.speed.eval_amp, opts.speed.compile
        ),
        budget=budget,
        per_epoch_metrics=build.metric_names(cell, per_epoch=True),
        final_metrics=build.metric_names(cell, per_epoch=False),
    )


def _training(
    cell: Cell,
    opts: RunOptions,
    model: LatentVariableModel,
    objective: Objective | Method,
    method: Method | None,
    budget: TrainingBudget,
    train: Split,
    valid: Split,
) -> tuple[LatentVariableModel, Any, TrainStep | MethodStep]:
    """The model (a method may wrap its posterior), its optimizer(s) and the step; a method
    that validates (``ctx.validate()``) sees ``valid`` with the cell's estimator settings."""
    speed = opts.speed

    def default_step(model: Any, optimizer: Any, loss: Any) -> TrainStep:
        return TrainStep(
            model,
            optimizer,
            loss,
            cell.budget.grad_clip,
            opts.device,
            amp=speed.amp,
            compile=speed.compile,
            channels_last=speed.channels_last,
        )

    if method is None:
        optimizer = build.make_optimizer(cell, model)
        return model, optimizer, default_step(model, optimizer, objective)
    built = assemble(
        method,
        model,
        budget,
        lambda group: build.make_optimizer(cell, group),
        train,
        cell.budget.batch_size,
        cell.seed,
        cell.budget.grad_clip,
        lambda model, opt: default_step(model, opt, method.loss),
        validation=lambda model, step: validation_pass(model, valid, cell.eval, cell.seed, step),
    )
    return built.model, built.optimizer, built.step
