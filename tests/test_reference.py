"""The reference variants (the skip-VAE code's models and protocol): where z enters the PixelCNN,
its encoder and head, the likelihood clamp, the MLP and LSTM variants, and the KL warm-up."""

from __future__ import annotations

import math

import pytest
import torch
from bench_objectives.reference import ReferenceWarmup
from bench_pixelcnn.reference import LOGIT_CLAMP, ReferencePixelCNNVAE
from bench_text.batching import TokenBatch
from bench_text.lstm import LSTMVAE
from bench_text.reference import ReferenceLSTMVAE
from bench_vae.reference import ReferenceMLPVAE
from torch import nn

from bench import TrainingBudget, plugins
from bench.runner import RunOptions, train_cell
from bench.suites import Budget, EvalSettings, Group, expand
from bench.testing import check_model, check_objective
from tests.helpers.models import dependence

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(skip: bool, size: int = 8, **kw) -> ReferencePixelCNNVAE:
    torch.manual_seed(0)
    params = {"latent_dim": 3, "layers": 3, "channels": 8, "enc_channels": 8, "enc_blocks": 2}
    params.update(kw)
    return ReferencePixelCNNVAE((1, size, size), skip=skip, **params).double().eval()


def z_gradient(model: ReferencePixelCNNVAE, size: int) -> torch.Tensor:
    """``[H*W]``: the size of d logit(pixel) / dz for each pixel, over a few random inputs."""
    x = torch.bernoulli(torch.full((4, 1, size, size), 0.5, dtype=torch.float64))
    z = torch.randn(4, model.latent_dim, dtype=torch.float64, requires_grad=True)
    logits = model.logits(x, z).flatten(1)
    out = torch.zeros(size * size, dtype=torch.float64)
    for i in range(size * size):
        (g,) = torch.autograd.grad(logits[:, i].sum(), z, retain_graph=True)
        out[i] = g.abs().sum()
    return out


def test_plain_reference_vae_leaves_the_first_pixel_independent_of_z():
    size = 6
    model = tiny(False, size)
    grad = z_gradient(model, size)
    assert grad[0] == 0  # pixel (0, 0): the first layer's map passes through mask A
    assert (grad[1:] > 0).all()  # every later pixel reads z
    # ...through the first layer's own map, the only module that reads z.
    assert model.decoder.z_injections() == [model.decoder.z_maps[0]]


def test_skip_reference_vae_reads_z_at_every_layer_and_the_output():
    size, layers = 6, 3
    model = tiny(True, size, layers=layers)
    assert (z_gradient(model, size) > 0).all()  # pixel (0, 0) too, from layer 2 and the head
    mods = model.decoder.z_injections()
    assert len(mods) == layers + 1 and all(isinstance(m, nn.Linear) for m in mods)
    assert len({id(m) for m in mods}) == layers + 1  # a separate map per layer
    model.zero_grad()
    x = torch.bernoulli(torch.full((2, 1, size, size), 0.5, dtype=torch.float64))
    model.log_likelihood(x, torch.randn(1, 2, 3, dtype=torch.float64)).sum().backward()
    for m in mods:
        assert m.weight.grad is not None and m.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("skip", [False, True])
def test_reference_decoder_is_autoregressive(skip):
    size = 6
    model = tiny(skip, size, layers=3, kernels=(5, 3, 3))
    dep = dependence(model, size)
    later = torch.triu(torch.ones(size * size, size * size, dtype=torch.bool))
    assert not (dep & later).any()
    i = 3 * size + 3
    assert dep[i, i - 1] and dep[i, i - size] and dep[i, i - size + 1]  # left, up, up-right


@pytest.mark.parametrize("skip", [False, True])
def test_output_head_is_one_1x1_convolution_on_the_last_layer(skip):
    model = tiny(skip)
    dec = model.decoder
    seen = {}
    dec.layers[-1].register_forward_hook(lambda m, i, o: seen.update(h=o[1]))
    dec.out.register_forward_hook(lambda m, i, o: seen.update(head_in=i[0]))
    x = torch.bernoulli(torch.full((2, 1, 8, 8), 0.5, dtype=torch.float64))
    model.logits(x, torch.randn(2, 3, dtype=torch.float64))
    assert dec.out.kernel_size == (1, 1)
    # No ReLU or hidden convolution between the last layer and the head.
    torch.testing.assert_close(seen["head_in"][:, : seen["h"].shape[1]], seen["h"])
    assert seen["head_in"].shape[1] == 8 + (1 if skip else 0)


def test_reference_encoder_batchnorm_2x2_stride_and_he_init():
    torch.manual_seed(0)
    model = ReferencePixelCNNVAE((1, 28, 28))
    body = model.encoder.body
    assert sum(isinstance(m, nn.BatchNorm2d) for m in body.modules()) == 6
    downs = [m for m in body if isinstance(m, nn.Conv2d)]
    assert [(m.kernel_size, m.stride) for m in downs] == [((2, 2), (2, 2))] * 3
    assert model.encoder.mu.in_features == 64 * 3 * 3  # 28 -> 14 -> 7 -> 3
    for m in model.modules():
        if isinstance(m, nn.Linear) and m.weight.numel() > 5000:
            assert m.weight.std().item() == pytest.approx(math.sqrt(2 / m.in_features), rel=0.05)


