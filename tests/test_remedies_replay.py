"""Reference replays: each remedy's update written again in plain torch from its reference code
(file and lines cited; the snapshots are listed in docs/remedies.md), run for one to three
steps on fixed tensors and seeds, and compared with what the harness does.

Float64 throughout, so "the same" means equal to rounding, except where the reference itself
approximates (SA-VAE's finite-difference Hessian-vector products).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from bench_objectives.plugin import FreeBits
from bench_remedies import methods as m
from bench_remedies.objectives import KlTargetFreeBits, KlWarmup, free_bits_kl
from torch import Tensor, nn

from bench import LatentVariableModel, Method, TrainingBudget, plugins
from bench.data import TensorSplit
from bench.methods import MethodStep, ScaledLrStep, assemble, parameter_groups
from bench.specs import resolve_params
from bench.suites import EvalSettings
from bench.validation import validation_pass

F64 = torch.float64


class Tiny(LatentVariableModel):
    """A linear encoder and decoder with a unit-variance Gaussian likelihood (constant left
    out); ``tokens`` makes it report token counts as a text model does."""

    def __init__(self, scale: float = 1.0, seed: int = 0, tokens: Tensor | None = None) -> None:
        super().__init__()
        self.latent_dim = 2
        self.enc = nn.Linear(6, 4, dtype=F64)
        self.dec = nn.Linear(2, 6, dtype=F64)
        self.tokens = tokens
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=F64) * scale)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.enc(x)
        return h[:, :2], h[:, 2:]

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        return -0.5 * ((x - self.dec(z)) ** 2).sum(-1)

    def num_tokens(self, x: Tensor) -> Tensor | None:
        return None if self.tokens is None else self.tokens[: len(x)]

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.enc.parameters())


def batch(seed: int, n: int = 5, scale: float = 1.0) -> Tensor:
    return torch.randn(n, 6, generator=torch.Generator().manual_seed(seed), dtype=F64) * scale


def kl_diag(mu: Tensor, logvar: Tensor) -> Tensor:
    """sa-vae ``utils.py`` 36-38 (per example, not averaged)."""
    return -0.5 * torch.sum(logvar - mu.pow(2) - torch.exp(logvar) + 1, 1)


def noise(gen: torch.Generator, like: Tensor) -> Tensor:
    """The draw the harness makes for one sample per example (``reparameterize``, K = 1)."""
    return torch.randn((1, *like.shape), dtype=like.dtype, generator=gen)


def method_step(
    method: Method,
    model: LatentVariableModel,
    x: Tensor,
    *,
    lr: float = 0.1,
    momentum: float = 0.0,
    steps_per_epoch: int = 10,
    epochs: int = 1,
    grad_clip: float | None = 5.0,
    batches: list[Tensor] | None = None,
    validation: Any = None,
) -> MethodStep:
    """The runner's step for ``method``, with SGD per optimizer it asks for."""
    groups = parameter_groups(model, x)
    opts = {n: torch.optim.SGD(groups[n], lr=lr, momentum=momentum) for n in method.optimizers}

    def stream(epoch: int) -> Iterator[Tensor]:
        yield from batches or []

    budget = TrainingBudget(epochs, steps_per_epoch)
    return MethodStep(method, model, opts, groups, budget, grad_clip, stream, validation)


