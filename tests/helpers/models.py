"""Small models with known answers, and a probe of what an autoregressive model's outputs see."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bench.contract import LatentVariableModel, standard_normal_log_prob


class LinearGaussian(LatentVariableModel):
    """p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I); so p(x) = N(b, W W^T + s^2 I) exactly.

    ``q_scale`` widens the true posterior so the importance weights are not constant.
    """

    def __init__(self, x_dim: int, z_dim: int, s: float, q_scale: float) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.latent_dim = z_dim
        self.W = nn.Parameter(torch.randn(x_dim, z_dim, generator=g, dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(x_dim, generator=g, dtype=torch.float64))
        self.s = s
        self.q_scale = q_scale

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        w, s2 = self.W, self.s**2
        cov = torch.linalg.inv(torch.eye(self.latent_dim, dtype=w.dtype) + w.T @ w / s2)
        mu = (x - self.b) @ w @ cov.T / s2
        logvar = torch.log(torch.diagonal(cov) * self.q_scale).expand_as(mu)
        return mu, logvar

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        mean = z @ self.W.T + self.b
        return torch.distributions.Normal(mean, self.s).log_prob(x).sum(-1)

    def prior_log_prob(self, z: Tensor) -> Tensor:
        return standard_normal_log_prob(z)

    def exact_log_px(self, x: Tensor) -> Tensor:
        cov = self.W @ self.W.T + self.s**2 * torch.eye(self.W.shape[0], dtype=x.dtype)
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(x)


def dependence(model: nn.Module, size: int) -> torch.Tensor:
    """``dep[i, j]``: does output pixel i (raster order) depend on input pixel j? From the
    gradients of each output logit, summed over a small batch of random inputs."""
    n = size * size
    x = torch.bernoulli(torch.full((4, 1, size, size), 0.5, dtype=torch.float64))
    x.requires_grad_(True)
    z = torch.randn(4, model.latent_dim, dtype=torch.float64)
    logits = model.logits(x, z).flatten(1)  # [4, n]
    dep = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        (g,) = torch.autograd.grad(logits[:, i].sum(), x, retain_graph=True)
        dep[i] = g.abs().sum(0).flatten() > 0
    return dep
