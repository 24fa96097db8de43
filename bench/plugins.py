"""The plugin manager: built-in plugins plus everything in the ``bench`` entry-point group.

Plugins load lazily on first use. ``BENCH_DISABLE_PLUGINS=a,b`` skips plugins by name (an
unknown name is warned about). Any failure inside a plugin (an import error, an unknown hook
name, a hook whose arguments the specification does not have, a registered item that is not
what its registry takes, a hook that raises) becomes a :class:`PluginError` naming the plugin
and its distribution, so a broken third-party package never shows up as a bare traceback from
the core. A plugin that fails to load is left out and remembered: :func:`registries` refuses
to run with it (so ``bench run`` exits 2), while ``bench plugins`` lists it as failed.
"""

from __future__ import annotations

import inspect
import multiprocessing
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import Any

import pluggy

from bench import hookspecs
from bench.errors import PluginError, StopRun
from bench.registry import Registry
from bench.specs import DatasetSpec, MetricSpec, ModelSpec, ObjectiveSpec, ReporterSpec
from bench.suites import Group, Suite

ENTRY_POINT_GROUP = "bench"
DISABLE_ENV = "BENCH_DISABLE_PLUGINS"
BUILTIN_DISTRIBUTION = "collapse-bench (built-in)"
BUILTIN_PLUGINS = (
    "bench.reporters",
    "bench.plots",
    "bench.tune",
    "bench.throughput",
    "bench.scaffold",
)

_pm: pluggy.PluginManager | None = None
_registries: Registries | None = None
_dists: dict[str, str] = {}
_failures: dict[str, str] = {}  # plugin name -> why it was left out


def disabled_plugins() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def get_plugin_manager() -> pluggy.PluginManager:
    global _pm
    if _pm is None:
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        _load_plugins(pm)
        pm.check_pending()
        _pm = pm
    return _pm