def params_of(model: nn.Module) -> list[Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def assert_same(a: nn.Module | list[Tensor], b: nn.Module | list[Tensor], **tol: float) -> None:
    pa = params_of(a) if isinstance(a, nn.Module) else a
    pb = params_of(b) if isinstance(b, nn.Module) else b
    for x, y in zip(pa, pb, strict=True):
        torch.testing.assert_close(x, y, **(tol or {"rtol": 1e-12, "atol": 1e-12}))


def reference_clip(tensors: list[Tensor], max_norm: float) -> list[Tensor]:
    """sa-vae ``optim_n2n.py`` 55-70: one 2-norm over every tensor of the list, scaled by
    max_norm / (norm + 1e-6) when that is below 1."""
    total = sum(t.norm(2) ** 2 for t in tensors) ** 0.5
    coef = max_norm / (total + 1e-6)
    return [t * coef for t in tensors] if coef < 1 else list(tensors)


# ---- SA-VAE: harvardnlp/sa-vae ---------------------------------------------------------------


def svi_loss(model: Tiny, x: Tensor, mu: Tensor, lv: Tensor, eps: Tensor, beta: float) -> Tensor:
    """``train_text.py`` 114-120 with ``models_text.py`` 64-68: batch-mean NLL + beta KL."""
    z = mu + eps * torch.exp(0.5 * lv)
    return (-model.log_likelihood(x, z)[0]).mean() + beta * kl_diag(mu, lv).mean()


def reference_refine(model, x, mu, lv, steps, lr, max_norm, momentum, gen, beta):
    """``optim_n2n.py`` 72-115 (``forward_mom``)."""
    mom: list[Tensor] = []
    for k in range(steps):
        mu, lv = mu.detach().requires_grad_(), lv.detach().requires_grad_()
        loss = svi_loss(model, x, mu, lv, noise(gen, mu), beta)
        g_mu, g_lv = torch.autograd.grad(loss, (mu, lv))
        g = reference_clip([g_mu], max_norm) + reference_clip([g_lv], max_norm)  # 94-96
        mom = (
            [-gi for gi in g]
            if k == 0
            else [p * momentum - gi for p, gi in zip(mom, g, strict=True)]
        )
        mu, lv = mu + lr * mom[0], lv + lr * mom[1]  # 110-112
    return mu.detach(), lv.detach()


@pytest.mark.parametrize("clipped", [False, True])
@pytest.mark.parametrize("steps", [1, 2, 3])
def test_sa_vae_refinement_is_the_reference_forward(clipped, steps):
    model = Tiny(scale=1.0 if clipped else 0.3)
    x = batch(1, n=8, scale=8.0 if clipped else 0.5)
    mu0, lv0 = (t.detach() for t in model.encode(x))
    got = m.refine(
        model, x, mu0, lv0, steps, 1.0, 5.0, torch.Generator().manual_seed(2),
        create_graph=False, momentum=0.5, beta=0.3,
    )  # fmt: skip
    want = reference_refine(
        model, x, mu0, lv0, steps, 1.0, 5.0, 0.5, torch.Generator().manual_seed(2), 0.3
    )
    torch.testing.assert_close(got[0], want[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got[1], want[1], rtol=1e-12, atol=1e-12)
    # The first gradient's norm says whether the clip was at work.
    mu, lv = mu0.clone().requires_grad_(), lv0.clone().requires_grad_()
    loss = svi_loss(model, x, mu, lv, noise(torch.Generator().manual_seed(2), mu), 0.3)
    norm = torch.autograd.grad(loss, mu)[0].norm()
    assert bool(norm > 5.0) == clipped


def reference_savae_step(model, x, steps, lr, momentum, beta, gen, sgd_lr, r=1e-5):
    """One training step of ``train_text.py`` 192-227 (``--model savae --train_n2n 1``):
    ``forward_mom`` (``optim_n2n.py`` 72-115), the final loss, then ``backward_mom``
    (117-169), finite-difference Hessian-vector products with ``r`` = eps = 1e-5, every clip
    at 5. Returns the largest norm any clip saw."""
    dec = list(model.dec.parameters())
    seen: list[float] = []

    def clip(ts: list[Tensor]) -> list[Tensor]:
        seen.append(float(sum(t.norm() ** 2 for t in ts) ** 0.5))
        return reference_clip(ts, 5.0)

    mean, logvar = model.encode(x)
    inp = [mean.detach().requires_grad_(), logvar.detach().requires_grad_()]
    cache, in_grads, p_grads, zs, mom = [], [], [], [], []
    for k in range(steps):  # forward_mom, keeping what backward_mom reads
        zs.append(noise(gen, mean))
        grads = torch.autograd.grad(svi_loss(model, x, *inp, zs[k], beta), inp + dec)
        gi = clip([grads[0]]) + clip([grads[1]])  # 94-96
        p_grads.append([g.detach() for g in grads[2:]])
        cache.append([t.detach() for t in inp])
        in_grads.append(gi)
        mom.append(
            [-g for g in gi]
            if k == 0
            else [p * momentum - g for p, g in zip(*mom, gi, strict=True)]
        )
        inp = [(t.detach() + lr * p).requires_grad_() for t, p in zip(inp, mom[-1], strict=True)]
        mom = mom[-1:]
    model.zero_grad()
    var_loss = svi_loss(model, x, *inp, noise(gen, mean), beta)  # 200-206
    var_loss.backward()  # 207: the decoder's direct gradient, and d loss / d (mu_N, logvar_N)
    gx = [inp[0].grad, inp[1].grad]
    gp = [torch.zeros_like(t) for t in gx]
    for k in reversed(range(steps)):  # backward_mom
        gp = [p + lr * g for p, g in zip(gp, gx, strict=True)]
        x_rv = [(c + r * v).requires_grad_() for c, v in zip(cache[k], gp, strict=True)]
        grads_rv = clip(
            list(torch.autograd.grad(svi_loss(model, x, *x_rv, zs[k], beta), x_rv + dec))
        )
        h_wx = clip([(a - b) / r for a, b in zip(grads_rv[2:], p_grads[k], strict=True)])  # 148-156
        for p, h in zip(dec, h_wx, strict=True):
            p.grad += -h
        h_xx = [(a - b) / r for a, b in zip(grads_rv[:2], in_grads[k], strict=True)]  # 159-161
        gx = clip([g - h for g, h in zip(gx, h_xx, strict=True)])  # 162-165
        gp = [p * momentum for p in gp]
    torch.autograd.backward([mean, logvar], gx)  # 221-224
    seen.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)))  # 225-226
    with torch.no_grad():
        for p in model.parameters():
            p -= sgd_lr * p.grad
    return max(seen)


