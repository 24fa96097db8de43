"""The Optuna journal file, kept readable when a writer dies mid-record.

Optuna appends each record as one JSON line. A writer killed mid-write (``kill -9``, a full
disk) leaves the last line cut off; Optuna reads past a cut-off last line, but the next append
lands on the same line, and from then on every reader fails with ``JSONDecodeError``. Optuna's
lock serializes the appends but does not repair the file, so :class:`RepairingJournalBackend`
does, under that same lock: before every append (and once when the journal is opened) a torn
last record is cut off and kept in ``<journal>.corrupt``, and the journal continues from the
last whole record, with one warning line. A journal already damaged that way (a cut-off record
with a whole one appended to it, by an earlier version) is repaired when opened: the whole
record is kept, the cut-off bytes go to ``.corrupt``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import get_lock_file

from bench.files import atomic_write_bytes

CORRUPT_SUFFIX = ".corrupt"


class RepairingJournalBackend(JournalFileBackend):
    """Optuna's journal file backend that repairs a torn last record before writing (see the
    module's description); ``warn`` hears one line per repair."""

    def __init__(self, file_path: str, lock_obj: Any, warn: Callable[[str], None]) -> None:
        super().__init__(file_path, lock_obj=lock_obj)
        self.warn = warn
        with get_lock_file(self._lock):
            repair_journal(Path(file_path), warn, whole=True)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        # Optuna's append_logs, with the repair under the same lock (which is not reentrant).
        with get_lock_file(self._lock):
            repair_journal(Path(self._file_path), self.warn)
            text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            with open(self._file_path, "ab") as f:
                f.write(text.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())


def _ends_whole(path: Path) -> bool:
    """The file is empty or ends with a newline: its last record is whole (cheap: one byte)."""
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() == 0:
            return True
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def _whole_suffix(line: bytes) -> bytes | None:
    """The longest end of ``line`` that is one JSON object (a record appended to cut-off
    bytes), None if there is none."""
    start = line.find(b"{", 1)
    while start != -1:
        try:
            if isinstance(json.loads(line[start:]), dict):
                return line[start:]
        except ValueError:
            pass
        start = line.find(b"{", start + 1)
    return None


def _split(data: bytes) -> tuple[bytes, bytes]:
    """``data`` as (whole records, bytes set aside): every line that does not parse loses its
    cut-off start (or all of it), and an unfinished last line goes."""
    kept, aside = [], []
    lines = data.split(b"\n")
    for line in lines[:-1]:  # each ended with a newline
        try:
            json.loads(line)
            kept.append(line + b"\n")
            continue
        except ValueError:
            pass
        whole = _whole_suffix(line)
        if whole is None:
            aside.append(line + b"\n")
        else:
            aside.append(line[: len(line) - len(whole)] + b"\n")
            kept.append(whole + b"\n")
    if lines[-1]:
        aside.append(lines[-1])
    return b"".join(kept), b"".join(aside)


def repair_journal(path: Path, warn: Callable[[str], None], whole: bool = False) -> None:
    """Cut a torn last record off ``path`` (and with ``whole``, mend every damaged line),
    keeping the bytes removed in ``<path>.corrupt``; one ``warn`` line when it did. Call it
    under the journal's lock."""
    if not path.exists() or (not whole and _ends_whole(path)):
        return
    data = path.read_bytes()
    kept, aside = _split(data)
    if not aside:
        return
    corrupt = path.with_name(path.name + CORRUPT_SUFFIX)
    if corrupt.is_symlink():  # a shared folder's link: never appended through
        corrupt.unlink()
    with corrupt.open("ab") as fh:  # several repairs over time: all of them kept
        fh.write(aside + (b"" if aside.endswith(b"\n") else b"\n"))
    if data.startswith(kept):  # only the end was torn: cut it off in place
        os.truncate(path, len(kept))
    else:
        atomic_write_bytes(path, kept)
    warn(
        f"journal {path}: a record was cut off (a writer died mid-write); its {len(aside)} "
        f"bytes are kept in {corrupt.name}, and the journal continues from the last whole record"
    )
