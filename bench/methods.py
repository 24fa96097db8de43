"""Training methods: a plugin that owns the training step.

An objective's builder returns either an :class:`~bench.specs.Objective` (a loss; the runner's
fast default step trains it) or a :class:`Method`, which may

- ask for separate encoder and decoder optimizers (``optimizers = ("encoder", "decoder")``);
- wrap the posterior with a transform of ``encode``'s output (:meth:`Method.posterior_transform`),
  used in training and in evaluation alike;
- run its own step, inner loops included (:meth:`Method.step`, given a :class:`StepContext`);
- keep state in checkpoints (``self.state``, a dict of plain values), so resuming is exact.

Builders receive a :class:`TrainingBudget` (epochs, steps per epoch, total steps), so no
schedule needs its own copy of the epoch count.
"""

from __future__ import annotations

import copy
import inspect
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from bench.contract import LatentVariableModel, reparameterize
from bench.estimators import gaussian_kl_per_dim
from bench.specs import Objective, ObjectiveSpec


@dataclass(frozen=True)
class TrainingBudget:
    """What a builder knows about the run it trains: ``epochs`` x ``steps_per_epoch`` steps."""

    epochs: int
    steps_per_epoch: int

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def build_objective(
    spec: ObjectiveSpec, budget: TrainingBudget, params: Mapping[str, Any]
) -> Objective | Method:
    """Call ``spec.build(budget, **params)``.

    Builders written before the budget existed (first parameter named ``steps_per_epoch``)
    still receive that integer, with a DeprecationWarning naming the objective's plugin and
    distribution, once per objective and process."""
    if _takes_steps_per_epoch(spec):
        _warn_old_signature(spec)
        return spec.build(budget.steps_per_epoch, **params)
    return spec.build(budget, **params)


def _takes_steps_per_epoch(spec: ObjectiveSpec) -> bool:
    try:
        first = next(iter(inspect.signature(spec.build).parameters), None)
    except (TypeError, ValueError):  # a callable without a signature: the current call
        return False
    return first == "steps_per_epoch"


_WARNED: set[tuple[str, str, str]] = set()  # (distribution, plugin, objective) already warned


def _warn_old_signature(spec: ObjectiveSpec) -> None:
    key = (spec.distribution, spec.plugin, spec.name)
    if key in _WARNED:
        return
    _WARNED.add(key)
    warnings.warn(
        f"objective {spec.name!r} (plugin {spec.plugin!r}, {spec.distribution or 'unknown'}): "
        "its builder takes steps_per_epoch, an older signature; builders now receive a "
        "bench.TrainingBudget as their first argument (budget.steps_per_epoch, "
        "budget.total_steps), see docs/plugins.md#register_objectives",
        DeprecationWarning,
        stacklevel=3,  # where the runner builds the objective, not this helper
    )


class Method:
    """A training procedure. Subclasses override what they change; the defaults are one
    optimizer over every parameter, no posterior transform, and one step on :meth:`loss`.

    A method that overrides neither :meth:`step` nor ``optimizers`` is trained by the runner's
    fast default step (no host reads), exactly like an :class:`~bench.specs.Objective`.
    """

    #: Optimizers the method asks for: ``("all",)``, or ``("encoder", "decoder")`` for separate
    #: parameter groups (see :func:`parameter_groups`). Each is built from the cell's budget.
    optimizers: tuple[str, ...] = ("all",)

    def __init__(self) -> None:
        #: Saved in every checkpoint and restored on resume: plain values only.
        self.state: dict[str, Any] = {}

    def posterior_transform(self, latent_dim: int) -> nn.Module | None:
        """A module mapping ``(mu, logvar)`` to ``(mu, logvar)``, applied to every ``encode``
        in training and evaluation; its parameters train with the encoder. None: no transform."""
        return None

    def loss(self, log_px: Tensor, kl: Tensor, step: int) -> Tensor:
        """The default step's loss (same arguments as an Objective): the -ELBO."""
        return (-log_px + self.beta(step) * kl.sum(-1)).mean()

    def beta(self, step: int) -> float:
        """The KL weight at ``step`` (logged per epoch)."""
        return 1.0

    def step(self, ctx: StepContext) -> dict[str, Tensor]:
        """One training step. Returns device tensors: ``loss`` (scalar) and ``kl`` (``[B, D]``
        or ``[B]``) are required; any other scalar is averaged over the epoch and logged as
        ``train_<name>``."""
        log_px, kl, _, _ = ctx.forward(ctx.x)
        loss = self.loss(log_px[0], kl, ctx.step)
        ctx.update(loss)
        return {"loss": loss, "kl": kl}

    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.state)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.state.update(copy.deepcopy(dict(state)))

    def holds(self, decision: str) -> bool:
        """Whether the method holds off one of the runner's decisions now: ``"select"`` (the
        best validation epoch, whose weights the run is evaluated with), ``"lr_decay"`` or
        ``"early_stop"``. A warm-up phase holds them all, so its validation scores neither
        stop the run nor stand as its best epoch. Default: never."""
        return False

    def phase(self) -> Any:
        """The method's phase (any comparable value; None: it has none). When it changes, the
        runner starts selection afresh: the best epoch so far and the counts of epochs without
        improvement are forgotten."""
        return None

    def uses_default_step(self) -> bool:
        return type(self).step is Method.step and self.optimizers == ("all",)


