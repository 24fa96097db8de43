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
COLUMNS: list[tuple[str, str, str]] = [
    ("nll", "NLL", "min"),
    ("neg_elbo", "-ELBO", "min"),
    ("kl", "KL", "min"),
    ("mi", "MI", "max"),
    ("au", "AU", "max"),
    ("probe_acc", "Probe acc", "max"),
    ("ppl", "PPL", "min"),
    ("train_examples_per_s", "Train ex/s", "max"),
]


@dataclass
class Leaderboard:
    suite: str
    scale: str
    table: pl.DataFrame  # one row per dataset × model × objective; <m>_mean, <m>_std columns
    columns: list[tuple[str, str, str]]  # the COLUMNS present in these records
    settings: dict[str, list[str]] = field(default_factory=dict)  # metric -> distinct settings
    devices: list[str] = field(default_factory=list)
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
    for r in records:
        cell = r["cell"]
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
