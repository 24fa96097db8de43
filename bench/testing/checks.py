"""Contract checks for plugin items. Each runs the item the way the harness does, collects every
violation (what was called, what was expected, what came back) and raises one
:class:`ContractCheckError` listing them all, so a plugin author fixes everything in one round.

Each check lives in its own module (``model_check``, ``objective_check``, ``metric_check``,
``dataset_check``); this module gathers them, as it did when it held them all.
"""

from bench.testing.dataset_check import check_dataset
from bench.testing.host_reads import HostReads
from bench.testing.metric_check import check_metric
from bench.testing.model_check import check_model
from bench.testing.objective_check import check_objective
from bench.testing.violations import ContractCheckError, Violation

__all__ = [
    "ContractCheckError",
    "HostReads",
    "Violation",
    "check_dataset",
    "check_metric",
    "check_model",
    "check_objective",
]
