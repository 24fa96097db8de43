"""The tiny suites the tests run, written one way: :func:`suite_toml` (a suite file) or
:func:`one_group_suite` (a :class:`bench.Suite` object); and CPU run options."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from bench import Group, Suite
from bench.runner import RunOptions

#: A small MLP: trains in a fraction of a second per epoch on the digits.
SMALL_MLP = {"hidden": 16, "latent_dim": 4}
#: A few hundred digits: enough for every split, fast to train on.
FEW_DIGITS = {"train_subset": 200, "valid_subset": 100, "test_subset": 100}


def toml_value(value: Any) -> str:
    """A TOML value: strings quoted, lists and tuples as arrays, booleans lower-case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Sequence):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def _table(header: str, values: Mapping[str, Any]) -> list[str]:
    return [f"[{header}]", *(f"{k} = {toml_value(v)}" for k, v in values.items())]


def group_toml(
    name: str = "g",
    *,
    datasets: Sequence[str] = ("digits",),
    models: Sequence[str] = ("mlp-vae",),
    objectives: Sequence[str] = ("elbo",),
    budget: Mapping[str, Any] | None = None,
    eval: Mapping[str, Any] | None = None,
    **keys: Any,
) -> str:
    """One ``[[group]]`` table. ``keys`` are its other keys: values (``seeds``, ``metrics``)
    or, for ``model_params``, ``objective_params`` and ``dataset_params``, a table per item.
    ``budget`` and ``eval`` default to one epoch and 5 importance samples."""
    values = {"datasets": datasets, "models": models, "objectives": objectives}
    values |= {k: v for k, v in keys.items() if not isinstance(v, Mapping)}
    lines = ["[[group]]", f"name = {toml_value(name)}"]
    lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    for key, per_item in keys.items():
        if isinstance(per_item, Mapping):
            for item, params in per_item.items():
                lines += _table(f"group.{key}.{item}", params)
    lines += _table("group.budget", budget or {"epochs": 1})
    lines += _table("group.eval", eval or {"iw_samples": 5})
    return "\n".join(lines) + "\n"


def suite_toml(
    name: str = "tiny", *groups: str, columns: Sequence[str] = (), **group_keys: Any
) -> str:
    """A suite file named ``name``: ``groups`` (each from :func:`group_toml`), or else one
    group ``g`` made of ``group_keys`` (the arguments of :func:`group_toml`)."""
    head = f"name = {toml_value(name)}\n"
    if columns:
        head += f"columns = {toml_value(columns)}\n"
    return head + "".join(groups or [group_toml(**group_keys)])


def one_group_suite(name: str, group: Group) -> Suite:
    """A suite of one group at one scale, ``s``."""
    return Suite(name, scales=("s",), default_scale="s", groups={"s": [group]})


def cpu_options(workdir: Path, **kw: Any) -> RunOptions:
    """Run options for the CPU, with results under ``workdir/results``."""
    return RunOptions(results_dir=workdir / "results", device=torch.device("cpu"), **kw)
