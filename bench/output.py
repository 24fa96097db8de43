"""Standard streams that may be closed or cut off: ``bench run ... >&-`` and
``bench ls models | head -1``.

A closed stdout would make the first file ``bench`` opens descriptor 1, which a worker process
then inherits as its stdout, so a closed descriptor 0, 1 or 2 is first pointed at
``/dev/null``. Output that nobody reads any more (the reader of a pipe went away) is dropped
from then on, instead of a ``BrokenPipeError`` traceback: the command finishes its work and
its exit code still says how the runs went.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO


def _to_devnull(fd: int) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    if null != fd:
        os.dup2(null, fd)
        os.close(null)


class _PipeSafeFile(io.FileIO):
    """Descriptor ``fd``, written raw; once its reader is gone, writes go to ``/dev/null``."""

    def write(self, data: Any) -> int:
        try:
            return super().write(data)
        except BrokenPipeError:
            _to_devnull(self.fileno())
            return memoryview(data).nbytes


def _pipe_safe(fd: int, old: TextIO | None, errors: str) -> TextIO:
    """A text stream on ``fd`` like ``old`` (its encoding, its buffering), pipe-safe; a
    character the encoding lacks (a table's arrows under an ASCII locale) is replaced, not
    an error."""
    raw = _PipeSafeFile(fd, "wb", closefd=False)
    return io.TextIOWrapper(
        io.BufferedWriter(raw),
        encoding=getattr(old, "encoding", None) or "utf-8",
        errors=errors,
        line_buffering=bool(old is None or old.line_buffering or raw.isatty()),
    )


def _open_fds() -> None:
    """Descriptors 0, 1 and 2 open: a closed one is pointed at ``/dev/null``."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            _to_devnull(fd)


@contextlib.contextmanager
def safe_std_streams() -> Iterator[None]:
    """For the block, ``sys.stdout`` and ``sys.stderr`` survive a closed descriptor and a
    reader that went away. Streams already replaced (pytest's capture) are left alone."""
    saved = sys.stdout, sys.stderr
    real = sys.__stdout__, sys.__stderr__
    swap = [s is None or s is r for s, r in zip(saved, real, strict=True)]
    if not any(swap):
        yield
        return
    _open_fds()
    for stream in saved:
        with contextlib.suppress(Exception):
            stream.flush()  # type: ignore[union-attr]
    if swap[0]:
        sys.stdout = _pipe_safe(1, saved[0], "replace")
    if swap[1]:
        sys.stderr = _pipe_safe(2, saved[1], "backslashreplace")
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        # The streams that were there come back; a closed one stays on /dev/null.
        if swap[0] and saved[0] is not None:
            sys.stdout = saved[0]
        if swap[1] and saved[1] is not None:
            sys.stderr = saved[1]
