"""The gated PixelCNN VAE: autoregressive masks, where z enters, K-sample likelihood, wiring."""

from __future__ import annotations

import pytest
import torch
from bench_pixelcnn.grids import RECON_FILE, SAMPLES_FILE
from bench_pixelcnn.model import SAVAE_KERNELS, PixelCNNVAE
from bench_pixelcnn.plugin import CPU, MODELS, REF_MODELS, SWEEP
from bench_pixelcnn.reference import ReferencePixelCNNVAE

from bench import plugins
from bench.data import DataInfo
from bench.errors import ConfigError
from bench.runner import RunOptions, build_model, select_cells, train_cell, validate_cells
from bench.testing import check_model
from tests.helpers.models import dependence

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(skip: bool, size: int = 8, **kw) -> PixelCNNVAE:
    torch.manual_seed(0)
    params = {"latent_dim": 3, "layers": 3, "channels": 8, "enc_channels": 8, "enc_blocks": 1}
    params.update(kw)
    return PixelCNNVAE((1, size, size), skip=skip, **params).double()


@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize("kernels", [(3, 3, 3), (5, 3), (7, 5, 3, 3)])
def test_output_never_depends_on_current_or_later_pixels(skip, kernels):
    size = 7
    model = tiny(skip, size, layers=len(kernels), kernels=kernels)
    dep = dependence(model, size)
    n = size * size
    later = torch.triu(torch.ones(n, n, dtype=torch.bool))  # j >= i
    assert not (dep & later).any()
    # ...and it does see its neighbours, including up-right: no blind spot.
    for r, c in [(3, 3), (2, 5), (5, 1)]:
        i = r * size + c
        for dr, dc in [(0, -1), (-1, 0), (-1, 1), (-1, -1)]:
            assert dep[i, (r + dr) * size + (c + dc)], (r, c, dr, dc)


def test_savae_variant_is_autoregressive_with_full_past_row():
    model = tiny(True, 8, layers=12, kernels=SAVAE_KERNELS)
    dep = dependence(model, 8)
    later = torch.triu(torch.ones(64, 64, dtype=torch.bool))
    assert not (dep & later).any()
    # Kernels of 9 see the whole previous row of an 8-wide image, right edge included.
    i = 4 * 8 + 0
    assert dep[i, 3 * 8 : 4 * 8].all()


def test_plain_model_reads_z_at_first_layer_only_and_skip_everywhere():
    layers = 4
    for skip, expected in [(False, 2), (True, 2 * layers + 1)]:
        model = tiny(skip, layers=layers)
        seen = []
        hooks = [
            m.register_forward_hook(lambda mod, inp, out, seen=seen: seen.append(inp[0]))
            for m in model.decoder.z_injections()
        ]
        x = torch.bernoulli(torch.full((2, 1, 8, 8), 0.5, dtype=torch.float64))
        zmap = model.z_map(torch.randn(2, 3, dtype=torch.float64))
        model.decoder(x, zmap)
        for h in hooks:
            h.remove()
        assert len(seen) == expected
        conditioned = [layer.v_z is not None for layer in model.decoder.layers]
        assert conditioned == ([True] * layers if skip else [True] + [False] * (layers - 1))
        # Every injection carries z: its weights get a gradient from log p(x|z).
        model.zero_grad()
        z = torch.randn(1, 2, 3, dtype=torch.float64)
        model.log_likelihood(x, z).sum().backward()
        for mod in model.decoder.z_injections():
            assert mod.weight.grad is not None and mod.weight.grad.abs().sum() > 0


def test_plain_model_output_depends_on_z_at_every_pixel():
    model = tiny(False)
    x = torch.bernoulli(torch.full((1, 1, 8, 8), 0.5, dtype=torch.float64))
    z = torch.randn(1, 3, dtype=torch.float64, requires_grad=True)
    logits = model.logits(x, z).flatten()
    for i in (0, 1, 30, 63):  # pixel 0 too: the first layer reads the z map unshifted
        (g,) = torch.autograd.grad(logits[i], z, retain_graph=True)
        assert g.abs().sum() > 0


@pytest.mark.parametrize("skip", [False, True])
def test_model_keeps_the_contract(skip):
    """Shapes for K = 1 and K > 1, each sample scored as if alone, no host reads, gradients
    (bench.testing), and each entry a Bernoulli log-likelihood of its own (image, z) pair."""
    model = tiny(skip)
    x = torch.bernoulli(torch.full((3, 1, 8, 8), 0.4, dtype=torch.float64))
    check_model(model, x, samples=5)
    z = torch.randn(5, 3, 3, dtype=torch.float64)
    batched = model.log_likelihood(x, z)
    one = model.log_likelihood(x[1:2], z[2:3, 1:2])[0, 0]
    torch.testing.assert_close(batched[2, 1], one)
    assert (batched < 0).all()


