"""Suites: datasets × models × objectives × seeds × metrics, with a training budget.

A suite is registered once (name, description, scales); plugins then add groups of cells to
any (suite, scale). A user may also describe a suite in a TOML file.
"""

from __future__ import annotations

import dataclasses
import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import ConfigError
from bench.registry import suggest


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
    train_subset: int | None = None  # first N training examples
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


@dataclass(frozen=True)
class Suite:
    """A named benchmark with scales; ``default_scale`` runs when ``--scale`` is not given."""

    name: str
    description: str = ""
    scales: tuple[str, ...] = ("smoke", "quick", "paper")
    default_scale: str = "quick"
    groups: dict[str, list[Group]] = field(default_factory=dict)
    plugin: str = ""
    distribution: str = ""


@dataclass(frozen=True)
class Cell:
    """One training run: everything that determines its result."""

    suite: str
    scale: str
    group: str
    dataset: str
    model: str
    objective: str
    seed: int
    dataset_params: dict[str, Any]
    model_params: dict[str, Any]
    objective_params: dict[str, Any]
    metrics: tuple[str, ...]
    budget: Budget
    eval: EvalSettings

    @property
    def run_id(self) -> str:
        return f"{self.group}__{self.dataset}__{self.model}__{self.objective}__s{self.seed}"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def expand(suite: str, scale: str, groups: list[Group]) -> list[Cell]:
    cells = []
    for g in groups:
        for ds, model, obj, seed in itertools.product(g.datasets, g.models, g.objectives, g.seeds):
            cells.append(
                Cell(
                    suite=suite,
                    scale=scale,
                    group=g.name,
                    dataset=ds,
                    model=model,
                    objective=obj,
                    seed=seed,
                    dataset_params=dict(g.dataset_params.get(ds, {})),
                    model_params=dict(g.model_params.get(model, {})),
                    objective_params=dict(g.objective_params.get(obj, {})),
                    metrics=g.metrics,
                    budget=g.budget,
                    eval=g.eval,
                )
            )
    return cells


# ---- TOML suites -------------------------------------------------------------------------


def _build(cls: type, data: Any, where: str) -> Any:
    """Instantiate a dataclass from a TOML table, naming any bad key with its path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table, got {type(data).__name__}")
    fields = {
        f.name: f for f in dataclasses.fields(cls) if f.name not in {"plugin", "distribution"}
    }
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"{where}.{key}: unknown key{suggest(key, fields)}")
        if key == "budget":
            value = _build(Budget, value, f"{where}.budget")
        elif key == "eval":
            value = _build(EvalSettings, value, f"{where}.eval")
        elif key in {"datasets", "models", "objectives", "metrics", "seeds"}:
            if not isinstance(value, list):
                raise ConfigError(f"{where}.{key}: expected a list")
            value = tuple(value)
        else:
            _check_type(fields[key], value, f"{where}.{key}")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        missing = str(exc).split("argument")[-1].strip(": ")
        raise ConfigError(f"{where}: missing required key {missing}") from None


_SCALARS = {"int": int, "float": (int, float), "str": str, "bool": bool}


def _check_type(f: dataclasses.Field, value: Any, where: str) -> None:
    type_name = str(f.type)
    allow_none = "None" in type_name
    base = type_name.split("|")[0].strip()
    expected = _SCALARS.get(base)
    if expected is None or (allow_none and value is None):
        return
    if isinstance(value, bool) and base != "bool":
        raise ConfigError(f"{where}: expected {base}, got {value!r}")
    if not isinstance(value, expected):
        raise ConfigError(f"{where}: expected {base}, got {value!r}")


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """A TOML file's table; ``what`` names the file in the one-line errors."""
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path}: invalid TOML: {exc}") from None


def load_suite_file(path: Path) -> Suite:
    """Parse and validate a TOML suite; its cells run under the scale ``custom``."""
    data = read_toml(path, "suite file")
    allowed = {"name", "description", "group"}
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{path}: {key}: unknown key{suggest(key, allowed)}")
    groups_raw = data.get("group")
    if not groups_raw or not isinstance(groups_raw, list):
        raise ConfigError(f"{path}: needs at least one [[group]] table")
    groups = [_build(Group, g, f"{path}: group[{i}]") for i, g in enumerate(groups_raw)]
    for i, g in enumerate(groups):
        for budget_key in ("epochs", "batch_size"):
            if getattr(g.budget, budget_key) < 1:
                raise ConfigError(f"{path}: group[{i}].budget.{budget_key}: must be >= 1")
    name = data.get("name", path.stem)
    return Suite(
        name=str(name),
        description=str(data.get("description", f"from {path}")),
        scales=("custom",),
        default_scale="custom",
        groups={"custom": groups},
    )


def get_suite(name: str) -> Suite:
    """A registered suite by name, or a suite file when ``name`` ends in ``.toml``."""
    if name.endswith(".toml"):
        return load_suite_file(Path(name))
    from bench import plugins  # plugins imports this module

    return plugins.registries().suites.get(name)
