"""First-party objectives against their formulas, and through bench.testing's contract check."""

from __future__ import annotations

import pytest
import torch
from bench_objectives.plugin import Elbo, FreeBits, LinearAnneal

from bench.testing import check_objective

LOG_PX = torch.tensor([-10.0, -20.0])
KL = torch.tensor([[0.1, 2.0], [0.3, 1.0]])


def test_elbo_is_the_batch_mean_negative_bound():
    torch.testing.assert_close(Elbo(5)(LOG_PX, KL, 3), torch.tensor((12.1 + 21.3) / 2))


def test_linear_anneal_reaches_one_after_its_epochs():
    obj = LinearAnneal(steps_per_epoch=10, beta0=0.2, epochs=2.0)
    assert [obj.beta(s) for s in (0, 10, 20, 500)] == pytest.approx([0.2, 0.6, 1.0, 1.0])
    torch.testing.assert_close(obj(LOG_PX, KL, 10), torch.tensor((10 + 20 + 0.6 * 3.4) / 2))


def test_free_bits_clamps_each_dimensions_batch_mean_kl():
    # Batch-mean KL per dimension: [0.2, 1.5]; lam = 0.5 lifts the first to 0.5.
    torch.testing.assert_close(FreeBits(0.5)(LOG_PX, KL, 0), torch.tensor(15.0 + 0.5 + 1.5))


@pytest.mark.parametrize("objective", [Elbo(7), LinearAnneal(7, 0.0, 1.0), FreeBits(0.25)])
def test_objectives_keep_the_contract(objective):
    check_objective(objective)
