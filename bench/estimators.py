"""Estimators of collapse: KL, full-set mutual information, active units, IW log-likelihood.

Pure tensor functions; their names and signatures are public and kept stable.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from bench.contract import LOG_2PI, LatentVariableModel, diagonal_gaussian_log_prob, reparameterize


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per example: ``[N, D] -> [N]``."""
    return gaussian_kl_per_dim(mu, logvar).sum(-1)


def gaussian_kl_per_dim(mu: Tensor, logvar: Tensor) -> Tensor:
    """The same KL, not summed over dimensions: ``[N, D] -> [N, D]``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def _log_mixture_density(z: Tensor, mu: Tensor, logvar: Tensor, chunk: int) -> Tensor:
    """log q(z) = log (1/N) sum_j N(z; mu_j, var_j) for each row of ``z [M, D]``.

    The quadratic form is expanded into matrix products so each chunk costs one
    ``[c, D] x [D, N]`` matmul and ``O(c N)`` memory rather than ``O(c N D)``.
    """
    n = mu.shape[0]
    inv_var = torch.exp(-logvar)  # [N, D]
    # Per-component constant: -1/2 (sum mu^2/var + sum logvar + D log 2pi)
    const = -0.5 * ((mu.pow(2) * inv_var).sum(-1) + logvar.sum(-1) + mu.shape[1] * LOG_2PI)
    mu_inv_var = mu * inv_var  # [N, D]
    out = []
    for start in range(0, z.shape[0], chunk):
        zc = z[start : start + chunk]  # [c, D]
        quad = zc.pow(2) @ inv_var.T  # [c, N]: sum_d z_d^2 / var_jd
        cross = zc @ mu_inv_var.T  # [c, N]: sum_d z_d mu_jd / var_jd
        log_q = const.unsqueeze(0) - 0.5 * quad + cross
        out.append(torch.logsumexp(log_q, dim=1) - math.log(n))
    return torch.cat(out)


def mutual_information(
    mu: Tensor,
    logvar: Tensor,
    n_samples: int = 1,
    generator: torch.Generator | None = None,
    chunk: int = 1024,
    queries: int | None = None,
) -> float:
    """I_q(x; z) over the whole set: E[log q(z|x)] - E[log q(z)], q(z) the mixture of all N
    posteriors, both terms Monte Carlo on the same ``n_samples`` draws z ~ q(z|x) per x.

    Sharing the draws makes the bound exact: q(z_i) >= q(z_i|x_i) / N because the mixture
    contains x_i's own component, so the estimate never exceeds log N (record N beside it).
    Work is O(N^2 D) in float64, memory O(chunk N). ``queries`` (< N) takes the outer mean
    over that many examples drawn at random, the mixture still over all N: the same ceiling
    log N at O(queries N D), an unbiased estimate of the full-set figure.
    """
    mu = mu.to(torch.float64)
    logvar = logvar.to(torch.float64)
    n, d = mu.shape
    z = reparameterize(mu, logvar, n_samples, generator=generator)  # [S, N, D]
    own_mu, own_logvar = mu, logvar
    if queries is not None and queries < n:
        keep = torch.randperm(n, generator=generator, device=mu.device)[:queries]
        z, own_mu, own_logvar = z[:, keep], mu[keep], logvar[keep]
    log_q_own = diagonal_gaussian_log_prob(z, own_mu, own_logvar).mean()
    log_qz = _log_mixture_density(z.reshape(-1, d), mu, logvar, chunk).mean()
    return float(log_q_own - log_qz)


def active_units(mu: Tensor, threshold: float = 0.01) -> int:
    """Dimensions whose unbiased variance of the posterior mean over the set is >= threshold."""
    var = mu.to(torch.float64).var(dim=0, unbiased=True)
    return int((var >= threshold).sum())


CPU_PAIRS_PER_CALL = 1024
# Of a GPU's total memory, the part the importance samples of one evaluation may use, split
# evenly between the processes that share the device (see DEVICE_SHARE_ENV).
IW_MEMORY_FRACTION = 0.5
# Processes evaluating on one device at once (``--jobs``, tuning workers); they set it.
DEVICE_SHARE_ENV = "BENCH_DEVICE_SHARE"


def device_share() -> int:
    """How many processes share this process's device (1 unless a parent said otherwise)."""
    try:
        return max(1, int(os.environ.get(DEVICE_SHARE_ENV, "1")))
    except ValueError:
        return 1


def iw_memory_budget(device: torch.device, memory_fraction: float = IW_MEMORY_FRACTION) -> int:
    """Bytes the samples of one IW-NLL call may take on ``device``: a fixed share of its total
    memory, so the chunk (and with it the run's speed) does not depend on what else happens
    to be on the card."""
    total = torch.cuda.get_device_properties(device).total_memory
    return int(total * memory_fraction / device_share())