def test_sa_vae_training_step_is_the_reference_step():
    """The whole step: the decoder's direct gradient plus the through-refinement term, the
    encoder's through-refinement gradient only, the warm-up weight inside the refinement and
    the final loss. Where no clip is at work (checked), autograd's exact second derivatives
    and the reference's finite differences agree to the latter's accuracy: the gap shrinks
    with the difference step r as O(r)."""
    x = batch(4, n=6, scale=0.5)
    n = 10  # batches per epoch
    beta = min(1, 0.1 + 1.0 / (10 * n))  # train_text.py 104-107, 154-155: before step 1
    warmup = KlWarmup(0.1, 10, n, span="one")
    assert warmup(0) == pytest.approx(beta, rel=1e-12)
    model = Tiny(scale=0.3)
    method = m.SemiAmortized(3, 1.0, 5.0, 0.5, warmup)
    method_step(method, model, x, lr=0.5, steps_per_epoch=n)(x, 0, torch.Generator().manual_seed(7))
    before = params_of(Tiny(0.3))
    moved = max(float((a - b).abs().max()) for a, b in zip(params_of(model), before, strict=True))
    assert moved > 1e-2  # the step did something the tolerances could not hide
    for r, tol in ((1e-5, 1e-6), (1e-7, 1e-8)):  # 1e-5: the reference's eps
        ref = Tiny(scale=0.3)
        seen = reference_savae_step(
            ref, x, 3, 1.0, 0.5, beta, torch.Generator().manual_seed(7), 0.5, r
        )
        assert seen < 5.0  # no clip anywhere
        assert_same(model, ref, rtol=0, atol=tol)


# ---- aggressive training: jxhe/vae-lagging-encoder ---------------------------------------------


def reference_aggressive_step(model, x, batches, kl_weight, gen, check, max_sub, units):
    """``image.py`` 293-348 (text: ``text.py`` 364-424, with ``units`` the words): at most
    ``max_sub`` encoder-only updates (``sub_iter`` from 1 while < 100: 99), the stop rule every
    ``check`` updates, then one decoder-only update; each update clips every parameter's
    gradient together at 5 (``clip_grad_norm_(vae.parameters(), clip_grad)``). Returns the
    number of encoder updates."""
    enc_opt = torch.optim.SGD(model.enc.parameters(), lr=0.1)
    dec_opt = torch.optim.SGD(model.dec.parameters(), lr=0.1)

    def loss_of(xb: Tensor) -> Tensor:  # vae.loss: rec + kl_weight * KL per example
        mu, lv = model.encode(xb)
        z = mu + noise(gen, mu) * torch.exp(0.5 * lv)
        return -model.log_likelihood(xb, z)[0] + kl_weight * kl_diag(mu, lv)

    sub_iter, enc_batch, num, pre, cur = 1, x, 0.0, 1e4, 0.0
    stream = iter(batches)
    while sub_iter < max_sub + 1:
        enc_opt.zero_grad()
        dec_opt.zero_grad()
        num += units(enc_batch)
        loss = loss_of(enc_batch)
        cur += loss.sum().item()
        loss.mean().backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        enc_opt.step()
        enc_batch = next(stream, None)
        if sub_iter % check == 0:
            cur = cur / num
            if pre - cur < 0:
                break
            pre, cur, num = cur, 0.0, 0.0
        sub_iter += 1
    enc_opt.zero_grad()
    dec_opt.zero_grad()
    loss_of(x).mean().backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    dec_opt.step()
    return min(sub_iter, max_sub)


@pytest.mark.parametrize("text", [False, True])
@pytest.mark.parametrize("max_inner", [1, 3, 25])
def test_aggressive_step_is_the_reference_step(text, max_inner):
    """The inner encoder-only loop, its stop rule (per example, or per word for text), its
    check interval by data kind (``check_every`` 0: 10 images, 15 text), the all-parameter
    clip before stepping one group, the decoder-only update and the KL weight."""
    tokens = torch.tensor([7.0, 3, 9, 4, 5]) if text else None
    model = Tiny(scale=3.0, tokens=tokens)
    ref = copy.deepcopy(model)
    x = batch(0, scale=4.0)
    batches = [batch(10 + i, scale=4.0) for i in range(30)]
    n = 8
    warmup = KlWarmup(0.1, 10, n)
    method = m.Aggressive(window_steps=n, max_inner=max_inner, check_every=0, warmup=warmup)
    step = method_step(method, model, x, steps_per_epoch=n, batches=batches)
    step(x, 0, torch.Generator().manual_seed(3))
    kl_weight = min(1.0, 0.1 + (1.0 - 0.1) / (10 * n))  # text.py 337-338, 364
    units = (lambda xb: float(tokens[: len(xb)].sum())) if text else (lambda xb: len(xb))
    check = 15 if text else 10
    count = reference_aggressive_step(
        ref, x, batches, kl_weight, torch.Generator().manual_seed(3), check, max_inner, units
    )
    assert method.state["encoder_updates"] == count
    assert_same(model, ref)


def reference_inner_count(window_losses: list[tuple[float, float]], check: int) -> int:
    """``text.py`` 366-400 on given (summed loss, units) per update: how many updates run."""
    sub_iter, num, pre, cur = 1, 0.0, 1e4, 0.0
    while sub_iter < 100:
        loss_sum, units = window_losses[sub_iter - 1]
        num += units
        cur += loss_sum
        if sub_iter % check == 0:
            cur = cur / num
            if pre - cur < 0:
                return sub_iter
            pre, cur, num = cur, 0.0, 0.0
        sub_iter += 1
    return 99


