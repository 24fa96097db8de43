"""The registries: every item the plugins register, collected by calling their registration
hooks, each item checked to be the spec its registry takes.

:class:`bench.plugins.PluginHost` builds and caches one :class:`Registries` per host; this
module knows nothing about hosts, only about a pluggy manager and the hooks it calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pluggy

from bench.errors import PluginError
from bench.registry import Registry
from bench.specs import DatasetSpec, MetricSpec, ModelSpec, ObjectiveSpec, Param, ReporterSpec
from bench.suite_types import Group, Suite

# plugin name -> "name (distribution)" text for messages; the host knows the distributions.
DistributionOf = Callable[[str], str]


@dataclass
class Registries:
    datasets: Registry[DatasetSpec] = field(default_factory=lambda: Registry("dataset"))
    models: Registry[ModelSpec] = field(default_factory=lambda: Registry("model"))
    objectives: Registry[ObjectiveSpec] = field(default_factory=lambda: Registry("objective"))
    metrics: Registry[MetricSpec] = field(default_factory=lambda: Registry("metric"))
    suites: Registry[Suite] = field(default_factory=lambda: Registry("suite"))
    reporters: Registry[ReporterSpec] = field(default_factory=lambda: Registry("reporter"))


ITEM_HOOKS: dict[str, str] = {
    "datasets": "register_datasets",
    "models": "register_models",
    "objectives": "register_objectives",
    "metrics": "register_metrics",
    "suites": "register_suites",
    "reporters": "register_reporters",
}
# Every hook that adds to the registries: a plugin implementing none of them leaves them as
# they are (a host with such an extra plugin may share its parent's).
REGISTRATION_HOOKS = frozenset({*ITEM_HOOKS.values(), "register_suite_groups"})


# What each registry takes, and the fields of it that must be callable.
_ITEM_TYPES: dict[str, tuple[type, tuple[str, ...]]] = {
    "datasets": (DatasetSpec, ("load",)),
    "models": (ModelSpec, ("build",)),
    "objectives": (ObjectiveSpec, ("build",)),
    "metrics": (MetricSpec, ("compute",)),
    "suites": (Suite, ()),
    "reporters": (ReporterSpec, ("write",)),
}


def call_impl(
    impl: Any,
    hook_name: str,
    kwargs: dict[str, Any],
    passthrough: tuple[type, ...],
    distribution_of: DistributionOf,
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


def _check_item(item: Any, attr: str, where: str) -> None:
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
    pm: pluggy.PluginManager,
    distribution_of: DistributionOf,
    hook_name: str,
    make_register: Callable[[str, str], Callable[..., None]],
    errors: dict[str, str] | None,
) -> None:
    """Call every implementation of a registration hook; with ``errors``, a plugin that
    raises is noted there instead of stopping the others."""
    for impl in reversed(getattr(pm.hook, hook_name).get_hookimpls()):
        register = make_register(impl.plugin_name, distribution_of(impl.plugin_name))
        try:
            call_impl(impl, hook_name, {"register": register}, (PluginError,), distribution_of)
        except PluginError as exc:
            if errors is None:
                raise
            errors.setdefault(impl.plugin_name, str(exc))


def _item_register(registry: Registry[Any], attr: str) -> Callable[[str, str], Callable]:
    def make(plugin: str, dist: str) -> Callable[[Any], None]:
        def register(item: Any) -> None:
            _check_item(item, attr, f"plugin {plugin!r} ({dist})")
            if isinstance(item, Suite):
                # Groups are appended per process; never mutate the plugin's own dict.
                item = replace(item, groups={k: list(v) for k, v in item.groups.items()})
            registry.add(item, plugin, dist)

        return register

    return make


def _group_register(regs: Registries) -> Callable[[str, str], Callable]:
    def make(plugin: str, dist: str) -> Callable[[str, str, Group], None]:
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

    return make


def build_registries(
    pm: pluggy.PluginManager,
    distribution_of: DistributionOf,
    errors: dict[str, str] | None = None,
) -> Registries:
    """Every item the plugins of ``pm`` register. A PluginError if a hook raises or registers
    something wrong; with ``errors``, such plugins are noted there (name -> message) and the
    others still collected."""
    regs = Registries()
    for attr, hook_name in ITEM_HOOKS.items():
        make = _item_register(getattr(regs, attr), attr)
        _collect(pm, distribution_of, hook_name, make, errors)
    _collect(pm, distribution_of, "register_suite_groups", _group_register(regs), errors)
    return regs
