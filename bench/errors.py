"""Exceptions. Anything derived from BenchError is the user's to fix: the CLI prints one line
and exits with code 2 instead of a traceback."""

import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any


def print_warning(msg: str) -> None:
    """One warning line on stderr (shown even with ``--quiet``)."""
    from bench.secrets import redact

    print(f"warning: {redact(msg)}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """A user-facing error: bad input, missing data, unknown name."""


class ConfigError(BenchError):
    """A suite, TOML file or parameter is invalid."""


class DataError(BenchError):
    """A data set could not be found or read."""


class PluginError(BenchError):
    """A plugin failed to load or one of its hooks raised."""


class UnknownNameError(BenchError):
    """A registry lookup missed; the message carries did-you-mean suggestions."""


class ModelContractError(BenchError):
    """The runner's preflight put a real batch through a model and it broke the model contract
    (shapes, finite values): the run stops before training with one line.

    Formerly ``bench.errors.ContractError``, a deprecated alias that still imports. Plugin
    authors' tests raise :class:`bench.testing.ContractCheckError` instead."""


class DivergedError(Exception):
    """The training loss became NaN or infinite: the run is recorded as ``diverged`` and the
    suite goes on."""


class FailFast(Exception):
    """``--fail-fast``: a run failed, so the suite stops (the message is its run id)."""


class StopRun(Exception):
    """Raised from an ``on_epoch_end`` hook to end a run early (e.g. an Optuna pruner).

    ``status`` becomes the run record's status ("pruned", "stopped", ...).
    """

    def __init__(self, reason: str, status: str = "stopped") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def deprecated_aliases(
    module: str, renamed: Mapping[str, str], namespace: Mapping[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` under which each old name in ``renamed`` (old -> new) still
    imports as the object now named new, with a DeprecationWarning naming the replacement."""

    def __getattr__(name: str) -> Any:
        if name not in renamed:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new = renamed[name]
        warnings.warn(
            f"{module}.{name} is deprecated; use {module}.{new}", DeprecationWarning, stacklevel=2
        )
        return namespace[new]

    return __getattr__


__getattr__ = deprecated_aliases(__name__, {"ContractError": "ModelContractError"}, globals())