@pytest.mark.parametrize(
    "losses",
    [
        [(100.0 - i, 10.0) for i in range(120)],  # always falling: the cap, 99 updates
        [(50.0, 10.0)] * 120,  # flat: a tie is not a rise, it goes on to the cap
        [(50.0 - i, 10.0) for i in range(30)] + [(90.0, 10.0)] * 90,  # rises in window 3
        [(50.0, 5.0), (50.0, 20.0)] * 60,  # per-unit normalization over uneven batches
    ],
)
def test_aggressive_inner_stop_rule_and_cap_are_the_reference(losses):
    for check in (10, 15):
        stop, count = m.InnerStop(check), 0
        while count < 99:  # the registered default max_inner
            count += 1
            if stop.add(*losses[count - 1]):
                break
        assert count == reference_inner_count(losses, check)
    spec = plugins.registries().objectives.get("aggressive")
    assert spec.params["max_inner"].default == 99


def reference_switch_text(mis: list[float]) -> int | None:
    """``text.py`` 455-464 (``pre_mi = 0``, line 332)."""
    pre = 0.0
    for i, cur in enumerate(mis):
        if cur - pre < 0:
            return i
        pre = cur
    return None


def reference_switch_image(mis: list[float]) -> int | None:
    """``image.py`` 379-392 (``best_mi = mi_not_improved = 0``, line 274)."""
    best, bad = 0.0, 0
    for i, cur in enumerate(mis):
        if cur - best < 0:
            bad += 1
            if bad == 5:
                return i
        else:
            best = cur
    return None


@pytest.mark.parametrize(
    "mis",
    [
        [0.5, 1.0, 1.2, 1.1, 1.3, 1.0, 0.9, 1.4, 1.2, 1.0, 0.8],
        [-0.1, 0.2, 0.2, 0.3, 0.1, 0.1, 0.0, 0.05, 0.3, 0.2],
        [1.0, 2.0, 3.0, 4.0],
        [0.3, 0.2, 0.25, 0.1, 0.4, 0.35, 0.3, 0.2, 0.1],
    ],
)
def test_aggressive_switch_on_validation_mi_is_the_reference_rule(mis):
    assert m.mi_switch(mis, 1) == reference_switch_text(mis)
    assert m.mi_switch(mis, 5) == reference_switch_image(mis)


def test_aggressive_switches_at_its_validation_check():
    """Through the step: a validation every ``window`` steps while aggressive, the harness's
    MI estimate, the switch at the first drop (patience 1), then both groups update."""
    model = Tiny(scale=0.5)
    x = batch(0)
    split = TensorSplit(batch(5, n=40))
    settings = EvalSettings(batch_size=20)

    def validation(mdl: LatentVariableModel, step: int):
        return validation_pass(mdl, split, settings, 0, step)

    method = m.Aggressive(window_steps=2, max_inner=1, check_every=1, mi_patience=1)
    step = method_step(method, model, x, steps_per_epoch=2, validation=validation)
    for i in range(12):
        step(x, i, torch.Generator().manual_seed(i))
        if i % 2:  # the check saw the weights as they are now
            assert method.state["mi_checks"][-1] == [i, validation(model, i).mi()]
        if not method.state["aggressive"]:
            break
    checks = method.state["mi_checks"]
    assert [s for s, _ in checks] == list(range(1, 2 * len(checks), 2))
    switch = m.mi_switch([mi for _, mi in checks], 1)
    expected = None if switch is None else checks[switch][0] + 1
    assert method.state["switch_step"] == expected


# ---- encoder pretraining + free bits: bohanli/vae-pretraining-encoder ------------------------


def fb2_loss(model: Tiny, x: Tensor, gen: torch.Generator, kl_weight: float, target: float):
    """``text_anneal_fb.py`` 318-325 and 331 (fb = 2): per example and dimension, KL counts
    only above target / D (a constant mask)."""
    mu, logvar = model.encode(x)
    z = mu + noise(gen, mu) * torch.exp(0.5 * logvar)
    loss_kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)
    kl_mask = (loss_kl > target / mu.shape[1]).float()
    loss_rc = -model.log_likelihood(x, z)[0]
    return (loss_rc + kl_weight * (kl_mask * loss_kl).sum(dim=1)).mean()


