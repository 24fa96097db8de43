""":func:`check_metric`: a metric computed the way the runner computes it, twice."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch

from bench.contract import LatentVariableModel
from bench.data import Split
from bench.evaluation import EvalContext
from bench.formats import is_finite_number
from bench.specs import MetricSpec, MetricValue
from bench.suites import EvalSettings
from bench.testing.model_check import model_mode
from bench.testing.violations import ViolationReport


def check_metric(
    spec: MetricSpec,
    model: LatentVariableModel,
    split: Split,
    *,
    settings: EvalSettings | None = None,
    train: Split | None = None,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> MetricValue:
    """Compute a metric the way the runner does (an :class:`~bench.evaluation.EvalContext`
    over ``split``) and check it:

    - the spec has a valid ``direction`` (``"min"`` or ``"max"``);
    - ``compute`` returns a :class:`~bench.specs.MetricValue`;
    - its value is a finite number, a list of finite numbers, or None;
    - its settings are a JSON-serialisable dict (they are written to run records);
    - a second computation with the same seed gives the same value (runs are reproducible).

    Args:
        spec: the metric's registered spec.
        model: a model keeping the contract (trained or not).
        split: the evaluation split, e.g. a fixture's ``test``.
        settings: estimator settings; small ones (K = 5) by default.
        train: the training split, for metrics that fit on it (the linear probe).
        device: where ``model`` and ``split`` live.
        seed: the run seed the context derives its generators from.

    Returns:
        The metric's value.

    Raises:
        ContractCheckError: listing every violation.
    """
    report = ViolationReport()
    if spec.direction not in ("min", "max"):
        report.add("direction", "'min' or 'max'", repr(spec.direction))
    settings = settings or EvalSettings(iw_samples=5, batch_size=64, probe_train_size=500)
    device = torch.device(device)

    def compute() -> Any:
        return spec.compute(EvalContext(model, split, settings, device, seed=seed, train=train))

    with model_mode(model, train=False):
        value = _check_computations(report, spec, compute)
    report.raise_if_any(f"metric {spec.name!r}")
    return value


def _check_computations(
    report: ViolationReport, spec: MetricSpec, compute: Callable[[], Any]
) -> Any:
    """The first computation's value, checked, and the same again from a second one."""
    ok, value = report.call(f"{spec.name}.compute(ctx)", compute)
    if ok and not isinstance(value, MetricValue):
        report.add(f"{spec.name}.compute(ctx)", "a MetricValue", type(value).__name__)
    elif ok:
        _check_metric_value(report, spec.name, value)
        again = report.call(f"{spec.name}.compute(ctx) again", compute)[1]
        if isinstance(again, MetricValue) and again.value != value.value:
            report.add(
                f"{spec.name}.compute(ctx) with the same seed",
                f"the same value {value.value!r}",
                repr(again.value),
            )
    return value


def _check_metric_value(report: ViolationReport, name: str, value: MetricValue) -> None:
    v = value.value
    where = f"{name} value"
    if v is None:
        pass
    elif isinstance(v, list):
        if not all(is_finite_number(x) for x in v):
            report.add(where, "a list of finite numbers", v)
    elif not is_finite_number(v):
        report.add(where, "a finite number, a list of them, or None", repr(v))
    if not isinstance(value.settings, dict):
        report.add(f"{name} settings", "a dict", type(value.settings).__name__)
        return
    try:
        json.dumps(value.settings)
    except (TypeError, ValueError) as exc:
        report.add(f"{name} settings", "JSON-serialisable values", exc)
