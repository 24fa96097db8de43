"""What the contract checks report: one broken rule (:class:`Violation`), the error that lists
them all (:class:`ContractCheckError`), and the report a check collects them in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class Violation:
    """One broken rule: ``where`` (the call), ``expected`` and ``actual``."""

    where: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"{self.where}: expected {self.expected}, got {self.actual}"


class ContractCheckError(AssertionError):
    """A plugin item failed one of the ``check_*`` functions (an AssertionError, so pytest
    reports it as a failed test); ``violations`` lists every broken rule.

    Formerly ``bench.testing.ContractError``, a deprecated alias that still imports. The
    runner's own check before training raises :class:`bench.errors.ModelContractError`."""

    def __init__(self, subject: str, violations: Sequence[Violation]) -> None:
        self.violations = list(violations)
        lines = "\n".join(f"  - {v}" for v in self.violations)
        n = len(self.violations)
        super().__init__(f"{subject} breaks the contract in {n} way{'s' * (n != 1)}:\n{lines}")


class ViolationReport:
    """The violations one check has found so far; raised together at the points where the
    check cannot go on, and at its end."""

    def __init__(self) -> None:
        self.violations: list[Violation] = []

    def add(self, where: str, expected: str, actual: Any) -> None:
        self.violations.append(Violation(where, expected, str(actual)))

    def shape(self, where: str, value: Any, expected: tuple[int, ...]) -> bool:
        """Record a violation unless ``value`` is a tensor of shape ``expected``."""
        if not isinstance(value, Tensor):
            self.add(where, f"a tensor of shape {list(expected)}", type(value).__name__)
            return False
        if tuple(value.shape) != expected:
            self.add(where, f"shape {list(expected)}", f"shape {list(value.shape)}")
            return False
        return True

    def finite(self, where: str, value: Tensor) -> None:
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            self.add(where, "finite values", f"{bad} of {value.numel()} not finite")

    def call(self, where: str, fn: Callable[[], Any]) -> tuple[bool, Any]:
        """``(True, fn())``, or ``(False, None)`` with the exception recorded as a violation
        (a plugin's bug is one more line of the report, not the end of the check)."""
        try:
            return True, fn()
        except Exception as exc:
            self.add(where, "no exception", f"{type(exc).__name__}: {exc}")
            return False, None

    def raise_if_any(self, subject: str) -> None:
        if self.violations:
            raise ContractCheckError(subject, self.violations)
