"""Where the shared data sets and reference files are (outside the repository).

``BENCH_DATA_DIR`` points at the data sets and ``BENCH_REFERENCE_DIR`` at the skip-VAE paper's
released encodings (``mnist-skip.pkl``, ``mnist-noskip.pkl``); without them, the folders beside
the repository (``../shared/datasets``, ``../shared/reference``). Both are read when the tests
are collected: tests that point ``BENCH_DATA_DIR`` elsewhere later do not move them.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
SHARED_DATA = SHARED / "datasets"
REFERENCE_ENV = "BENCH_REFERENCE_DIR"
REFERENCE = Path(os.environ.get(REFERENCE_ENV) or SHARED / "reference")
DATA_ROOT = Path(os.environ.get("BENCH_DATA_DIR") or SHARED_DATA)


def real_data_dir() -> Path | None:
    """The data folder CI points at, if it holds real files."""
    candidate = Path(os.environ.get("BENCH_DATA_DIR", SHARED_DATA))
    return candidate if (candidate / "mnist").is_dir() else None
