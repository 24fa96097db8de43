"""Training methods: a plugin that owns the training step.

An objective's builder returns either an :class:`~bench.specs.Objective` (a loss; the runner's
fast default step trains it) or a :class:`Method`, which may

- ask for separate encoder and decoder optimizers (``optimizers = ("encoder", "decoder")``);
- wrap the posterior with a transform of ``encode``'s output (:meth:`Method.posterior_transform`),
  used in training and in evaluation alike;
- run its own step, inner loops included (:meth:`Method.step`, given a :class:`StepContext`);
- look at the validation split when it chooses (:meth:`StepContext.validate`: MI, KL, AU and
  its own loss through the harness's estimators);
- hold the runner's decisions (best epoch, learning-rate decay, early stopping) until its
  final phase, or restart them when its phase changes (:meth:`Method.holds`,
  :meth:`Method.phase`, :attr:`Method.final_phase`): a run whose method never reaches its
  final phase ends ``failed``;
- set the learning rate relative to the budget's (:meth:`Method.lr_scale`);
- keep state in checkpoints (``self.state``, a dict of plain values, and ``self.tensors``),
  so resuming is exact.

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
from bench.validation import Validation

#: The runner's three decisions a method may hold (:meth:`Method.holds`).
DECISIONS = ("select", "lr_decay", "early_stop")
#: How :meth:`StepContext.update` clips: the stepped groups' gradients together (default),
#: every parameter's together (then only the named groups step), or not at all.
CLIP_MODES = ("stepped", "all", "none")


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

    #: The phase (a value :meth:`phase` returns) the method must reach for its run to stand:
    #: until then the runner's three decisions are held (:meth:`holds`), and a run that ends
    #: before it is ``failed``. None: no such phase.
    final_phase: Any = None

    #: Whether :meth:`step` reads values back to the host on purpose (an inner loop's stop
    #: rule); :func:`bench.testing.check_method` then allows it. Every read stalls a GPU.
    host_reads: bool = False

    def __init__(self) -> None:
        #: Saved in every checkpoint and in the run record: plain values only.
        self.state: dict[str, Any] = {}
        #: Tensors saved in every checkpoint (not in the record), e.g. a phase's best weights.
        self.tensors: dict[str, Tensor] = {}

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

    def lr_scale(self, step: int) -> float | None:
        """The learning rate at ``step`` as a multiple of the budget's (set before the step on
        every optimizer); None (default): the runner's rate. A method that sets it should hold
        ``"lr_decay"``, which would otherwise be overwritten."""
        return None

    def step(self, ctx: StepContext) -> dict[str, Tensor]:
        """One training step. Returns device tensors: ``loss`` (scalar) and ``kl`` (``[B, D]``
        or ``[B]``) are required; any other scalar is averaged over the epoch and logged as
        ``train_<name>``."""
        log_px, kl, _, _ = ctx.forward(ctx.x)
        loss = self.loss(log_px[0], kl, ctx.step)
        ctx.update(loss)
        return {"loss": loss, "kl": kl}

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps: :attr:`state`, and :attr:`tensors` (CPU copies) under
        ``"__tensors__"`` when there are any."""
        out = copy.deepcopy(self.state)
        if self.tensors:
            out[TENSORS_KEY] = {k: v.detach().cpu().clone() for k, v in self.tensors.items()}
        return out

    def record_state(self) -> dict[str, Any]:
        """What the run record keeps (``method_state``): :attr:`state`, plain values."""
        return copy.deepcopy(self.state)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        state = dict(state)
        tensors = state.pop(TENSORS_KEY, None) or {}
        self.state.update(copy.deepcopy(state))
        self.tensors = {k: v.clone() for k, v in tensors.items()}

    def holds(self, decision: str) -> bool:
        """Whether the method holds off one of the runner's decisions now: ``"select"`` (the
        best validation epoch, whose weights the run is evaluated with), ``"lr_decay"`` or
        ``"early_stop"``. A warm-up phase holds them all, so its validation scores neither
        stop the run nor stand as its best epoch. Default: all three, until
        :attr:`final_phase` (when set) is reached."""
        return self.final_phase is not None and self.phase() != self.final_phase

    def phase(self) -> Any:
        """The method's phase (any comparable value; None: it has none). When it changes, the
        runner starts selection afresh: the best epoch so far and the counts of epochs without
        improvement are forgotten."""
        return None

    def unfinished(self) -> str | None:
        """Why the run must not stand as a result, checked when training ends (None: it may):
        by default, that :attr:`final_phase` was set and never reached."""
        if self.final_phase is None or self.phase() == self.final_phase:
            return None
        return (
            f"the training method never reached its final phase {self.final_phase!r} "
            f"(it ended in phase {self.phase()!r})"
        )

    def uses_default_step(self) -> bool:
        return type(self).step is Method.step and self.optimizers == ("all",)