def test_row_window_used_for_sampling_is_exact_and_tight():
    model = tiny(True, 10, layers=3, kernels=(5, 3, 3))
    dec = model.decoder
    x = torch.bernoulli(torch.full((2, 1, 10, 10), 0.5, dtype=torch.float64))
    zmap = model.z_map(torch.randn(2, 3, dtype=torch.float64))
    full = dec(x, zmap)
    for row in range(10):
        torch.testing.assert_close(dec.row_logits(x, zmap, row), full[:, :, row])
    # The window is no larger than needed: the bottom row sees the top of its window.
    dep = dependence(model, 10)
    last = 9 * 10 + 5
    top = 9 - dec.receptive_rows
    assert dep[last, top * 10 : (top + 1) * 10].any()
    assert not dep[last, : top * 10].any()


def test_sample_is_binary_and_reproducible():
    model = tiny(True, 6).float().eval()
    z = torch.randn(4, 3)
    a = model.sample(z, torch.Generator().manual_seed(1))
    b = model.sample(z, torch.Generator().manual_seed(1))
    assert a.shape == (4, 1, 6, 6)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(a, b)
    assert model.decode_mean(z) is None


@pytest.mark.parametrize(
    "shape, params, match",
    [
        ((1, 8, 8), {"kernel": 4}, "odd"),
        ((1, 8, 8), {"layers": 8, "kernels": [5, 3]}, "one kernel size per layer"),
        ((3, 8, 8), {}, "single-channel"),
        ((64,), {}, "single-channel"),
        ((1, 8, 8), {"latent_dim": 0}, "latent_dim"),
    ],
)
def test_bad_configuration_is_a_config_error(shape, params, match):
    with pytest.raises(ConfigError, match=match):
        PixelCNNVAE(shape, **params)


def test_models_and_suites_are_registered():
    regs = plugins.registries()
    for name in MODELS:
        assert regs.models.get(name).kinds == ("image",)
    groups = {
        s: [g.name for g in regs.suites.get("collapse").groups.get(s, [])]
        for s in ("smoke", "paper")
    }
    assert "pixelcnn" in groups["smoke"] and "pixelcnn" in groups["paper"]
    assert len(regs.suites.get(SWEEP).scales) >= 4
    assert regs.suites.get(CPU).scales == ("quick",)


def _pixelcnn_cells():
    regs = plugins.registries()
    out = []
    for suite_name in ("collapse", SWEEP, CPU):
        suite = regs.suites.get(suite_name)
        for scale in suite.scales:
            if not suite.groups.get(scale):
                continue
            _, cells = select_cells(suite, scale)
            out += [c for c in cells if c.model in MODELS + REF_MODELS]
    return out


def test_every_pixelcnn_cell_validates_and_builds():
    cells = _pixelcnn_cells()
    assert {c.dataset for c in cells} >= {"digits", "mnist", "mnist-static", "omniglot"}
    validate_cells(cells)
    paper = [c for c in cells if c.scale == "paper" and c.suite == "collapse"]
    assert {(c.dataset, c.model, c.objective, c.seed) for c in paper} == {
        (d, m, o, s)
        for d in ("mnist-static", "omniglot")
        for m in REF_MODELS
        for o in ("elbo", "kl-anneal-ref", "free-bits")
        for s in (0, 1, 2, 3, 4)
    }
    for c in paper:
        b = c.budget
        assert (b.lr, b.batch_size, b.grad_clip, b.epochs) == (1e-3, 50, 5.0, 100)
        assert b.patience is None and c.eval.iw_samples == 500  # all epochs, best kept
    seen = set()
    for c in cells:
        key = tuple(sorted((k, str(v)) for k, v in c.model_params.items()))
        if key in seen:
            continue
        seen.add(key)
        shape = (1, 8, 8) if c.dataset == "digits" else (1, 28, 28)
        data = type("D", (), {"info": DataInfo("image", shape)})()
        model = build_model(c, data, torch.device("cpu"))
        assert isinstance(model, ReferencePixelCNNVAE if c.model in REF_MODELS else PixelCNNVAE)


def test_smoke_cell_trains_and_writes_grids(tmp_path):
    cell = next(
        c for c in _pixelcnn_cells() if c.scale == "smoke" and c.model == "pixelcnn-skip-vae"
    )
    run_dir = tmp_path / cell.run_id
    record = train_cell(cell, run_dir, RunOptions(results_dir=tmp_path, device=torch.device("cpu")))
    assert record["status"] == "finished"
    assert {"nll", "kl", "mi", "au"} <= set(record["metrics"])
    assert record["metrics"]["nll"]["value"] > 0
    assert (run_dir / SAMPLES_FILE).stat().st_size > 0
    assert (run_dir / RECON_FILE).stat().st_size > 0