@pytest.mark.parametrize("skip", [False, True])
def test_reference_models_keep_the_contract(skip):
    x = torch.bernoulli(torch.full((3, 1, 8, 8), 0.4, dtype=torch.float64))
    check_model(tiny(skip), x, samples=4)
    torch.manual_seed(0)
    mlp = ReferenceMLPVAE((1, 8, 8), latent_dim=3, hidden=16, skip=skip).double()
    check_model(mlp, x, samples=4)
    check_objective(ReferenceWarmup(TrainingBudget(epochs=2, steps_per_epoch=7), 0.1, 2.0))


def test_reference_likelihood_clamps_probabilities():
    model = tiny(True)
    z = torch.randn(4, 3, 3, dtype=torch.float64)
    with torch.no_grad():
        model.decoder.out.bias.fill_(1e4)  # p(x = 1) -> 1: every 0 pixel would cost ~1e4 nats
    worst = -model.log_likelihood(torch.zeros(1, 1, 8, 8, dtype=torch.float64), z[:, :1])
    assert worst.max().item() == pytest.approx(64 * -math.log(1e-5), rel=1e-6)
    assert pytest.approx(math.log((1 - 1e-5) / 1e-5)) == LOGIT_CLAMP


def test_reference_mlp_skip_reaches_both_hidden_layers_not_the_output():
    torch.manual_seed(0)
    plain = ReferenceMLPVAE((1, 8, 8), latent_dim=3, hidden=16, skip=False)
    skip = ReferenceMLPVAE((1, 8, 8), latent_dim=3, hidden=16, skip=True)
    assert len(plain.z_layers) == 0 and len(skip.z_layers) == 2
    assert skip.dec_last.in_features == 16  # the output layer reads the last hidden layer only
    x = torch.bernoulli(torch.full((2, 1, 8, 8), 0.5))
    ll = skip.log_likelihood(x, torch.randn(5, 2, 3))
    assert ll.shape == (5, 2) and (ll < 0).all()


def test_reference_lstm_sets_h0_of_the_last_layer_only():
    kw = dict(
        latent_dim=4,
        emb_dim=8,
        hidden=6,
        enc_layers=1,
        dec_dropout=0.0,
        init_range=0.1,
        skip=True,
    )
    ref = ReferenceLSTMVAE(20, 0, dec_layers=2, **kw)
    h0 = ref.decoder.initial_h(torch.randn(5, 4))
    assert h0.shape == (2, 5, 6)
    assert (h0[0] == 0).all() and (h0[1] != 0).any()
    # With one decoder layer the reference and the harness model are the same function.
    ours = LSTMVAE(20, 0, dec_layers=1, **kw).eval()
    ref1 = ReferenceLSTMVAE(20, 0, dec_layers=1, **kw).eval()
    ref1.load_state_dict(ours.state_dict())
    ids = torch.tensor([[1, 5, 6, 7, 2], [1, 8, 2, 0, 0]])
    x = TokenBatch(ids, torch.tensor([5, 3]))
    z = torch.randn(3, 2, 4)
    torch.testing.assert_close(ref1.log_likelihood(x, z), ours.log_likelihood(x, z))
    check_model(ref.double(), x.to("cpu"), samples=3)


def _reference_beta_trace(beta0: float, warmup: int, steps_per_epoch: int, steps: int):
    """The reference loop itself (train_img_skip.py lines 125-128 and 147-148)."""
    beta, out = beta0, []
    for _ in range(steps):
        beta = min(1, beta + 1.0 / (warmup * steps_per_epoch))
        out.append(beta)
    return out


def test_reference_warmup_first_and_last_steps():
    spe, w = 100, 10
    spec = plugins.registries().objectives.get("kl-anneal-ref")
    obj = spec.build(TrainingBudget(epochs=2 * w, steps_per_epoch=spe), beta0=0.1, epochs=w)
    assert isinstance(obj, ReferenceWarmup)
    assert obj.beta(0) == pytest.approx(0.1 + 1 / (w * spe))  # the first step already moved
    last = round(0.9 * w * spe) - 1  # reaches 1 after 0.9 W epochs, not W
    assert obj.beta(last) == 1.0
    assert obj.beta(last - 1) == pytest.approx(1.0 - 1 / (w * spe))
    assert obj.beta(w * spe) == 1.0
    trace = _reference_beta_trace(0.1, w, spe, 2 * w * spe)
    assert [obj.beta(s) for s in range(len(trace))] == pytest.approx(trace, abs=1e-9)
    log_px, kl = torch.tensor([-10.0, -20.0]), torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert obj(log_px, kl, 0).item() == pytest.approx(15.0 + obj.beta(0) * 5.0)


def test_tiny_reference_pixelcnn_trains_through_the_runner(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_PIXELCNN_GRIDS", "0")
    params = {"latent_dim": 3, "layers": 2, "channels": 8, "enc_channels": 8, "enc_blocks": 1}
    group = Group(
        "ref",
        datasets=("digits",),
        models=("pixelcnn-skip-vae-ref",),
        objectives=("kl-anneal-ref",),
        model_params={"pixelcnn-skip-vae-ref": params},
        objective_params={"kl-anneal-ref": {"epochs": 1.0}},
        budget=Budget(epochs=1, batch_size=100, train_subset=300),
        eval=EvalSettings(iw_samples=4, batch_size=100),
        metrics=("neg_elbo", "nll", "nll_bound", "kl", "au"),
    )
    (cell,) = expand("t", "s", [group])
    record = train_cell(cell, tmp_path / "run", RunOptions(tmp_path, torch.device("cpu")))
    assert record["status"] == "finished"
    m = record["metrics"]
    assert m["nll_bound"]["value"] == m["neg_elbo"]["value"]
    assert 0 < m["nll"]["value"] <= m["nll_bound"]["value"] + 1.0
