"""What plugins register: small frozen dataclasses, one per kind of registry item.

``plugin`` and ``distribution`` are filled in by the plugin manager at registration time so
``bench ls`` and error messages can say where an item came from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from torch import Tensor

    from bench.contract import LatentVariableModel
    from bench.data import DataSplits
    from bench.evaluation import EvalContext

Direction = Literal["min", "max"]


@dataclass(frozen=True)
class Param:
    """One parameter of a model, objective or data set: its default, the range ``bench tune``
    searches, and the values it accepts at all.

    Attributes:
        default: the value used when a suite does not set one (its type sets the type a tuner
            draws: an ``int`` default gives an integer range).
        low, high: the search range of ``bench tune`` (inclusive); None: not tuned.
        log: search on a log scale (needs ``low > 0``).
        choices: a categorical search space instead of a range.
        step: the grid of the search range (1 for integers unless given).
        help: one line for listings and error messages.
        minimum, maximum: validity bounds (inclusive). A value outside them, from a suite, a
            TOML file or a tuner, stops the run before anything trains with a one-line error
            naming the parameter. None: unbounded. The search range may be narrower.

    The helpers :func:`int_param`, :func:`float_param` and :func:`choice_param` build the usual
    cases.
    """

    default: Any
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None
    step: float | None = None
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None

    def value_type(self) -> type | None:
        """The type values must have: the default's; for a ``None`` default, the choices'
        or an int when the search range is integral (``step=1``); None: any type."""
        if self.default is not None:
            return type(self.default)
        if self.choices:
            kinds = {type(c) for c in self.choices if c is not None}
            return kinds.pop() if len(kinds) == 1 else None
        if self.step is not None and float(self.step).is_integer():
            ends = [v for v in (self.low, self.high) if v is not None]
            if ends and all(isinstance(v, int) and not isinstance(v, bool) for v in ends):
                return int
        return None

    def check(self, value: Any, where: str) -> Any:
        """``value`` if it is valid, else a one-line :class:`~bench.errors.ConfigError`
        starting with ``where``: its type must be :meth:`value_type` (an ``int`` parameter
        refuses ``8.5`` and ``"eight"``, a ``bool`` one refuses ``1``; an int passes for a float
        parameter and comes back a float), then the validity bounds and the choices. None
        always passes: it means "not set" for optional parameters."""
        from bench.errors import ConfigError

        if value is None:
            return None
        kind = self.value_type()
        if kind is not None:
            value = _coerce(value, kind, where)
        if isinstance(value, float) and value != value:  # NaN: every comparison is False
            raise ConfigError(f"{where}: expected a number, got nan")
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            raise ConfigError(f"{where}: {value!r} is not one of {allowed}")
        if self.minimum is None and self.maximum is None:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"{where}: must be >= {self.minimum:g}, got {value!r}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(f"{where}: must be <= {self.maximum:g}, got {value!r}")
        return value


def _coerce(value: Any, kind: type, where: str) -> Any:
    from bench.errors import ConfigError

    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = number and isinstance(value, int)
    elif kind is float:
        ok = number
        value = float(value) if ok else value
    elif kind in (list, tuple):
        ok = isinstance(value, (list, tuple))
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}")
    return value


def int_param(
    default: int | None,
    low: int | None = None,
    high: int | None = None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    log: bool = False,
    help: str = "",
) -> Param:
    """An integer parameter searched over ``[low, high]`` and valid in ``[minimum, maximum]``,
    e.g. ``int_param(20, 2, 64, minimum=1, help="latent dimensions")``."""
    _check_bounds(low, high, minimum, maximum)
    return Param(default, low, high, log, None, 1, help, minimum, maximum)


def float_param(
    default: float | None,
    low: float | None = None,
    high: float | None = None,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    log: bool = False,
    step: float | None = None,
    help: str = "",
) -> Param:
    """A real parameter searched over ``[low, high]`` (log scale if ``log``) and valid in
    ``[minimum, maximum]``."""
    _check_bounds(low, high, minimum, maximum)
    return Param(default, low, high, log, None, step, help, minimum, maximum)


def choice_param(default: Any, choices: tuple[Any, ...], *, help: str = "") -> Param:
    """A categorical parameter: the tuner picks one of ``choices``."""
    if default not in choices:
        raise ValueError(f"default {default!r} is not one of the choices {choices!r}")
    return Param(default, choices=tuple(choices), help=help)


def _check_bounds(
    low: float | None, high: float | None, minimum: float | None, maximum: float | None
) -> None:
    # A declaration error is the plugin author's bug: fail at import, not in a user's run.
    for bound in (low, high):
        if bound is None:
            continue
        if (minimum is not None and bound < minimum) or (maximum is not None and bound > maximum):
            raise ValueError(
                f"search range [{low}, {high}] leaves the valid range [{minimum}, {maximum}]"
            )
    if low is not None and high is not None and low > high:
        raise ValueError(f"search range low {low} is above high {high}")


@dataclass(frozen=True)
class DatasetSpec:
    """A data set, registered through ``register_datasets``.

    Attributes:
        name: unique across all plugins; what suites name.
        load: ``load(data_dir: Path, **params) -> DataSplits``. Read files below ``data_dir``
            (``--data-dir`` / ``BENCH_DATA_DIR``); download only when
            :func:`bench.data.offline` is false; when data is missing raise
            :class:`~bench.errors.DataError` saying where you looked. Called once per run
            process and data-set parameters; the result is moved to the device whole.
        description: one line for ``bench ls datasets``.
        kind: matched against ``ModelSpec.kinds`` (``"image"``, ``"text"``, or your own).
        sizes: human-readable split sizes, e.g. ``"50,000 / 10,000 / 10,000"``.
        params: keyword parameters of ``load`` (:class:`Param`), set per suite group with
            ``dataset_params``.
        plugin, distribution: filled in at registration.
    """

    name: str
    load: Callable[..., DataSplits]
    description: str = ""
    kind: str = "image"
    sizes: str = ""  # human-readable split sizes for ``bench ls datasets``
    params: Mapping[str, Param] = field(default_factory=dict)
    plugin: str = ""
    distribution: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """A latent-variable model, registered through ``register_models``.

    Attributes:
        name: unique across all plugins.
        build: ``build(info: DataInfo, **params) -> LatentVariableModel``, called once per run
            with the data set's :class:`~bench.data.DataInfo` and the resolved parameters
            (defaults overlaid with the suite's ``model_params``). The harness moves the
            model to the device and seeds torch before calling it.
        description: one line for ``bench ls models``.
        kinds: data kinds the model accepts; a suite pairing it with another kind fails
            before training.
        params: keyword parameters of ``build`` (:class:`Param`): defaults, validity bounds
            and the ranges ``bench tune`` searches.
        plugin, distribution: filled in at registration.
    """

    name: str
    build: Callable[..., LatentVariableModel]
    description: str = ""
    kinds: tuple[str, ...] = ("image",)  # data kinds the model accepts
    params: Mapping[str, Param] = field(default_factory=dict)
    plugin: str = ""
    distribution: str = ""


class Objective:
    """A training loss from a batch's reconstruction term and per-dimension KL.

    A base class: subclass it and implement ``__call__`` (and ``beta`` if the KL weight
    varies). :class:`bench.objectives.ScheduledObjective` implements the usual
    ``-log p(x|z) + β(step) KL`` so a subclass only writes ``beta``.

    ``objective(log_px, kl, step)`` receives:

    - ``log_px [B]``: log p(x|z) of each example of the batch at one reparameterized sample;
    - ``kl [B, D]``: the analytic KL(q(z|x) || N(0, I)) per example and latent dimension;
    - ``step``: optimizer steps taken before this one, counted from 0 over the whole run
      (it does not restart each epoch, and it continues after a resume).

    It returns a scalar to minimize. Return the *mean* over the batch, not the sum, so the
    learning rate does not depend on the batch size (the first-party objectives all do).
    It runs every step: it must not synchronise with the host (no ``.item()``, no ``float()``
    of a tensor, no Python ``if`` on a tensor).
    """

    def __call__(self, log_px: Tensor, kl: Tensor, step: int) -> Tensor:
        raise NotImplementedError

    def beta(self, step: int) -> float:
        """The KL weight at ``step``, a Python float (its mean over an epoch's steps is logged)."""
        return 1.0


@dataclass(frozen=True)
class ObjectiveSpec:
    """A training objective, registered through ``register_objectives``.

    Attributes:
        name: unique across all plugins.
        build: ``build(budget: TrainingBudget, **params)``, called once per run, returns an
            :class:`Objective` (a loss) or a :class:`bench.methods.Method` (a training
            procedure). ``budget`` has ``epochs``, ``steps_per_epoch`` and ``total_steps``. A
            builder whose first parameter is named ``steps_per_epoch`` receives that integer
            instead (e.g. :class:`bench.objectives.ScheduledObjective` subclasses).
        description: one line for ``bench ls objectives``.
        params: keyword parameters of ``build`` (:class:`Param`), set per suite group with
            ``objective_params``.
        plugin, distribution: filled in at registration.
    """

    name: str
    build: Callable[..., Objective]
    description: str = ""
    params: Mapping[str, Param] = field(default_factory=dict)
    plugin: str = ""
    distribution: str = ""


@dataclass(frozen=True)
class MetricValue:
    """A metric's value with every estimator setting that produced it.

    Attributes:
        value: a number (leaderboards average it over seeds), a list of numbers (recorded,
            never a column), or None when the metric does not apply (shown blank) or raised.
        settings: every setting the value depends on (K, N, thresholds, the estimator's
            name), JSON-serialisable; recorded beside the value and printed in leaderboard
            headers.
        error: set by the runner when the metric raised: type, message, plugin and
            distribution (the run goes on without it).
    """

    value: float | list[float] | None
    settings: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class MetricSpec:
    """An evaluation metric, registered through ``register_metrics``.

    Attributes:
        name: unique across all plugins; the key in run records.
        compute: ``compute(ctx: EvalContext) -> MetricValue``. Use ``ctx.posterior`` (one
            shared pass over the split) and ``ctx.iw_log_likelihood()`` (cached) rather than
            running the model again; draw randomness from ``ctx.generator(salt)``.
        direction: ``"min"`` if lower is better, ``"max"`` if higher is.
        description: one line for ``bench ls metrics``.
        label: a short title for tables and plots.
        per_epoch: cheap enough to run on the validation split after every epoch (logged in
            ``epochs.jsonl``); otherwise it runs once, on the test split, at the end.
        needs_labels: skipped on data sets without labels.
        plugin, distribution: filled in at registration.
    """

    name: str
    compute: Callable[[EvalContext], MetricValue]
    direction: Direction
    description: str = ""
    label: str = ""  # column title in leaderboards
    per_epoch: bool = False
    needs_labels: bool = False
    plugin: str = ""
    distribution: str = ""


@dataclass(frozen=True)
class ReporterSpec:
    """A leaderboard writer, registered through ``register_reporters``.

    Attributes:
        name: unique across all plugins.
        write: ``write(board: Leaderboard, out_dir: Path) -> list[str]``: write files for
            ``board`` (:class:`bench.leaderboard.Leaderboard`) under ``out_dir`` and return
            their paths. Called for every leaderboard ``bench run`` and ``bench leaderboard``
            build.
        description: one line for ``bench ls reporters``.
        plugin, distribution: filled in at registration.
    """

    name: str
    write: Callable[..., list[str]]
    description: str = ""
    plugin: str = ""
    distribution: str = ""


def resolve_params(
    spec_params: Mapping[str, Param], given: Mapping[str, Any], what: str
) -> dict[str, Any]:
    """Defaults overlaid with ``given``; an unknown key, or a value of the wrong type or
    outside a parameter's validity bounds or choices (:meth:`Param.check`), is a ConfigError
    naming it."""
    from bench.errors import ConfigError
    from bench.registry import suggest

    out = {k: p.default for k, p in spec_params.items()}
    for key, value in given.items():
        if key not in spec_params:
            raise ConfigError(f"{what}: unknown parameter {key!r}{suggest(key, spec_params)}")
        out[key] = spec_params[key].check(value, f"{what}: {key}")
    return out
