"""Run records: one versioned JSON file per finished (or failed) run, written atomically.

:class:`RunRecord` is the record as the harness reads and writes it. Its JSON form is what
``record.json`` holds; :meth:`RunRecord.from_json` reads every older schema through
:func:`migrate`, the one place that knows how records used to look. A record also reads like
the dict it is written as (``record["status"]``, ``record.get("metrics")``), so plugin code
written against the JSON form keeps working.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any

# Re-exported: these lived here before files.py and provenance.py held them.
from bench.files import (  # noqa: F401
    atomic_torch_save,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    previous_path,
    set_aside,
)
from bench.provenance import (  # noqa: F401
    PACKAGES,
    device_name,
    git_commit,
    machine_info,
    package_versions,
)

SCHEMA_VERSION = 2  # 2: epochs counted from 1 in record.json and epochs.jsonl
RECORD_FILE = "record.json"
EPOCH_LOG = "epochs.jsonl"
RESULTS_DIR_ENV = "BENCH_RESULTS_DIR"
SELECTED_BY = "val_neg_elbo"  # the epoch log field every run's best epoch is chosen by


@dataclass(frozen=True)
class MetricResult:
    """One metric of a run: its value, the estimator settings it was computed with, its
    direction (``"min"`` or ``"max"``), and the error when the metric raised (value None)."""

    value: Any
    settings: dict[str, Any] = field(default_factory=dict)
    direction: str | None = None
    error: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"value": self.value, "settings": self.settings, "direction": self.direction}
        if self.error:
            out["error"] = self.error
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MetricResult:
        return cls(
            data.get("value"),
            dict(data.get("settings") or {}),
            data.get("direction"),
            data.get("error") or None,
        )


@dataclass(frozen=True)
class RunError:
    """Why a run failed: the exception, the plugin (and distribution) whose code raised it,
    and the file beside the record that holds the traceback."""

    type: str
    message: str
    plugin: str | None = None
    distribution: str | None = None
    log: str = "error.log"

    @property
    def reason(self) -> str:
        """One line for the record's ``reason`` and the end-of-run summary."""
        text = f"{self.type}: {self.message}"
        if self.plugin:
            text += f" (plugin {self.plugin!r}, {self.distribution})"
        return text


@dataclass(frozen=True)
class RunRecord(Mapping[str, Any]):
    """What one run produced and everything needed to tell where it came from."""

    run_id: str
    status: str  # "finished", "failed" (errors, divergence) or a StopRun's status ("pruned")
    cell: dict[str, Any]  # Cell.as_dict()
    reason: str | None = None
    resolved: dict[str, dict[str, Any]] = field(default_factory=dict)
    fingerprint: str = ""
    metrics: dict[str, MetricResult] = field(default_factory=dict)
    epochs_trained: int = 0
    best_epoch: int = 0  # the selected epoch's number, from 1 (0: none was selected)
    selected_by: str = SELECTED_BY
    stop_reason: str | None = None
    steps: int = 0
    train_examples_per_s: float = 0.0
    train_examples_per_s_excl_compile: float = 0.0
    train_time_s: float = 0.0
    train_cpu_time_s: float = 0.0
    compile_time_s: float = 0.0
    eval_time_s: float = 0.0
    wall_time_s: float = 0.0
    accel: dict[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None
    device: str | None = None
    device_name: str | None = None
    machine: dict[str, Any] = field(default_factory=dict)
    packages: dict[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    split_sizes: dict[str, int] = field(default_factory=dict)
    # Per split: size, the split's full size and, for a subset, how it was drawn (seed, sample,
    # class counts); see bench.data.subset_record. Empty in records written before subsets
    # were random (they were the first N examples).
    subsets: dict[str, dict[str, Any]] = field(default_factory=dict)
    data_notes: str | None = None
    method_state: dict[str, Any] | None = None
    error: RunError | None = None
    # Keys this version does not know (a newer harness, a plugin's additions): kept as read.
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    # The record.json this record was read from or written to (not part of the JSON form): its
    # folder holds the run's epoch log, weights and plugin files.
    source: Path | None = field(default=None, compare=False, repr=False)

    @property
    def run_dir(self) -> Path | None:
        """The run folder, when the record came from (or went to) one."""
        return None if self.source is None else self.source.parent

    @property
    def epoch_log(self) -> list[dict[str, Any]]:
        """The run's per-epoch log (empty without a run folder or log)."""
        return [] if self.run_dir is None else read_epoch_log(self.run_dir / EPOCH_LOG)

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    def value(self, metric: str) -> Any:
        """A metric's value, None when the run has no such metric or it has no value."""
        m = self.metrics.get(metric)
        return None if m is None else m.value

    def to_json(self) -> dict[str, Any]:
        """The ``record.json`` form."""
        return dict(self._json)

    @cached_property
    def _json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("extra", "source"):
                continue
            value = getattr(self, f.name)
            if f.name == "metrics":
                value = {k: m.to_json() for k, m in value.items()}
            elif f.name == "error":
                if value is None:
                    continue
                value = asdict(value)
            out[f.name] = value
        return {**self.extra, **out}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: Path | None = None) -> RunRecord:
        """A record of any schema version (see :func:`migrate`), read from ``source``."""
        data = migrate(data)
        known = {f.name for f in fields(cls)} - {"extra", "source"}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["metrics"] = {
            k: MetricResult.from_json(m) for k, m in (data.get("metrics") or {}).items()
        }
        error = data.get("error")
        kwargs["error"] = RunError(**_known(RunError, error)) if error else None
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**kwargs, extra=extra, source=source)

    @classmethod
    def of(cls, record: RunRecord | Mapping[str, Any]) -> RunRecord:
        """``record`` itself, or the record its JSON form describes."""
        return record if isinstance(record, RunRecord) else cls.from_json(record)

    def with_(self, **changes: Any) -> RunRecord:
        """A copy with ``changes`` (the cached JSON form is not carried over)."""
        return replace(self, **changes)

    # The JSON view: a record reads like the dict it is written as.
    def __getitem__(self, key: str) -> Any:
        return self._json[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._json)

    def __len__(self) -> int:
        return len(self._json)


