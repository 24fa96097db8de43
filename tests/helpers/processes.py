"""Waiting on what another process (a `bench` run, a worker) does."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

# Generous: on a shared 2-core machine a process that needs 3 s of CPU can take a minute.
TIMEOUT_S = 600


def wait_for(
    check: Callable[[], T],
    what: str,
    proc: subprocess.Popen | None = None,
    timeout: float = TIMEOUT_S,
) -> T:
    """Poll ``check`` every 0.1 s until it returns something true, and return that. The test
    fails if ``proc`` ends first (with its stderr, when piped) or after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = check()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            pytest.fail(f"exited ({proc.returncode}) before {what}: {err}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")
