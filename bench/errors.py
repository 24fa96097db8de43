"""Exceptions. Anything derived from BenchError is the user's to fix: the CLI prints one line
and exits with code 2 instead of a traceback."""

import sys


def print_warning(msg: str) -> None:
    """One warning line on stderr (shown even with ``--quiet``)."""
    print(f"warning: {msg}", file=sys.stderr, flush=True)


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


class ContractError(BenchError):
    """A model does not keep the model contract (shapes, finite values) on a real batch."""


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
