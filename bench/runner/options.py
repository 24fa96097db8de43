"""How a suite runs: the device, folders and speed options, checked before any training."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.data import DataSplits
from bench.errors import ConfigError

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def resolve_device(name: str | None) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"--device: {name!r} is not a torch device (try cpu, cuda, cuda:1)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine")
    return device


@dataclass(frozen=True)
class RayPlacement:
    """``--ray``: the cluster that runs the cells and what each cell asks of it."""

    address: str | None = None  # None: start a local Ray instance; "auto": the running cluster
    gpus_per_cell: float | None = None  # None: one GPU when the cluster has GPUs, else none
    cpus_per_cell: float = 1.0

    def __post_init__(self) -> None:
        if self.cpus_per_cell <= 0:
            raise ConfigError(f"--cpus-per-cell must be positive, got {self.cpus_per_cell}")
        gpus = self.gpus_per_cell
        if gpus is not None and (gpus < 0 or (gpus > 1 and not float(gpus).is_integer())):
            raise ConfigError(
                f"--gpus-per-cell must be a fraction up to 1 or a whole number, got {gpus}"
            )


@dataclass
class RunOptions:
    results_dir: Path
    device: torch.device
    data_dir: Path | None = None
    resume: bool = False
    progress: Any = None  # a rich Progress, or None
    log: Callable[[str], None] = lambda msg: None
    data_cache: dict[tuple[str, str], DataSplits] = field(default_factory=dict)
    # Speed options, all off by default so results stay fp32 and bit-reproducible.
    amp: bool = False  # bf16 autocast in training (and evaluation, unless amp_eval is False)
    amp_eval: bool | None = None  # None: follow ``amp``
    tf32: bool = False  # allow TF32 matmuls and convolutions on CUDA
    compile: bool | str | None = None  # True or a mode in COMPILE_MODES, or a backend name
    channels_last: bool = False  # NHWC memory format for 4-D image batches and conv weights
    jobs: int = 1  # run_suite: cells trained at once, each in its own process
    threads: int | None = None  # torch intra-op threads per --jobs worker (None: cores / jobs)
    devices: tuple[torch.device, ...] = ()  # --jobs workers take these in turn (else ``device``)
    ray: RayPlacement | None = None  # run the cells as Ray tasks (see bench.runner.ray)
    keep_checkpoints: bool = False  # keep checkpoint.pt of finished runs (best.pt always stays)
    # on_cell(event, cell, record): "start" and "end" of a cell's training, "skip" for one
    # already finished; the console's suite bar listens.
    on_cell: Callable[[str, Any, dict[str, Any] | None], None] = lambda *args: None

    @property
    def eval_amp(self) -> bool:
        return self.amp if self.amp_eval is None else self.amp_eval


def check_options(opts: RunOptions) -> None:
    """Reject impossible speed options before any training starts."""
    if opts.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {opts.jobs}")
    if opts.threads is not None and opts.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {opts.threads}")
    if opts.ray is not None and (opts.jobs > 1 or opts.devices):
        raise ConfigError(
            "--ray places cells itself: use --cpus-per-cell/--gpus-per-cell, not --jobs/--devices"
        )
    kw = compile_kwargs(opts.compile)
    if kw and "backend" in kw:
        import torch._dynamo

        known = torch._dynamo.list_backends(exclude_tags=())
        if kw["backend"] not in known:
            raise ConfigError(
                f"--compile {kw['backend']!r}: not a torch.compile mode "
                f"({', '.join(COMPILE_MODES)}) or backend ({', '.join(known)})"
            )
    if uses_cudagraphs(kw) and opts.device.type != "cuda":
        raise ConfigError("--compile reduce-overhead uses CUDA graphs and needs a CUDA device")


def speed_options(opts: RunOptions) -> dict[str, Any]:
    """The speed options as RunOptions keywords, for the processes that train cells elsewhere."""
    return {
        "amp": opts.amp,
        "amp_eval": opts.amp_eval,
        "tf32": opts.tf32,
        "compile": opts.compile,
        "channels_last": opts.channels_last,
    }


def accel_settings(opts: RunOptions) -> dict[str, Any]:
    """The speed options a run used, written to its record."""
    return {
        "amp": "bf16" if opts.amp else None,
        "amp_eval": "bf16" if opts.eval_amp else None,
        "tf32": opts.tf32,
        "compile": compile_label(opts.compile),
        "channels_last": opts.channels_last,
        "torch_threads": torch.get_num_threads(),
    }


def synchronize(device: torch.device) -> None:
    """Wait for queued device work; timings on CUDA are meaningless without it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on the device (a no-op context when disabled)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@contextlib.contextmanager
def tf32_enabled(enabled: bool) -> Iterator[None]:
    """Allow TF32 on CUDA inside the block and restore the previous flags afterwards.

    Off leaves PyTorch's own defaults alone; the flags do nothing on the CPU.
    """
    if not enabled:
        yield
        return
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def compile_kwargs(value: bool | str | None) -> dict[str, str] | None:
    """``torch.compile`` keyword arguments for a ``compile`` option, or None when off."""
    if value is None or value is False or value in ("", "off", "none", "false"):
        return None
    if value is True or value == "default":
        return {}
    if value in COMPILE_MODES:
        return {"mode": str(value)}
    return {"backend": str(value)}


def compile_label(value: bool | str | None) -> str | None:
    kw = compile_kwargs(value)
    if kw is None:
        return None
    return kw.get("mode") or kw.get("backend") or "default"


def uses_cudagraphs(kw: dict[str, str] | None) -> bool:
    return kw is not None and kw.get("mode") == "reduce-overhead"
