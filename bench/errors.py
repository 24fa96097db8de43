"""Exceptions. Anything derived from BenchError is the user's to fix: the CLI prints one line
and exits with code 2 instead of a traceback."""


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


class StopRun(Exception):
    """Raised from an ``on_epoch_end`` hook to end a run early (e.g. an Optuna pruner).

    ``status`` becomes the run record's status ("pruned", "stopped", ...).
    """

    def __init__(self, reason: str, status: str = "stopped") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