def reference_pretrain_fb(ref, x_of, validation, n, total, target, method) -> None:
    """The reference's AE run (``text_beta.py`` 296-314, best at 348-354), then the first step
    of its VAE run from that checkpoint."""
    opts = [torch.optim.SGD(p.parameters(), lr=0.3, momentum=0.9) for p in (ref.enc, ref.dec)]
    kept: dict[int, tuple[float, list[Tensor]]] = {}
    for i in range(4):
        for o in opts:
            o.zero_grad()
        gen = torch.Generator().manual_seed(i)
        mu, logvar = ref.encode(x_of[i])
        z = mu + noise(gen, mu) * torch.exp(0.5 * logvar)
        (-ref.log_likelihood(x_of[i], z)[0]).mean().backward()  # rec + 0 * KL
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 5.0)
        for o in opts:
            o.step()
        if i % n == n - 1:  # the end of an epoch: validation loss at KL weight 0
            loss = validation(ref, i).loss(lambda log_px, kl: -log_px)
            kept[i] = (loss, [p.detach().clone() for p in ref.enc.parameters()])
    best = min(kept, key=lambda i: kept[i][0])
    assert best == 1  # not the last AE step: the VAE phase starts from an earlier encoder
    assert method.state["best_autoencoder_step"] == best
    with torch.no_grad():
        for p, saved in zip(ref.enc.parameters(), kept[best][1], strict=True):
            p.copy_(saved)
    torch.manual_seed(11)
    ref.dec.reset_parameters()
    opts = [torch.optim.SGD(p.parameters(), lr=0.3, momentum=0.9) for p in (ref.enc, ref.dec)]
    kl_weight = min(1.0, 0.0 + 1.0 / (0.5 * (total - 4)))  # kl_start 0, +rate before the step
    assert method.beta(4) == pytest.approx(kl_weight)
    loss = fb2_loss(ref, x_of[4], torch.Generator().manual_seed(4), kl_weight, target)
    ref.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(ref.parameters(), 5.0)
    for o in opts:
        o.step()


def test_pretrain_fb_phase_switch_is_the_reference_restart():
    """Steps 0-3 train an autoencoder (``text_beta.py --beta 0``: both optimizers, clip 5);
    at step 4 the VAE run of ``text_anneal_fb.py`` starts: the encoder of the best validation
    reconstruction epoch (206-211, ``model.pt`` is ``text_beta.py``'s best), the decoder
    re-initialized (213-215), new optimizers at the initial learning rate (253-256), and the
    fb = 2 loss under the warm-up weight increased before the step (271-273, 306)."""
    n, total, target = 2, 8, 0.5
    x_of = {i: batch(20 + i, scale=2.0) for i in range(5)}
    split = TensorSplit(batch(40, n=30, scale=2.0))
    settings = EvalSettings(batch_size=10)

    def validation(mdl: LatentVariableModel, step: int):
        return validation_pass(mdl, split, settings, 0, step)

    model = Tiny(scale=0.7)
    ref = copy.deepcopy(model)
    method = m.PretrainFreeBits(total, 0.5, "dimension", target, warm_up=0.5)
    step = method_step(
        method, model, x_of[0], lr=0.3, momentum=0.9, steps_per_epoch=n, epochs=4,
        validation=validation,
    )  # fmt: skip
    for i in range(4):
        assert method.phase() == "pretrain" and all(method.holds(d) for d in m_decisions())
        step(x_of[i], i, torch.Generator().manual_seed(i))
    for opt in step.optimizers.values():  # a decay during the AE phase must not carry over
        for g in opt.param_groups:
            g["lr"] = 0.15
    torch.manual_seed(11)  # the decoder's re-initialization draws from the global stream
    step(x_of[4], 4, torch.Generator().manual_seed(4))
    assert method.phase() == "vae" and not any(method.holds(d) for d in m_decisions())
    assert method.unfinished() is None and method.state["reset_step"] == 4

    reference_pretrain_fb(ref, x_of, validation, n, total, target, method)
    assert_same(model, ref)


def m_decisions() -> tuple[str, ...]:
    from bench.methods import DECISIONS

    return DECISIONS


# ---- cyclical annealing: haofuml/cyclical_annealing --------------------------------------------


def reference_cyclical_lm(n: int, epochs: int = 40, cycle: int = 10, warmup: int = 5):
    """``language_model/train_text_cyc_ptb.py`` 116-121 and 165-178: per step, the KL weight
    and the learning rate the step trains with (Adam at 1e-3)."""
    betas, lrs = [], []
    beta = 0.1  # warmup > 0
    for epoch in range(1, epochs + 1):
        tmp = float((epoch - 1) % cycle) / cycle
        cur_lr = 1e-3 * 0.5 * (1 + math.cos(tmp * math.pi))
        if (epoch - 1) % cycle == 0:
            beta = 0.1
        for _ in range(n):
            beta = min(1, beta + 1.0 / (warmup * n))
            betas.append(beta)
            lrs.append(cur_lr)
    return betas, lrs


def test_cyclical_beta_and_learning_rate_are_the_reference_schedules():
    n = 7
    budget = TrainingBudget(40, n)
    method = m.Cyclical(budget, cycles=4, ratio=0.5)
    assert method.uses_default_step() and method.holds("lr_decay")
    model = Tiny()
    seen: list[float] = []

    def default_step(mdl: Any, opt: torch.optim.Optimizer) -> Callable[..., Any]:
        def step(x: Any, i: int, gen: Any) -> Any:
            seen.append(opt.param_groups[0]["lr"])
            return torch.zeros(()), torch.zeros(len(x), 2)

        return step

    split = TensorSplit(batch(0))
    built = assemble(
        method, model, budget, lambda ps: torch.optim.Adam(ps, lr=1e-3), split, 5, 0, 5.0,
        default_step,
    )  # fmt: skip
    assert isinstance(built.step, ScaledLrStep)
    for i in range(budget.total_steps):
        built.step(batch(0), i, None)
    betas, lrs = reference_cyclical_lm(n)
    assert [method.beta(i) for i in range(budget.total_steps)] == pytest.approx(betas, rel=1e-12)
    assert seen == pytest.approx(lrs, rel=1e-12)


