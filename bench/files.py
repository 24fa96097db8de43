"""Files written whole or not at all: every writer in the harness goes through these, so a kill
or a full disk never leaves half a record, board or checkpoint behind."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` into a uniquely named temporary file beside ``path``, then rename it onto
    ``path``: readers never see half a file, and two writers of one path never share a
    temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:  # a failed write() names no file: name the one being written
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    atomic_write(path, write)


def atomic_torch_save(obj: Any, path: Path, keep_previous: bool = False) -> None:
    """``torch.save`` that replaces ``path`` only once the new file is known to be whole (its
    zip directory, written last, reads back). ``keep_previous`` keeps the file it replaces as
    ``<name>.prev`` (see :func:`previous_path`), a fallback if the new one is damaged later."""
    import torch

    def write(tmp: Path) -> None:
        # Through a Python file, so a full disk or a size limit raises its OSError (torch's
        # own writer reports only "enforce fail at inline_container.cc").
        try:
            with open(tmp, "wb") as fh:
                torch.save(obj, fh)
                fh.flush()
                os.fsync(fh.fileno())
        except RuntimeError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, OSError):
                raise OSError(cause.errno, cause.strerror, str(path)) from exc
            raise
        with zipfile.ZipFile(tmp) as archive:  # raises if the file is incomplete
            archive.namelist()
        if keep_previous and path.exists():
            os.replace(path, previous_path(path))

    atomic_write(path, write)


def previous_path(path: Path) -> Path:
    return path.with_name(path.name + ".prev")


def set_aside(path: Path) -> Path:
    """Rename a damaged file to ``<name>.corrupt`` (``.corrupt.1``... if taken); returns it."""
    target = path.with_name(path.name + ".corrupt")
    n = 0
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt.{n}")
    os.replace(path, target)
    return target