def _hook_problems(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """What is wrong with a plugin's hook implementations, checked before registering it:
    unknown hook names (with a suggestion), arguments the hook does not pass, and hook
    markers on something that is not a function."""
    from bench.registry import suggest

    problems = []
    known = [n for n in dir(hookspecs) if getattr(getattr(hookspecs, n), "bench_spec", None)]
    for attr in dir(plugin):
        value = getattr(plugin, attr, None)
        if getattr(value, f"{hookspecs.PROJECT}_impl", None) is None:
            continue
        if not callable(value):
            problems.append(f"hook {attr!r} is a {type(value).__name__}, not a function")
            continue
        caller = getattr(pm.hook, attr, None)
        if caller is None or caller.spec is None:
            problems.append(f"implements unknown hook {attr!r}{suggest(attr, known)}")
            continue
        spec_args = caller.spec.argnames
        impl_args = [
            p.name
            for p in inspect.signature(value).parameters.values()
            if p.name != "self"
            and p.default is p.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        extra = [a for a in impl_args if a not in spec_args]
        if extra:
            problems.append(
                f"hook {attr}({', '.join(impl_args)}) takes {', '.join(map(repr, extra))}, "
                f"which {attr} does not pass (it passes {', '.join(spec_args)})"
            )
    return problems


def _load_plugins(pm: pluggy.PluginManager) -> None:
    import importlib

    blocked = disabled_plugins()
    known: set[str] = set()
    for module_name in BUILTIN_PLUGINS:
        name = module_name.rsplit(".", 1)[-1]
        known.add(name)
        if name in blocked:
            continue
        pm.register(importlib.import_module(module_name), name=name)
        _dists[name] = BUILTIN_DISTRIBUTION
    seen: set[str] = set()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        # The same distribution can be visible twice (editable installs); load once.
        if ep.name in seen:
            continue
        seen.add(ep.name)
        known.add(ep.name)
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "unknown distribution"
        _dists[ep.name] = dist
        if ep.name in blocked:
            pm.set_blocked(ep.name)
            continue
        where = f"plugin {ep.name!r} ({dist})"
        try:
            plugin = ep.load()
        except Exception as exc:  # any import-time failure is the plugin's, not ours
            _failures[ep.name] = f"{where} failed to load ({ep.value}): {type(exc).__name__}: {exc}"
            continue
        problems = _hook_problems(pm, plugin)
        if problems:
            _failures[ep.name] = f"{where}: {'; '.join(problems)}"
            continue
        try:
            pm.register(plugin, name=ep.name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            _failures[ep.name] = f"{where}: {' '.join(str(exc).split())}"
    unknown = sorted(blocked - known)
    if unknown and multiprocessing.parent_process() is None:  # once, not once per --jobs worker
        print(
            f"warning: {DISABLE_ENV} names unknown plugin(s) {', '.join(map(repr, unknown))}; "
            f"plugins: {', '.join(sorted(known))}",
            file=sys.stderr,
        )


def load_failures() -> dict[str, str]:
    """Plugins left out because they failed to load: name -> one-line reason."""
    get_plugin_manager()
    return dict(_failures)


def _raise_load_failures() -> None:
    failures = load_failures()
    if failures:
        name, reason = next(iter(failures.items()))
        more = f" (and {len(failures) - 1} more plugin(s); see `bench plugins`)"
        raise PluginError(
            f"{reason}; fix it or set {DISABLE_ENV}={name}" + (more if len(failures) > 1 else "")
        )


def register_plugin(plugin: object, name: str, distribution: str = "registered in-process") -> None:
    """Add a plugin at run time (tests, notebooks); clears the cached registries."""
    global _registries
    pm = get_plugin_manager()
    problems = _hook_problems(pm, plugin)
    if problems:
        raise PluginError(f"plugin {name!r} ({distribution}): {'; '.join(problems)}")
    pm.register(plugin, name=name)
    _dists[name] = distribution
    _registries = None


def unregister_plugin(name: str) -> None:
    global _registries
    pm = get_plugin_manager()
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin)
    _registries = None


def distribution_of(plugin_name: str) -> str:
    return _dists.get(plugin_name, "unknown distribution")


def plugin_info() -> list[dict[str, Any]]:
    """Every plugin with its distribution, the hooks it implements and its ``status``: "ok",
    "disabled", or "failed: <why>" (it failed to load, or a registration hook raised)."""
    pm = get_plugin_manager()
    broken = {**registration_errors(), **_failures}
    rows = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        rows.append({"name": name, "distribution": distribution_of(name), "hooks": hooks})
    rows += [{"name": n, "distribution": distribution_of(n), "hooks": []} for n in _failures]
    for row in rows:
        row["status"] = f"failed: {broken[row['name']]}" if row["name"] in broken else "ok"
    for name in sorted(disabled_plugins()):
        rows.append({"name": name, "distribution": "(disabled)", "hooks": [], "status": "disabled"})
    return sorted(rows, key=lambda r: r["name"])


def _call_impl(
    impl: Any, hook_name: str, kwargs: dict[str, Any], passthrough: tuple[type, ...]
) -> Any:
    """Call one hook implementation; any exception not in ``passthrough`` becomes a
    PluginError naming the plugin and its distribution."""
    try:
        return impl.function(**{k: kwargs[k] for k in impl.argnames})
    except passthrough:
        raise
    except Exception as exc:
        raise PluginError(
            f"plugin {impl.plugin_name!r} ({distribution_of(impl.plugin_name)}) raised in "
            f"{hook_name}: {type(exc).__name__}: {exc}"
        ) from exc


def call_each(hook_name: str, **kwargs: Any) -> list[Any]:
    """Call every implementation of a hook, naming the plugin if one raises."""
    caller = getattr(get_plugin_manager().hook, hook_name)
    return [
        _call_impl(impl, hook_name, kwargs, (StopRun, PluginError))
        for impl in reversed(caller.get_hookimpls())
    ]


@dataclass
class Registries:
    datasets: Registry[DatasetSpec] = field(default_factory=lambda: Registry("dataset"))
    models: Registry[ModelSpec] = field(default_factory=lambda: Registry("model"))
    objectives: Registry[ObjectiveSpec] = field(default_factory=lambda: Registry("objective"))
    metrics: Registry[MetricSpec] = field(default_factory=lambda: Registry("metric"))
    suites: Registry[Suite] = field(default_factory=lambda: Registry("suite"))
    reporters: Registry[ReporterSpec] = field(default_factory=lambda: Registry("reporter"))


_ITEM_HOOKS: dict[str, str] = {
    "datasets": "register_datasets",
    "models": "register_models",
    "objectives": "register_objectives",
    "metrics": "register_metrics",
    "suites": "register_suites",
    "reporters": "register_reporters",
}


# What each registry takes, and the fields of it that must be callable.
_ITEM_TYPES: dict[str, tuple[type, tuple[str, ...]]] = {
    "datasets": (DatasetSpec, ("load",)),
    "models": (ModelSpec, ("build",)),
    "objectives": (ObjectiveSpec, ("build",)),
    "metrics": (MetricSpec, ("compute",)),
    "suites": (Suite, ()),
    "reporters": (ReporterSpec, ("write",)),
}


def _check_item(item: Any, attr: str, where: str) -> None:
    from bench.specs import Param

    cls, functions = _ITEM_TYPES[attr]
    if not isinstance(item, cls):
        raise PluginError(f"{where} registered {item!r} as {attr}; expected a {cls.__name__}")
    for name in functions:
        if not callable(getattr(item, name)):
            raise PluginError(
                f"{where} registered {attr[:-1]} {item.name!r} whose {name} is not callable "
                f"({type(getattr(item, name)).__name__})"
            )
    for key, param in getattr(item, "params", {}).items():
        if not isinstance(param, Param):
            raise PluginError(
                f"{where} registered {attr[:-1]} {item.name!r} whose parameter {key!r} is a "
                f"{type(param).__name__}, not a bench.Param"
            )


def _collect(
    hook_name: str,
    make_register: Callable[[str, str], Callable[..., None]],
    errors: dict[str, str] | None = None,
) -> None:
    """Call every implementation of a registration hook; with ``errors``, a plugin that
    raises is noted there instead of stopping the others."""
    for impl in reversed(getattr(get_plugin_manager().hook, hook_name).get_hookimpls()):
        register = make_register(impl.plugin_name, distribution_of(impl.plugin_name))
        try:
            _call_impl(impl, hook_name, {"register": register}, (PluginError,))
        except PluginError as exc:
            if errors is None:
                raise
            errors.setdefault(impl.plugin_name, str(exc))


def _build_registries(errors: dict[str, str] | None = None) -> Registries:
    regs = Registries()
    for attr, hook_name in _ITEM_HOOKS.items():
        registry: Registry[Any] = getattr(regs, attr)

        def make(
            plugin: str, dist: str, registry: Registry[Any] = registry, attr: str = attr
        ) -> Callable:
            def register(item: Any) -> None:
                _check_item(item, attr, f"plugin {plugin!r} ({dist})")
                if isinstance(item, Suite):
                    # Groups are appended per process; never mutate the plugin's own dict.
                    item = replace(item, groups={k: list(v) for k, v in item.groups.items()})
                registry.add(item, plugin, dist)

            return register

        _collect(hook_name, make, errors)

    def make_group_register(plugin: str, dist: str) -> Callable[[str, str, Group], None]:
        def register(suite_name: str, scale: str, group: Group) -> None:
            suite = regs.suites.get(suite_name)
            if scale not in suite.scales:
                raise PluginError(
                    f"plugin {plugin!r} ({dist}) adds group {group.name!r} to scale {scale!r} "
                    f"of suite {suite_name!r}, which has scales {', '.join(suite.scales)}"
                )
            groups = suite.groups.setdefault(scale, [])
            if any(g.name == group.name for g in groups):
                raise PluginError(
                    f"group {group.name!r} of suite {suite_name!r} ({scale}) is registered "
                    f"twice; second time by plugin {plugin!r} ({dist})"
                )
            groups.append(replace(group, plugin=plugin, distribution=dist))

        return register

    _collect("register_suite_groups", make_group_register, errors)
    return regs


def registries() -> Registries:
    """Every registered item, collected once per process. A PluginError if a plugin failed
    to load or a registration hook raised."""
    global _registries
    if _registries is None:
        _raise_load_failures()
        _registries = _build_registries()
    return _registries


def registration_errors() -> dict[str, str]:
    """Plugins whose registration hooks raise: name -> the error (``bench plugins``)."""
    errors: dict[str, str] = {}
    _build_registries(errors)
    return errors


def reset() -> None:
    """Forget loaded plugins (tests)."""
    global _pm, _registries
    _pm = None
    _registries = None
    _dists.clear()
    _failures.clear()
