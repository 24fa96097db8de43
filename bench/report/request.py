"""Whether the ``report`` reporter writes: asked for by ``bench run --report`` (this process's
next boards) or by ``BENCH_REPORT=1``."""

from __future__ import annotations

import os
from contextvars import ContextVar

REPORT_ENV = "BENCH_REPORT"
SITE_DIR = "site"  # the report's folder inside the leaderboard folder
_REQUESTED: ContextVar[bool] = ContextVar("bench_report_requested", default=False)


def request(on: bool) -> None:
    """``bench run --report``: the ``report`` reporter writes this process's boards."""
    _REQUESTED.set(on)


def requested() -> bool:
    """Whether the ``report`` reporter writes: ``bench run --report`` or ``BENCH_REPORT=1``."""
    return _REQUESTED.get() or os.environ.get(REPORT_ENV, "").lower() in {"1", "true", "yes"}
