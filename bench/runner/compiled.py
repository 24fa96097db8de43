"""``torch.compile`` as the runner uses it: one compiled-code cache per cell, the batch
dimension dynamic from the first call, and a recompile past the limit an error.

Dynamo keys its cache by code object, so every ``TrainStep._forward`` (and every model class's
``log_likelihood``) shares one cache across the models, autocast settings and batch shapes a
process meets. Past ``recompile_limit`` entries torch falls back to eager with only a log
warning, which would turn "compiled" timings into eager ones. So a cell (and each throughput
configuration) starts from an empty cache, the limit leaves room for the few shape families a
cell has, and hitting it raises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

# Cache entries allowed per compiled function within one cell: train and eval mode, a ragged
# last batch, text widths and a few autocast/grad-mode changes fit well inside it.
RECOMPILE_LIMIT = 32


class RecompileLimitError(RuntimeError):
    """A compiled function needed more recompilations than :data:`RECOMPILE_LIMIT`."""


def compile_fn(
    fn: Callable[..., Any], kw: dict[str, str], dynamic: bool | None = None
) -> Callable[..., Any]:
    """``torch.compile(fn, **kw)`` under the runner's recompile policy (process-wide: dynamo
    has no per-function limit)."""
    import torch._dynamo

    cfg = torch._dynamo.config
    # Names changed in torch 2.6 (cache_size_limit -> recompile_limit).
    limit = "recompile_limit" if hasattr(cfg, "recompile_limit") else "cache_size_limit"
    setattr(cfg, limit, RECOMPILE_LIMIT)
    fail = (
        "fail_on_recompile_limit_hit"
        if hasattr(cfg, "fail_on_recompile_limit_hit")
        else "fail_on_cache_limit_hit"
    )
    setattr(cfg, fail, True)
    errors = torch._dynamo.exc
    limit_hit = getattr(errors, "FailOnRecompileLimitHit", None) or getattr(
        errors, "FailOnCacheLimitHit", ()
    )
    compiled = torch.compile(fn, dynamic=dynamic, **kw)

    def call(*args: Any) -> Any:
        try:
            return compiled(*args)
        except limit_hit as exc:
            name = getattr(fn, "__qualname__", repr(fn))
            raise RecompileLimitError(
                f"torch.compile recompiled {name} more than {RECOMPILE_LIMIT} times; rather "
                "than run it eagerly under a 'compile' label the run stops "
                '(TORCH_LOGS="recompiles" says why)'
            ) from exc

    return call


def fresh_compile_cache() -> None:
    """Forget every compiled function (and CUDA graph) of this process: a new cell's code does
    not count against the previous cells' recompile limit."""
    import torch._dynamo

    torch._dynamo.reset()


def mark_batch_dynamic(x: Any, *more: Tensor) -> None:
    """Compile dimension 0 (the batch) of ``x`` and of ``more`` as dynamic from the first call,
    so a ragged last batch needs no second compilation. ``x`` is a tensor or an object whose
    tensor attributes share its batch dimension (e.g. a text batch's ids and lengths)."""
    from torch._dynamo import maybe_mark_dynamic

    n = len(x)
    if isinstance(x, Tensor):
        tensors = [x]
    else:
        tensors = [v for v in getattr(x, "__dict__", {}).values() if isinstance(v, Tensor)]
    for t in (*tensors, *more):
        if t.dim() and t.shape[0] == n:
            maybe_mark_dynamic(t, 0)


def compile_seconds() -> float:
    """Seconds this process has spent compiling with dynamo (and its backend) so far."""
    from torch._dynamo.utils import compilation_time_metrics

    return float(sum(compilation_time_metrics.get("_compile.compile_inner", ())))
