"""One process at a time per results folder: ``bench run`` and ``bench tune`` hold a lock on
the folder they write for as long as they run.

The lock is an OS file lock (``filelock``): the kernel releases it when its holder exits, even
by ``kill -9``, so a stale lock never needs cleaning up. Who holds it (pid, host, command with
its passwords hidden, start time) is kept beside it, written once the lock is taken, so a
second process can say whom it is waiting for. Both files sit next to the folder
(``results/<suite>/.<scale>.lock``), not in it, so whatever lists the run folders never meets
them.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from bench.errors import BenchError
from bench.files import atomic_write_text
from bench.secrets import redact, redact_argv


def lock_paths(folder: Path) -> tuple[Path, Path]:
    """The lock file of ``folder`` and the file naming its holder."""
    return folder.parent / f".{folder.name}.lock", folder.parent / f".{folder.name}.holder.json"


class LockedError(BenchError):
    """Another process holds the results folder."""


HOLDER_WAIT_S = 2.0  # how long a refused process waits for the holder to name itself


def _holder(folder: Path) -> dict | None:
    """The holder's details, if written and (on this host) by a process that is alive: a
    holder killed with ``kill -9`` leaves its file behind until the next one rewrites it."""
    try:
        info = json.loads(lock_paths(folder)[1].read_text(encoding="utf-8"))
        pid, host = int(info["pid"]), str(info["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if host == socket.gethostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, another user's
    return info


def _holder_text(folder: Path) -> str:
    # The holder writes its details just after it takes the lock: give it a moment.
    deadline = time.monotonic() + HOLDER_WAIT_S
    while (info := _holder(folder)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if info is None:
        return "a process that has not written its details yet"
    # redact: a holder file another version wrote may still name a password.
    return redact(
        f"pid {info['pid']} on {info['host']}, started {info['started']}: {info['command']}"
    )


@contextlib.contextmanager
def results_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s lock for the block; raise :class:`LockedError` at once if another
    process holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    lock_file, holder_file = lock_paths(folder)
    for path in (lock_file, holder_file):
        if path.is_symlink():  # opening the lock truncates what a link points to
            raise BenchError(
                f"{path} is a symbolic link (to {path.readlink()}); a lock is never taken "
                "through one: remove it"
            )
    lock = FileLock(str(lock_file), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise LockedError(
            f"{folder} is in use by {_holder_text(folder)}; wait for it to finish or use "
            "another --results-dir"
        ) from None
    try:
        atomic_write_text(
            holder_file,
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "started": datetime.now(UTC).isoformat(timespec="seconds"),
                    "command": " ".join(redact_argv(["bench", *sys.argv[1:]])),
                }
            ),
        )
        yield
    finally:
        holder_file.unlink(missing_ok=True)
        lock.release()
