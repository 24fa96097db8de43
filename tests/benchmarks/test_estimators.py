"""The estimators on fixed inputs: full-set MI over 10k posteriors, active units, KL."""

from __future__ import annotations

import pytest
import torch

from bench.estimators import active_units, gaussian_kl, mutual_information
from bench.runner import synchronize

N, D = 10_000, 20


@pytest.fixture(scope="module")
def posteriors(device):
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(N, D, generator=g)
    logvar = torch.randn(N, D, generator=g) * 0.5 - 1.0
    return mu.to(device), logvar.to(device)


@pytest.mark.benchmark(group="estimators")
def test_mutual_information_10k(benchmark, posteriors, device):
    mu, logvar = posteriors

    def fn() -> float:
        g = torch.Generator(device=device).manual_seed(0)
        return mutual_information(mu, logvar, 1, generator=g)

    value = benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(n=N, latent_dim=D, mi=value, device=str(device))


@pytest.mark.benchmark(group="estimators")
def test_active_units_10k(benchmark, posteriors, device):
    mu, _ = posteriors
    value = benchmark(active_units, mu, 0.01)
    benchmark.extra_info.update(n=N, latent_dim=D, au=value, device=str(device))


@pytest.mark.benchmark(group="estimators")
def test_gaussian_kl_10k(benchmark, posteriors, device):
    mu, logvar = posteriors

    def fn() -> None:
        gaussian_kl(mu, logvar)
        synchronize(device)

    benchmark(fn)
    benchmark.extra_info.update(n=N, latent_dim=D, device=str(device))
