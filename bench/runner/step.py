"""One training step and the cheap per-step bookkeeping around it; none of it waits for the
device."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from bench.contract import LatentVariableModel, reparameterize
from bench.errors import DivergedError as DivergedError  # re-exported: it was defined here
from bench.estimators import gaussian_kl_per_dim
from bench.runner.compiled import compile_fn, mark_batch_dynamic
from bench.runner.options import autocast, compile_kwargs, uses_cudagraphs, without_cudagraphs

NAN_CHECK_EVERY = 100  # steps between divergence checks (read a step late: no host sync)


def eval_log_likelihood(
    model: LatentVariableModel, device: torch.device, amp: bool, compile: bool | str | None
) -> Callable[[Any, Tensor], Tensor] | None:
    """A faster ``log_likelihood`` for evaluation (autocast and/or compiled), returning fp32;
    None when both are off so evaluation calls the model itself. Evaluation never replays
    CUDA graphs (see :func:`without_cudagraphs`), so its outputs need no copies."""
    kw = without_cudagraphs(compile_kwargs(compile))
    if not amp and kw is None:
        return None
    fn = model.log_likelihood
    if kw is not None:
        # K chunks and the last batch change shape: compile for dynamic sizes up front.
        fn = compile_fn(fn, kw, dynamic=True)

    def log_likelihood(x: Any, z: Tensor) -> Tensor:
        with autocast(device, amp):
            return fn(x, z).float()

    return log_likelihood


class TrainStep:
    """One optimizer step exactly as the runner takes it; ``bench throughput`` times this same
    object, so the benchmark measures what training runs.

    ``step(x, step, generator)`` returns the detached loss and the per-dimension KL (``[B, D]``,
    or its sum under CUDA graphs) as device tensors; nothing in it synchronises with the host.
    The reparameterization noise is drawn from ``generator`` before the forward pass (same
    numbers as drawing it after ``encode``), so a compiled forward sees it as an input.
    """

    def __init__(
        self,
        model: LatentVariableModel,
        optimizer: torch.optim.Optimizer,
        objective: Callable[[Tensor, Tensor, int], Tensor],
        grad_clip: float | None,
        device: torch.device,
        amp: bool = False,
        compile: bool | str | None = None,
        channels_last: bool = False,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.objective = objective
        self.grad_clip = grad_clip
        self.device = device
        self.amp = amp
        self.channels_last = channels_last
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.latent_dim: int | None = getattr(model, "latent_dim", None)
        kw = compile_kwargs(compile)
        self.cudagraphs = uses_cudagraphs(kw)
        self.compiled = kw is not None and self.latent_dim is not None
        self.forward: Callable[[Any, Tensor], tuple[Tensor, Tensor]] = self._forward
        if self.compiled:
            assert kw is not None
            self.forward = compile_fn(self._forward, kw)

    def _forward(self, x: Any, eps: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.model.encode(x)
        if self.amp:  # the KL and the noise scale stay fp32 under autocast
            mu, logvar = mu.float(), logvar.float()
        # z is formed as [B, D] and then viewed as [1, B, D]: broadcasting mu against [1, B, D]
        # noise would cost two extra reductions in every backward pass.
        z = (mu + eps * torch.exp(0.5 * logvar)).unsqueeze(0)
        log_px = self.model.log_likelihood(x, z)[0]
        kl = gaussian_kl_per_dim(mu, logvar)
        if self.amp:
            log_px = log_px.float()
        return log_px, kl

    def _forward_draw_after(
        self, x: Any, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor]:
        # Models without a ``latent_dim`` attribute: draw the noise once the shape is known.
        mu, logvar = self.model.encode(x)
        if self.amp:
            mu, logvar = mu.float(), logvar.float()
        z = reparameterize(mu, logvar, 1, generator=generator)
        log_px = self.model.log_likelihood(x, z)[0]
        return (log_px.float() if self.amp else log_px), gaussian_kl_per_dim(mu, logvar)

    def __call__(
        self, x: Any, step: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        if self.channels_last and isinstance(x, Tensor) and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        with autocast(self.device, self.amp):
            if self.latent_dim is None:
                log_px, kl = self._forward_draw_after(x, generator)
            else:
                # The same numbers reparameterize() would draw after encode(): [B, D] here.
                eps = torch.randn(
                    (len(x), self.latent_dim), device=self.device, generator=generator
                )
                if self.compiled:
                    mark_batch_dynamic(x, eps)
                log_px, kl = self.forward(x, eps)
            loss = self.objective(log_px, kl, step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.optimizer.step()
        # Under CUDA graphs ``kl`` lives in graph memory that the next replay overwrites.
        return loss.detach(), (kl.detach().sum() if self.cudagraphs else kl.detach())


class FiniteCheck:
    """Detects a non-finite loss without stalling the device queue.

    Each check starts a non-blocking copy of ``isfinite(loss)`` to the host and reads the copy
    started at the previous check, which the device finished long ago (an event guards it on
    CUDA). Divergence is therefore caught ``NAN_CHECK_EVERY`` steps late at most, and at the
    latest by the end-of-epoch loss, which is read anyway.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.pending: tuple[Tensor, Any, int] | None = None
        self.bad_step = -1

    def check(self, loss: Tensor, step: int) -> bool:
        ok = True
        if self.pending is not None:
            flag, event, at = self.pending
            if event is not None:
                event.synchronize()
            if not bool(flag):
                ok, self.bad_step = False, at
        flag = torch.isfinite(loss)
        event = None
        if self.device.type == "cuda":
            flag = flag.to("cpu", non_blocking=True)
            event = torch.cuda.Event()
            event.record()
        self.pending = (flag, event, step)
        return ok


def epoch_means(
    losses: list[Tensor], kls: list[Tensor], sizes: list[int], device: torch.device
) -> tuple[float, float]:
    """Example-weighted mean loss and mean summed KL of an epoch, with one host sync."""
    n = sum(sizes)
    if n == 0:
        return 0.0, 0.0
    weights = torch.tensor(sizes, dtype=torch.float32, device=device)
    loss_sum = (torch.stack(losses).float() * weights).sum()
    kl_sum = torch.cat([k.reshape(-1) for k in kls]).float().sum()
    loss_total, kl_total = torch.stack([loss_sum, kl_sum]).tolist()
    return loss_total / n, kl_total / n