@dataclass
class StepContext:
    """What :meth:`Method.step` works with. ``model`` already carries the method's posterior
    transform; ``optimizers`` maps the names the method asked for to torch optimizers."""

    model: LatentVariableModel
    x: Any
    step: int
    epoch: int
    budget: TrainingBudget
    optimizers: dict[str, torch.optim.Optimizer]
    generator: torch.Generator | None
    grad_clip: float | None
    groups: dict[str, list[nn.Parameter]]
    next_batch: Callable[[], Any] = field(repr=False, default=lambda: None)

    def forward(self, x: Any, n_samples: int = 1) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(log p(x|z) [K, B], KL [B, D], mu, logvar)`` at K reparameterized samples."""
        mu, logvar = self.model.encode(x)
        z = reparameterize(mu, logvar, n_samples, generator=self.generator)
        log_px = self.model.log_likelihood(x, z)
        return log_px, gaussian_kl_per_dim(mu, logvar), mu, logvar

    def update(self, loss: Tensor, *names: str) -> None:
        """Backpropagate ``loss`` and step the named optimizers (all when none are named).
        Every gradient is cleared first, so a step of one group never leaks into another."""
        names = names or tuple(self.optimizers)
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            params = [p for n in names for p in self.groups[n]]
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        for n in names:
            self.optimizers[n].step()

    def reset_optimizer(self, name: str) -> None:
        """Forget an optimizer's moments (after re-initializing its parameters)."""
        self.optimizers[name].state.clear()


class PosteriorTransformed(LatentVariableModel):
    """``inner`` with ``transform`` applied to its posterior; everything else is ``inner``'s."""

    def __init__(self, inner: LatentVariableModel, transform: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.transform = transform
        self.latent_dim = inner.latent_dim

    def encode(self, x: Any) -> tuple[Tensor, Tensor]:
        return self.transform(*self.inner.encode(x))

    def log_likelihood(self, x: Any, z: Tensor) -> Tensor:
        return self.inner.log_likelihood(x, z)

    def prior_log_prob(self, z: Tensor) -> Tensor:
        return self.inner.prior_log_prob(z)

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.inner.sample_prior(n, generator)

    def decode_mean(self, z: Tensor) -> Tensor | None:
        return self.inner.decode_mean(z)

    def num_tokens(self, x: Any) -> Tensor | None:
        return self.inner.num_tokens(x)

    def encoder_parameters(self) -> list[nn.Parameter] | None:
        inner = self.inner.encoder_parameters()
        return None if inner is None else [*inner, *self.transform.parameters()]

    def __getattr__(self, name: str) -> Any:
        # Plugin code may read model-specific attributes (e.g. in on_run_end).
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["inner"], name)