def frange_cycle_linear(n_iter, start=0.0, stop=1.0, n_cycle=4, ratio=0.5):
    """The README's sample schedule (not used by the training scripts)."""
    out = [stop] * n_iter
    period = n_iter / n_cycle
    step = (stop - start) / (period * ratio)
    for c in range(n_cycle):
        v, i = start, 0
        while v <= stop and (int(i + c * period) < n_iter):
            out[int(i + c * period)] = v
            v += step
            i += 1
    return out


def test_cyclical_paper_schedule_is_the_readme_grid_where_the_period_is_whole():
    budget = TrainingBudget(1, 100)
    method = m.Cyclical(budget, 4, 0.5, schedule="paper", lr_restarts="none")
    assert method.lr_scale(3) is None and not method.holds("lr_decay")
    got = [method.beta(i) for i in range(100)]
    assert got == pytest.approx(frange_cycle_linear(100), abs=1e-12)


# ---- MMD-VAE: ShengjiaZhao/MMD-Variational-Autoencoder ------------------------------------------


def reference_mmd(x: Tensor, y: Tensor) -> Tensor:
    """``mmd_vae.py`` 59-71, the tiles written as broadcasting."""
    dim = x.shape[1]

    def kernel(a: Tensor, b: Tensor) -> Tensor:
        return torch.exp(-((a[:, None, :] - b[None, :, :]) ** 2).mean(2) / dim)

    return kernel(x, x).mean() + kernel(y, y).mean() - 2 * kernel(x, y).mean()


def test_mmd_value_and_step_are_the_reference():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(200, 32, generator=g, dtype=F64) * 0.5 + 0.3
    b = torch.randn(150, 32, generator=g, dtype=F64)
    torch.testing.assert_close(m.gaussian_kernel_mmd(a, b), reference_mmd(a, b), rtol=1e-12, atol=0)
    # One step: -log p(x|z) + kl_weight KL + mmd_weight MMD(z, prior samples), z and the prior
    # drawn in that order from the step's generator (``mmd_vae_eval.py`` 105-106 and 138).
    model, x = Tiny(), batch(3, n=8)
    ref = copy.deepcopy(model)
    method = m.MmdVae(kl_weight=0.2, mmd_weight=50.0)
    step = method_step(method, model, x, grad_clip=None)
    loss, _ = step(x, 0, torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)
    mu, logvar = ref.encode(x)
    z = mu + noise(gen, mu) * torch.exp(0.5 * logvar)
    prior = torch.randn(8, 2, generator=gen, dtype=F64)
    want = (-ref.log_likelihood(x, z)[0] + 0.2 * kl_diag(mu, logvar)).mean()
    want = want + 50.0 * reference_mmd(z[0], prior)
    torch.testing.assert_close(loss, want.detach(), rtol=1e-12, atol=0)
    want.backward()
    with torch.no_grad():
        for p in ref.parameters():
            p -= 0.1 * p.grad
    assert_same(model, ref)


# ---- BN-VAE: valdersoul/bn-vae ------------------------------------------------------------------


def test_bn_vae_is_batchnorm1d_with_a_fixed_gamma():
    """``enc_lstm.py`` 163-165 and 185-189: ``nn.BatchNorm1d(nz)`` (eps 1e-5, momentum 0.1)
    with its weight filled with gamma and frozen, its bias learned from 0; the mean only."""
    gamma = 0.5
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(16, 4, generator=g, dtype=F64)
    mu[:, 3] = 0.7 + 1e-4 * mu[:, 3]  # a nearly constant column: eps matters here
    logvar = torch.randn(16, 4, generator=g, dtype=F64)
    ref = nn.BatchNorm1d(4, dtype=F64)
    with torch.no_grad():
        ref.weight.fill_(gamma)
    ref.weight.requires_grad = False
    ours = m.BatchNormMean(4, gamma).to(F64)
    target = torch.randn(16, 4, generator=g, dtype=F64)
    opt_ref = torch.optim.SGD([ref.bias], lr=0.3)
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.3)
    for _ in range(3):
        out_ref = ref(mu)
        out_ours, lv = ours(mu, logvar)
        torch.testing.assert_close(out_ours, out_ref, rtol=1e-12, atol=1e-12)
        assert torch.equal(lv, logvar)
        for out, opt in ((out_ref, opt_ref), (out_ours, opt_ours)):
            opt.zero_grad()
            ((out - target) ** 2).sum().backward()
            opt.step()
    torch.testing.assert_close(ours.shift.detach(), ref.bias.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours.norm.running_mean, ref.running_mean, rtol=1e-12, atol=0)
    torch.testing.assert_close(ours.norm.running_var, ref.running_var, rtol=1e-12, atol=0)
    ref.eval()
    ours.eval()
    torch.testing.assert_close(ours(mu, logvar)[0], ref(mu), rtol=1e-12, atol=1e-12)
    # The floor in training mode: each dimension's batch-mean mu^2 is >= gamma^2 v / (v + eps).
    ours.train()
    with torch.no_grad():
        ours.shift.zero_()
    out, _ = ours(mu, logvar)
    v = mu.var(0, unbiased=False)
    floor = gamma**2 * v / (v + 1e-5)
    torch.testing.assert_close(out.pow(2).mean(0), floor, rtol=1e-10, atol=0)
    assert float(floor[3]) < 0.5 * gamma**2  # eps bites on the nearly constant column
    # A batch of one (the reference skips it, ``text_anneal_fb.py`` 354-355): the running
    # statistics normalize it and stay as they were.
    stats = (ours.norm.running_mean.clone(), ours.norm.running_var.clone())
    one, _ = ours(mu[:1], logvar[:1])
    want = gamma * (mu[:1] - stats[0]) / torch.sqrt(stats[1] + 1e-5) + ours.shift
    torch.testing.assert_close(one, want, rtol=1e-12, atol=1e-12)
    assert torch.equal(ours.norm.running_mean, stats[0]) and torch.equal(
        ours.norm.running_var, stats[1]
    )


