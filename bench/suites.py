"""Suites: datasets × models × objectives × seeds × metrics, with a training budget.

A suite is registered once (name, description, scales); plugins then add groups of cells to
any (suite, scale). A user may also describe a suite in a TOML file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import plugins
from bench.errors import ConfigError, UnknownNameError
from bench.formats import is_finite_number
from bench.names import check_name, shown
from bench.registry import suggest
from bench.suite_types import Budget, EvalSettings, Group, Suite

# Budget, EvalSettings, Group and Suite are defined below the plugin manager (which registers
# suites and groups) and documented here, with everything that works on them.
__all__ = [
    "BUDGET_MAX",
    "BUDGET_RULES",
    "EVAL_MAX",
    "EVAL_RULES",
    "SETTING_PARTS",
    "SUITE_FILE",
    "Budget",
    "Cell",
    "EvalSettings",
    "Group",
    "Suite",
    "check_field_type",
    "check_group",
    "check_same_suite",
    "check_setting",
    "check_settings",
    "expand",
    "fingerprint",
    "get_suite",
    "load_suite_file",
    "read_toml",
    "remember_suite",
    "resolved_settings",
    "suite_fingerprint",
]


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
    overrides: tuple[str, ...] = ()  # ``--set key=value`` applied to this cell

    @property
    def run_id(self) -> str:
        run_id = f"{self.group}__{self.dataset}__{self.model}__{self.objective}__s{self.seed}"
        if self.overrides:
            # Overridden runs get their own folder: they never replace a plain run.
            run_id += "__set-" + fingerprint(sorted(self.overrides))[:6]
        return run_id

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if not self.overrides:
            del out["overrides"]  # records written before overrides existed still match
        return out


def _canonical(value: Any) -> Any:
    """JSON-ready, with integral floats as ints so ``epochs = 2`` and ``2.0`` agree."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def fingerprint(value: Any) -> str:
    """A short stable hash of a JSON-like value."""
    text = json.dumps(_canonical(value), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


SETTING_PARTS = ("dataset", "model", "objective", "budget", "eval")


def resolved_settings(cell: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Everything a run's result depends on besides its seed: each part's parameters (the
    plugin's defaults overlaid with the suite's values), the budget and the eval settings.

    ``cell`` is :meth:`Cell.as_dict` or a record's ``cell``; a part whose plugin is not loaded
    keeps the values the cell gives.
    """
    regs = plugins.registries()
    out: dict[str, dict[str, Any]] = {}
    for part, registry in (
        ("dataset", regs.datasets),
        ("model", regs.models),
        ("objective", regs.objectives),
    ):
        given = dict(cell.get(f"{part}_params") or {})
        name = cell.get(part)
        if name in registry:
            spec = registry.get(name)
            given = {**{k: p.default for k, p in spec.params.items()}, **given}
        out[part] = given
    out["budget"] = dict(cell.get("budget") or {})
    out["eval"] = dict(cell.get("eval") or {})
    return out


# ---- checks ------------------------------------------------------------------------------


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _optional(rule: tuple[str, Any]) -> tuple[str, Any]:
    text, ok = rule
    return f"{text} or unset", lambda v: v is None or ok(v)


_AT_LEAST_1 = (">= 1 (an integer)", lambda v: _int(v) and v >= 1)
_POSITIVE = ("> 0 (a number)", lambda v: is_finite_number(v) and v > 0)
# What each Budget and EvalSettings field may hold; checked before anything is created.
BUDGET_RULES: dict[str, tuple[str, Any]] = {
    "epochs": _AT_LEAST_1,
    "batch_size": _AT_LEAST_1,
    "optimizer": ('"adam" or "sgd"', lambda v: v in ("adam", "sgd")),
    "lr": _POSITIVE,
    "grad_clip": (
        ">= 0 (0: off) or unset",
        lambda v: v is None or (is_finite_number(v) and v >= 0),
    ),
    "patience": _optional(_AT_LEAST_1),
    "lr_decay": _optional(("in (0, 1]", lambda v: is_finite_number(v) and 0 < v <= 1)),
    "lr_decay_after": (">= 0 (an integer)", lambda v: _int(v) and v >= 0),
    "lr_decay_patience": _AT_LEAST_1,
    "max_decays": _optional((">= 0 (an integer)", lambda v: _int(v) and v >= 0)),
    "lr_decay_sticky": ("true or false", lambda v: isinstance(v, bool)),
    "min_lr": _optional((">= 0 (a number)", lambda v: is_finite_number(v) and v >= 0)),
    "train_subset": _optional(_AT_LEAST_1),
    "valid_subset": _optional(_AT_LEAST_1),
    "test_subset": _optional(_AT_LEAST_1),
}
EVAL_RULES: dict[str, tuple[str, Any]] = {
    "iw_samples": _AT_LEAST_1,
    "au_threshold": (">= 0 (a number)", lambda v: is_finite_number(v) and v >= 0),
    "mi_samples": _AT_LEAST_1,
    "batch_size": _AT_LEAST_1,
    "probe_train_size": _AT_LEAST_1,
    "mi_train_size": (">= 0 (an integer; 0: off)", lambda v: _int(v) and v >= 0),
}


# Upper bounds, where a larger value cannot be meaningful: it would run for weeks or ask for
# more memory than any machine has (memory is also estimated before training, see
# bench.runner.memory). Checked after the rules above. A learning rate has none: a huge one
# diverges, and the run is recorded as diverged.
BUDGET_MAX: dict[str, float] = {
    "epochs": 100_000,
    "batch_size": 1_000_000,
    "patience": 100_000,
    "lr_decay_after": 100_000,
    "lr_decay_patience": 100_000,
    "max_decays": 1_000,
    "train_subset": 1_000_000_000,
    "valid_subset": 1_000_000_000,
    "test_subset": 1_000_000_000,
}
EVAL_MAX: dict[str, float] = {
    "iw_samples": 1_000_000,
    "mi_samples": 100_000,
    "batch_size": 1_000_000,
    "probe_train_size": 1_000_000_000,
    "mi_train_size": 1_000_000,
}
SETTINGS_RULES = {"budget": (BUDGET_RULES, BUDGET_MAX), "eval": (EVAL_RULES, EVAL_MAX)}


def check_setting(section: str, name: str, value: Any, where: str) -> None:
    """One budget or eval value against its rule and its upper bound; a one-line
    ConfigError naming the key."""
    rules, maxima = SETTINGS_RULES[section]
    text, ok = rules[name]
    if not ok(value):
        raise ConfigError(f"{where}: {section}.{name}: must be {text}, got {value!r}")
    if value is not None and name in maxima and value > maxima[name]:
        raise ConfigError(
            f"{where}: {section}.{name}: must be at most {maxima[name]:.15g} (a larger value "
            f"cannot be meaningful), got {value!r}"
        )


def check_settings(budget: Budget, eval: EvalSettings, where: str) -> None:
    """Every budget and eval value against its rule (:data:`BUDGET_RULES`,
    :data:`EVAL_RULES`) and upper bound; a one-line ConfigError naming the key."""
    for section, obj in (("budget", budget), ("eval", eval)):
        for name in SETTINGS_RULES[section][0]:
            check_setting(section, name, getattr(obj, name), where)


SEED_MAX = 2**32 - 1  # numpy seeds with 32 bits; a run id holds at most ten digits of it
LISTS = ("datasets", "models", "objectives", "metrics")


def check_group(group: Group, where: str) -> None:
    """A group's names (see :mod:`bench.names`), each listed once; its seeds; its budget and
    eval values; and that its parameter tables name only items in the group; one-line
    ConfigError naming the key."""
    check_name(group.name, f"{where}: name")
    for key in LISTS:
        for item in getattr(group, key):
            check_name(item, f"{where}: {key}")
        _once(getattr(group, key), f"{where}: {key}")
    for seed in group.seeds:
        if not _int(seed) or not 0 <= seed <= SEED_MAX:
            raise ConfigError(f"{where}: seeds: {shown(seed)} is not an integer in 0..{SEED_MAX}")
    _once(group.seeds, f"{where}: seeds")
    check_settings(group.budget, group.eval, where)
    _check_baseline(group, where)
    for key, members, what in (
        ("dataset_params", group.datasets, "datasets"),
        ("model_params", group.models, "models"),
        ("objective_params", group.objectives, "objectives"),
    ):
        for name in getattr(group, key):
            if name not in members:
                raise ConfigError(
                    f"{where}: {key}.{name}: {name!r} is not in the group's {what} "
                    f"({', '.join(members) or 'none'}){suggest(name, members)}"
                )


def _once(items: tuple[Any, ...], where: str) -> None:
    """Each item once: an item listed twice would train twice into one run folder."""
    seen: set[Any] = set()
    for item in items:
        if item in seen:
            raise ConfigError(f"{where}: {item!r} is listed twice; each run needs its own folder")
        seen.add(item)


def check_group_names(groups: list[Group], where: str) -> None:
    """No two groups of a suite's scale share a name: they would share run folders, and one
    group's results would replace the other's."""
    first: dict[str, int] = {}
    for i, g in enumerate(groups):
        if g.name in first:
            j = first[g.name]
            raise ConfigError(
                f"{where}: group[{j}]{_origin(groups[j])} and group[{i}]{_origin(g)} are both "
                f"named {g.name!r}; give each group its own name"
            )
        first[g.name] = i


def _origin(group: Group) -> str:
    return f" (plugin {group.plugin!r}, {group.distribution})" if group.plugin else ""


BASELINE_PARTS = {"model": "models", "objective": "objectives"}


def _check_baseline(group: Group, where: str) -> None:
    """``baseline`` names a model and/or an objective of the group (docs/comparing.md)."""
    if not isinstance(group.baseline, dict):
        raise ConfigError(f'{where}: baseline: expected a table such as {{objective = "elbo"}}')
    for part, name in group.baseline.items():
        if part not in BASELINE_PARTS:
            raise ConfigError(f"{where}: baseline: {shown(part)} is not model or objective")
        members = getattr(group, BASELINE_PARTS[part])
        if name not in members:
            raise ConfigError(
                f"{where}: baseline.{part}: {shown(name)} is not in the group's "
                f"{BASELINE_PARTS[part]} ({', '.join(members)}){suggest(str(name), members)}"
            )


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
            check_field_type(fields[key], value, f"{where}.{key}")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        missing = str(exc).split("argument")[-1].strip(": ")
        raise ConfigError(f"{where}: missing required key {missing}") from None


_SCALARS = {"int": int, "float": (int, float), "str": str, "bool": bool}


def check_field_type(f: dataclasses.Field, value: Any, where: str) -> None:
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
        return tomllib.loads(path.read_text(encoding="utf-8"))  # TOML is UTF-8, whatever the locale
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except UnicodeDecodeError as exc:
        where = f"{exc.reason} at byte {exc.start}"
        raise ConfigError(f"{what} {path}: not UTF-8 text ({where})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path}: invalid TOML: {exc}") from None
    except (OSError, ValueError) as exc:  # a folder, a name too long, a NUL byte...
        raise ConfigError(f"{what} {shown(str(path), 80)}: cannot be read: {_why(exc)}") from None


def _why(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def load_suite_file(path: Path) -> Suite:
    """Parse and validate a TOML suite; its cells run under the scale ``custom``."""
    data = read_toml(path, "suite file")
    allowed = {"name", "description", "columns", "group"}
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{path}: {key}: unknown key{suggest(key, allowed)}")
    groups_raw = data.get("group")
    if not groups_raw or not isinstance(groups_raw, list):
        raise ConfigError(f"{path}: needs at least one [[group]] table")
    name = data.get("name", path.stem)
    given = "name" in data
    check_name(name, f"{path}: name" + ("" if given else " (the file's; add a name key)"))
    groups = [_build(Group, g, f"{path}: group[{i}]") for i, g in enumerate(groups_raw)]
    for i, g in enumerate(groups):
        check_group(g, f"{path}: group[{i}]")
    check_group_names(groups, str(path))
    columns = data.get("columns", [])
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise ConfigError(f"{path}: columns: expected a list of metric names")
    return Suite(
        name=name,
        description=str(data.get("description", f"from {path}")),
        scales=("custom",),
        default_scale="custom",
        groups={"custom": groups},
        columns=tuple(columns),
        source=str(path.resolve()),
    )


SUITE_FILE = "suite.json"


def get_suite(name: str, results_dir: Path | None = None) -> Suite:
    """A registered suite by name, or a suite file when ``name`` ends in ``.toml``; with
    ``results_dir``, also a suite that ran there from a file (see :func:`remember_suite`)."""
    if name.endswith(".toml"):
        return load_suite_file(Path(name))
    check_name(name, "--suite")  # it names a folder of the results: never a path
    try:
        return plugins.registries().suites.get(name)
    except UnknownNameError:
        if results_dir is None or not (results_dir / name / SUITE_FILE).is_file():
            raise
    return _remembered_suite(results_dir / name)


def suite_fingerprint(suite: Suite) -> str:
    """What makes a suite's results comparable: its groups at every scale (not where they
    came from)."""
    groups = {
        scale: [
            {k: v for k, v in dataclasses.asdict(g).items() if k not in ("plugin", "distribution")}
            for g in gs
        ]
        for scale, gs in suite.groups.items()
    }
    return fingerprint(groups)


def remember_suite(suite: Suite, results_dir: Path) -> None:
    """Note a suite beside its results, so ``bench leaderboard --suite NAME`` finds a suite
    that was read from a file by its name alone, and another suite of that name is told
    apart (:func:`check_same_suite`)."""
    from bench.files import atomic_write_text

    info = {
        "name": suite.name,
        "description": suite.description,
        "columns": list(suite.columns),
        "source": suite.source,
        "settings": suite_fingerprint(suite),
    }
    folder = results_dir / check_name(suite.name, "suite")
    atomic_write_text(folder / SUITE_FILE, json.dumps(info, indent=2) + "\n")


def check_same_suite(suite: Suite, results_dir: Path, overwrite: bool = False) -> None:
    """A suite whose name another suite already used in ``results_dir`` (another file, or a
    registered suite) may add its runs only if its settings are the same; else its rows
    would mix into the other's leaderboard. ``overwrite`` (``--overwrite``) allows it."""
    info = _suite_info(results_dir / suite.name)
    if info is None or overwrite or info.get("source", "") == suite.source:
        return
    if info.get("settings") == suite_fingerprint(suite):
        return
    theirs = info.get("source") or "a registered suite"
    raise ConfigError(
        f"suite {suite.name!r}: {results_dir / suite.name} holds the results of another suite "
        f"of that name ({shown(theirs, 80)}) with other settings; give this one another name, "
        "use another --results-dir, or pass --overwrite to start this scale afresh"
    )


def _suite_info(folder: Path) -> dict[str, Any] | None:
    """What :func:`remember_suite` noted in ``folder``; None if nothing (or nothing readable:
    a damaged note is rewritten by the next run)."""
    try:
        info = json.loads((folder / SUITE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and isinstance(info.get("name"), str) else None


def _remembered_suite(folder: Path) -> Suite:
    info = _suite_info(folder)
    if info is None:
        raise ConfigError(f"{folder / SUITE_FILE} is damaged; run the suite's file again")
    source = Path(str(info.get("source") or ""))
    if source.suffix == ".toml" and source.is_file():
        try:
            suite = load_suite_file(source)
        except ConfigError:
            suite = None  # edited since it ran; what the results folder says is enough
        if suite is not None and suite.name == info["name"]:
            return suite
    scales = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir())) or ("custom",)
    return Suite(
        name=check_name(info["name"], str(folder / SUITE_FILE)),
        description=str(info.get("description", "")),
        scales=scales,
        default_scale="custom" if "custom" in scales else scales[0],
        columns=tuple(c for c in info.get("columns", ()) if isinstance(c, str)),
        source=str(source) if info.get("source") else "",
    )
