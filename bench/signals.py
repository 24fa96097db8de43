"""SIGTERM and SIGHUP stop a command the way Ctrl-C does.

Schedulers (Slurm, Kubernetes, Ray) stop a job with SIGTERM, and a closed terminal sends
SIGHUP. Either becomes :class:`Terminated`, a :class:`KeyboardInterrupt`, so everything that
cleans up after Ctrl-C runs for them too: the lock and its holder file are released, the runs
that finished get their leaderboard, and the command prints how to continue. The exit code is
the conventional ``128 + signal number`` (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """The process got SIGTERM or SIGHUP (``signum``)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# The stop signal this process received, if any: a library that catches the interrupt and
# raises a KeyboardInterrupt of its own (Ray's blocking calls can) loses Terminated.signum.
_received: list[int] = []


def _stop(signum: int, frame: Any) -> None:
    # A second signal would cut the cleanup short (the leaderboard, the lock): from now on
    # these are ignored; SIGKILL still ends the process.
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    _received.append(signum)
    raise Terminated(signum)


def stop_on_signals() -> dict[int, Any]:
    """SIGTERM and SIGHUP raise :class:`Terminated` in the main thread from now on; returns
    the handlers they had (nothing changes outside the main thread, where Python cannot
    install handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, _stop) for sig in STOP_SIGNALS}


@contextlib.contextmanager
def stopping_on_signals() -> Iterator[None]:
    """:func:`stop_on_signals` for the block; the previous handlers come back after it."""
    previous = stop_on_signals()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def ignore_stop_signals() -> None:
    """For worker processes that their parent stops: SIGINT, SIGTERM and SIGHUP sent to the
    whole process group (Ctrl-C, a scheduler) reach the parent, which stops them itself."""
    for sig in (signal.SIGINT, *STOP_SIGNALS):
        signal.signal(sig, signal.SIG_IGN)


def exit_code(interrupt: BaseException) -> int:
    """128 + the signal that stopped the process (SIGINT for Ctrl-C)."""
    signum = getattr(interrupt, "signum", None) or (_received[0] if _received else None)
    return 128 + int(signum or signal.SIGINT)
