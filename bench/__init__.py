"""collapse-bench: a benchmark harness for latent-variable collapse in VAEs.

The names below are imported on first use (PEP 562), so that ``import bench.x`` and the
commands that need no model (``bench --help``, ``bench ls``, ``bench show``) do not import
torch. ``from bench import ModelSpec`` and ``bench.ModelSpec`` work as with plain imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.lazy import lazy_getattr

if TYPE_CHECKING:
    from bench.contract import LatentVariableModel
    from bench.data import DataInfo, DataSplits, TensorSplit
    from bench.errors import BenchError, StopRun
    from bench.hookspecs import hookimpl
    from bench.leaderboard import Leaderboard
    from bench.listener import EpochResult, Listener
    from bench.methods import Method, StepContext, TrainingBudget
    from bench.objectives import ScheduledObjective
    from bench.records import MetricResult, RunError, RunRecord
    from bench.specs import (
        DatasetSpec,
        MetricSpec,
        MetricValue,
        ModelSpec,
        Objective,
        ObjectiveSpec,
        Param,
        ReporterSpec,
        choice_param,
        float_param,
        int_param,
    )
    from bench.suites import Budget, EvalSettings, Group, Suite

__version__ = "0.1.0"

# Each public name and the module that defines it (and documents it).
_EXPORTS: dict[str, str] = {
    "LatentVariableModel": "bench.contract",
    "DataInfo": "bench.data",
    "DataSplits": "bench.data",
    "TensorSplit": "bench.data",
    "BenchError": "bench.errors",
    "StopRun": "bench.errors",
    "hookimpl": "bench.hookspecs",
    "Leaderboard": "bench.leaderboard",
    "EpochResult": "bench.listener",
    "Listener": "bench.listener",
    "MetricResult": "bench.records",
    "RunError": "bench.records",
    "RunRecord": "bench.records",
    "Method": "bench.methods",
    "StepContext": "bench.methods",
    "TrainingBudget": "bench.methods",
    "ScheduledObjective": "bench.objectives",
    "DatasetSpec": "bench.specs",
    "MetricSpec": "bench.specs",
    "MetricValue": "bench.specs",
    "ModelSpec": "bench.specs",
    "Objective": "bench.specs",
    "ObjectiveSpec": "bench.specs",
    "Param": "bench.specs",
    "ReporterSpec": "bench.specs",
    "choice_param": "bench.specs",
    "float_param": "bench.specs",
    "int_param": "bench.specs",
    "Budget": "bench.suites",
    "EvalSettings": "bench.suites",
    "Group": "bench.suites",
    "Suite": "bench.suites",
}

__all__ = [
    "BenchError",
    "Budget",
    "DataInfo",
    "DataSplits",
    "DatasetSpec",
    "EpochResult",
    "EvalSettings",
    "Group",
    "LatentVariableModel",
    "Leaderboard",
    "Listener",
    "Method",
    "MetricResult",
    "MetricSpec",
    "MetricValue",
    "ModelSpec",
    "Objective",
    "ObjectiveSpec",
    "Param",
    "ReporterSpec",
    "RunError",
    "RunRecord",
    "ScheduledObjective",
    "StepContext",
    "StopRun",
    "Suite",
    "TensorSplit",
    "TrainingBudget",
    "choice_param",
    "float_param",
    "hookimpl",
    "int_param",
]


__getattr__ = lazy_getattr(globals(), _EXPORTS)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
