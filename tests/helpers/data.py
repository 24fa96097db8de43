"""Where the shared data sets and reference files are (outside the repository)."""

from __future__ import annotations

import os
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
SHARED_DATA = SHARED / "datasets"
REFERENCE = SHARED / "reference"


def real_data_dir() -> Path | None:
    """The data folder CI points at, if it holds real files."""
    candidate = Path(os.environ.get("BENCH_DATA_DIR", SHARED_DATA))
    return candidate if (candidate / "mnist").is_dir() else None
