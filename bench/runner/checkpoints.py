"""Resume checkpoints: what a killed run continues from, written whole or not at all, and
read back with a fallback to the one it replaced.

A checkpoint is untrusted input (results folders are shared, and people send each other run
folders): it holds tensors and plain values only, and is read with
``torch.load(weights_only=True)``, which builds nothing else, so a crafted file cannot run code.
One that does not load that way is set aside as ``*.corrupt``."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from bench.files import atomic_torch_save, previous_path, set_aside
from bench.runner import cell as build

if TYPE_CHECKING:
    from bench.runner.loop import CellTraining

CHECKPOINT_FILE = "checkpoint.pt"
BEST_WEIGHTS = "best.pt"
REQUIRED = {"model", "optimizer", "state", "rng"}
# What each part must be once loaded: anything else is set aside like a damaged file.
SHAPES: dict[str, type] = {"model": dict, "optimizer": dict, "state": dict, "rng": dict}


def save_checkpoint(run: CellTraining) -> None:
    parts = run.parts
    atomic_torch_save(
        {
            "model": parts.model.state_dict(),
            "optimizer": parts.optimizer.state_dict(),
            "state": run.state.to_dict(),
            "rng": build.rng_state(),
            "cell": run.cell.as_dict(),
            "method": None if parts.method is None else parts.method.state_dict(),
        },
        run.run_dir / CHECKPOINT_FILE,
        keep_previous=True,
    )


def load_checkpoint(run_dir: Path, warn: Callable[[str], None]) -> dict[str, Any] | None:
    """The newest checkpoint that loads: ``checkpoint.pt``, else the one it replaced. A
    damaged file is set aside as ``*.corrupt`` with one warning line; None (no checkpoint
    that loads, or best-epoch weights that do not) means training from scratch."""
    ckpt_path = run_dir / CHECKPOINT_FILE
    paths = [p for p in (ckpt_path, previous_path(ckpt_path)) if p.exists()]
    for i, path in enumerate(paths):
        try:
            # Onto the CPU: RNG states must be CPU tensors, and Adam's step counters stay
            # on the host (on the GPU each would cost a sync per step); load_state_dict
            # moves the weights and the optimizer's moments to the parameters' device.
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            _check_shape(ckpt)
        except Exception as exc:
            then = "resuming from the previous one" if i + 1 < len(paths) else "from scratch"
            _damaged(path, exc, then, warn)
            continue
        if ckpt["state"].get("best_epoch", -1) >= 0:
            # The best epoch's weights are what the run evaluates at the end.
            best = run_dir / BEST_WEIGHTS
            try:
                torch.load(best, map_location="cpu", weights_only=True)
            except Exception as exc:
                _damaged(best, exc, "training from scratch", warn)
                return None
        return ckpt
    return None


def _check_shape(ckpt: Any) -> None:
    """A ValueError unless ``ckpt`` has the parts :func:`save_checkpoint` writes."""
    if not isinstance(ckpt, dict) or not set(ckpt) >= REQUIRED:
        raise ValueError("not a checkpoint")
    for key, kind in SHAPES.items():
        if key in ckpt and not isinstance(ckpt[key], kind):
            raise ValueError(f"{key} is a {type(ckpt[key]).__name__}")
    if not all(isinstance(v, torch.Tensor) for v in ckpt["model"].values()):
        raise ValueError("model weights that are not tensors")
    rng = ckpt["rng"]
    if not (
        isinstance(rng.get("torch"), torch.Tensor)
        and isinstance(rng.get("numpy"), dict)
        and isinstance(rng.get("python"), list)
    ):
        raise ValueError("random generator states of another form")


def _damaged(path: Path, exc: Exception, then: str, warn: Callable[[str], None]) -> None:
    kept = f", kept as {set_aside(path).name}" if path.exists() else ""
    why = type(exc).__name__
    if isinstance(exc, pickle.UnpicklingError):  # what weights_only refuses to build
        why += ": it holds objects other than tensors and plain values"
    warn(f"{path.parent.name}: {path.name} does not load ({why}){kept}; {then}")


def drop_resume_files(run_dir: Path) -> None:
    """A finished run keeps ``best.pt`` (the evaluated weights); its resume checkpoints go."""
    (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
    previous_path(run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
