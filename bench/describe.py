"""``bench show KIND NAME`` and ``bench ls KIND --params``: what a registered item takes.

For models, objectives and data sets: each parameter's default, validity bounds, tuning range
and help. For objectives also what the builder returns with its defaults: a loss, or a training
method and what it takes over (its optimizers, its own step, phases, the learning rate); that
one build imports torch. For metrics: direction, column title and when it runs. For suites:
scales, groups, budgets and leaderboard columns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from rich.console import Group as Renderables
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bench import plugins
from bench.formats import param_text
from bench.specs import Param
from bench.suites import Suite

SHOW_KINDS = {
    "model": "models",
    "objective": "objectives",
    "dataset": "datasets",
    "metric": "metrics",
    "suite": "suites",
}


def _number(value: Any) -> str:
    return param_text(value)  # four significant digits, as in row labels and tuning logs


def bounds_text(p: Param) -> str:
    """The values a parameter accepts at all, e.g. ``>= 1`` or ``0 .. 1``."""
    lo, hi = p.minimum, p.maximum
    if lo is not None and hi is not None:
        return f"{_number(lo)} .. {_number(hi)}"
    if lo is not None:
        return f">= {_number(lo)}"
    if hi is not None:
        return f"<= {_number(hi)}"
    return "any"


def tuning_text(p: Param) -> str:
    """The range ``bench tune`` searches, e.g. ``2 .. 64 (step 1)`` or ``1e-4 .. 1e-2 (log)``."""
    if p.choices is not None:
        return "one of " + ", ".join(repr(c) for c in p.choices)
    if p.low is None or p.high is None:
        return "not tuned"
    extra = [w for w, on in (("log", p.log), (f"step {_number(p.step)}", p.step)) if on]
    return f"{_number(p.low)} .. {_number(p.high)}" + (f" ({', '.join(extra)})" if extra else "")


def params_short(params: Mapping[str, Param]) -> str:
    """``name=default`` for each parameter (``bench ls models --params``)."""
    return ", ".join(f"{k}={_number(p.default)}" for k, p in params.items()) or "–"


def params_table(params: Mapping[str, Param]) -> Table:
    table = Table(box=None, pad_edge=False)
    for col in ("parameter", "default", "valid", "tuned over", "help"):
        table.add_column(col, overflow="fold")
    for name, p in params.items():
        cells = (name, _number(p.default), bounds_text(p), tuning_text(p), p.help)
        table.add_row(*(escape(c) for c in cells))  # help text is text, never rich markup
    return table


def _origin(item: Any) -> str:
    return f"plugin {item.plugin} ({item.distribution})"


def settings_text(settings: Any) -> str:
    """A budget or eval settings as ``field=value`` words (unset fields left out)."""
    return " ".join(
        f"{f.name}={getattr(settings, f.name)}"
        for f in dataclasses.fields(settings)
        if getattr(settings, f.name) is not None
    )


def _suite(suite: Suite) -> list[Any]:
    out: list[Any] = [
        f"scales: {', '.join(suite.scales)} (default {suite.default_scale})",
        "columns: " + (", ".join(suite.columns) or "the default (docs/plugins.md)"),
    ]
    for scale in suite.scales:
        groups = suite.groups.get(scale, [])
        cells = sum(
            len(g.datasets) * len(g.models) * len(g.objectives) * len(g.seeds) for g in groups
        )
        out.append(Text(f"\n{scale}: {len(groups)} groups, {cells} cells", style="bold"))
        for g in groups:
            out += [
                f"  group {g.name}: {', '.join(g.datasets)} × {', '.join(g.models)} × "
                f"{', '.join(g.objectives)} × seeds {', '.join(map(str, g.seeds))}",
                f"    budget: {settings_text(g.budget)}",
                f"    eval:   {settings_text(g.eval)}",
            ]
            for part in ("dataset", "model", "objective"):
                for name, given in getattr(g, f"{part}_params").items():
                    values = ", ".join(f"{k}={_number(v)}" for k, v in given.items())
                    out.append(f"    {part} {name}: {values}")
    out.append(f"\n`bench run --suite {suite.name} --list` lists every cell of a scale.")
    return out


def objective_kind(spec: Any) -> list[str]:
    """What ``spec`` builds with its default parameters: a loss or a method, and how it trains."""
    import warnings

    from bench.methods import Method, TrainingBudget, build_objective
    from bench.specs import resolve_params

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params = resolve_params(spec.params, {}, f"objective {spec.name!r}")
            built = build_objective(spec, TrainingBudget(epochs=10, steps_per_epoch=100), params)
    except Exception as exc:
        return [f"kind: unknown (building it with its defaults raised {type(exc).__name__}: {exc})"]
    if not isinstance(built, Method):
        return ["kind: a loss (bench.Objective), trained by the runner's fast step; one optimizer"]
    return _method_lines(built)


def _method_lines(method: Any) -> list[str]:
    from bench.methods import Method

    named = method.optimizers != ("all",)
    groups = ", ".join(method.optimizers)
    lines = [
        "kind: a training method (bench.Method)",
        f"optimizers: {groups}"
        + (" (separate encoder and decoder parameter groups)" if named else " (every parameter)"),
        "step: its own (bench.Method.step)"
        if not method.uses_default_step()
        else "step: the runner's fast step (the method sets the loss and its schedules)",
    ]
    if method.posterior_transform(2) is not None:
        lines.append("posterior: transformed in training and evaluation (posterior_transform)")
    if method.final_phase is not None:
        lines.append(
            f"phases: selection, lr decay and early stopping held until phase "
            f"{method.final_phase!r}; a run that ends before it fails"
        )
    if type(method).lr_scale is not Method.lr_scale:
        lines.append("learning rate: set by the method (lr_scale)")
    if method.host_reads:
        lines.append("host reads: its step reads values back on purpose (an inner loop's rule)")
    return lines


def describe(kind: str, name: str) -> Renderables:
    """Everything ``bench show`` prints about one registered item."""
    registry = getattr(plugins.registries(), SHOW_KINDS[kind])
    item = registry.get(name)
    parts: list[Any] = [
        Text(f"{kind} {item.name}", style="bold"),
        item.description or "(no description)",
        _origin(item),
    ]
    if kind == "model":
        parts.append(f"data kinds: {', '.join(item.kinds)}")
    elif kind == "dataset":
        parts.append(f"kind: {item.kind}; splits (train / valid / test): {item.sizes or '?'}")
    elif kind == "metric":
        reading = "higher is better" if item.direction == "max" else "lower is better"
        parts += [
            f"direction: {item.direction} ({reading}); column title: {item.label or item.name}",
            "runs on the validation split every epoch and on the test split"
            if item.per_epoch
            else "runs on the test split after training",
        ]
        if item.needs_labels:
            parts.append("needs labels: skipped on unlabelled data")
    elif kind == "suite":
        parts += _suite(item)
    elif kind == "objective":
        parts += objective_kind(item)
    if kind in ("model", "objective", "dataset"):
        if item.params:
            parts += ["", params_table(item.params)]
        else:
            parts.append("no parameters")
    # Plain strings are text (descriptions hold brackets such as `E[z|x]`), never rich markup.
    return Renderables(*(Text(p) if isinstance(p, str) else p for p in parts))
