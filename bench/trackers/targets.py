"""What ``--log-to`` and ``BENCH_LOG_TO`` name: trackers and where they write."""

from __future__ import annotations

import importlib.util

from bench.errors import ConfigError

LOG_TO_ENV = "BENCH_LOG_TO"
TRACKERS = {"tensorboard": "tensorboard", "mlflow": "mlflow"}  # name -> the package it needs


def parse(value: str) -> list[tuple[str, str | None]]:
    """``tensorboard,mlflow=URI`` -> [("tensorboard", None), ("mlflow", "URI")]; a
    ConfigError names an unknown tracker."""
    out = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        name, _, where = part.partition("=")
        name = name.strip().lower()
        if name not in TRACKERS:
            raise ConfigError(
                f"--log-to {part!r}: unknown tracker; known: {', '.join(sorted(TRACKERS))}"
            )
        out.append((name, where.strip() or None))
    return out


def check_installed(targets: list[tuple[str, str | None]]) -> None:
    for name, _ in targets:
        package = TRACKERS[name]
        if importlib.util.find_spec(package) is None:
            raise ConfigError(
                f"--log-to {name}: the {package} package is not installed "
                f"(pip install 'collapse-bench[{name}]')"
            )