def parameter_groups(model: LatentVariableModel, x: Any) -> dict[str, list[nn.Parameter]]:
    """``{"all", "encoder", "decoder"}`` parameter lists.

    The model names its encoder through ``encoder_parameters()``; when it does not, the
    encoder is every parameter that ``encode(x)`` depends on. The decoder is every other
    parameter, plus any the encoder shares with ``log_likelihood`` (e.g. a shared embedding).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    named = model.encoder_parameters()
    if named is not None:
        enc_ids = {id(p) for p in named}
        shared: set[int] = set()
    else:
        mu, logvar = model.encode(x)
        enc_ids = _reached(mu.float().sum() + logvar.float().sum(), params)
        z = torch.zeros(1, *mu.shape, device=mu.device, dtype=mu.dtype)
        shared = enc_ids & _reached(model.log_likelihood(x, z).float().sum(), params)
    return {
        "all": params,
        "encoder": [p for p in params if id(p) in enc_ids],
        "decoder": [p for p in params if id(p) not in enc_ids or id(p) in shared],
    }


def _reached(out: Tensor, params: list[nn.Parameter]) -> set[int]:
    grads = torch.autograd.grad(out, params, allow_unused=True)
    return {id(p) for p, g in zip(params, grads, strict=True) if g is not None}


class MultiOptimizer:
    """Several named optimizers seen by the runner as one: ``param_groups`` (learning-rate
    decay), ``state_dict`` and ``load_state_dict`` (checkpoints)."""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer]) -> None:
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for opt in self.optimizers.values() for g in opt.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])


class MethodStep:
    """The runner's step for a :class:`Method` with its own step: same call as
    :class:`~bench.runner.step.TrainStep` (``(x, step, generator) -> (loss, kl)``).

    Extra scalars stay on the device and are averaged once per epoch (:meth:`epoch_log`).
    Inner loops draw further batches from ``batch_stream(epoch)``, a fresh shuffled stream per
    epoch from its own generator, so a resumed run replays them.
    """

    def __init__(
        self,
        method: Method,
        model: LatentVariableModel,
        optimizers: dict[str, torch.optim.Optimizer],
        groups: dict[str, list[nn.Parameter]],
        budget: TrainingBudget,
        grad_clip: float | None,
        batch_stream: Callable[[int], Iterator[Any]],
    ) -> None:
        self.method, self.model, self.optimizers = method, model, optimizers
        self.groups, self.budget, self.grad_clip = groups, budget, grad_clip
        self.batch_stream = batch_stream
        self._stream: tuple[int, Iterator[Any]] | None = None
        self._sums: dict[str, Tensor] = {}
        self._count = 0

    def _next_batch(self, epoch: int) -> Any:
        if self._stream is None or self._stream[0] != epoch:
            self._stream = (epoch, self.batch_stream(epoch))
        return next(self._stream[1])

    def __call__(
        self, x: Any, step: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        epoch = step // max(1, self.budget.steps_per_epoch)
        ctx = StepContext(
            model=self.model,
            x=x,
            step=step,
            epoch=epoch,
            budget=self.budget,
            optimizers=self.optimizers,
            generator=generator,
            grad_clip=self.grad_clip,
            groups=self.groups,
            next_batch=lambda: self._next_batch(epoch),
        )
        out = self.method.step(ctx)
        for key, value in out.items():
            if key not in ("loss", "kl"):
                value = torch.as_tensor(value, dtype=torch.float32).detach()
                self._sums[key] = self._sums.get(key, 0) + value
        self._count += 1
        return out["loss"].detach(), out["kl"].detach()

    def epoch_log(self) -> dict[str, float]:
        """Epoch means of the extra scalars (one host read), then start a new epoch."""
        if not self._sums:
            return {}
        keys = sorted(self._sums)
        values = torch.stack([self._sums[k].reshape(()) for k in keys]).tolist()
        n = max(1, self._count)
        self._sums, self._count = {}, 0
        return {f"train_{k}": v / n for k, v in zip(keys, values, strict=True)}


@dataclass
class MethodTraining:
    """What the runner trains a method with: the (possibly wrapped) model, its optimizer(s) as
    one, and the step."""

    model: LatentVariableModel
    optimizer: Any
    step: Callable[..., tuple[Tensor, Tensor]]


def assemble(
    method: Method,
    model: LatentVariableModel,
    budget: TrainingBudget,
    make_optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer],
    train_split: Any,
    batch_size: int,
    seed: int,
    grad_clip: float | None,
    default_step: Callable[[LatentVariableModel, torch.optim.Optimizer], Any],
) -> MethodTraining:
    """Wrap the posterior, build the optimizers the method asks for, and pick its step:
    ``default_step(model, optimizer)`` (the runner's fast step) when the method keeps it."""
    transform = method.posterior_transform(model.latent_dim)
    if transform is not None:
        device = next(model.parameters()).device
        model = PosteriorTransformed(model, transform.to(device))
    if method.uses_default_step():
        opt = make_optimizer([p for p in model.parameters() if p.requires_grad])
        return MethodTraining(model, opt, default_step(model, opt))
    x, _ = next(iter(train_split.batches(batch_size)))
    was_training = model.training
    model.eval()  # no dropout draws: the probe must not move the random streams
    groups = parameter_groups(model, x)
    model.train(was_training)
    optimizers = {name: make_optimizer(groups[name]) for name in method.optimizers}

    def batch_stream(epoch: int) -> Iterator[Any]:
        gen_device = next(model.parameters()).device
        gen = torch.Generator(device=gen_device).manual_seed(seed * 100_019 + 7 * epoch + 1)
        while True:
            for xb, _ in train_split.batches(batch_size, shuffle=True, generator=gen):
                yield xb

    step = MethodStep(method, model, optimizers, groups, budget, grad_clip, batch_stream)
    return MethodTraining(model, MultiOptimizer(optimizers), step)
