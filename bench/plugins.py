"""The plugin manager: built-in plugins plus everything in the ``bench`` entry-point group.

Plugins load lazily on first use. ``BENCH_DISABLE_PLUGINS=a,b`` skips plugins by name (an
unknown name is warned about). Any failure inside a plugin (an import error, an unknown hook
name, a hook whose arguments the specification does not have, a registered item that is not
what its registry takes, a hook that raises) becomes a :class:`PluginError` naming the plugin
and its distribution, so a broken third-party package never shows up as a bare traceback from
the core. A plugin that fails to load is left out and remembered: :func:`registries` refuses
to run with it (so ``bench run`` exits 2), while ``bench plugins`` lists it as failed.

All of this state lives in one :class:`PluginHost`. The module-level functions
(:func:`registries`, :func:`register_plugin`, :func:`call_each`, ...) act on the *current*
host: the process-wide one, unless code runs inside :func:`using_host` or
:func:`with_plugins`, which put another host in place for the block only (a context variable:
other threads and asyncio tasks keep theirs), e.g. a tuning trial's reporter or a test's extra
plugin::

    with plugins.with_plugins({"my-reporter": reporter}):
        train_cell(cell, run_dir, opts)  # its hooks see the reporter; nothing else does
"""

from __future__ import annotations

import importlib
import inspect
import multiprocessing
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from importlib import metadata
from typing import Any

import pluggy

from bench import hookspecs
from bench.catalog import REGISTRATION_HOOKS, Registries, build_registries, call_impl
from bench.errors import PluginError, StopRun
from bench.registry import suggest

ENTRY_POINT_GROUP = "bench"
DISABLE_ENV = "BENCH_DISABLE_PLUGINS"
BUILTIN_DISTRIBUTION = "collapse-bench (built-in)"
IN_PROCESS_DISTRIBUTION = "registered in-process"
BUILTIN_PLUGINS = (
    "bench.reporters",
    "bench.plots",
    "bench.tune",
    "bench.throughput",
    "bench.scaffold",
    "bench.report",
    "bench.trackers",
)

__all__ = [
    "BUILTIN_DISTRIBUTION",
    "BUILTIN_PLUGINS",
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "IN_PROCESS_DISTRIBUTION",
    "PluginHost",
    "Registries",
    "call_each",
    "current_host",
    "disabled_plugins",
    "distribution_of",
    "get_plugin_manager",
    "load_failures",
    "plugin_info",
    "register_plugin",
    "registration_errors",
    "registries",
    "reset",
    "unregister_plugin",
    "using_host",
    "with_plugins",
]


def disabled_plugins() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