# ---- delta-VAE: valdersoul/bn-vae's DeltaGaussianLSTMEncoder -----------------------------------


def bisect(f: Callable[[float], float], lo: float, hi: float) -> float:
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(lo) * f(mid) > 0 else (lo, mid)
    return (lo + hi) / 2


def test_delta_vae_rate_is_the_public_code():
    """``enc_lstm.py`` 83-89 (the roots of ln x - x + 2 delta + 1, here by bisection instead of
    sympy) and 137-139; each dimension's KL is then delta + relu(mu_raw) / 2 + 5e-7."""
    delta = 0.15
    f = lambda s: math.log(s) - s + 2 * delta + 1  # noqa: E731
    low, high = bisect(f, 1e-9, 1.0), bisect(f, 1.0, 50.0)
    assert low == pytest.approx(0.41111, abs=1e-5) and high == pytest.approx(1.98625, abs=1e-5)
    l_std, u_std = torch.tensor(math.sqrt(low), dtype=F64), torch.tensor(math.sqrt(high), dtype=F64)
    grid = torch.tensor([-50.0, -3.0, 0.0, 3.0, 50.0], dtype=F64)
    mean, logvar = torch.meshgrid(grid, grid, indexing="ij")
    mean, logvar = mean.reshape(-1, 1), logvar.reshape(-1, 1)
    std = l_std + (u_std - l_std) * (1.0 / torch.clamp((1.0 + torch.exp(-logvar)), 1.0, 50.0))
    ref_logvar = torch.log(std**2)
    zero = torch.tensor(0.0, dtype=F64)
    ref_mean = torch.sqrt(
        2 * delta + 1 + ref_logvar - torch.exp(ref_logvar) + torch.max(zero, mean) + 1e-6
    )
    got_mean, got_logvar = m.DeltaVae(delta, 1e-4).posterior_transform(1)(mean, logvar)
    torch.testing.assert_close(got_logvar, ref_logvar, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got_mean, ref_mean, rtol=1e-12, atol=1e-12)
    kl = 0.5 * (got_mean**2 + got_logvar.exp() - 1 - got_logvar)
    torch.testing.assert_close(kl, delta + torch.relu(mean) / 2 + 5e-7, rtol=1e-9, atol=1e-12)


# ---- free bits: openai/iaf, and Li et al.'s fb modes ---------------------------------------------


def reference_li_loss(log_px: Tensor, kl: Tensor, fb: int, target: float, kl_weight: float):
    """``text_anneal_fb.py`` 312-331, with ``loss_rc`` = -log p(x|z) and the KL per example
    ([B]) or per dimension ([B, D]). ``.float()`` becomes the tensors' dtype: the reference
    runs in float32, where it is the same thing."""
    loss_rc = -log_px
    if fb == 1:
        loss_kl = kl.sum(1)
        kl_mask = (loss_kl > target).to(kl.dtype)
        loss = loss_rc + kl_mask * kl_weight * loss_kl
    elif fb == 2:
        kl_mask = (kl > target / kl.shape[1]).to(kl.dtype)
        loss = loss_rc + kl_weight * (kl_mask * kl).sum(dim=1)
    else:
        loss_kl = kl.sum(1)
        kl_mask = (loss_kl.mean() > target).to(kl.dtype)
        loss = loss_rc + kl_mask * kl_weight * loss_kl
    return loss.mean(dim=-1)


