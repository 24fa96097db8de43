"""Choosing what to run: filters on a suite's cells (``-k``, ``--model``, ``--dataset``,
``--objective``, ``--seed``) and ``--set key=value`` overrides of the budget, the eval settings
and the parameters of models, objectives and data sets.

An overridden cell records its overrides and runs in a folder of its own; its resolved settings
differ, so its fingerprint does too and it never shares a leaderboard row with a plain run.
"""

from __future__ import annotations

import dataclasses
import functools
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import click

from bench.errors import ConfigError
from bench.registry import suggest
from bench.suites import Budget, Cell, EvalSettings, check_field_type, check_setting

PARAM_PARTS = ("model", "objective", "dataset")
SETTINGS_PARTS: dict[str, type] = {"budget": Budget, "eval": EvalSettings}


@dataclass(frozen=True)
class CellFilter:
    """Keeps cells whose run id contains any ``-k`` substring and whose data set, model,
    objective and seed are among those given (each an OR; all given filters must hold)."""

    substrings: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    objectives: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return any((self.substrings, self.datasets, self.models, self.objectives, self.seeds))

    def matches(self, run_id: str, cell: dict[str, Any]) -> bool:
        return (
            (not self.substrings or any(s in run_id for s in self.substrings))
            and (not self.datasets or cell.get("dataset") in self.datasets)
            and (not self.models or cell.get("model") in self.models)
            and (not self.objectives or cell.get("objective") in self.objectives)
            and (not self.seeds or cell.get("seed") in self.seeds)
        )

    def describe(self) -> str:
        parts = [f"-k {s}" for s in self.substrings]
        for flag, values in (
            ("--dataset", self.datasets),
            ("--model", self.models),
            ("--objective", self.objectives),
            ("--seed", self.seeds),
        ):
            parts += [f"{flag} {v}" for v in values]
        return " ".join(parts)

    def argv(self) -> list[str]:
        """The options that give this filter again (for worker processes)."""
        return self.describe().split()

    def check_names(self, cells: Sequence[dict[str, Any]], what: str) -> None:
        """A name no cell has is a typo or the wrong suite: say which names there are."""
        for flag, key, values in (
            ("--dataset", "dataset", self.datasets),
            ("--model", "model", self.models),
            ("--objective", "objective", self.objectives),
            ("--seed", "seed", self.seeds),
        ):
            known = {c.get(key) for c in cells}
            for v in values:
                if v not in known:
                    names = sorted(str(k) for k in known)
                    raise ConfigError(
                        f"{flag} {v}: no cell of {what} has it{suggest(str(v), names)}; "
                        f"{key}s: {', '.join(names)}"
                    )

    def apply(self, cells: list[Cell], what: str) -> list[Cell]:
        """The cells kept; none kept is an error naming the filter."""
        if not self:
            return cells
        dicts = [c.as_dict() for c in cells]
        self.check_names(dicts, what)
        kept = [c for c, d in zip(cells, dicts, strict=True) if self.matches(c.run_id, d)]
        if not kept:
            raise ConfigError(f"no cell of {what} matches {self.describe()}")
        return kept


# ---- --set key=value --------------------------------------------------------------------------


@dataclass(frozen=True)
class Override:
    """``part[.name].key=value``: part is budget, eval, model, objective or dataset; ``name``
    limits a parameter override to one model (objective, data set)."""

    part: str
    name: str | None
    key: str
    value: Any
    text: str


def _parse_value(text: str) -> Any:
    if text.lower() in ("none", "null"):
        return None
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word: a string


