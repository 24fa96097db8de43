"""Search spaces: the :class:`~bench.specs.Param` ranges models and objectives declare.

A value a suite group sets explicitly is fixed. A TOML space file (``--space``) narrows, fixes or
re-opens any parameter and may open a budget field (``[budget] lr``); its tables are
``[model]``, ``[objective]`` and ``[budget]``, optionally nested by name
(``[objective.kl-anneal]``). A scalar fixes a parameter; a table with ``low``/``high`` (``log``,
``step``) or ``choices`` sets its range.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import plugins
from bench.errors import ConfigError
from bench.formats import param_text
from bench.registry import suggest
from bench.specs import Param
from bench.suites import Budget, Cell, read_toml
from bench.tune.targets import Target

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

SECTIONS = ("model", "objective", "budget")
# Budget fields a space file may open for search; none is searched unless a file asks.
BUDGET_PARAMS: dict[str, Param] = {
    "lr": Param(1e-3, 1e-4, 1e-2, log=True, help="learning rate"),
    "batch_size": Param(50, 16, 256, log=True, step=1, help="batch size"),
}
RANGE_KEYS = {"low", "high", "log", "step", "choices"}


@dataclass(frozen=True)
class Dimension:
    """One parameter of a search space: searched over ``distribution`` or fixed at ``value``."""

    name: str  # "model.latent_dim", "objective.lam", "budget.lr"
    distribution: Any = None  # optuna BaseDistribution, None when fixed
    value: Any = None

    def describe(self) -> str:
        d = self.distribution
        if d is None:
            return f"{self.name}={param_text(self.value)}"
        if hasattr(d, "choices"):
            return f"{self.name} in {list(d.choices)}"
        return f"{self.name} in [{d.low}, {d.high}]" + (" log" if d.log else "")


def _distribution(p: Param, where: str) -> BaseDistribution | None:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if p.choices:
        return CategoricalDistribution(list(p.choices))
    if p.low is None or p.high is None:
        return None
    if not p.low <= p.high:
        raise ConfigError(f"{where}: low {p.low} is above high {p.high}")
    if p.log and p.low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {p.low}")
    is_int = isinstance(p.default, int) and not isinstance(p.default, bool)
    if is_int:
        step = int(p.step or 1)
        if p.log and step != 1:
            raise ConfigError(f"{where}: a log range cannot have a step")
        return IntDistribution(int(p.low), int(p.high), log=p.log, step=step)
    if p.log and p.step:
        raise ConfigError(f"{where}: a log range cannot have a step")
    return FloatDistribution(float(p.low), float(p.high), log=p.log, step=p.step)


# ---- space files ----------------------------------------------------------------------------


def load_space_file(path: Path) -> dict[str, Any]:
    """A TOML space file (see the module docstring); unknown sections fail."""
    data = read_toml(path, "--space:")
    for key, value in data.items():
        if key not in SECTIONS:
            raise ConfigError(f"{path}: {key}: unknown section{suggest(key, SECTIONS)}")
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: {key}: expected a table")
    return data


def _is_range(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and set(value) <= RANGE_KEYS


def _overrides(space: Mapping[str, Any], section: str, item: str) -> dict[str, Any]:
    """The generic ``[section]`` entries, then ``[section.<item>]`` ones on top."""
    table = space.get(section, {})
    out = {k: v for k, v in table.items() if not isinstance(v, dict) or _is_range(v)}
    named = table.get(item)
    if isinstance(named, dict) and not _is_range(named):
        out.update(named)
    return out


def _declared(targets: Sequence[Target]) -> dict[str, dict[str, set[str]]]:
    """Section -> item (a model or objective name; "" for the budget) -> its parameters."""
    regs = plugins.registries()
    declared: dict[str, dict[str, set[str]]] = {s: {} for s in SECTIONS}
    for t in targets:
        declared["model"].setdefault(t.base.model, set()).update(
            regs.models.get(t.base.model).params
        )
        declared["objective"].setdefault(t.base.objective, set()).update(
            regs.objectives.get(t.base.objective).params
        )
    declared["budget"][""] = set(BUDGET_PARAMS)
    return declared


def check_space(space: Mapping[str, Any], targets: Sequence[Target], where: str) -> None:
    """Every key of the space file names a parameter of some target (typos fail early)."""
    declared = _declared(targets)
    for section, table in space.items():
        items = declared[section]
        known_all = set().union(*items.values()) if items else set()
        for key, value in table.items():
            if isinstance(value, dict) and not _is_range(value):
                _check_named_table(section, key, value, items, where)
            elif key not in known_all:
                raise ConfigError(
                    f"{where}: {section}.{key}: no tuned {section} has this parameter"
                    f"{suggest(key, known_all)}"
                )
            else:
                _check_range(value, f"{where}: {section}.{key}")


def _check_named_table(
    section: str, key: str, table: dict[str, Any], items: dict[str, set[str]], where: str
) -> None:
    """A ``[section.<item>]`` table: ``item`` is tuned and has each parameter it sets."""
    if section == "budget":
        raise ConfigError(f"{where}: budget.{key}: expected a value or a range")
    names = items.get(key)
    if names is None:
        raise ConfigError(
            f"{where}: [{section}.{key}]: no tuned {section} is called {key!r}{suggest(key, items)}"
        )
    for sub, subval in table.items():
        if sub not in names:
            raise ConfigError(
                f"{where}: {section}.{key}.{sub}: {key} has no parameter {sub!r}"
                f"{suggest(sub, names)}"
            )
        _check_range(subval, f"{where}: {section}.{key}.{sub}")


def _check_range(value: Any, where: str) -> None:
    if isinstance(value, dict):
        bad = set(value) - RANGE_KEYS
        if bad:
            raise ConfigError(
                f"{where}: unknown range key {sorted(bad)[0]!r}; use {sorted(RANGE_KEYS)}"
            )
        if "choices" not in value and not {"low", "high"} <= set(value):
            raise ConfigError(f"{where}: a range needs low and high (or choices)")


# ---- a target's space -----------------------------------------------------------------------


def search_space(target: Target, space: Mapping[str, Any]) -> list[Dimension]:
    """The dimensions of a target's study, in a stable order."""
    regs = plugins.registries()
    cell = target.base
    sections: list[tuple[str, Mapping[str, Param], Mapping[str, Any], str]] = [
        ("model", regs.models.get(cell.model).params, cell.model_params, cell.model),
        (
            "objective",
            regs.objectives.get(cell.objective).params,
            cell.objective_params,
            cell.objective,
        ),
        ("budget", BUDGET_PARAMS, {}, ""),
    ]
    dims = []
    for section, params, explicit, item in sections:
        overrides = _overrides(space, section, item)
        for name in sorted(params):
            dims.append(_dimension(section, name, params[name], overrides, explicit, cell))
    return dims