@pytest.mark.parametrize("fb, mode", [(1, "example"), (2, "dimension"), (3, "batch")])
@pytest.mark.parametrize("target", [1.0, 3.0, 6.0])
def test_li_free_bits_modes_are_the_reference_loss(fb, mode, target):
    g = torch.Generator().manual_seed(fb)
    log_px = -torch.rand(8, generator=g, dtype=F64) * 50
    kl = torch.rand(8, 4, generator=g, dtype=F64) * 2
    n, step = 6, 4
    warm = KlWarmup(0.0, 10, n)
    kl_weight = 0.0
    for _ in range(step + 1):  # text_anneal_fb.py 271-273 and 306: +rate before each step
        kl_weight = min(1.0, kl_weight + 1.0 / (10 * n))
    assert warm(step) == pytest.approx(kl_weight, rel=1e-12)
    lp_a, kl_a = log_px.clone().requires_grad_(), kl.clone().requires_grad_()
    lp_b, kl_b = log_px.clone().requires_grad_(), kl.clone().requires_grad_()
    if mode == "dimension":
        got = (-lp_a + warm(step) * free_bits_kl(kl_a, mode, target)).mean()
    else:
        got = KlTargetFreeBits(mode, target, warm)(lp_a, kl_a, step)
    want = reference_li_loss(lp_b, kl_b, fb, target, kl_weight)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    got.backward()
    want.backward()
    torch.testing.assert_close(kl_a.grad, kl_b.grad, rtol=1e-12, atol=0)
    torch.testing.assert_close(lp_a.grad, lp_b.grad, rtol=1e-12, atol=0)


def test_kingma_free_bits_is_the_iaf_objective():
    """openai/iaf ``tf_train.py`` 77-82 (``models.py`` 457-461): per group (here a dimension),
    the KL averaged over the minibatch, clamped below at ``kl_min`` (default 0.25, line 106),
    summed; the gradient is zero for groups under the floor."""
    g = torch.Generator().manual_seed(0)
    log_px = -torch.rand(8, generator=g, dtype=F64) * 50
    kl = torch.rand(8, 5, generator=g, dtype=F64) * 0.6
    kl[:, 0] *= 0.1  # a column well under the floor
    spec = plugins.registries().objectives.get("free-bits")
    lam = resolve_params(spec.params, {}, "free-bits")["lam"]
    assert lam == 0.25
    k = kl.clone().requires_grad_()
    loss = FreeBits(lam)(log_px, k, 0)
    kl_ave = torch.maximum(kl.mean(0), torch.tensor(lam, dtype=F64))
    torch.testing.assert_close(loss, -log_px.mean() + kl_ave.sum(), rtol=1e-12, atol=0)
    loss.backward()
    expected = (kl.mean(0) > lam).to(F64).expand(8, 5) / 8
    torch.testing.assert_close(k.grad, expected, rtol=1e-12, atol=0)
    assert float(k.grad[:, 0].abs().sum()) == 0.0


@pytest.mark.parametrize("start, span", [(0.1, "rest"), (0.0, "rest"), (0.1, "one")])
def test_kl_warmups_are_the_reference_loops(start, span):
    """vae-lagging-encoder ``text.py`` 337-338, 364 and vae-pretraining-encoder
    ``text_anneal_fb.py`` 271-273, 306 (``rest``); sa-vae ``train_text.py`` 104-107, 154-155
    (``one``)."""
    n, epochs = 7, 10
    warm = KlWarmup(start, epochs, n, span)
    rate = (1.0 - start) / (epochs * n) if span == "rest" else 1.0 / (epochs * n)
    beta, want = start, []
    for _ in range(15 * n):
        beta = min(1.0, beta + rate)
        want.append(beta)
    assert [warm(t) for t in range(15 * n)] == pytest.approx(want, rel=1e-12)


# ---- IWAE: yburda/iwae ------------------------------------------------------------------------


def test_iwae_step_is_the_reference_gradient_unclipped():
    """``iwae.py`` 142-172: the gradient is sum_k w~_k grad log w_k with the normalized
    weights w~ held constant; no clipping anywhere (the gradient here is far above the
    budget's 5, so a clip would show)."""
    model, x = Tiny(scale=2.0), batch(2, n=6, scale=5.0)
    ref = copy.deepcopy(model)
    step = method_step(m.Iwae(5), model, x, lr=0.01, grad_clip=5.0)
    loss, _ = step(x, 0, torch.Generator().manual_seed(9))
    gen = torch.Generator().manual_seed(9)
    mu, logvar = ref.encode(x)
    z = mu + torch.randn((5, *mu.shape), generator=gen, dtype=F64) * torch.exp(0.5 * logvar)
    log_w = (
        ref.log_likelihood(x, z)
        + ref.prior_log_prob(z)
        - m.diagonal_gaussian_log_prob(z, mu, logvar)
    )
    w = torch.softmax(log_w, 0).detach()  # 149-153
    bound = torch.logsumexp(log_w, 0) - math.log(5)  # 182
    torch.testing.assert_close(loss, -bound.mean().detach(), rtol=1e-12, atol=0)
    (-(w * log_w).sum(0).mean()).backward()  # 165-170, averaged over the batch
    norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in ref.parameters()))
    assert float(norm) > 50.0
    with torch.no_grad():
        for p in ref.parameters():
            p -= 0.01 * p.grad
    assert_same(model, ref)
