"""collapse-bench: a benchmark harness for latent-variable collapse in VAEs."""

from bench.contract import LatentVariableModel
from bench.data import DataInfo, DataSplits, TensorSplit
from bench.errors import BenchError, StopRun
from bench.hookspecs import hookimpl
from bench.specs import (
    DatasetSpec,
    MetricSpec,
    MetricValue,
    ModelSpec,
    Objective,
    ObjectiveSpec,
    Param,
    ReporterSpec,
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
    "MetricSpec",
    "MetricValue",
    "ModelSpec",
    "Objective",
    "ObjectiveSpec",
    "Param",
    "ReporterSpec",
    "StopRun",
    "Suite",
    "TensorSplit",
    "hookimpl",
]
