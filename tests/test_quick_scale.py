"""The quick scale ranks on its headline: its MNIST rows get an MI whose ceiling leaves room
(MI over the 50,000 training images), at a cost that keeps the scale near 6 minutes."""

from __future__ import annotations

import math

import pytest
import torch

from bench.estimators import mutual_information


def test_the_quick_mnist_rows_measure_mi_over_every_training_image(fresh_plugins):
    from bench.suites import get_suite

    suite = get_suite("collapse")
    (mlp,) = [g for g in suite.groups["quick"] if g.datasets == ("mnist",)]
    assert mlp.eval.mi_train_size == 50_000  # ceiling log 50,000 = 10.82, not log 10,000
    assert all(g.eval.mi_train_size == 0 for g in suite.groups["smoke"])  # smoke stays fast


def test_mi_over_a_subset_of_queries_keeps_the_ceiling_and_the_estimate():
    """The outer mean over some examples, the mixture over all N: an unbiased estimate of the
    full-set MI with the same log N ceiling, at a fraction of the work."""
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(3000, 4, generator=g)
    logvar = torch.full((3000, 4), -1.0)
    full = mutual_information(mu, logvar, generator=torch.Generator().manual_seed(1))
    some = [
        mutual_information(mu, logvar, generator=torch.Generator().manual_seed(s), queries=600)
        for s in range(8)
    ]
    assert sum(some) / len(some) == pytest.approx(full, abs=0.1)  # Monte Carlo noise: ~0.03
    narrow = torch.full((3000, 4), -20.0)  # every z explained by its own x only: log N
    capped = mutual_information(mu, narrow, generator=g, queries=300)
    assert capped <= math.log(3000) + 1e-6 and capped == pytest.approx(math.log(3000), abs=1e-3)
