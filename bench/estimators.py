"""Estimators of collapse: KL, full-set mutual information, active units, IW log-likelihood.

Pure tensor functions; their names and signatures are public and kept stable.
"""

from __future__ import annotations

import math
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
) -> float:
    """I_q(x; z) over the whole set: E[log q(z|x)] - E[log q(z)], q(z) the mixture of all N
    posteriors, both terms Monte Carlo on the same ``n_samples`` draws z ~ q(z|x) per x.

    Sharing the draws makes the bound exact: q(z_i) >= q(z_i|x_i) / N because the mixture
    contains x_i's own component, so the estimate never exceeds log N (record N beside it).
    Work is O(N^2 D) in float64, memory O(chunk N).
    """
    mu = mu.to(torch.float64)
    logvar = logvar.to(torch.float64)
    n, d = mu.shape
    z = reparameterize(mu, logvar, n_samples, generator=generator)  # [S, N, D]
    log_q_own = diagonal_gaussian_log_prob(z, mu, logvar).mean()
    log_qz = _log_mixture_density(z.reshape(-1, d), mu, logvar, chunk).mean()
    return float(log_q_own - log_qz)


def active_units(mu: Tensor, threshold: float = 0.01) -> int:
    """Dimensions whose unbiased variance of the posterior mean over the set is >= threshold."""
    var = mu.to(torch.float64).var(dim=0, unbiased=True)
    return int((var >= threshold).sum())


CPU_PAIRS_PER_CALL = 1024


def auto_sample_chunk(
    model: LatentVariableModel, x: Any, n_samples: int, memory_fraction: float = 0.4
) -> int:
    """How many of K samples to score at once for batch ``x``.

    On CUDA the cost of one sample is measured (peak memory of a 2-sample call) and the chunk
    sized to a fraction of the memory that is free *now*, since runs may share a GPU. On CPU
    the chunk holds about ``CPU_PAIRS_PER_CALL`` (example, sample) pairs: larger calls fall out
    of cache and run slower per pair (seen with the PixelCNN at 12,500 pairs a call).
    """
    device = next(model.parameters()).device
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        mu, logvar = model.encode(x)
        z = reparameterize(mu, logvar, 2)
        model.log_likelihood(x, z)
        torch.cuda.synchronize(device)
        per_sample = max(1, (torch.cuda.max_memory_allocated(device) - base) // 2)
        del z
        return int(max(1, min(n_samples, free * memory_fraction // per_sample)))
    return int(max(1, min(n_samples, CPU_PAIRS_PER_CALL // max(1, len(x)))))


@torch.no_grad()
def iw_log_likelihood(
    model: LatentVariableModel,
    x: Any,
    n_samples: int = 500,
    chunk: int | None = None,
    generator: torch.Generator | None = None,
    log_likelihood: Callable[[Any, Tensor], Tensor] | None = None,
) -> Tensor:
    """Importance-weighted log p(x) per example with ``n_samples`` (K) draws from q(z|x):
    ``log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x)``.

    Vectorized over the batch and over samples; K is processed in chunks with a running
    log-sum-exp so memory is bounded by ``chunk`` (chosen from free device memory when None).
    ``log_likelihood`` may replace ``model.log_likelihood`` (e.g. a compiled or autocast one).
    """
    ll_fn = log_likelihood or model.log_likelihood
    mu, logvar = model.encode(x)
    if chunk is None:
        chunk = auto_sample_chunk(model, x, n_samples)
    total = torch.full((mu.shape[0],), -math.inf, device=mu.device, dtype=torch.float32)
    done = 0
    while done < n_samples:
        k = min(chunk, n_samples - done)
        z = reparameterize(mu, logvar, k, generator=generator)  # [k, B, D]
        log_w = (
            ll_fn(x, z).float()
            + model.prior_log_prob(z).float()
            - diagonal_gaussian_log_prob(z, mu, logvar).float()
        )
        total = torch.logaddexp(total, torch.logsumexp(log_w, dim=0))
        done += k
    return total - math.log(n_samples)
