"""The public building blocks: likelihood heads, MLP blocks, seeded splits, the scheduled
objective and parameter bounds, each against a closed form or an independent computation."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Bernoulli, Categorical

from bench import (
    DataInfo,
    DataSplits,
    ScheduledObjective,
    TrainingBudget,
    float_param,
    int_param,
)
from bench.blocks import MLPDecoder, MLPEncoder
from bench.data import EVAL_BINARIZATION_SEED
from bench.errors import ConfigError
from bench.likelihoods import bernoulli_log_likelihood, categorical_log_likelihood
from bench.specs import Param, choice_param, resolve_params


def test_bernoulli_head_matches_torch_distributions_for_k_samples():
    g = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.full((3, 1, 4, 4), 0.3), generator=g)
    logits = torch.randn(5, 3, 16, generator=g)  # K=5 samples, event flattened differently
    got = bernoulli_log_likelihood(logits, x)
    want = Bernoulli(logits=logits).log_prob(x.flatten(1).expand(5, 3, 16)).sum(-1)
    assert got.shape == (5, 3)
    torch.testing.assert_close(got, want)


def test_categorical_head_masks_padding_and_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 6, 7, generator=g)
    targets = torch.randint(0, 7, (4, 6), generator=g)
    lengths = torch.tensor([6, 3, 1, 4])
    mask = torch.arange(6).unsqueeze(0) < lengths.unsqueeze(1)
    got = categorical_log_likelihood(logits, targets, mask)
    per_token = Categorical(logits=logits).log_prob(targets)
    want = torch.stack([per_token[r, : lengths[r]].sum() for r in range(4)])
    torch.testing.assert_close(got, want)
    # Whatever the padded positions hold changes nothing.
    noisy = targets.clone()
    noisy[~mask] = 0
    torch.testing.assert_close(categorical_log_likelihood(logits, noisy, mask), got)


@pytest.mark.parametrize("layers", [0, 1, 3])
def test_mlp_encoder_shapes(layers):
    enc = MLPEncoder(16, 8, layers, 3, activation=torch.nn.Tanh)
    mu, logvar = enc(torch.rand(5, 1, 4, 4))
    assert mu.shape == logvar.shape == (5, 3)
    assert len(enc.body) == 2 * layers


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_skip_decoder_sees_z_at_every_layer_and_plain_only_at_the_first(layers):
    torch.manual_seed(0)
    for skip in (False, True):
        dec = MLPDecoder(3, 8, layers, 5, skip=skip)
        z = torch.randn(4, 2, 3)  # [K, B, D]
        assert dec(z).shape == (4, 2, 5)
        # Cut the path through the first layer: only skip connections can carry z now.
        with torch.no_grad():
            dec.hidden[0].weight.zero_()
        zz = z.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(dec(zz).sum(), zz)
        assert (grad.abs().sum() > 0) == skip
        assert len(dec.z_in) == (layers - 1 if skip else 0)


def test_linear_decoder_has_no_hidden_layers():
    dec = MLPDecoder(3, 8, 0, 5, skip=True)
    assert dec.z_out is None and len(dec.hidden) == 0
    assert dec(torch.randn(2, 3)).shape == (2, 5)


def splits(**kw) -> DataSplits:
    x = torch.arange(100, dtype=torch.float32).view(100, 1, 1).expand(100, 1, 4) / 100
    y = torch.arange(100)
    return DataSplits.from_tensors(DataInfo("image", (1, 4)), x, y, **kw)


def test_from_tensors_splits_disjointly_seeded_and_keeps_labels():
    s = splits(n_valid=10, n_test=20, seed=3)
    assert (len(s.train), len(s.valid), len(s.test)) == (70, 10, 20)
    ids = [split.labels.tolist() for split in (s.train, s.valid, s.test)]
    assert sorted(sum(ids, [])) == list(range(100))
    for split in (s.train, s.valid, s.test):  # each label still belongs to its example
        torch.testing.assert_close(split.x[:, 0, 0], split.labels.float() / 100)
    perm = torch.randperm(100, generator=torch.Generator().manual_seed(3))
    assert ids[1] == perm[:10].tolist() and ids[2] == perm[10:30].tolist()
    assert splits(n_valid=10, n_test=20, seed=3).valid.labels.tolist() == ids[1]
    assert splits(n_valid=10, n_test=20, seed=4).valid.labels.tolist() != ids[1]


def test_from_tensors_binarizes_evaluation_splits_once_with_fixed_seeds():
    s = splits(n_valid=10, test_x=torch.full((6, 1, 4), 0.5), dynamic_binarization=True)
    assert s.train.dynamic_binarization
    assert not s.valid.dynamic_binarization and not s.test.dynamic_binarization
    assert set(s.test.x.unique().tolist()) <= {0.0, 1.0}
    g = torch.Generator().manual_seed(EVAL_BINARIZATION_SEED + 1)
    torch.testing.assert_close(s.test.x, torch.bernoulli(torch.full((6, 1, 4), 0.5), generator=g))
    assert len(s.test) == 6 and s.test.labels is None


@pytest.mark.parametrize(
    "kw",
    [
        {"n_valid": 0, "n_test": 5},
        {"n_valid": 50, "n_test": 50},
        {"n_valid": 5},
        {"n_valid": 5, "n_test": 5, "test_x": torch.zeros(3, 1, 4)},
    ],
)
def test_from_tensors_rejects_impossible_splits(kw):
    with pytest.raises(ConfigError):
        splits(**kw)


class Warmup(ScheduledObjective):
    def beta(self, step: int) -> float:
        return self.progress(step)


def test_scheduled_objective_is_the_batch_mean_of_the_weighted_bound():
    obj = Warmup(steps_per_epoch=10, total_steps=40)
    log_px = torch.tensor([-3.0, -5.0])
    kl = torch.tensor([[1.0, 0.5], [2.0, 0.0]])
    for step, beta in [(0, 0.0), (10, 0.25), (40, 1.0), (99, 1.0)]:
        want = ((3 + beta * 1.5) + (5 + beta * 2.0)) / 2
        torch.testing.assert_close(obj(log_px, kl, step), torch.tensor(want))
    assert obj.epochs_done(15) == 1.5
    elbo = ScheduledObjective(10)
    torch.testing.assert_close(elbo(log_px, kl, 7), torch.tensor((4.5 + 7.0) / 2))
    with pytest.raises(ValueError, match="total_steps"):
        Warmup(10)(log_px, kl, 0)


def test_scheduled_objective_reads_both_lengths_from_the_budget():
    obj = Warmup(TrainingBudget(epochs=4, steps_per_epoch=10))
    assert (obj.steps_per_epoch, obj.total_steps) == (10, 40)
    assert obj.progress(10) == 0.25 and obj.epochs_done(15) == 1.5
    assert Warmup(TrainingBudget(epochs=4, steps_per_epoch=10), total_steps=20).progress(10) == 0.5
    # The older integer forms (steps per epoch, positional or by keyword) give the same object.
    for old in (Warmup(10, 40), Warmup(steps_per_epoch=10, total_steps=40)):
        assert (old.steps_per_epoch, old.total_steps) == (10, 40)
    with pytest.raises(TypeError, match="needs the run's budget"):
        Warmup()


def test_param_bounds_are_checked_when_parameters_resolve():
    params = {
        "latent_dim": int_param(20, 2, 64, minimum=1),
        "lam": float_param(0.5, 0.0, 2.0, minimum=0.0),
        "free": Param(3),
    }
    assert resolve_params(params, {"latent_dim": 1, "free": -9}, "m")["latent_dim"] == 1
    with pytest.raises(ConfigError, match=r"model 'x': latent_dim: must be >= 1, got 0"):
        resolve_params(params, {"latent_dim": 0}, "model 'x'")
    with pytest.raises(ConfigError, match="expected float, got 'big'"):
        resolve_params(params, {"lam": "big"}, "o")
    assert resolve_params(params, {"lam": None}, "o")["lam"] is None


def test_param_helpers_reject_bad_declarations():
    with pytest.raises(ValueError, match="leaves the valid range"):
        int_param(5, 0, 10, minimum=1)
    with pytest.raises(ValueError, match="above high"):
        float_param(1.0, 2.0, 1.0)
    with pytest.raises(ValueError, match="not one of"):
        choice_param(4, (3, 5))
    assert int_param(5, 1, 9).step == 1 and choice_param(3, (3, 5)).choices == (3, 5)