def parse_override(text: str) -> Override:
    where = f"--set {text}"
    if "=" not in text:
        raise ConfigError(f"{where}: expected key=value, e.g. budget.epochs=2")
    path, value = (s.strip() for s in text.split("=", 1))
    parts = path.split(".")
    part = parts[0]
    known = [*SETTINGS_PARTS, *PARAM_PARTS]
    if (
        part not in known
        or len(parts) not in (2, 3)
        or (part in SETTINGS_PARTS and len(parts) != 2)
    ):
        raise ConfigError(
            f"{where}: the key is part.key ({', '.join(known)}) or part.name.key for one "
            f"model, objective or data set{suggest(part, known)}"
        )
    name = parts[1] if len(parts) == 3 else None
    override = Override(part, name, parts[-1], _parse_value(value), f"{path}={value}")
    if part in SETTINGS_PARTS:
        fields = {f.name: f for f in dataclasses.fields(SETTINGS_PARTS[part])}
        if override.key not in fields:
            raise ConfigError(
                f"{where}: {part} has no {override.key!r}{suggest(override.key, fields)}"
            )
        check_field_type(fields[override.key], override.value, where)
        # The same rules and bounds a suite file's value meets, before anything is created.
        check_setting(part, override.key, override.value, where)
    return override


def _spec_params(part: str, name: str) -> dict[str, Any]:
    from bench import plugins

    regs = plugins.registries()
    registry = {"model": regs.models, "objective": regs.objectives, "dataset": regs.datasets}[part]
    return dict(registry.get(name).params)


def apply_overrides(cells: list[Cell], texts: Iterable[str]) -> list[Cell]:
    """Cells with every ``--set`` applied where it applies; each cell records its overrides."""
    overrides = [parse_override(t) for t in texts]
    out = list(cells)
    for o in overrides:
        hit = False
        for i, cell in enumerate(out):
            changed = _override_cell(cell, o)
            if changed is not None:
                out[i], hit = changed, True
        if not hit:
            _explain_miss(o, cells)
    return out


def _override_cell(cell: Cell, o: Override) -> Cell | None:
    if o.part in SETTINGS_PARTS:
        settings = dataclasses.replace(getattr(cell, o.part), **{o.key: o.value})
        return dataclasses.replace(cell, **{o.part: settings}, overrides=(*cell.overrides, o.text))
    name = getattr(cell, o.part)
    if (o.name is not None and o.name != name) or o.key not in _spec_params(o.part, name):
        return None
    params = {**getattr(cell, f"{o.part}_params"), o.key: o.value}
    return dataclasses.replace(
        cell, **{f"{o.part}_params": params}, overrides=(*cell.overrides, o.text)
    )


def _explain_miss(o: Override, cells: list[Cell]) -> None:
    names = sorted({getattr(c, o.part) for c in cells})
    if o.name is not None and o.name not in names:
        raise ConfigError(
            f"--set {o.text}: no selected cell has {o.part} {o.name!r}{suggest(o.name, names)}"
        )
    taken = sorted({k for n in names if o.name in (None, n) for k in _spec_params(o.part, n)})
    raise ConfigError(
        f"--set {o.text}: no selected {o.part} takes {o.key!r}{suggest(o.key, taken)}; "
        f"parameters: {', '.join(taken) or 'none'}"
    )


# ---- command-line options ---------------------------------------------------------------------


def filter_options(func: Callable) -> Callable:
    """``-k``, ``--dataset``, ``--model``, ``--objective`` and ``--seed``, passed to the
    command as one :class:`CellFilter` argument ``cell_filter``."""
    options = [
        click.option(
            "-k",
            "substrings",
            multiple=True,
            metavar="SUBSTRING",
            help="only cells whose run id contains it (repeat: any of them)",
        ),
        click.option(
            "--dataset", "datasets", multiple=True, help="only this data set (repeatable)"
        ),
        click.option("--model", "models", multiple=True, help="only this model (repeatable)"),
        click.option(
            "--objective", "objectives", multiple=True, help="only this objective (repeatable)"
        ),
        click.option(
            "--seed", "seeds", multiple=True, type=int, help="only this seed (repeatable)"
        ),
    ]

    def wrapper(substrings, datasets, models, objectives, seeds, **kwargs):
        kwargs["cell_filter"] = CellFilter(
            tuple(substrings), tuple(datasets), tuple(models), tuple(objectives), tuple(seeds)
        )
        return func(**kwargs)

    wrapper = functools.wraps(func)(wrapper)  # keeps the options stacked on func so far
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper
