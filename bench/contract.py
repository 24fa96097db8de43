"""The model contract. Every metric in the harness is written against this and nothing else,
so a plugin model that implements it gets NLL, KL, MI, AU and the probe for free.

A batch ``x`` is whatever the model's data set yields: a tensor for images, a
:class:`~bench.data.TokenBatch` for text. The harness only needs ``len(x)`` (examples in the
batch) and ``x.to(device)``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

LOG_2PI = math.log(2 * math.pi)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over the last dimension."""
    return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)


def diagonal_gaussian_log_prob(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension (broadcasts over K)."""
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)


class LatentVariableModel(nn.Module, ABC):
    """A VAE-like model with a diagonal-Gaussian posterior and a standard-normal prior.

    Subclasses implement :meth:`encode` and :meth:`log_likelihood`; the prior may be
    overridden but must stay a density over ``latent_dim`` dimensions.
    """

    latent_dim: int

    @abstractmethod
    def encode(self, x: Any) -> tuple[Tensor, Tensor]:
        """Posterior q(z|x) as ``(mu, logvar)``, each ``[B, D]``."""

    @abstractmethod
    def log_likelihood(self, x: Any, z: Tensor) -> Tensor:
        """log p(x|z) for ``z`` of shape ``[K, B, D]``; returns ``[K, B]``.

        All K samples are scored in one call so evaluation is batched over samples as well as
        examples; the harness chunks K itself to bound memory.
        """

    def prior_log_prob(self, z: Tensor) -> Tensor:
        """log p(z) for ``z`` of shape ``[..., D]``."""
        return standard_normal_log_prob(z)

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        p = next(self.parameters())
        return torch.randn(n, self.latent_dim, device=p.device, dtype=p.dtype, generator=generator)

    def decode_mean(self, z: Tensor) -> Tensor | None:
        """Optional: the mean of p(x|z) for ``z [B, D]`` (image grids). ``None`` if undefined."""
        return None

    def num_tokens(self, x: Any) -> Tensor | None:
        """Optional: per-example count of predicted units (tokens) for per-token NLL."""
        return None

    def encoder_parameters(self) -> list[nn.Parameter] | None:
        """Optional: the parameters of q(z|x), for methods that train the encoder and the
        decoder separately. ``None`` (the default): the harness takes every parameter that
        ``encode`` depends on (see :func:`bench.methods.parameter_groups`)."""
        return None


def reparameterize(
    mu: Tensor, logvar: Tensor, n_samples: int = 1, generator: torch.Generator | None = None
) -> Tensor:
    """``[K, B, D]`` samples from N(mu, exp(logvar))."""
    shape = (n_samples, *mu.shape)
    eps = torch.randn(shape, device=mu.device, dtype=mu.dtype, generator=generator)
    return mu + eps * torch.exp(0.5 * logvar)


def _shape(t: Any) -> str:
    return f"[{', '.join(str(n) for n in t.shape)}]" if isinstance(t, Tensor) else type(t).__name__


def check_contract(model: LatentVariableModel, x: Any, where: str) -> None:
    """Put one batch through ``encode`` and ``log_likelihood`` with K=2 and check the shapes
    and that every value is finite; :class:`~bench.errors.ModelContractError` naming ``where``
    (the model, its plugin and distribution) and the expected and actual shapes otherwise.

    Runs in eval mode without gradients, with its own noise generator: the global random
    state, and so every result, is the same with or without the check.
    """
    from bench.errors import ModelContractError

    def fail(what: str) -> ModelContractError:
        return ModelContractError(f"{where} breaks the model contract: {what}")

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            mu, logvar = _checked_posterior(model, x, fail)
            _check_log_likelihood(model, x, mu, logvar, fail)
    finally:
        model.train(was_training)


def _checked_posterior(
    model: LatentVariableModel, x: Any, fail: Callable[[str], Exception]
) -> tuple[Tensor, Tensor]:
    """``encode(x)``: a pair ``(mu, logvar)``, each ``[B, latent_dim]`` and finite."""
    batch = len(x)
    try:
        out = model.encode(x)
    except Exception as exc:
        raise fail(f"encode(x) raised {type(exc).__name__}: {exc}") from exc
    if not (isinstance(out, tuple | list) and len(out) == 2):
        raise fail(f"encode(x) returned {type(out).__name__}, expected (mu, logvar)")
    mu, logvar = out
    dims = getattr(model, "latent_dim", None)
    if not isinstance(mu, Tensor) or mu.dim() != 2 or mu.shape[0] != batch:
        raise fail(f"encode(x) gave mu {_shape(mu)}, expected [{batch}, D]")
    expected = [batch, dims if isinstance(dims, int) else mu.shape[1]]
    for name, t in (("mu", mu), ("logvar", logvar)):
        if not isinstance(t, Tensor) or list(t.shape) != expected:
            shown = ", ".join(str(n) for n in expected)
            raise fail(f"encode(x) gave {name} {_shape(t)}, expected [{shown}]")
        if not torch.isfinite(t).all():
            raise fail(f"encode(x) gave non-finite values in {name}")
    return mu, logvar


def _check_log_likelihood(
    model: LatentVariableModel,
    x: Any,
    mu: Tensor,
    logvar: Tensor,
    fail: Callable[[str], Exception],
) -> None:
    """``log_likelihood`` of two posterior samples: ``[2, B]`` and finite. The samples come
    from a generator of its own, so the global random state is left as it was."""
    batch = len(x)
    gen = torch.Generator(device=mu.device).manual_seed(0)
    eps = torch.randn((2, *mu.shape), generator=gen, device=mu.device, dtype=mu.dtype)
    z = mu + eps * torch.exp(0.5 * logvar)
    try:
        ll = model.log_likelihood(x, z)
    except Exception as exc:
        raise fail(f"log_likelihood(x, z {_shape(z)}) raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(ll, Tensor) or list(ll.shape) != [2, batch]:
        raise fail(f"log_likelihood(x, z {_shape(z)}) returned {_shape(ll)}, expected [2, {batch}]")
    if not torch.isfinite(ll).all():
        raise fail(f"log_likelihood(x, z {_shape(z)}) returned non-finite values")