class PluginHost:
    """One set of plugins: the pluggy manager, each plugin's distribution, the plugins that
    failed to load, and the registries built from them (cached until a plugin is added or
    removed). Plugins load on first use.

    A new host loads the built-in plugins and the ``bench`` entry points itself;
    :meth:`extended` makes one from an existing host plus some plugins, without touching it.
    Put a host in place with :func:`using_host`.
    """

    def __init__(self) -> None:
        self._manager: pluggy.PluginManager | None = None
        self._registries: Registries | None = None
        self._dists: dict[str, str] = {}  # plugin name -> "distribution version"
        self._failures: dict[str, str] = {}  # plugin name -> why it was left out

    # ---- loading --------------------------------------------------------------------------

    def get_plugin_manager(self) -> pluggy.PluginManager:
        if self._manager is None:
            pm = _new_manager()
            self._load_plugins(pm)
            pm.check_pending()
            self._manager = pm
        return self._manager

    def _load_plugins(self, pm: pluggy.PluginManager) -> None:
        blocked = disabled_plugins()
        known: set[str] = set()
        for module_name in BUILTIN_PLUGINS:
            name = module_name.rsplit(".", 1)[-1]
            known.add(name)
            if name in blocked:
                continue
            pm.register(importlib.import_module(module_name), name=name)
            self._dists[name] = BUILTIN_DISTRIBUTION
        seen: set[str] = set()
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            # The same distribution can be visible twice (editable installs); load once.
            if ep.name in seen:
                continue
            seen.add(ep.name)
            known.add(ep.name)
            self._load_entry_point(pm, ep, blocked)
        unknown = sorted(blocked - known)
        if unknown and multiprocessing.parent_process() is None:  # once, not per --jobs worker
            print(
                f"warning: {DISABLE_ENV} names unknown plugin(s) "
                f"{', '.join(map(repr, unknown))}; plugins: {', '.join(sorted(known))}",
                file=sys.stderr,
            )

    def _load_entry_point(
        self, pm: pluggy.PluginManager, ep: metadata.EntryPoint, blocked: set[str]
    ) -> None:
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "unknown distribution"
        self._dists[ep.name] = dist
        if ep.name in blocked:
            pm.set_blocked(ep.name)
            return
        where = f"plugin {ep.name!r} ({dist})"
        try:
            plugin = ep.load()
        except Exception as exc:  # any import-time failure is the plugin's, not ours
            self._failures[ep.name] = (
                f"{where} failed to load ({ep.value}): {type(exc).__name__}: {exc}"
            )
            return
        problems = _hook_problems(pm, plugin)
        if problems:
            self._failures[ep.name] = f"{where}: {'; '.join(problems)}"
            return
        try:
            pm.register(plugin, name=ep.name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            self._failures[ep.name] = f"{where}: {' '.join(str(exc).split())}"

    def load_failures(self) -> dict[str, str]:
        """Plugins left out because they failed to load: name -> one-line reason."""
        self.get_plugin_manager()
        return dict(self._failures)

    def reset(self) -> None:
        """Forget the loaded plugins; the next use loads them again."""
        self._manager = None
        self._registries = None
        self._dists = {}
        self._failures = {}

    # ---- adding and removing plugins ------------------------------------------------------

    def register_plugin(
        self, plugin: object, name: str, distribution: str = IN_PROCESS_DISTRIBUTION
    ) -> None:
        """Add a plugin at run time (tests, notebooks); clears the cached registries."""
        pm = self.get_plugin_manager()
        problems = _hook_problems(pm, plugin)
        if problems:
            raise PluginError(f"plugin {name!r} ({distribution}): {'; '.join(problems)}")
        pm.register(plugin, name=name)
        self._dists[name] = distribution
        self._registries = None

    def unregister_plugin(self, name: str) -> None:
        pm = self.get_plugin_manager()
        plugin = pm.get_plugin(name)
        if plugin is not None:
            pm.unregister(plugin)
        self._registries = None

    def extended(
        self, extra: Mapping[str, object], distribution: str = IN_PROCESS_DISTRIBUTION
    ) -> PluginHost:
        """A new host with this host's plugins plus ``extra`` (name -> plugin), registered as
        :meth:`register_plugin` does; this host is left as it is. When no extra plugin
        implements a registration hook, the new host shares this host's registries instead
        of building them again (a tuning trial's reporter costs nothing)."""
        child = PluginHost()
        pm = _new_manager()
        for name, plugin in self.get_plugin_manager().list_name_plugin():
            if plugin is None:  # blocked: BENCH_DISABLE_PLUGINS
                pm.set_blocked(name)
            else:
                pm.register(plugin, name=name)
        child._manager = pm
        child._dists = dict(self._dists)
        child._failures = dict(self._failures)
        for name, plugin in extra.items():
            child.register_plugin(plugin, name, distribution)
        registering = {
            caller.name for plugin in extra.values() for caller in pm.get_hookcallers(plugin) or []
        }
        if not registering & REGISTRATION_HOOKS:
            child._registries = self._registries
        return child

    # ---- what the plugins provide ---------------------------------------------------------

    def distribution_of(self, plugin_name: str) -> str:
        return self._dists.get(plugin_name, "unknown distribution")

    def call_each(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call every implementation of a hook, naming the plugin if one raises."""
        caller = getattr(self.get_plugin_manager().hook, hook_name)
        return [
            call_impl(impl, hook_name, kwargs, (StopRun, PluginError), self.distribution_of)
            for impl in reversed(caller.get_hookimpls())
        ]

    def registries(self) -> Registries:
        """Every registered item, collected once per host. A PluginError if a plugin failed
        to load or a registration hook raised."""
        if self._registries is None:
            self._raise_load_failures()
            self._registries = build_registries(self.get_plugin_manager(), self.distribution_of)
        return self._registries

    def _raise_load_failures(self) -> None:
        failures = self.load_failures()
        if failures:
            name, reason = next(iter(failures.items()))
            more = f" (and {len(failures) - 1} more plugin(s); see `bench plugins`)"
            raise PluginError(
                f"{reason}; fix it or set {DISABLE_ENV}={name}"
                + (more if len(failures) > 1 else "")
            )

    def registration_errors(self) -> dict[str, str]:
        """Plugins whose registration hooks raise: name -> the error (``bench plugins``)."""
        errors: dict[str, str] = {}
        build_registries(self.get_plugin_manager(), self.distribution_of, errors)
        return errors

    def plugin_info(self) -> list[dict[str, Any]]:
        """Every plugin with its distribution, the hooks it implements and its ``status``:
        "ok", "disabled", or "failed: <why>" (it failed to load, or a registration hook
        raised)."""
        pm = self.get_plugin_manager()
        broken = {**self.registration_errors(), **self._failures}
        rows = []
        for name, plugin in pm.list_name_plugin():
            if plugin is None:
                continue
            hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
            rows.append({"name": name, "distribution": self.distribution_of(name), "hooks": hooks})
        rows += [
            {"name": n, "distribution": self.distribution_of(n), "hooks": []}
            for n in self._failures
        ]
        for row in rows:
            row["status"] = f"failed: {broken[row['name']]}" if row["name"] in broken else "ok"
        for name in sorted(disabled_plugins()):
            rows.append(
                {"name": name, "distribution": "(disabled)", "hooks": [], "status": "disabled"}
            )
        return sorted(rows, key=lambda r: r["name"])


# The one slot for the current host. Its default is the process-wide host: one shared, mutable
# object on purpose (B039), since every thread must see the same plugins unless a block has put
# another host in place; a value set() in one thread would not reach the others.
_CURRENT: ContextVar[PluginHost] = ContextVar(
    "bench_plugin_host",
    default=PluginHost(),  # noqa: B039
)


def current_host() -> PluginHost:
    """The host the module-level functions act on: the process-wide one, or the one
    :func:`using_host` put in place."""
    return _CURRENT.get()


@contextmanager
def using_host(host: PluginHost) -> Iterator[PluginHost]:
    """Run a block with ``host`` as the current host; the previous one is back afterwards,
    untouched. Only this thread (or asyncio task) sees the change: threads started inside
    the block and worker processes (``--jobs``, Ray) use the process-wide host."""
    token = _CURRENT.set(host)
    try:
        yield host
    finally:
        _CURRENT.reset(token)


@contextmanager
def with_plugins(
    extra: Mapping[str, object], distribution: str = IN_PROCESS_DISTRIBUTION
) -> Iterator[PluginHost]:
    """Run a block with the current host's plugins plus ``extra`` (name -> plugin), e.g. a
    tuning trial's reporter or a test's plugin, leaving the current host as it was:
    ``using_host(current_host().extended(extra, distribution))``."""
    with using_host(current_host().extended(extra, distribution)) as host:
        yield host


# ---- the current host's methods as functions (the API plugins, tests and tools use) -------


def get_plugin_manager() -> pluggy.PluginManager:
    return current_host().get_plugin_manager()


def load_failures() -> dict[str, str]:
    """Plugins left out because they failed to load: name -> one-line reason."""
    return current_host().load_failures()


def register_plugin(plugin: object, name: str, distribution: str = IN_PROCESS_DISTRIBUTION) -> None:
    """Add a plugin at run time (tests, notebooks); clears the cached registries. It stays
    until :func:`unregister_plugin`; :func:`with_plugins` adds one for a block only."""
    current_host().register_plugin(plugin, name, distribution)


def unregister_plugin(name: str) -> None:
    current_host().unregister_plugin(name)


def distribution_of(plugin_name: str) -> str:
    return current_host().distribution_of(plugin_name)


def plugin_info() -> list[dict[str, Any]]:
    """Every plugin with its distribution, the hooks it implements and its ``status``: "ok",
    "disabled", or "failed: <why>" (it failed to load, or a registration hook raised)."""
    return current_host().plugin_info()


def call_each(hook_name: str, **kwargs: Any) -> list[Any]:
    """Call every implementation of a hook, naming the plugin if one raises."""
    return current_host().call_each(hook_name, **kwargs)


def registries() -> Registries:
    """Every registered item, collected once per host. A PluginError if a plugin failed
    to load or a registration hook raised."""
    return current_host().registries()


def registration_errors() -> dict[str, str]:
    """Plugins whose registration hooks raise: name -> the error (``bench plugins``)."""
    return current_host().registration_errors()


def reset() -> None:
    """Forget loaded plugins (tests): the current host loads them again on next use."""
    current_host().reset()


# ---- checks -------------------------------------------------------------------------------


def _hook_problems(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """What is wrong with a plugin's hook implementations, checked before registering it:
    unknown hook names (with a suggestion), arguments the hook does not pass, and hook
    markers on something that is not a function."""
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
