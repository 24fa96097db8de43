"""How a suite runs: the device, folders and speed options, checked before any training."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from bench.errors import ConfigError, print_warning

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# The inductor mode that is the same as each CUDA-graph mode without the graphs.
NO_CUDAGRAPH_MODES = {"reduce-overhead": "default", "max-autotune": "max-autotune-no-cudagraphs"}


def resolve_device(name: str | None) -> torch.device:
    """The torch device for ``--device``; a CUDA device becomes the current one, so work that
    names no device (CUDA events, streams, ``torch.cuda`` calls) lands on it too."""
    if name in (None, "auto"):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"--device: {name!r} is not a torch device (try cpu, cuda, cuda:1)"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: CUDA is not available on this machine")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"--device {name}: this machine has {count} CUDA device(s)")
        use_device(device)
    return device


def use_device(device: torch.device) -> None:
    """Make ``device`` the current CUDA device of this process (a no-op off CUDA)."""
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)


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


@dataclass(frozen=True)
class SpeedOptions:
    """How fast a run may go; all off by default, so results stay fp32 and bit-reproducible."""

    amp: bool = False  # bf16 autocast in training (and evaluation, unless amp_eval is False)
    amp_eval: bool | None = None  # None: follow ``amp``
    tf32: bool = False  # allow TF32 matmuls, convolutions and RNNs on CUDA (off: true fp32)
    deterministic: bool = False  # deterministic algorithms only (and a fixed cuBLAS workspace)
    compile: bool | str | None = None  # True or a mode in COMPILE_MODES, or a backend name
    channels_last: bool = False  # NHWC memory format for 4-D image batches and conv weights

    @property
    def eval_amp(self) -> bool:
        return self.amp if self.amp_eval is None else self.amp_eval


@dataclass(frozen=True)
class Placement:
    """Where cells train: one device, ``--jobs`` processes (on ``devices`` in turn), or Ray."""

    device: torch.device
    devices: tuple[torch.device, ...] = ()  # --jobs workers take these in turn (else device)
    jobs: int = 1  # cells trained at once, each in its own process
    threads: int | None = None  # torch intra-op threads per --jobs worker (None: cores / jobs)
    ray: RayPlacement | None = None  # run the cells as Ray tasks (see bench.runner.ray)


@dataclass(frozen=True)
class Policy:
    """What a suite does with earlier results and failures."""

    resume: bool = False  # keep finished runs, continue the others from their checkpoints
    fail_fast: bool = False  # stop at the first run that does not finish
    keep_checkpoints: bool = False  # keep checkpoint.pt of finished runs (best.pt always stays)
    # Put one batch through the model contract before training (where no preflight ran: Ray).
    check_contract: bool = False


def _quiet(message: str) -> None:
    pass


def _ignore_cell(*args: Any) -> None:
    pass


@dataclass(frozen=True)
class Messages:
    """Where a run's lines go: ``log`` (progress lines, hidden by --quiet) and ``warn``
    (always shown). Worker processes send both to the driver."""

    log: Callable[[str], None] = _quiet
    warn: Callable[[str], None] = print_warning


@dataclass(frozen=True)
class Display:
    """What watches a suite in this process: a rich ``Progress`` for the training and
    evaluation bars of cells trained here, and ``on_cell(event, cell, record)`` for "start",
    "end" and "skip" (a cell finished before) of every cell, wherever it trains."""

    progress: Any = None
    on_cell: Callable[[str, Any, Any], None] = _ignore_cell


# The flat keywords RunOptions took before its settings were grouped, and their group.
_GROUPED = {
    **{f.name: "speed" for f in fields(SpeedOptions)},
    **{f.name: "placement" for f in fields(Placement)},
    **{f.name: "policy" for f in fields(Policy)},
    **{f.name: "messages" for f in fields(Messages)},
    **{f.name: "display" for f in fields(Display)},
}


@dataclass(init=False)
class RunOptions:
    """How a suite runs: its folders and four groups of settings (placement, speed, policy,
    messages) plus the display that watches it.

    Built from the groups or, as before they existed, from flat keywords
    (``RunOptions(results, device, amp=True, resume=True)``); flat names read through to their
    group (``opts.amp`` is ``opts.speed.amp``), and ``dataclasses.replace(opts, resume=True)``
    works either way.
    """

    results_dir: Path
    data_dir: Path | None
    placement: Placement
    speed: SpeedOptions
    policy: Policy
    messages: Messages
    display: Display

    def __init__(
        self,
        results_dir: Path | str,
        device: torch.device | None = None,
        data_dir: Path | str | None = None,
        *,
        placement: Placement | None = None,
        speed: SpeedOptions | None = None,
        policy: Policy | None = None,
        messages: Messages | None = None,
        display: Display | None = None,
        **flat: Any,
    ) -> None:
        unknown = sorted(set(flat) - set(_GROUPED))
        if unknown:
            raise TypeError(f"RunOptions got unexpected keyword(s) {', '.join(unknown)}")
        if device is not None:
            flat["device"] = device
        groups: dict[str, Any] = {
            "placement": placement,
            "speed": speed,
            "policy": policy,
            "messages": messages,
            "display": display,
        }
        defaults = {
            "placement": lambda: Placement(torch.device("cpu")),
            "speed": SpeedOptions,
            "policy": Policy,
            "messages": Messages,
            "display": Display,
        }
        for name in groups:
            given = {k: v for k, v in flat.items() if _GROUPED[k] == name}
            group = groups[name] if groups[name] is not None else defaults[name]()
            groups[name] = replace(group, **given) if given else group
        self.results_dir = Path(results_dir)
        self.data_dir = Path(data_dir) if data_dir is not None else None
        for name, group in groups.items():
            setattr(self, name, group)

    def __getattr__(self, name: str) -> Any:
        group = _GROUPED.get(name)
        if group is None or group not in self.__dict__:
            raise AttributeError(f"RunOptions has no attribute {name!r}")
        return getattr(self.__dict__[group], name)

    @property
    def eval_amp(self) -> bool:
        return self.speed.eval_amp

    # Read by name in many places; kept as real attributes for speed and type checkers.
    @property
    def device(self) -> torch.device:
        return self.placement.device

    @property
    def log(self) -> Callable[[str], None]:
        return self.messages.log

    @property
    def warn(self) -> Callable[[str], None]:
        return self.messages.warn


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
        raise ConfigError(
            f"--compile {compile_label(opts.compile)} uses CUDA graphs and needs a CUDA device"
        )


def speed_options(opts: RunOptions) -> dict[str, Any]:
    """The speed options as RunOptions keywords, for the processes that train cells elsewhere."""
    return asdict(opts.speed)


def accel_settings(opts: RunOptions) -> dict[str, Any]:
    """The speed options a run used, written to its record; the math flags are read as they
    are, so call it inside :func:`device_flags`."""
    return {
        "amp": "bf16" if opts.amp else None,
        "amp_eval": "bf16" if opts.eval_amp else None,
        "tf32": opts.tf32,
        "tf32_flags": tf32_flags(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
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


def tf32_flags() -> dict[str, bool]:
    """Whether matmuls, cuDNN convolutions and cuDNN RNNs may run fp32 math in TF32 right now
    (what a record states). Since torch 2.9 each has an ``fp32_precision`` ("tf32", "ieee", or
    "none": follow the legacy ``allow_tf32`` flag)."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    backends = {
        "matmul": (matmul, lambda: matmul.allow_tf32),
        "cudnn_conv": (getattr(cudnn, "conv", None), lambda: cudnn.allow_tf32),
        "cudnn_rnn": (getattr(cudnn, "rnn", None), lambda: cudnn.allow_tf32),
    }
    out = {}
    for name, (backend, legacy) in backends.items():
        precision = getattr(backend, "fp32_precision", "none")
        out[name] = bool(legacy()) if precision == "none" else precision == "tf32"
    return out


