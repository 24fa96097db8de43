"""Hyperparameter tuning with Optuna: one study per (suite, scale, dataset, model, objective).

A built-in plugin: its ``bench tune`` command registers through ``register_commands`` like any
plugin's. Modules, in the order a trial meets them:

- ``targets``: the suite rows to tune, each one study, and their study names.
- ``space``: search spaces from the models' and objectives' ``Param`` ranges, narrowed or fixed
  by the suite and by a ``--space`` TOML file.
- ``storage``: the journal file or PostgreSQL, the claim lock, heartbeats, retrying lost trials.
- ``trials``: the plugin that reports each epoch to Optuna and prunes; counting trial outcomes.
- ``worker``: claims, runs and tells trials until a study holds ``--n-trials`` of them.
- ``leaderboard``: re-trains the best trials over the suite's seeds (``bench leaderboard --tuned``).
- ``plan``: the command's arguments, what they resolve to, and running the studies here.
- ``command``: the ``bench tune`` command and its ``--workers N`` processes.
- ``ray``: ``--ray``, the workers as Ray tasks on a cluster (imported only then).
"""

from typing import TYPE_CHECKING

from bench.lazy import lazy_getattr
from bench.tune.command import register_commands

if TYPE_CHECKING:
    from bench.tune.leaderboard import TUNED_SUFFIX, tuned_leaderboard
    from bench.tune.space import (
        BUDGET_PARAMS,
        Dimension,
        cell_with,
        check_space,
        load_space_file,
        search_space,
        study_budget,
        suggest_values,
    )
    from bench.tune.storage import STORAGE_ENV, OpenedStorage, open_storage, redact
    from bench.tune.targets import Target, select_targets
    from bench.tune.trials import counts
    from bench.tune.worker import TuneSettings, Worker

# Imported on first use: the plugin registers ``bench tune`` without optuna, the runner or the
# trial machinery (``bench --help``). No ``__dir__``: pluggy reads every name dir() lists.
_EXPORTS: dict[str, str] = {
    "TUNED_SUFFIX": "bench.tune.leaderboard",
    "tuned_leaderboard": "bench.tune.leaderboard",
    "BUDGET_PARAMS": "bench.tune.space",
    "Dimension": "bench.tune.space",
    "cell_with": "bench.tune.space",
    "check_space": "bench.tune.space",
    "load_space_file": "bench.tune.space",
    "search_space": "bench.tune.space",
    "study_budget": "bench.tune.space",
    "suggest_values": "bench.tune.space",
    "OpenedStorage": "bench.tune.storage",
    "STORAGE_ENV": "bench.tune.storage",
    "open_storage": "bench.tune.storage",
    "redact": "bench.tune.storage",
    "Target": "bench.tune.targets",
    "select_targets": "bench.tune.targets",
    "counts": "bench.tune.trials",
    "TuneSettings": "bench.tune.worker",
    "Worker": "bench.tune.worker",
}
__getattr__ = lazy_getattr(globals(), _EXPORTS)

__all__ = [
    "BUDGET_PARAMS",
    "STORAGE_ENV",
    "TUNED_SUFFIX",
    "Dimension",
    "OpenedStorage",
    "Target",
    "TuneSettings",
    "Worker",
    "cell_with",
    "check_space",
    "counts",
    "load_space_file",
    "open_storage",
    "redact",
    "register_commands",
    "search_space",
    "select_targets",
    "study_budget",
    "suggest_values",
    "tuned_leaderboard",
]
