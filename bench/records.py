"""Run records: one versioned JSON file per finished (or failed) run, written atomically."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import zipfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

SCHEMA_VERSION = 1
RECORD_FILE = "record.json"
RESULTS_DIR_ENV = "BENCH_RESULTS_DIR"
PACKAGES = ("collapse-bench", "torch", "torchvision", "numpy", "polars", "pluggy", "optuna")


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
        torch.save(obj, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
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


def write_record(path: Path, record: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


def read_record(path: Path) -> dict[str, Any]:
    """A run record; :class:`DamagedRecord` if the file does not parse as one."""
    try:
        record = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DamagedRecord(f"{path}: not a run record ({type(exc).__name__}: {exc})") from None
    if not isinstance(record, dict) or not {"cell", "status", "run_id"} <= record.keys():
        raise DamagedRecord(f"{path}: not a run record (keys missing)")
    return record


class DamagedRecord(ValueError):
    """A record file that exists but does not parse (a crash or a full disk while writing)."""


def read_epoch_log(path: Path) -> list[dict[str, Any]]:
    """The per-epoch log; a line that does not parse (the last one, cut off by a kill) is
    dropped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "epoch" in entry:
            out.append(entry)
    return out


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=5,
    ).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def device_name(device: torch.device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return (
        f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch threads)"
    )


def machine_info() -> dict[str, Any]:
    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "hostname": platform.node(),
        "cuda_available": torch.cuda.is_available(),
    }


def results_root(value: str | Path | None = None) -> Path:
    """The results folder: an explicit value, else ``BENCH_RESULTS_DIR``, else ``./results``."""
    return Path(value or os.environ.get(RESULTS_DIR_ENV) or "results")
