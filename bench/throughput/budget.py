"""``--budget-s``: a throughput run that stops within a wall-clock budget.

The run is a list of parts in order of how much they tell (see ``report.plan``). Before a
part starts, its cost is estimated from what was measured so far (a step's time, the longest
compilation); a part that would not fit is left out and listed in the report. Timing loops
inside a part also look at the deadline and take fewer windows rather than overrun it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

# Kept free at the end for writing the report and for estimates that were too low.
RESERVE_FRACTION = 0.1
# A compilation's cost before any was seen (seconds): inductor on a cold cache.
COMPILE_GUESS_S = {"cuda": 60.0, "cpu": 120.0}


def process_age() -> float:
    """Seconds since this process started (its interpreter start and imports count against a
    budget too); 0 where /proc is not there."""
    import os
    from pathlib import Path

    try:
        fields = Path("/proc/self/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start, in ticks
        uptime = float(Path("/proc/uptime").read_text(encoding="utf-8").split()[0])
        return max(0.0, uptime - started)
    except (OSError, ValueError, IndexError):
        return 0.0


@dataclass
class TimeBudget:
    """``seconds`` from ``started`` (None: no limit), and what was learnt on the way."""

    seconds: float | None = None
    started: float = field(default_factory=time.perf_counter)
    left_out: list[dict[str, Any]] = field(default_factory=list)
    call_s: dict[tuple[str, str, int], float] = field(default_factory=dict)
    compile_s: float | None = None

    @property
    def deadline(self) -> float | None:
        """The latest moment (``time.perf_counter``) a timing loop may run to."""
        if self.seconds is None:
            return None
        return self.started + self.seconds * (1 - RESERVE_FRACTION)

    def left(self) -> float:
        if self.deadline is None:
            return math.inf
        return self.deadline - time.perf_counter()

    def spent(self) -> float:
        return time.perf_counter() - self.started

    def allows(self, part: str, estimate_s: float) -> bool:
        """Whether ``part`` (expected to take ``estimate_s``) fits; if not it is recorded as
        left out."""
        left = self.left()
        if estimate_s <= left:
            return True
        self.left_out.append(
            {"part": part, "estimate_s": round(estimate_s, 1), "left_s": round(max(left, 0), 1)}
        )
        return False

    def learn_call(self, model: str, mode: str, batch: int, seconds: float) -> None:
        """One call of ``mode`` (train, eval) of ``model`` at ``batch`` takes ``seconds``."""
        key = (model, mode, batch)
        self.call_s[key] = min(seconds, self.call_s.get(key, math.inf))

    def learn_compile(self, seconds: float) -> None:
        self.compile_s = max(seconds, self.compile_s or 0.0)

    def call_estimate(self, model: str, mode: str, batch: int) -> float | None:
        """Seconds per call at ``batch``, scaled linearly from the nearest batch measured."""
        known = {b: t for (m, md, b), t in self.call_s.items() if m == model and md == mode}
        if not known:
            return None
        nearest = min(known, key=lambda b: abs(math.log(b / batch)))
        return known[nearest] * batch / nearest

    def compile_estimate(self, device_type: str) -> float:
        if self.compile_s is not None:
            return self.compile_s
        return COMPILE_GUESS_S.get(device_type, COMPILE_GUESS_S["cpu"])

    def summary(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "spent_s": round(self.spent(), 1),
            "left_out": self.left_out,
        }
