""":func:`check_method`: a built training method run for a few steps the way the runner runs
it, interrupted and resumed through a checkpoint's round trip."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from bench.contract import LatentVariableModel
from bench.methods import Method, MethodTraining, TrainingBudget, assemble
from bench.suite_types import EvalSettings
from bench.testing.host_reads import HostReads
from bench.testing.violations import ViolationReport
from bench.validation import Validation, validation_pass


@dataclass
class _OneBatch:
    """A split of one batch, yielded again and again (what ``ctx.next_batch()`` draws)."""

    x: Any
    labels: None = None

    def __len__(self) -> int:
        return len(self.x)

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Any, None]]:
        yield self.x, None


@dataclass
class _Run:
    """One assembled copy of the method and model, and what its steps returned."""

    method: Method
    built: MethodTraining
    outputs: list[tuple[Tensor, Tensor]]


@contextmanager
def _uncounted(reads: HostReads | None) -> Iterator[None]:
    """Reads inside are not the step's: they are the validation the method asked for."""
    saved = None if reads is None else reads.counts.copy()
    try:
        yield
    finally:
        if reads is not None and saved is not None:
            reads.counts = saved


class _QuietValidation:
    """A :class:`Validation` whose estimates are not counted as the step's host reads."""

    def __init__(self, inner: Validation, reads: HostReads | None) -> None:
        self._inner, self._reads = inner, reads

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value):
            return value

        def quiet(*args: Any, **kwargs: Any) -> Any:
            with _uncounted(self._reads):
                return value(*args, **kwargs)

        return quiet


def check_method(
    method: Method,
    model: LatentVariableModel,
    batch: Any,
    *,
    steps: int = 4,
    interrupt_at: int = 2,
    steps_per_epoch: int = 2,
    lr: float = 0.01,
    grad_clip: float | None = 5.0,
    seed: int = 0,
    validation_batch: Any = None,
) -> None:
    """Check a built method (what ``ObjectiveSpec.build`` returns, before any training) by
    training ``model`` on ``batch`` for ``steps`` steps, the way the runner does, with SGD
    (momentum 0.9, so the optimizers have state):

    - the optimizers it asks for get disjoint parameter groups that together cover every
      trainable parameter (its posterior transform's included);
    - each step returns a finite scalar ``loss``, a ``kl`` of one row per example, and extras
      that average as scalars over the epoch;
    - a step reads nothing back to the host (with SGD, which reads nothing itself), apart from
      what ``ctx.validate()`` gives; a method whose ``host_reads`` is true may read;
    - interrupted after ``interrupt_at`` steps (an epoch's end: the runner checkpoints there),
      its model, optimizers and method state saved and loaded into fresh copies as a
      checkpoint is, and resumed, it ends exactly as the run that was never interrupted:
      parameters, optimizer state, method state and every later step's loss;
    - ``record_state()`` is JSON (it goes into the run record).

    ``batch`` is also what ``ctx.next_batch()`` draws; ``validation_batch`` (default: ``batch``)
    is what ``ctx.validate()`` sees. The runs train copies of ``method`` and ``model``.

    Raises:
        ContractCheckError: listing every violation.
        ValueError: ``interrupt_at`` is not an epoch's end before ``steps``.
    """
    _check_interrupt(interrupt_at, steps, steps_per_epoch)
    report, subject = ViolationReport(), type(method).__name__
    valid = _OneBatch(batch if validation_batch is None else validation_batch)
    setup = _Setup(method, model, batch, valid, steps, steps_per_epoch, lr, grad_clip, seed)
    whole = _uninterrupted(report, setup)
    report.raise_if_any(subject)
    _check_resume(report, setup, whole, interrupt_at)
    state = whole.method.record_state()
    report.call("json.dumps(method.record_state())", lambda: json.dumps(state))
    report.raise_if_any(subject)


