"""The probes beside the μ probe: on one z ~ q(z|x), and on the active units only; and the
paper's bound metrics (NLL bound, PPL bound) against their closed forms."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch

from bench import plugins
from bench.evaluation import EvalContext, PosteriorPass
from bench.suites import EvalSettings
from tests.helpers.data import REFERENCE

CLASSES = 4


def _pass(mu, logvar, labels, log_px=None, tokens=None) -> PosteriorPass:
    mu = torch.as_tensor(mu, dtype=torch.float32)
    logvar = torch.as_tensor(logvar, dtype=torch.float32)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)
    return PosteriorPass(
        mu=mu,
        logvar=logvar,
        log_px=torch.zeros(len(mu)) if log_px is None else torch.as_tensor(log_px),
        kl=kl,
        labels=None if labels is None else torch.as_tensor(labels),
        tokens=tokens,
    )


def _context(train: PosteriorPass, test: PosteriorPass) -> EvalContext:
    # Both passes are given, so neither the model nor the splits are ever read.
    ctx = EvalContext(None, None, EvalSettings(), torch.device("cpu"), train=[])  # type: ignore[arg-type]
    ctx._cache.update(posterior=test, train_posterior=train)
    return ctx


def _metric(name: str, ctx: EvalContext):
    return plugins.registries().metrics.get(name).compute(ctx)


def _synthetic(n: int, seed: int) -> PosteriorPass:
    """Two active dimensions that encode the class loudly, and two inactive ones (posterior
    = prior up to a mean shift of 0.03, variance of the mean far under the AU threshold) that
    encode it too, but only in their means."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    angle = 2 * np.pi * y / CLASSES
    circle = np.stack([np.cos(angle), np.sin(angle)], 1)
    mu = np.concatenate([2.0 * circle, 0.03 * circle], 1) + 0.01 * rng.standard_normal((n, 4))
    logvar = np.concatenate([np.full((n, 2), -4.0), np.zeros((n, 2))], 1)
    return _pass(mu, logvar, y)


def _dims(p: PosteriorPass, dims: list[int]) -> PosteriorPass:
    return _pass(p.mu[:, dims], p.logvar[:, dims], p.labels)


def test_z_probe_falls_to_chance_on_inactive_dimensions_where_the_mean_probe_does_not():
    train, test = _synthetic(800, 0), _synthetic(400, 1)
    inactive = _context(_dims(train, [2, 3]), _dims(test, [2, 3]))
    assert _metric("au", inactive).value == 0
    assert _metric("probe_acc", inactive).value > 0.8  # the means still carry the class...
    assert _metric("probe_z_acc", inactive).value < 0.4  # ...one draw of z does not (chance 0.25)
    both = _context(train, test)
    assert _metric("probe_z_acc", both).value > 0.9  # the active dimensions survive sampling
    active = _metric("probe_active_acc", both)
    # It records the dimensions it chose from as `dims`: `of` would make its accuracy read as
    # a count out of D on the leaderboard (`0.877 / 20`).
    assert _metric("au", both).value == 2 and active.settings["dims"] == 4
    assert "of" not in active.settings
    assert active.value > 0.9
    # With no active unit the active probe answers the most frequent class: chance.
    none = _metric("probe_active_acc", inactive)
    majority = np.bincount(train.labels.numpy()).argmax()
    assert none.value == pytest.approx(float(np.mean(test.labels.numpy() == majority)))


def test_probes_on_the_papers_released_no_skip_encodings():
    path = REFERENCE / "mnist-noskip.pkl"
    if not path.exists():
        pytest.skip(f"{path} not present (set BENCH_REFERENCE_DIR)")
    with path.open("rb") as fh:
        labels, _, mu, logvar = pickle.load(fh, encoding="latin1")
    inactive = np.asarray(mu).var(0, ddof=1) < EvalSettings().au_threshold
    assert inactive.sum() == 12
    p = _pass(np.asarray(mu)[:, inactive], np.asarray(logvar)[:, inactive], labels)
    half = len(labels) // 2
    train = _pass(p.mu[:half], p.logvar[:half], p.labels[:half])
    test = _pass(p.mu[half:], p.logvar[half:], p.labels[half:])
    ctx = _context(train, test)
    assert _metric("probe_acc", ctx).value > 0.35  # 0.47 measured: means of "inactive" units
    assert _metric("probe_z_acc", ctx).value < 0.15  # 0.11 measured; majority class 0.11
    assert _metric("probe_active_acc", ctx).value < 0.15


def test_nll_bound_is_the_negative_elbo_and_ppl_bound_its_per_token_exponent():
    rng = np.random.default_rng(0)
    n = 50
    log_px = torch.as_tensor(-rng.uniform(10, 40, n), dtype=torch.float32)
    tokens = torch.as_tensor(rng.integers(3, 20, n))
    p = _pass(rng.standard_normal((n, 3)), rng.standard_normal((n, 3)), None, log_px, tokens)
    ctx = _context(p, p)
    neg_elbo = (-p.log_px.double() + p.kl.double().sum(-1)).numpy()
    assert _metric("nll_bound", ctx).value == pytest.approx(neg_elbo.mean(), rel=1e-6)
    assert _metric("nll_bound", ctx).value == _metric("neg_elbo", ctx).value
    expected = math.exp(neg_elbo.sum() / tokens.sum().item())
    assert _metric("ppl_bound", ctx).value == pytest.approx(expected, rel=1e-6)
    no_tokens = _context(p, _pass(p.mu, p.logvar, None, log_px))
    assert _metric("ppl_bound", no_tokens).value is None
