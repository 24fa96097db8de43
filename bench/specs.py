"""What plugins register: small frozen dataclasses, one per kind of registry item.

``plugin`` and ``distribution`` are filled in by the plugin manager at registration time so
``bench ls`` and error messages can say where an item came from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from torch import Tensor

if TYPE_CHECKING:
    from bench.contract import LatentVariableModel
    from bench.data import DataSplits
    from bench.evaluation import EvalContext

Direction = Literal["min", "max"]


@dataclass(frozen=True)
class Param:
    """One tunable hyperparameter: its default and the range a tuner may search."""

    default: Any
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None
    step: float | None = None
    help: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    """A data set. ``load(data_dir, **params)`` returns :class:`~bench.data.DataSplits`."""

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
    """A latent-variable model. ``build(info, **params)`` returns the model."""

    name: str
    build: Callable[..., LatentVariableModel]
    description: str = ""
    kinds: tuple[str, ...] = ("image",)  # data kinds the model accepts
    params: Mapping[str, Param] = field(default_factory=dict)
    plugin: str = ""
    distribution: str = ""


class Objective:
    """A training loss from a batch's reconstruction term and per-dimension KL.

    ``log_px [B]`` is log p(x|z) at one reparameterized sample, ``kl [B, D]`` the analytic
    per-dimension KL. ``step`` counts optimizer steps from 0. Returns a scalar to minimize.
    Must not synchronise with the host (no ``.item()``): it runs every step.
    """

    def __call__(self, log_px: Tensor, kl: Tensor, step: int) -> Tensor:
        raise NotImplementedError

    def beta(self, step: int) -> float:
        """The KL weight at ``step`` (logged per epoch)."""
        return 1.0


@dataclass(frozen=True)
class ObjectiveSpec:
    """A training objective. ``build(steps_per_epoch, **params)`` returns an :class:`Objective`."""

    name: str
    build: Callable[..., Objective]
    description: str = ""
    params: Mapping[str, Param] = field(default_factory=dict)
    plugin: str = ""
    distribution: str = ""


@dataclass(frozen=True)
class MetricValue:
    """A metric's value with every estimator setting that produced it (K, N, threshold...)."""

    value: float | list[float]
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricSpec:
    """An evaluation metric computed from an :class:`~bench.evaluation.EvalContext`.

    ``per_epoch`` metrics are cheap enough to run on the validation split every epoch.
    ``needs_labels`` metrics are skipped on unlabelled data.
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
    """Writes a leaderboard somewhere. ``write(board, out_dir, meta)`` returns written paths."""

    name: str
    write: Callable[..., list[str]]
    description: str = ""
    plugin: str = ""
    distribution: str = ""


def resolve_params(
    spec_params: Mapping[str, Param], given: Mapping[str, Any], what: str
) -> dict[str, Any]:
    """Defaults overlaid with ``given``; an unknown key is a ConfigError with a suggestion."""
    from bench.errors import ConfigError
    from bench.registry import suggest

    out = {k: p.default for k, p in spec_params.items()}
    for key, value in given.items():
        if key not in spec_params:
            raise ConfigError(f"{what}: unknown parameter {key!r}{suggest(key, spec_params)}")
        out[key] = value
    return out