#: The key of :attr:`Method.tensors` in :meth:`Method.state_dict`.
TENSORS_KEY = "__tensors__"


@dataclass
class StepContext:
    """What :meth:`Method.step` works with. ``model`` already carries the method's posterior
    transform; ``optimizers`` maps the names the method asked for to torch optimizers.

    ``step`` counts the runner's training steps (one per batch of the epoch, whatever the
    method does inside), from 0 over the whole run; it continues after a resume. ``epoch`` is
    ``step // budget.steps_per_epoch``."""

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
    validation: Callable[[], Validation] | None = field(repr=False, default=None)

    def forward(self, x: Any, n_samples: int = 1) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(log p(x|z) [K, B], KL [B, D], mu, logvar)`` at K reparameterized samples."""
        mu, logvar = self.model.encode(x)
        z = reparameterize(mu, logvar, n_samples, generator=self.generator)
        log_px = self.model.log_likelihood(x, z)
        return log_px, gaussian_kl_per_dim(mu, logvar), mu, logvar

    @property
    def last_of_epoch(self) -> bool:
        """Whether this is the epoch's last step (where the reference codes validate)."""
        return (self.step + 1) % max(1, self.budget.steps_per_epoch) == 0

    def update(
        self, loss: Tensor, *names: str, clip: str = "stepped", max_norm: float | None = None
    ) -> None:
        """Backpropagate ``loss`` and step the named optimizers (all when none are named).
        Every gradient is cleared first, so a step of one group never leaks into another.

        ``clip``: ``"stepped"`` clips the stepped groups' gradients together to the budget's
        ``grad_clip`` (or ``max_norm``); ``"all"`` clips every parameter's gradients together
        and then steps only the named groups (He et al.'s encoder-only updates); ``"none"``
        does not clip."""
        if clip not in CLIP_MODES:
            raise ValueError(f"clip={clip!r} is not one of {', '.join(CLIP_MODES)}")
        names = names or tuple(self.optimizers)
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        loss.backward()
        limit = self.grad_clip if max_norm is None else max_norm
        if limit and clip != "none":
            groups = names if clip == "stepped" else tuple(self.optimizers)
            params = list({id(p): p for n in groups for p in self.groups[n]}.values())
            torch.nn.utils.clip_grad_norm_(params, limit)
        for n in names:
            self.optimizers[n].step()

    def reset_optimizer(self, name: str, restart_lr: bool = False) -> None:
        """Forget an optimizer's moments (after re-initializing its parameters); with
        ``restart_lr``, also set its learning rate back to the budget's (a fresh optimizer)."""
        opt = self.optimizers[name]
        opt.state.clear()
        if restart_lr:
            for group in opt.param_groups:
                group["lr"] = opt.defaults["lr"]

    def validate(self) -> Validation:
        """Look at the validation split now: one posterior pass in evaluation mode over the
        cell's (subset) validation split, then ``.mi()``, ``.kl()``, ``.au()``,
        ``.neg_elbo()`` and ``.loss(fn)`` with the harness's estimators. It reads the results
        back to the host, so call it at the points the method needs (an epoch's last step),
        not every step."""
        if self.validation is None:
            raise RuntimeError(
                "this step has no validation split: the runner gives one; a test builds it "
                "with bench.methods.assemble(..., validation=...)"
            )
        return self.validation()


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


