"""The plugin manager: built-in plugins plus everything in the ``bench`` entry-point group.

Plugins load lazily on first use. ``BENCH_DISABLE_PLUGINS=a,b`` skips plugins by name. Any
failure inside a plugin (import error, a hook that raises) becomes a :class:`PluginError`
naming the plugin and its distribution, so a broken third-party package never shows up as a
bare traceback from the core.
"""

from __future__ import annotations

import os
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


def _load_plugins(pm: pluggy.PluginManager) -> None:
    import importlib

    blocked = disabled_plugins()
    for module_name in BUILTIN_PLUGINS:
        name = module_name.rsplit(".", 1)[-1]
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
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "unknown distribution"
        if ep.name in blocked:
            pm.set_blocked(ep.name)
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # any import-time failure is the plugin's, not ours
            raise PluginError(
                f"plugin {ep.name!r} from {dist} failed to load ({ep.value}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        try:
            pm.register(plugin, name=ep.name)
        except ValueError as exc:
            raise PluginError(f"plugin {ep.name!r} from {dist}: {exc}") from exc
        _dists[ep.name] = dist


def register_plugin(plugin: object, name: str, distribution: str = "registered in-process") -> None:
    """Add a plugin at run time (tests, notebooks); clears the cached registries."""
    global _registries
    pm = get_plugin_manager()
    pm.register(plugin, name=name)
    pm.check_pending()
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
    """Loaded plugins with their distribution and the hooks each implements."""
    pm = get_plugin_manager()
    rows = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda np: np[0]):
        if plugin is None:
            continue
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        rows.append({"name": name, "distribution": distribution_of(name), "hooks": hooks})
    for name in sorted(disabled_plugins()):
        rows.append({"name": name, "distribution": "(disabled)", "hooks": []})
    return rows


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


def _collect(hook_name: str, make_register: Callable[[str, str], Callable[..., None]]) -> None:
    for impl in reversed(getattr(get_plugin_manager().hook, hook_name).get_hookimpls()):
        register = make_register(impl.plugin_name, distribution_of(impl.plugin_name))
        _call_impl(impl, hook_name, {"register": register}, (PluginError,))


def registries() -> Registries:
    """Every registered item, collected once per process."""
    global _registries
    if _registries is not None:
        return _registries
    regs = Registries()
    for attr, hook_name in _ITEM_HOOKS.items():
        registry: Registry[Any] = getattr(regs, attr)

        def make(plugin: str, dist: str, registry: Registry[Any] = registry) -> Callable:
            def register(item: Any) -> None:
                if isinstance(item, Suite):
                    # Groups are appended per process; never mutate the plugin's own dict.
                    item = replace(item, groups={k: list(v) for k, v in item.groups.items()})
                registry.add(item, plugin, dist)

            return register

        _collect(hook_name, make)

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

    _collect("register_suite_groups", make_group_register)
    _registries = regs
    return regs


def reset() -> None:
    """Forget loaded plugins (tests)."""
    global _pm, _registries
    _pm = None
    _registries = None
    _dists.clear()