def input_elements(x: Any) -> int:
    """Elements in a batch: a tensor's, or the sum over a batch object's tensor attributes
    (a text batch's ids and lengths); activation memory grows in proportion."""
    if isinstance(x, Tensor):
        return max(1, x.numel())
    tensors = [v for v in getattr(x, "__dict__", {}).values() if isinstance(v, Tensor)]
    return max(1, sum(t.numel() for t in tensors)) if tensors else max(1, len(x))


def sample_cost(model: LatentVariableModel, x: Any) -> float:
    """Peak CUDA memory of scoring one sample of each example of ``x`` (from a 2-sample call)."""
    device = next(model.parameters()).device
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    mu, logvar = model.encode(x)
    model.log_likelihood(x, reparameterize(mu, logvar, 2))
    torch.cuda.synchronize(device)
    return max(1.0, (torch.cuda.max_memory_allocated(device) - base) / 2)


class SampleChunker:
    """How many of K samples to score at once, sized once per evaluation.

    On CUDA the memory of one sample is measured on the first batch (per input element, so
    longer sentences get smaller chunks) and every later chunk follows from a fixed budget
    (:func:`iw_memory_budget`) without another probe or sync. After an out-of-memory error
    the chunk is halved for the rest of the evaluation. On the CPU a chunk holds about
    ``CPU_PAIRS_PER_CALL`` (example, sample) pairs: larger calls fall out of cache and run
    slower per pair (seen with the PixelCNN at 12,500 pairs a call).
    """

    def __init__(
        self,
        model: LatentVariableModel,
        n_samples: int,
        memory_fraction: float = IW_MEMORY_FRACTION,
    ) -> None:
        self.model, self.n_samples = model, n_samples
        device = next(model.parameters()).device
        self.budget = iw_memory_budget(device, memory_fraction) if device.type == "cuda" else None
        self.bytes_per_element: float | None = None
        self.cap = n_samples

    def __call__(self, x: Any) -> int:
        if self.budget is None:
            k = CPU_PAIRS_PER_CALL // max(1, len(x))
        else:
            if self.bytes_per_element is None:
                self.bytes_per_element = sample_cost(self.model, x) / input_elements(x)
            k = int(self.budget // (self.bytes_per_element * input_elements(x)))
        return int(max(1, min(self.cap, k)))

    def out_of_memory(self, chunk: int) -> int:
        """A chunk of ``chunk`` samples ran out of memory: the smaller chunk to retry with."""
        if chunk <= 1:
            return 0
        self.cap = max(1, chunk // 2)
        return self.cap


def auto_sample_chunk(
    model: LatentVariableModel,
    x: Any,
    n_samples: int,
    memory_fraction: float = IW_MEMORY_FRACTION,
) -> int:
    """How many of K samples to score at once for batch ``x`` (see :class:`SampleChunker`,
    which sizes a whole evaluation from one probe)."""
    return SampleChunker(model, n_samples, memory_fraction)(x)


@torch.no_grad()
def iw_log_likelihood(
    model: LatentVariableModel,
    x: Any,
    n_samples: int = 500,
    chunk: int | SampleChunker | None = None,
    generator: torch.Generator | None = None,
    log_likelihood: Callable[[Any, Tensor], Tensor] | None = None,
) -> Tensor:
    """Importance-weighted log p(x) per example with ``n_samples`` (K) draws from q(z|x):
    ``log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x)``.

    Vectorized over the batch and over samples; K is processed in chunks with a running
    log-sum-exp so memory is bounded by ``chunk`` (a number, or a :class:`SampleChunker`
    shared by the batches of one evaluation; None sizes it for this batch alone). The K noise
    draws are made up front, so the result does not depend on the chunk. A chunk that runs
    out of CUDA memory is halved and retried. ``log_likelihood`` may replace
    ``model.log_likelihood`` (e.g. a compiled or autocast one).
    """
    ll_fn = log_likelihood or model.log_likelihood
    mu, logvar = model.encode(x)
    chunker = chunk if isinstance(chunk, SampleChunker) else None
    if chunk is None:
        chunker = SampleChunker(model, n_samples)
    size = chunker(x) if chunker is not None else int(chunk)  # type: ignore[arg-type]
    eps = torch.randn((n_samples, *mu.shape), device=mu.device, dtype=mu.dtype, generator=generator)
    std = torch.exp(0.5 * logvar)
    total = torch.full((mu.shape[0],), -math.inf, device=mu.device, dtype=torch.float32)
    done = 0
    while done < n_samples:
        k = min(size, n_samples - done)
        try:
            z = mu + eps[done : done + k] * std  # [k, B, D]
            log_w = (
                ll_fn(x, z).float()
                + model.prior_log_prob(z).float()
                - diagonal_gaussian_log_prob(z, mu, logvar).float()
            )
        except torch.cuda.OutOfMemoryError:
            size = (chunker or SampleChunker(model, n_samples)).out_of_memory(k)
            if size == 0:
                raise
            continue
        total = torch.logaddexp(total, torch.logsumexp(log_w, dim=0))
        done += k
    return total - math.log(n_samples)
