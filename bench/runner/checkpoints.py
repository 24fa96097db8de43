"""Resume checkpoints: what a killed run continues from, written whole or not at all, and
read back with a fallback to the one it replaced."""

from __future__ import annotations

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
REQUIRED = {"model", "optimizer", "state"}


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
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
            if not isinstance(ckpt, dict) or not set(ckpt) >= REQUIRED:
                raise ValueError("not a checkpoint")
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


def _damaged(path: Path, exc: Exception, then: str, warn: Callable[[str], None]) -> None:
    kept = f", kept as {set_aside(path).name}" if path.exists() else ""
    warn(f"{path.parent.name}: {path.name} does not load ({type(exc).__name__}){kept}; {then}")


def drop_resume_files(run_dir: Path) -> None:
    """A finished run keeps ``best.pt`` (the evaluated weights); its resume checkpoints go."""
    (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
    previous_path(run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