def _uninterrupted(report: ViolationReport, setup: _Setup) -> _Run:
    """The run that is never interrupted: its groups, its steps (with their host reads counted
    unless the method declares them) and the epoch means of its extras."""
    whole = setup.assemble()
    if whole is None:
        report.add("assemble (optimizers, groups, transform)", "no exception", setup.error)
        report.raise_if_any(type(setup.method).__name__)
    _check_groups(report, whole.built, setup.method)
    steps = range(setup.steps)
    _run_steps(report, setup, whole, steps, count_reads=not setup.method.host_reads)
    extras = getattr(whole.built.step, "epoch_log", dict)
    report.call("the epoch means of the step's extras", extras)
    return whole


def _check_interrupt(interrupt_at: int, steps: int, steps_per_epoch: int) -> None:
    if not (0 < interrupt_at < steps and interrupt_at % steps_per_epoch == 0):
        raise ValueError(
            f"interrupt_at={interrupt_at} must be an epoch's end (a multiple of "
            f"steps_per_epoch={steps_per_epoch}) before steps={steps}: checkpoints are "
            "written at the end of an epoch"
        )


@dataclass
class _Setup:
    """What every run of the check shares: the pristine method and model it copies."""

    method: Method
    model: LatentVariableModel
    batch: Any
    valid: _OneBatch
    steps: int
    steps_per_epoch: int
    lr: float
    grad_clip: float | None
    seed: int
    error: str = ""
    reads: HostReads | None = None

    def assemble(self) -> _Run | None:
        from bench.runner.step import TrainStep

        method, model = copy.deepcopy(self.method), copy.deepcopy(self.model)
        device = next(model.parameters()).device
        budget = TrainingBudget(-(-self.steps // self.steps_per_epoch), self.steps_per_epoch)
        try:
            built = assemble(
                method,
                model,
                budget,
                lambda ps: torch.optim.SGD(ps, lr=self.lr, momentum=0.9),
                _OneBatch(self.batch),
                len(self.batch),
                self.seed,
                self.grad_clip,
                lambda mdl, opt: TrainStep(mdl, opt, method.loss, self.grad_clip, device),
                validation=self._validation,
            )
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            return None
        return _Run(method, built, [])

    def _validation(self, model: LatentVariableModel, step: int) -> Validation:
        with _uncounted(self.reads):
            settings = EvalSettings(batch_size=max(1, len(self.valid)))
            v = validation_pass(model, self.valid, settings, self.seed, step)
        return _QuietValidation(v, self.reads)  # type: ignore[return-value]

    def step(self, run: _Run, i: int) -> tuple[Tensor, Tensor]:
        # One generator and one global seed per step: a resumed run draws the same numbers
        # (the runner restores its random state from the checkpoint instead).
        torch.manual_seed(self.seed * 100_003 + i)
        device = next(run.built.model.parameters()).device
        gen = torch.Generator(device=device).manual_seed(self.seed * 1_000_003 + i)
        return run.built.step(self.batch, i, gen)


def _check_groups(report: ViolationReport, built: MethodTraining, method: Method) -> None:
    """Each trainable parameter in exactly one of the method's optimizers."""
    optimizers = getattr(built.optimizer, "optimizers", {"all": built.optimizer})
    names = {id(p): n for n, p in built.model.named_parameters()}
    owners: dict[int, list[str]] = {}
    for opt_name, opt in optimizers.items():
        for group in opt.param_groups:
            for p in group["params"]:
                owners.setdefault(id(p), []).append(opt_name)
    for p in built.model.parameters():
        if not p.requires_grad:
            continue
        held = owners.get(id(p), [])
        if len(held) != 1:
            report.add(
                f"parameter {names.get(id(p), '?')!r} in the optimizers {method.optimizers}",
                "exactly one optimizer (groups disjoint and covering the model)",
                f"{len(held)}: {', '.join(held) or 'none'}",
            )


def _run_steps(
    report: ViolationReport, setup: _Setup, run: _Run, indices: range, count_reads: bool
) -> None:
    for i in indices:
        where = f"step {i}"
        with HostReads() as reads:
            setup.reads = reads
            ok, out = report.call(where, lambda i=i: setup.step(run, i))
            setup.reads = None
        if count_reads and reads.counts:
            report.add(where, "no host reads (.item(), float(), ...) besides ctx.validate()",
                       dict(reads.counts))  # fmt: skip
        if not ok:
            return
        _check_output(report, where, out, len(setup.batch))
        run.outputs.append(out)


def _check_output(report: ViolationReport, where: str, out: Any, batch_size: int) -> None:
    loss, kl = out
    if report.shape(f"{where}: loss", loss, ()):
        report.finite(f"{where}: loss", loss)
    if not isinstance(kl, Tensor) or kl.dim() not in (1, 2) or len(kl) != batch_size:
        shape = list(kl.shape) if isinstance(kl, Tensor) else type(kl).__name__
        report.add(f"{where}: kl", f"[{batch_size}, D] or [{batch_size}]", shape)


def _checkpoint(run: _Run) -> dict[str, Any]:
    """The method's part of a checkpoint, saved and loaded as the runner does (weights only:
    plain values and tensors)."""
    buffer = io.BytesIO()
    torch.save(
        {
            "model": run.built.model.state_dict(),
            "optimizer": run.built.optimizer.state_dict(),
            "method": run.method.state_dict(),
        },
        buffer,
    )
    buffer.seek(0)
    return torch.load(buffer, map_location="cpu", weights_only=True)


def _check_resume(report: ViolationReport, setup: _Setup, whole: _Run, interrupt_at: int) -> None:
    first = setup.assemble()
    _run_steps(report, setup, first, range(interrupt_at), count_reads=False)
    ckpt = _checkpoint(first)
    resumed = setup.assemble()
    ok, _ = report.call("loading the checkpoint into fresh copies", lambda: _load(resumed, ckpt))
    if not ok:
        return
    _run_steps(report, setup, resumed, range(interrupt_at, setup.steps), count_reads=False)
    _compare(report, whole, resumed, interrupt_at)


def _load(run: _Run, ckpt: dict[str, Any]) -> None:
    run.built.model.load_state_dict(ckpt["model"])
    run.built.optimizer.load_state_dict(ckpt["optimizer"])
    run.method.load_state_dict(ckpt["method"])


def _compare(report: ViolationReport, whole: _Run, resumed: _Run, interrupt_at: int) -> None:
    where = f"interrupted after step {interrupt_at - 1} and resumed"
    for (name, a), b in zip(
        whole.built.model.state_dict().items(), resumed.built.model.state_dict().values(),
        strict=True,
    ):  # fmt: skip
        if not torch.equal(a, b):
            diff = (a.double() - b.double()).abs().max()
            report.add(f"{where}: {name}", "the uninterrupted run's value", f"off by {diff:.3g}")
    later = whole.outputs[interrupt_at:]
    for i, (a, b) in enumerate(zip(later, resumed.outputs, strict=False), start=interrupt_at):
        if not torch.equal(a[0], b[0]):
            report.add(f"{where}: loss of step {i}", f"{float(a[0]):.8g}", f"{float(b[0]):.8g}")
    if not _same_tree(whole.built.optimizer.state_dict(), resumed.built.optimizer.state_dict()):
        report.add(f"{where}: optimizer state", "the uninterrupted run's", "a different one")
    if not _same_tree(whole.method.state_dict(), resumed.method.state_dict()):
        report.add(
            f"{where}: method state",
            repr(whole.method.record_state()),
            repr(resumed.method.record_state()),
        )


def _same_tree(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return isinstance(a, Tensor) and isinstance(b, Tensor) and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_tree(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same_tree(x, y) for x, y in zip(a, b, strict=True))
    return a == b


__all__ = ["check_method"]
