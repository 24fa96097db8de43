"""A full, read-only or size-limited disk: the disk's fault, not the run's.

Writing a checkpoint, a record or a log can fail with ``ENOSPC`` (no space), ``EDQUOT``
(quota), ``EROFS`` (read-only file system), ``EFBIG`` (a file-size limit, ``ulimit -f``) or
``EACCES``/``EPERM`` (a folder made read-only). No cell would do better, so the suite stops:
:class:`DiskError` carries the path and the error, and ``bench run`` prints it in one line,
writes the leaderboard of the runs that finished where it still can, and says how
``--resume`` continues (exit code 1). torch's own writer hides the ``OSError`` behind
``enforce fail at inline_container.cc``; :func:`disk_error` finds it.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

# Always the disk's: no space, no quota, a read-only file system, a file-size limit.
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
# The disk's when the path is in the folder being written (elsewhere: a plugin's own file).
PERMISSION_ERRNOS = {errno.EACCES, errno.EPERM}


class DiskError(Exception):
    """Writing ``path`` failed with ``errno`` (see :data:`DISK_ERRNOS`)."""

    def __init__(self, path: str, code: int, strerror: str) -> None:
        super().__init__(path, code, strerror)
        self.path, self.errno, self.strerror = path, code, strerror
        self.board: str | None = None  # the finished runs' leaderboard, once written

    def __str__(self) -> str:
        name = errno.errorcode.get(self.errno, str(self.errno))
        text = f"cannot write {self.path}: {self.strerror} ({name})"
        if self.board:
            text += f"; the finished runs' leaderboard: {self.board}"
        return text


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling, innermost last."""
    out: list[BaseException] = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def disk_error(exc: BaseException, folder: Path | None = None) -> DiskError | None:
    """The :class:`DiskError` behind ``exc``, if a disk error is in its chain; ``folder`` is
    the folder being written (named when the error has no path, and where a permission
    error counts as the disk's)."""
    for e in _chain(exc):
        if isinstance(e, DiskError):
            return e
        if not isinstance(e, OSError) or e.errno is None:
            continue
        path = e.filename
        if e.errno in PERMISSION_ERRNOS and not _inside(path, folder):
            continue
        if e.errno in DISK_ERRNOS | PERMISSION_ERRNOS:
            shown = os.fsdecode(path) if path is not None else f"a file in {folder or '?'}"
            return DiskError(shown, e.errno, e.strerror or os.strerror(e.errno))
    return None


def _inside(path: str | bytes | None, folder: Path | None) -> bool:
    if path is None or folder is None:
        return False
    return Path(os.fsdecode(path)).resolve().is_relative_to(folder.resolve())
