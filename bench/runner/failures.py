"""What a failed cell leaves behind: the exception's type and message, the plugin and
distribution its code came from, and the traceback in the run folder's ``error.log``."""

from __future__ import annotations

import traceback
import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import plugins
from bench.records import RunError
from bench.secrets import redact

ERROR_LOG = "error.log"


def _plugin_prefixes() -> list[tuple[str, str]]:
    """(module prefix, plugin name) for every loaded plugin. A plugin's own package counts as
    its code (``bench_vae`` for ``bench_vae.plugin``); built-in plugins count by module."""
    out = []
    for name, plugin in plugins.get_plugin_manager().list_name_plugin():
        if plugin is None:
            continue
        module = getattr(plugin, "__name__", None) or type(plugin).__module__
        if not isinstance(module, str):
            continue
        prefix = module if module.startswith("bench.") else module.split(".")[0]
        if prefix != "bench":
            out.append((prefix, name))
    # Longest first: ``bench.tuning`` before a hypothetical ``bench`` match.
    return sorted(out, key=lambda p: -len(p[0]))


def _frames(exc: BaseException) -> list[types.FrameType]:
    """Frames of ``exc`` and the exceptions it was raised from, innermost first."""
    frames: list[types.FrameType] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        tb = current.__traceback__
        chain = []
        while tb is not None:
            chain.append(tb.tb_frame)
            tb = tb.tb_next
        frames = list(reversed(chain)) + frames
        current = current.__cause__ or current.__context__
    return frames


def blame(exc: BaseException) -> tuple[str | None, str | None]:
    """The plugin (and its distribution) whose code raised ``exc``: the innermost frame that
    belongs to a plugin's module; ``(None, None)`` when no plugin code was on the stack."""
    try:
        prefixes = _plugin_prefixes()
    except Exception:  # plugins failed to load: nothing to blame by module
        return None, None
    for frame in _frames(exc):
        module = frame.f_globals.get("__name__", "")
        for prefix, name in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                return name, plugins.distribution_of(name)
    return None, None


def first_line(exc: BaseException) -> str:
    """The message recorded for ``exc``: its first line (its repr when it has none), cut at
    500 characters, its passwords hidden."""
    return redact((str(exc).strip() or repr(exc)).splitlines()[0])[:500]


def describe(exc: BaseException) -> RunError:
    """The ``error`` of a failed run's record."""
    plugin, dist = blame(exc)
    return RunError(type(exc).__name__, first_line(exc), plugin, dist, ERROR_LOG)


def reason_text(error: RunError | dict[str, Any]) -> str:
    """One line for the record's ``reason`` and the end-of-run summary."""
    if isinstance(error, dict):
        error = RunError(**error)
    return error.reason


def write_traceback(run_dir: Path, exc: BaseException, what: str) -> Path:
    """Append ``exc``'s full traceback to ``run_dir/error.log`` (passwords hidden); returns
    the file."""
    path = run_dir / ERROR_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(f"--- {datetime.now(UTC).isoformat(timespec='seconds')} {what}\n")
        fh.write(redact("".join(traceback.format_exception(exc))))
    return path
