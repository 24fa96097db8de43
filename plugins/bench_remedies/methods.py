"""Remedies that change the training procedure: IWAE, aggressive encoder training, SA-VAE,
BN-VAE, delta-VAE, encoder pretraining with free bits, MMD-VAE. Each is a
:class:`bench.Method`; none knows the model it trains."""

from __future__ import annotations

import math
from typing import Any

import torch
from scipy.special import lambertw
from torch import Tensor, nn

from bench import LatentVariableModel, Method, StepContext
from bench.contract import diagonal_gaussian_log_prob, reparameterize
from bench.estimators import gaussian_kl_per_dim
from bench_remedies.objectives import free_bits_kl

# ---- IWAE ------------------------------------------------------------------------------------


def iwae_bound(
    model: LatentVariableModel,
    x: Any,
    mu: Tensor,
    logvar: Tensor,
    k: int,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-example IWAE bound log (1/K) sum_k p(x, z_k) / q(z_k|x) and the K-sample ELBO
    (the mean of the same log-weights), ``[B]`` each."""
    z = reparameterize(mu, logvar, k, generator=generator)
    log_w = (
        model.log_likelihood(x, z)
        + model.prior_log_prob(z)
        - diagonal_gaussian_log_prob(z, mu, logvar)
    )
    return torch.logsumexp(log_w, 0) - math.log(k), log_w.mean(0)


class Iwae(Method):
    """Trains on the K-sample importance-weighted bound (Burda et al. 2016)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def step(self, ctx: StepContext) -> dict[str, Tensor]:
        mu, logvar = ctx.model.encode(ctx.x)
        bound, _ = iwae_bound(ctx.model, ctx.x, mu, logvar, self.k, ctx.generator)
        loss = -bound.mean()
        ctx.update(loss)
        return {"loss": loss, "kl": gaussian_kl_per_dim(mu, logvar)}


# ---- aggressive inference-network training ---------------------------------------------------


class Aggressive(Method):
    """He et al. (2019): while aggressive, each step first updates the encoder alone on fresh
    batches until the bound stops improving (checked every ``check_every`` inner updates, at
    most ``max_inner``), then updates the decoder alone on the step's batch. Aggressive
    training ends when the mean training bound over a window of ``window_steps`` steps stops
    improving on the previous window; ``switch_step`` records when. Then both update together.
    """

    optimizers = ("encoder", "decoder")

    def __init__(self, window_steps: int, max_inner: int, check_every: int) -> None:
        super().__init__()
        self.window_steps, self.max_inner, self.check_every = window_steps, max_inner, check_every
        self.state.update(
            aggressive=True,
            switch_step=None,
            encoder_updates=0,
            decoder_updates=0,
            window_sum=0.0,
            window_n=0,
            previous_window=math.inf,
        )

    def elbo_loss(self, ctx: StepContext, x: Any) -> tuple[Tensor, Tensor]:
        log_px, kl, _, _ = ctx.forward(x)
        return (-log_px[0] + kl.sum(-1)).mean(), kl

    def step(self, ctx: StepContext) -> dict[str, Tensor]:
        s = self.state
        inner = 0
        if s["aggressive"]:
            x, window, previous = ctx.x, 0.0, math.inf
            while inner < self.max_inner:
                loss, _ = self.elbo_loss(ctx, x)
                ctx.update(loss, "encoder")
                inner += 1
                window += float(loss.detach())
                if inner % self.check_every == 0:
                    if window >= previous:
                        break
                    previous, window = window, 0.0
                x = ctx.next_batch()
            s["encoder_updates"] += inner
        loss, kl = self.elbo_loss(ctx, ctx.x)
        if s["aggressive"]:
            ctx.update(loss, "decoder")
            s["decoder_updates"] += 1
            self._watch_bound(ctx, float(loss.detach()))
        else:
            ctx.update(loss)
            s["encoder_updates"] += 1
            s["decoder_updates"] += 1
        return {
            "loss": loss,
            "kl": kl,
            "inner_updates": torch.tensor(float(inner)),
            "aggressive": torch.tensor(float(s["aggressive"])),
        }

    def _watch_bound(self, ctx: StepContext, loss: float) -> None:
        s = self.state
        s["window_sum"] += loss
        s["window_n"] += 1
        if s["window_n"] >= self.window_steps:
            mean = s["window_sum"] / s["window_n"]
            if mean >= s["previous_window"]:
                s["aggressive"], s["switch_step"] = False, ctx.step + 1
            s.update(previous_window=mean, window_sum=0.0, window_n=0)


# ---- semi-amortized VAE -----------------------------------------------------------------------


def refine(
    model: LatentVariableModel,
    x: Any,
    mu: Tensor,
    logvar: Tensor,
    steps: int,
    lr: float,
    max_grad_norm: float | None,
    generator: torch.Generator | None = None,
    create_graph: bool = True,
) -> tuple[Tensor, Tensor]:
    """SVI from the encoder's output: ``steps`` gradient steps on each example's -ELBO w.r.t.
    its own (mu, logvar), one fresh sample per step. With ``create_graph`` the result stays a
    differentiable function of the starting point and of the decoder (Kim et al. 2018)."""
    for _ in range(steps):
        if not create_graph:
            mu, logvar = mu.detach(), logvar.detach()
        mu, logvar = _differentiable(mu), _differentiable(logvar)
        z = reparameterize(mu, logvar, 1, generator=generator)
        neg_elbo = -model.log_likelihood(x, z)[0] + gaussian_kl_per_dim(mu, logvar).sum(-1)
        g_mu, g_lv = torch.autograd.grad(neg_elbo.sum(), (mu, logvar), create_graph=create_graph)
        if max_grad_norm:
            # Per-example clipping, as the reference clips each SVI gradient.
            norm = torch.cat([g_mu, g_lv], -1).norm(dim=-1, keepdim=True)
            scale = (max_grad_norm / (norm + 1e-6)).clamp(max=1.0)
            g_mu, g_lv = g_mu * scale, g_lv * scale
        mu, logvar = mu - lr * g_mu, logvar - lr * g_lv
    return mu, logvar


def _differentiable(t: Tensor) -> Tensor:
    return t if t.requires_grad else t.detach().requires_grad_()


class SemiAmortized(Method):
    """SA-VAE: the decoder and the encoder both train on the -ELBO at the refined posterior,
    differentiated through the ``svi_steps`` refinement steps."""

    def __init__(self, svi_steps: int, svi_lr: float, svi_max_grad_norm: float) -> None:
        super().__init__()
        self.svi_steps, self.svi_lr, self.max_norm = svi_steps, svi_lr, svi_max_grad_norm

    def step(self, ctx: StepContext) -> dict[str, Tensor]:
        # cuDNN's RNN has no double backward; the native kernels do.
        with torch.backends.cudnn.flags(enabled=False):
            mu0, logvar0 = ctx.model.encode(ctx.x)
            mu, logvar = refine(
                ctx.model,
                ctx.x,
                mu0,
                logvar0,
                self.svi_steps,
                self.svi_lr,
                self.max_norm,
                ctx.generator,
            )
            z = reparameterize(mu, logvar, 1, generator=ctx.generator)
            kl_refined = gaussian_kl_per_dim(mu, logvar)
            loss = (-ctx.model.log_likelihood(ctx.x, z)[0] + kl_refined.sum(-1)).mean()
            ctx.update(loss)
        kl0 = gaussian_kl_per_dim(mu0.detach(), logvar0.detach())
        return {"loss": loss, "kl": kl0, "kl_refined": kl_refined.detach().sum(-1).mean()}


# ---- posterior transforms: BN-VAE and delta-VAE ----------------------------------------------


class BatchNormMean(nn.Module):
    """BN-VAE (Zhu et al. 2020): mu -> gamma * (mu - mean_B) / std_B + b, with gamma fixed and
    b learned. In training mode the batch mean of mu_d^2 is gamma^2 v / (v + eps) + b_d^2, v
    the batch variance of mu_d, so the batch-mean KL of each dimension is at least
    gamma^2 / 2 up to that factor; eps is 1e-8 (not BN's 1e-5) to keep the factor near 1
    while an untrained encoder's means hardly vary."""

    def __init__(self, latent_dim: int, gamma: float) -> None:
        super().__init__()
        self.gamma = gamma
        self.norm = nn.BatchNorm1d(latent_dim, eps=1e-8, affine=False)
        self.shift = nn.Parameter(torch.zeros(latent_dim))

    def forward(self, mu: Tensor, logvar: Tensor) -> tuple[Tensor, Tensor]:
        return self.gamma * self.norm(mu) + self.shift, logvar


class BnVae(Method):
    def __init__(self, gamma: float) -> None:
        super().__init__()
        self.gamma = gamma

    def posterior_transform(self, latent_dim: int) -> nn.Module:
        return BatchNormMean(latent_dim, self.gamma)


def delta_variance_bound(delta_per_dim: float) -> float:
    """The variance s < 1 with KL(N(0, s) || N(0, 1)) = (s - 1 - ln s) / 2 = delta_per_dim:
    s = -W0(-exp(-(1 + 2 delta))). Any s' <= s has KL >= delta_per_dim whatever the mean."""
    return float(-lambertw(-math.exp(-(1.0 + 2.0 * delta_per_dim))).real)


class BoundedVariance(nn.Module):
    """delta-VAE's constraint for a N(0, I) prior: each posterior variance is squashed into
    [min_var, s_delta], so every example's KL is at least delta."""

    def __init__(self, latent_dim: int, delta: float, min_var: float) -> None:
        super().__init__()
        self.high = delta_variance_bound(delta / latent_dim)
        self.low = min(min_var, self.high / 2)

    def forward(self, mu: Tensor, logvar: Tensor) -> tuple[Tensor, Tensor]:
        var = self.low + (self.high - self.low) * torch.sigmoid(logvar)
        return mu, torch.log(var)


class DeltaVae(Method):
    def __init__(self, delta: float, min_var: float) -> None:
        super().__init__()
        self.delta, self.min_var = delta, min_var

    def posterior_transform(self, latent_dim: int) -> nn.Module:
        return BoundedVariance(latent_dim, self.delta, self.min_var)


# ---- encoder pretraining, decoder reset, free bits -------------------------------------------


def reset_decoder(model: nn.Module, decoder: list[nn.Parameter], encoder: list[nn.Parameter]):
    """Re-initialize every module whose own parameters are all decoder-only, through its
    ``reset_parameters``; returns how many decoder tensors were left as they were."""
    enc = {id(p) for p in encoder}
    dec = {id(p) for p in decoder} - enc
    done: set[int] = set()
    for module in model.modules():
        own = list(module.parameters(recurse=False))
        if own and all(id(p) in dec for p in own) and hasattr(module, "reset_parameters"):
            module.reset_parameters()
            done.update(id(p) for p in own)
    return len(dec - done)


class PretrainFreeBits(Method):
    """Li et al. (2019): train as an autoencoder (KL weight 0) for the first ``pretrain`` of
    the budget, re-initialize the decoder once, then train with free bits (``mode``/``target``
    as in their fb modes) under a KL weight warmed up from 0 over ``warm_up`` of the rest."""

    optimizers = ("encoder", "decoder")

    def __init__(
        self, total_steps: int, pretrain: float, mode: str, target: float, warm_up: float
    ) -> None:
        super().__init__()
        free_bits_kl(torch.ones(1, 1), mode, target)
        self.mode, self.target = mode, target
        self.switch_at = round(pretrain * total_steps)
        self.warm_steps = max(1, round(warm_up * (total_steps - self.switch_at)))
        self.state.update(resets=0, reset_step=None, unreset_tensors=None)

    def beta(self, step: int) -> float:
        if step < self.switch_at:
            return 0.0
        return min(1.0, (step - self.switch_at) / self.warm_steps)

    def step(self, ctx: StepContext) -> dict[str, Tensor]:
        if ctx.step >= self.switch_at and self.state["resets"] == 0:
            self.state["unreset_tensors"] = reset_decoder(
                ctx.model, ctx.groups["decoder"], ctx.groups["encoder"]
            )
            ctx.reset_optimizer("decoder")
            self.state.update(resets=1, reset_step=ctx.step)
        log_px, kl, _, _ = ctx.forward(ctx.x)
        if ctx.step < self.switch_at:
            loss = -log_px[0].mean()
        else:
            kl_term = self.beta(ctx.step) * free_bits_kl(kl, self.mode, self.target)
            loss = (-log_px[0] + kl_term).mean()
        ctx.update(loss)
        return {"loss": loss, "kl": kl}


# ---- InfoVAE / MMD-VAE -----------------------------------------------------------------------


def gaussian_kernel_mmd(a: Tensor, b: Tensor) -> Tensor:
    """Biased MMD^2 estimate between samples ``a`` and ``b`` ([N, D]) with the kernel
    exp(-|u - v|^2 / D) of Zhao et al.'s MMD-VAE code."""
    d = a.shape[-1]

    def k(u: Tensor, v: Tensor) -> Tensor:
        return torch.exp(-torch.cdist(u, v).pow(2) / d).mean()

    return k(a, a) + k(b, b) - 2 * k(a, b)


class MmdVae(Method):
    """InfoVAE (Zhao et al. 2019): -log p(x|z) + (1 - alpha) KL + (alpha + lam - 1) MMD(q(z), p(z)),
    here with ``kl_weight`` = 1 - alpha and ``mmd_weight`` = alpha + lam - 1 (MMD-VAE: kl 0)."""

    def __init__(self, kl_weight: float, mmd_weight: float) -> None:
        super().__init__()
        self.kl_weight, self.mmd_weight = kl_weight, mmd_weight

    def beta(self, step: int) -> float:
        return self.kl_weight

    def step(self, ctx: StepContext) -> dict[str, Tensor]:
        mu, logvar = ctx.model.encode(ctx.x)
        z = reparameterize(mu, logvar, 1, generator=ctx.generator)
        log_px = ctx.model.log_likelihood(ctx.x, z)[0]
        kl = gaussian_kl_per_dim(mu, logvar)
        prior = ctx.model.sample_prior(len(mu), generator=ctx.generator).to(z.dtype)
        mmd = gaussian_kernel_mmd(z[0], prior)
        loss = (-log_px + self.kl_weight * kl.sum(-1)).mean() + self.mmd_weight * mmd
        ctx.update(loss)
        return {"loss": loss, "kl": kl, "mmd": mmd.detach()}