def _known(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def migrate(data: Mapping[str, Any]) -> dict[str, Any]:
    """A record's JSON form at :data:`SCHEMA_VERSION`, from any earlier one.

    Records of version 0 (no ``schema_version``) and early ones of version 1 (the fields below
    were added to version 1 without a new number) are completed:

    - without ``resolved`` and ``fingerprint`` (written before rows were keyed by settings),
      they are resolved against the loaded plugins' defaults, as the leaderboard did;
    - a device named only as ``device`` gives ``device_name``; no ``wall_time_s`` is 0;
    - ``best_epoch`` counted from 0 (-1 for none) is counted from 1 (0 for none).

    A version above this harness's is read as it is (unknown keys are kept).
    """
    out = dict(data)
    version = int(out.get("schema_version") or 0)
    if version > SCHEMA_VERSION:
        return out  # a newer harness wrote it: read what this one knows, keep the rest
    if version <= 1:
        out = _complete_v1(out)
        # Version 1 counted the best epoch from 0 (-1: none); version 2 from 1 (0: none), as
        # every log line, table and plot numbers epochs.
        best = out.get("best_epoch")
        out["best_epoch"] = best + 1 if isinstance(best, int) and best >= 0 else 0
    out["schema_version"] = SCHEMA_VERSION
    return out


def _complete_v1(out: dict[str, Any]) -> dict[str, Any]:
    from bench.suites import fingerprint, resolved_settings

    cell = out.get("cell") or {}
    if not out.get("resolved"):
        out["resolved"] = resolved_settings(cell)
    if not out.get("fingerprint"):
        out["fingerprint"] = fingerprint(out["resolved"])
    out["metrics"] = dict(out.get("metrics") or {})
    out.setdefault("device_name", out.get("device"))
    out.setdefault("wall_time_s", 0.0)
    return out


def write_record(path: Path, record: RunRecord | Mapping[str, Any]) -> None:
    """Write ``record`` to ``path`` whole or not at all (its JSON form)."""
    data = record.to_json() if isinstance(record, RunRecord) else dict(record)
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def load_records(folder: Path, warn: Callable[[str], None]) -> list[RunRecord]:
    """Every run record in ``folder``'s run folders, each knowing its folder; a damaged one is
    skipped and named through ``warn``."""
    records = []
    for path in sorted(folder.glob(f"*/{RECORD_FILE}")):
        try:
            records.append(read_record(path))
        except DamagedRecord as exc:
            warn(f"skipped {exc}; `bench run ... --resume` trains that run again")
    return records


def read_record(path: Path) -> RunRecord:
    """A run record (of any schema version); :class:`DamagedRecord` if the file does not
    parse as one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DamagedRecord(f"{path}: not a run record ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict) or not {"cell", "status", "run_id"} <= data.keys():
        raise DamagedRecord(f"{path}: not a run record (keys missing)")
    try:
        return RunRecord.from_json(data, source=path)
    except (TypeError, ValueError, AttributeError) as exc:
        raise DamagedRecord(f"{path}: not a run record ({type(exc).__name__}: {exc})") from None


class DamagedRecord(ValueError):
    """A record file that exists but does not parse (a crash or a full disk while writing)."""


def read_epoch_log(path: Path) -> list[dict[str, Any]]:
    """The per-epoch log, epochs numbered from 1; a line that does not parse (the last one,
    cut off by a kill) is dropped. A log written before record version 2 counted from 0 (its
    first line says epoch 0): its numbers are moved up by one."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "epoch" in entry:
            out.append(entry)
    if out and out[0]["epoch"] == 0:  # counted from 0: a log of record version 1
        out = [{**e, "epoch": e["epoch"] + 1} for e in out]
    return out


def result_sets(
    results_dir: Path, marks: tuple[str, ...] = (RECORD_FILE,)
) -> list[tuple[str, str]]:
    """The (suite, scale) folders of ``results_dir``, sorted, that hold at least one run folder
    with one of ``marks`` (a record; the report also counts runs with only an epoch log)."""
    if not results_dir.is_dir():
        return []
    return [
        (suite_dir.name, scale_dir.name)
        for suite_dir in sorted(p for p in results_dir.iterdir() if p.is_dir())
        for scale_dir in sorted(p for p in suite_dir.iterdir() if p.is_dir())
        if any(any(scale_dir.glob(f"*/{mark}")) for mark in marks)
    ]


def results_root(value: str | Path | None = None) -> Path:
    """The results folder: an explicit value, else ``BENCH_RESULTS_DIR``, else ``./results``."""
    return Path(value or os.environ.get(RESULTS_DIR_ENV) or "results")