def _dimension(
    section: str,
    name: str,
    p: Param,
    overrides: Mapping[str, Any],
    explicit: Mapping[str, Any],
    cell: Cell,
) -> Dimension:
    """One parameter: the space file first, then the suite's own value, then the declared range."""
    where = f"{section}.{name}"
    if name in overrides:
        value = overrides[name]
        if not isinstance(value, dict):
            p.check(value, f"--space: {where}")
            return Dimension(where, value=value)
        if "choices" in value:
            value = {**value, "choices": tuple(value["choices"])}
        p = dataclasses.replace(p, **value)
        if "choices" not in value:
            p = dataclasses.replace(p, choices=None)
        # A range may not reach values the parameter rejects (its validity bounds).
        for bound in (p.low, p.high, *(p.choices or ())):
            p.check(bound, f"--space: {where}")
    elif section == "budget":
        return Dimension(where, value=getattr(cell.budget, name))
    elif name in explicit:  # the suite chose this value: keep it
        return Dimension(where, value=explicit[name])
    dist = _distribution(p, where)
    return Dimension(where, dist) if dist else Dimension(where, value=p.default)


def study_budget(dims: Sequence[Dimension], n_trials: int) -> int:
    """Trials a study runs: ``n_trials``, or one when nothing is searched."""
    return n_trials if any(d.distribution is not None for d in dims) else 1


def suggest_values(trial: optuna.Trial, dims: Sequence[Dimension]) -> dict[str, Any]:
    """A trial's value for every dimension, fixed ones included."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    values: dict[str, Any] = {}
    for d in dims:
        dist = d.distribution
        if dist is None:
            values[d.name] = d.value
        elif isinstance(dist, CategoricalDistribution):
            values[d.name] = trial.suggest_categorical(d.name, dist.choices)
        elif isinstance(dist, IntDistribution):
            values[d.name] = trial.suggest_int(
                d.name, dist.low, dist.high, step=dist.step, log=dist.log
            )
        else:
            values[d.name] = trial.suggest_float(
                d.name, dist.low, dist.high, step=dist.step, log=dist.log
            )
    return values


def cell_with(base: Cell, values: Mapping[str, Any], **changes: Any) -> Cell:
    """``base`` with tuned values ("model.x", "objective.y", "budget.z") applied."""
    model, objective, budget = dict(base.model_params), dict(base.objective_params), {}
    for key, value in values.items():
        section, name = key.split(".", 1)
        {"model": model, "objective": objective, "budget": budget}[section][name] = value
    new_budget: Budget = dataclasses.replace(base.budget, **budget) if budget else base.budget
    return dataclasses.replace(
        base, model_params=model, objective_params=objective, budget=new_budget, **changes
    )
