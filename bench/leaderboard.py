"""Aggregate run records into a leaderboard (polars): mean ± std over seeds per
dataset × model × objective, with each column's direction and estimator settings."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from bench import plugins
from bench.errors import BenchError
from bench.records import RECORD_FILE

LEADERBOARD_DIR_ENV = "BENCH_LEADERBOARD_DIR"
KEYS = ["dataset", "model", "objective"]
# Leaderboard columns, in order: (metric name, title, direction). One source for every reporter.
# "IW" marks the importance-weighted estimates (He et al. 2019); "bound" the single-sample
# figures the skip-VAE paper reports (NLL bound = -ELBO, PPL bound = exp(-ELBO / tokens)).
COLUMNS: list[tuple[str, str, str]] = [
    ("nll", "NLL (IW)", "min"),
    ("nll_bound", "NLL bound", "min"),
    ("kl", "KL", "min"),
    ("mi", "MI", "max"),
    ("au", "AU", "max"),
    ("probe_acc", "Probe μ", "max"),
    ("probe_z_acc", "Probe z", "max"),
    ("probe_active_acc", "Probe μ active", "max"),
    ("ppl", "PPL (IW)", "min"),
    ("ppl_bound", "PPL bound", "min"),
    ("train_examples_per_s", "Train ex/s", "max"),
]
# Records written before ``nll_bound`` existed carry the same number as ``neg_elbo``.
SAME_VALUE = {"nll_bound": "neg_elbo"}


@dataclass
class Leaderboard:
    suite: str
    scale: str
    table: pl.DataFrame  # one row per dataset × model × objective; <m>_mean, <m>_std columns
    columns: list[tuple[str, str, str]]  # the COLUMNS present in these records
    settings: dict[str, list[str]] = field(default_factory=dict)  # metric -> distinct settings
    devices: list[str] = field(default_factory=list)
    data_notes: dict[str, list[str]] = field(default_factory=dict)  # dataset -> distinct notes
    failed: list[dict[str, Any]] = field(default_factory=list)
    runs: int = 0
    wall_time_s: float = 0.0


def load_records(results_dir: Path, suite: str, scale: str) -> list[dict[str, Any]]:
    folder = results_dir / suite / scale
    if not folder.is_dir():
        raise BenchError(f"no results for suite {suite!r} at scale {scale!r} in {folder}")
    return [json.loads(p.read_text()) for p in sorted(folder.glob(f"*/{RECORD_FILE}"))]


def _settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))


def build(records: list[dict[str, Any]], suite: str, scale: str) -> Leaderboard:
    if not records:
        raise BenchError(f"no finished runs for suite {suite!r} at scale {scale!r}")
    rows, failed = [], []
    settings: dict[str, set[str]] = {}
    notes: dict[str, set[str]] = {}
    for r in records:
        cell = r["cell"]
        if r.get("data_notes"):
            notes.setdefault(cell["dataset"], set()).add(r["data_notes"])
        if r["status"] != "finished":
            failed.append({"run_id": r["run_id"], "status": r["status"], "reason": r["reason"]})
            continue
        row: dict[str, Any] = {k: cell[k] for k in KEYS}
        row["seed"] = cell["seed"]
        row["train_examples_per_s"] = r["train_examples_per_s"]
        for name, m in r["metrics"].items():
            if isinstance(m["value"], (int, float)):
                row[name] = float(m["value"])
                settings.setdefault(name, set()).add(_settings_text(m["settings"]))
        for name, same in SAME_VALUE.items():
            if name not in row and same in row:
                row[name] = row[same]
                settings.setdefault(name, set()).update(settings.get(same, set()))
        rows.append(row)
    present = [c for c in COLUMNS if rows and any(c[0] in row for row in rows)]
    if rows:
        df = pl.DataFrame(rows, infer_schema_length=None)
        aggs = [pl.len().alias("seeds")]
        for name, _, _ in present:
            aggs += [
                pl.col(name).mean().alias(f"{name}_mean"),
                pl.col(name).std().alias(f"{name}_std"),
            ]
        table = df.group_by(KEYS).agg(aggs)
        sort_col = "nll_mean" if "nll_mean" in table.columns else KEYS[0]
        table = table.sort(["dataset", sort_col, "model", "objective"], nulls_last=True)
    else:
        table = pl.DataFrame(schema={k: pl.String for k in KEYS})
    return Leaderboard(
        suite=suite,
        scale=scale,
        table=table,
        columns=present,
        settings={k: sorted(v) for k, v in settings.items()},
        devices=sorted({r.get("device_name", r.get("device", "?")) for r in records}),
        data_notes={k: sorted(v) for k, v in sorted(notes.items())},
        failed=failed,
        runs=len(records),
        wall_time_s=sum(r.get("wall_time_s", 0.0) for r in records),
    )


def write(board: Leaderboard, out_dir: Path) -> list[str]:
    """Every registered reporter writes its output; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[str] = []
    for reporter in plugins.registries().reporters:
        paths += reporter.write(board, out_dir)
    return paths


def leaderboard_dir(value: str | Path | None = None) -> Path:
    """The output folder: a given value, else ``BENCH_LEADERBOARD_DIR``, else ./leaderboards."""
    return Path(value or os.environ.get(LEADERBOARD_DIR_ENV) or "leaderboards")
