"""Memory estimates made before training, so a run that cannot fit is refused with one line
instead of crawling or being killed for memory hours later.

Each estimate is a lower bound of what the run will allocate (what it must hold, not what the
allocator adds), so it refuses only what cannot fit:

- the model's weights, gradients and Adam's two moments (four copies of the parameters),
  counted on PyTorch's ``meta`` device before the model is built for real (a model of a
  billion hidden units is refused before it takes the memory);
- one training batch: the tensors its forward pass keeps for the backward pass, measured on
  the preflight's batch and scaled to ``budget.batch_size``;
- one evaluation: the importance-sampling noise of one batch (``iw_samples`` x batch x latent
  dimensions, drawn at once) and the mutual-information samples (``mi_samples`` x N x latent
  dimensions, in float64).

They are compared with the device's memory (a GPU's total, the CPU's available memory),
shared among the processes that train on it at once (``--jobs``).
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch

from bench.errors import ConfigError
from bench.suites import Cell

GiB = 2**30
OPTIMIZER_COPIES = 4  # weights, gradients, Adam's first and second moments


def available_bytes(device: torch.device, share: int = 1) -> int:
    """Memory one of ``share`` processes may use on ``device``: a GPU's total memory, or the
    memory the operating system reports available (Linux; within the container's limit),
    else the machine's total."""
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
    else:
        known = [n for n in (_meminfo_available(), _cgroup_room()) if n is not None]
        total = min(known) if known else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(total // max(1, share))


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# A container's memory limit and use: cgroup v2, then v1 (/proc/meminfo shows the host's).
CGROUP_FILES = (
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
)


def _cgroup_room() -> int | None:
    for limit_file, used_file in CGROUP_FILES:
        try:
            with open(limit_file, encoding="ascii") as fh:
                limit = fh.read().strip()
            with open(used_file, encoding="ascii") as fh:
                used = int(fh.read().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:  # "max" or a huge number: no limit
            return max(0, int(limit) - used)
    return None


def parameter_bytes(build: Any) -> int | None:
    """Bytes of the parameters ``build()`` makes, counted without allocating them (on the meta
    device); None when the model cannot be built there (its constructor touches data)."""
    try:
        with torch.device("meta"):
            model = build()
        return sum(p.numel() * p.element_size() for p in model.parameters())
    except Exception:
        return None


def forward_footprint(model: Any, x: Any) -> tuple[float, int] | None:
    """Bytes the forward pass of ``x`` (encode, one sample, log-likelihood) keeps for the
    backward pass, per example (parameters kept for it are not counted: they are not per
    example), and the latent dimensions; None when the pass raises (the run itself will say
    why). Runs in eval mode (as the contract check does) and draws from the global
    generators: callers that must not change them save and restore them."""
    from bench.contract import reparameterize

    params = {p.data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.data_ptr() not in params:
            saved[t.data_ptr()] = max(saved.get(t.data_ptr(), 0), t.numel() * t.element_size())
        return t

    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            mu, logvar = model.encode(x)
            model.log_likelihood(x, reparameterize(mu, logvar, 1))
    except Exception:
        return None
    finally:
        model.train(was_training)
    return sum(saved.values()) / max(1, len(x)), int(mu.shape[-1])


def evaluation_bytes(cell: Cell, latent_dim: int, n_test: int, n_train: int) -> int:
    """The noise one batch's importance sampling draws at once, and the mutual information's
    samples over the test split (or ``mi_train_size`` training examples)."""
    e = cell.eval
    iw = e.iw_samples * min(e.batch_size, n_test) * latent_dim * 4
    n_mi = max(n_test, min(e.mi_train_size, n_train))
    mi = 2 * e.mi_samples * n_mi * latent_dim * 8  # the samples and their log-densities
    return iw + mi


def refuse_if_too_large(need: float, have: int, what: str, lower: str) -> None:
    """A one-line ConfigError when ``need`` bytes exceed ``have``."""
    if need > have:
        raise ConfigError(
            f"{what} would take at least {_size(need)}, and {_size(have)} is available; "
            f"lower {lower}"
        )


def device_share(jobs: int, devices: int) -> int:
    """How many processes train on each device at once."""
    return max(1, math.ceil(jobs / max(1, devices)))


def _size(n: float) -> str:
    return f"{n / GiB:,.1f} GiB" if n >= GiB / 10 else f"{math.ceil(n / 2**20)} MiB"
