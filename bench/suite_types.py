"""The dataclasses a suite is made of: :class:`Budget`, :class:`EvalSettings`, :class:`Group`
and :class:`Suite`.

Plugins register suites and groups, so these sit below the plugin manager; :mod:`bench.suites`
re-exports them beside everything that works on suites (looking them up among the registered
ones included), and is where they are documented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Budget:
    """How a cell is trained."""

    epochs: int = 10
    batch_size: int = 50
    optimizer: str = "adam"  # "adam" or "sgd"
    lr: float = 1e-3
    grad_clip: float | None = 5.0
    patience: int | None = None  # early stopping on validation -ELBO, in epochs
    lr_decay: float | None = None  # multiply lr by this when validation stops improving
    lr_decay_after: int = 0  # ...but only after this many epochs
    lr_decay_patience: int = 1
    max_decays: int | None = 5  # None: no limit; the sticky schedule has none (min_lr ends it)
    # Sticky decay (the skip-VAE reference's text schedule): the first epoch that triggers a
    # decay switches it on for good, and lr is multiplied by lr_decay after every later epoch.
    lr_decay_sticky: bool = False
    min_lr: float | None = None  # stop training once lr falls below this
    train_subset: int | None = None  # N training examples drawn at random (Split.subset)
    valid_subset: int | None = None
    test_subset: int | None = None


@dataclass(frozen=True)
class EvalSettings:
    """Estimator settings, recorded beside every figure they produce."""

    iw_samples: int = 500
    au_threshold: float = 0.01
    mi_samples: int = 1
    batch_size: int = 500
    probe_train_size: int = 10000
    # MI over this many training examples as well (metric ``mi_train``; 0: off). The test-set
    # MI cannot exceed log N; a larger N lifts that ceiling at O(N^2 D) cost.
    mi_train_size: int = 0


@dataclass(frozen=True)
class Group:
    """A block of cells: the product of its datasets, models, objectives and seeds."""

    name: str
    datasets: tuple[str, ...]
    models: tuple[str, ...]
    objectives: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    metrics: tuple[str, ...] = ()  # empty: every registered metric
    dataset_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    objective_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    budget: Budget = Budget()
    eval: EvalSettings = EvalSettings()
    plugin: str = ""
    distribution: str = ""
    # The row each row of the group is compared with: the row that differs only in the parts
    # named here, e.g. {"objective": "elbo"} or {"model": "lstm-vae"} (docs/comparing.md).
    baseline: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    """A named benchmark with scales; ``default_scale`` runs when ``--scale`` is not given."""

    name: str
    description: str = ""
    scales: tuple[str, ...] = ("smoke", "quick", "paper")
    default_scale: str = "quick"
    groups: dict[str, list[Group]] = field(default_factory=dict)
    # Leaderboard columns in order (metric names, see docs/plugins.md); empty: the default.
    columns: tuple[str, ...] = ()
    source: str = ""  # the TOML file a suite was read from
    plugin: str = ""
    distribution: str = ""