#: ``validation(model, step)``: what :meth:`StepContext.validate` runs (the runner's binds the
#: cell's validation split and estimator settings, see :func:`bench.validation.validation_pass`).
ValidationFn = Callable[[LatentVariableModel, int], Validation]


def scale_lr(method: Method, step: int, optimizers: list[Any], base: list[list[float]]) -> None:
    """Set every group's rate to its ``base`` times ``method.lr_scale(step)`` (if it has one)."""
    scale = method.lr_scale(step)
    if scale is None:
        return
    for opt, rates in zip(optimizers, base, strict=True):
        for group, rate in zip(opt.param_groups, rates, strict=True):
            group["lr"] = rate * scale


def base_rates(optimizers: list[Any]) -> list[list[float]]:
    """The budget's rates, read once when the optimizers are built (before any decay)."""
    return [[g["lr"] for g in opt.param_groups] for opt in optimizers]


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
        validation: ValidationFn | None = None,
    ) -> None:
        self.method, self.model, self.optimizers = method, model, optimizers
        self.groups, self.budget, self.grad_clip = groups, budget, grad_clip
        self.batch_stream = batch_stream
        self.validation = validation
        self._base = base_rates(list(optimizers.values()))
        self._stream: tuple[int, Iterator[Any]] | None = None
        self._sums: dict[str, Tensor] = {}
        self._count = 0

    def _next_batch(self, epoch: int) -> Any:
        if self._stream is None or self._stream[0] != epoch:
            self._stream = (epoch, self.batch_stream(epoch))
        return next(self._stream[1])

    def context(self, x: Any, step: int, generator: torch.Generator | None) -> StepContext:
        epoch = step // max(1, self.budget.steps_per_epoch)
        validation = self.validation
        return StepContext(
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
            validation=None if validation is None else lambda: validation(self.model, step),
        )

    def __call__(
        self, x: Any, step: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        scale_lr(self.method, step, list(self.optimizers.values()), self._base)
        out = self.method.step(self.context(x, step, generator))
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


class ScaledLrStep:
    """The runner's fast step for a method that keeps it but sets the learning rate
    (:meth:`Method.lr_scale`): the rate is set, then ``inner`` runs as it would."""

    def __init__(self, inner: Any, method: Method, optimizer: torch.optim.Optimizer) -> None:
        self.inner, self.method, self.optimizer = inner, method, optimizer
        self._base = base_rates([optimizer])

    def __call__(
        self, x: Any, step: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        scale_lr(self.method, step, [self.optimizer], self._base)
        return self.inner(x, step, generator)

    def __getattr__(self, name: str) -> Any:  # cudagraphs, model, ...: the inner step's
        return getattr(self.__dict__["inner"], name)


@dataclass
class MethodTraining:
    """What the runner trains a method with: the (possibly wrapped) model, its optimizer(s) as
    one, and the step."""

    model: LatentVariableModel
    optimizer: Any
    step: Callable[..., tuple[Tensor, Tensor]]


def _sets_lr(method: Method) -> bool:
    return type(method).lr_scale is not Method.lr_scale


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
    validation: ValidationFn | None = None,
) -> MethodTraining:
    """Wrap the posterior, build the optimizers the method asks for, and pick its step:
    ``default_step(model, optimizer)`` (the runner's fast step) when the method keeps it.
    ``validation(model, step)`` answers :meth:`StepContext.validate` (None: no validation)."""
    transform = method.posterior_transform(model.latent_dim)
    if transform is not None:
        device = next(model.parameters()).device
        model = PosteriorTransformed(model, transform.to(device))
    if method.uses_default_step():
        opt = make_optimizer([p for p in model.parameters() if p.requires_grad])
        step = default_step(model, opt)
        return MethodTraining(
            model, opt, ScaledLrStep(step, method, opt) if _sets_lr(method) else step
        )
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

    step = MethodStep(
        method, model, optimizers, groups, budget, grad_clip, batch_stream, validation
    )
    return MethodTraining(model, MultiOptimizer(optimizers), step)