@contextlib.contextmanager
def tf32_enabled(enabled: bool) -> Iterator[None]:
    """TF32 on (``enabled``) or true fp32 for matmuls, cuDNN convolutions and cuDNN RNNs inside
    the block; the previous flags come back afterwards. The flags do nothing on the CPU.

    Off must be set explicitly: cuDNN's ``allow_tf32`` defaults to on (torch >= 2.9 shows it as
    ``fp32_precision == "tf32"`` for convolutions and RNNs). The legacy ``allow_tf32`` setters
    are used, not the ``fp32_precision`` ones: torch's own ``cudnn.flags()`` context (used
    inside torch and by plugins) reads the legacy flag, and refuses to once the new API has set
    "ieee"; the legacy setters keep both views consistent.
    """
    cuda, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    before = (cuda.allow_tf32, cudnn.allow_tf32)
    cuda.allow_tf32 = cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        cuda.allow_tf32, cudnn.allow_tf32 = before


CUBLAS_WORKSPACE = ":4096:8"  # the setting cuBLAS needs for reproducible results


@contextlib.contextmanager
def device_flags(opts: RunOptions, fixed_shapes: bool = False) -> Iterator[None]:
    """The process-wide math flags of a run: TF32 (see :func:`tf32_enabled`), deterministic
    algorithms, and cuDNN autotuning where batch shapes repeat (``fixed_shapes``: image
    cells; text batches change width, and each new shape would be tuned again)."""
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    if opts.deterministic:
        # Read when cuBLAS starts its handle: a process that already used cuBLAS keeps its
        # workspace, so the CLI and --jobs workers set it before any CUDA work.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = (
        fixed_shapes and opts.device.type == "cuda" and not opts.deterministic
    )
    try:
        with tf32_enabled(opts.tf32):
            yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[2:]


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
    """Whether ``torch.compile(**kw)`` replays CUDA graphs: the ``cudagraphs`` backend, or an
    inductor mode whose options turn them on (``reduce-overhead``, ``max-autotune``)."""
    if kw is None:
        return False
    if "backend" in kw:
        return kw["backend"] == "cudagraphs"
    mode = kw.get("mode")
    if mode is None:
        return False
    from torch._inductor import list_mode_options

    return bool(list_mode_options(mode).get("triton.cudagraphs", False))


def without_cudagraphs(kw: dict[str, str] | None) -> dict[str, str] | None:
    """The same compilation minus CUDA graphs, for evaluation: its batch and sample-chunk
    shapes vary, and each new shape would record (and keep) another graph. The
    ``cudagraphs`` backend compiles nothing else, so evaluation then runs eagerly (None)."""
    if not uses_cudagraphs(kw):
        return kw
    assert kw is not None
    if "backend" in kw:
        return None
    return {"mode": NO_CUDAGRAPH_MODES.get(kw["mode"], "default")}
