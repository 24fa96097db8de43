"""collapse-bench: a benchmark harness for latent-variable collapse in VAEs."""

from bench.contract import LatentVariableModel
from bench.data import DataInfo, DataSplits, TensorSplit
from bench.errors import BenchError, StopRun
from bench.hookspecs import hookimpl
from bench.methods import Method, StepContext, TrainingBudget
from bench.objectives import ScheduledObjective
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

__all__ = [
    "BenchError",
    "Budget",
    "DataInfo",
    "DataSplits",
    "DatasetSpec",
    "EvalSettings",
    "Group",
    "LatentVariableModel",
    "Method",
    "MetricSpec",
    "MetricValue",
    "ModelSpec",
    "Objective",
    "ObjectiveSpec",
    "Param",
    "ReporterSpec",
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
