"""Estimators against closed forms and against an independent computation on the paper's
released MNIST encodings."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from bench.estimators import (
    active_units,
    gaussian_kl,
    gaussian_kl_per_dim,
    iw_log_likelihood,
    mutual_information,
)
from tests.helpers.data import REFERENCE
from tests.helpers.models import LinearGaussian


def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(64, 5, generator=g, dtype=torch.float64)
    logvar = torch.randn(64, 5, generator=g, dtype=torch.float64)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p)
    torch.testing.assert_close(gaussian_kl_per_dim(mu, logvar), expected)
    torch.testing.assert_close(gaussian_kl(mu, logvar), expected.sum(-1))


def test_gaussian_kl_is_zero_at_prior():
    assert torch.all(gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)) == 0)


@pytest.mark.parametrize("dim,s,sigma", [(2, 1.0, 0.5), (4, 2.0, 1.0)])
def test_mutual_information_gaussian_family(dim, s, sigma):
    """Posteriors N(m_x, sigma^2 I) with m_x ~ N(0, s^2 I): I(x; z) = D/2 log(1 + s^2/sigma^2)."""
    n = 4000
    g = torch.Generator().manual_seed(1)
    mu = s * torch.randn(n, dim, generator=g, dtype=torch.float64)
    logvar = torch.full((n, dim), 2 * math.log(sigma), dtype=torch.float64)
    exact = dim / 2 * math.log(1 + s**2 / sigma**2)
    estimate = mutual_information(mu, logvar, n_samples=4, generator=g, chunk=500)
    assert estimate == pytest.approx(exact, abs=0.06)


def test_mutual_information_is_capped_by_log_n():
    """Well-separated posteriors: the full-set estimate saturates at log N, never above."""
    n = 500
    g = torch.Generator().manual_seed(2)
    mu = 100 * torch.randn(n, 3, generator=g)
    logvar = torch.full((n, 3), -10.0)
    estimate = mutual_information(mu, logvar, generator=g)
    assert estimate <= math.log(n) + 1e-6
    assert estimate == pytest.approx(math.log(n), abs=1e-6)


def test_mutual_information_zero_when_posterior_is_prior():
    n = 1000
    g = torch.Generator().manual_seed(3)
    estimate = mutual_information(torch.zeros(n, 4), torch.zeros(n, 4), 2, generator=g)
    assert abs(estimate) < 1e-9


def test_mutual_information_chunking_does_not_change_result():
    g = torch.Generator().manual_seed(4)
    mu, logvar = torch.randn(300, 3, generator=g), torch.randn(300, 3, generator=g) * 0.1
    a = mutual_information(mu, logvar, generator=torch.Generator().manual_seed(5), chunk=7)
    b = mutual_information(mu, logvar, generator=torch.Generator().manual_seed(5), chunk=1000)
    assert a == pytest.approx(b, rel=1e-10)


def test_active_units_threshold_on_unbiased_variance():
    g = torch.Generator().manual_seed(0)
    stds = torch.tensor([1.0, 0.2, 0.05, 0.0])  # variances 1, 0.04, 0.0025, 0
    mu = torch.randn(20000, 4, generator=g) * stds
    assert active_units(mu, threshold=0.01) == 2
    assert active_units(mu, threshold=0.001) == 3
    # Exactly at the threshold counts as active, with the n-1 denominator.
    two = torch.tensor([[0.0], [math.sqrt(0.02)]])  # unbiased variance = 0.01
    assert active_units(two, threshold=0.01) == 1


@pytest.mark.parametrize("z_dim", [1, 3])
def test_iw_log_likelihood_linear_gaussian(z_dim):
    torch.manual_seed(0)
    model = LinearGaussian(x_dim=4, z_dim=z_dim, s=0.7, q_scale=1.5)
    with torch.no_grad():
        x = torch.randn(16, 4, dtype=torch.float64) * 2
        exact = model.exact_log_px(x)
        g = torch.Generator().manual_seed(7)
        est = iw_log_likelihood(model, x, n_samples=20000, chunk=3333, generator=g)
    assert est.shape == (16,)
    torch.testing.assert_close(est.double(), exact, atol=0.05, rtol=0)
    # K = 1 is the ELBO, a lower bound in expectation: on average it falls below log p(x).
    one = torch.stack(
        [iw_log_likelihood(model, x, n_samples=1, generator=g) for _ in range(400)]
    ).mean(0)
    assert float((one.double() - exact).mean()) < 0


def test_iw_log_likelihood_exact_posterior_has_zero_variance():
    model = LinearGaussian(x_dim=3, z_dim=2, s=0.5, q_scale=1.0)
    # With a full-covariance posterior the weights would be constant; ours is diagonal, so use
    # an orthogonal-column W where the true posterior is diagonal.
    with torch.no_grad():
        model.W.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]], dtype=torch.float64))
        x = torch.randn(5, 3, dtype=torch.float64)
        est = iw_log_likelihood(model, x, n_samples=3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(est.double(), model.exact_log_px(x), atol=1e-5, rtol=0)


# ---- the paper's released MNIST encodings ---------------------------------------------------


def _reference(name: str):
    path = REFERENCE / f"mnist-{name}.pkl"
    if not path.exists():
        pytest.skip(f"{path} not present (set BENCH_REFERENCE_DIR)")
    with path.open("rb") as fh:
        labels, z, mu, logvar = pickle.load(fh, encoding="latin1")
    return np.asarray(mu, dtype=np.float64), np.asarray(logvar, dtype=np.float64)


def _numpy_mi(mu: np.ndarray, logvar: np.ndarray, rng: np.random.Generator) -> float:
    """An independent MI computation: log q(z|x) evaluated directly (no matmul expansion),
    over a random third of the samples to keep it quick."""
    n, d = mu.shape
    var = np.exp(logvar)
    z = mu + rng.standard_normal(mu.shape) * np.sqrt(var)
    rows = rng.choice(n, size=2000, replace=False)
    log_q_own, log_q_agg = [], []
    for i in rows:
        comp = -0.5 * (((z[i] - mu) ** 2) / var + logvar + np.log(2 * np.pi)).sum(1)
        log_q_agg.append(logsumexp(comp) - np.log(n))
        log_q_own.append(comp[i])
    return float(np.mean(log_q_own) - np.mean(log_q_agg))


@pytest.mark.parametrize("name", ["skip", "noskip"])
def test_estimators_on_released_encodings(name):
    mu, logvar = _reference(name)
    kl_np = 0.5 * (mu**2 + np.exp(logvar) - 1 - logvar).sum(1).mean()
    au_np = int((mu.var(axis=0, ddof=1) >= 0.01).sum())
    mi_np = _numpy_mi(mu, logvar, np.random.default_rng(0))

    mu_t, lv_t = torch.from_numpy(mu), torch.from_numpy(logvar)
    assert float(gaussian_kl(mu_t, lv_t).mean()) == pytest.approx(kl_np, rel=1e-9)
    assert active_units(mu_t, 0.01) == au_np
    mi = mutual_information(mu_t, lv_t, generator=torch.Generator().manual_seed(0))
    assert mi == pytest.approx(mi_np, abs=0.15)
    assert mi <= math.log(len(mu))
