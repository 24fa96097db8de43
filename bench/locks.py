"""One process at a time per results folder: ``bench run`` and ``bench tune`` hold a lock on
the folder they write for as long as they run.

The lock is an OS file lock (``filelock``): the kernel releases it when its holder exits, even
by ``kill -9``, so a stale lock never needs cleaning up. Who holds it (pid, host, command, start
time) is kept beside it, written once the lock is taken, so a second process can say whom it
is waiting for. Both files sit next to the folder (``results/<suite>/.<scale>.lock``), not in
it, so whatever lists the run folders never meets them.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from bench.errors import BenchError
from bench.records import atomic_write_text


def lock_paths(folder: Path) -> tuple[Path, Path]:
    """The lock file of ``folder`` and the file naming its holder."""
    return folder.parent / f".{folder.name}.lock", folder.parent / f".{folder.name}.holder.json"


class LockedError(BenchError):
    """Another process holds the results folder."""


def _holder_text(folder: Path) -> str:
    try:
        info = json.loads(lock_paths(folder)[1].read_text())
        return f"pid {info['pid']} on {info['host']}, started {info['started']}: {info['command']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not written its details yet"


@contextlib.contextmanager
def results_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s lock for the block; raise :class:`LockedError` at once if another
    process holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    lock_file, holder_file = lock_paths(folder)
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
                    "command": " ".join(["bench", *sys.argv[1:]]),
                }
            ),
        )
        yield
    finally:
        holder_file.unlink(missing_ok=True)
        lock.release()
