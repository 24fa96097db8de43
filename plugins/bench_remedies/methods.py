"""Remedies that change the training procedure: IWAE, aggressive encoder training, SA-VAE,
BN-VAE, delta-VAE, encoder pretraining with free bits, MMD-VAE, cyclical annealing with its
learning-rate restarts. Each is a :class:`bench.Method`; none knows the model it trains.

Each follows its reference code by default; the file and lines are cited where the update is
written, and ``docs/remedies.md`` lists every remaining difference with its reason.
``tests/test_remedies_replay.py`` replays each reference update in plain torch.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from scipy.special import lambertw
from torch import Tensor, nn

from bench import LatentVariableModel, Method, StepContext, TrainingBudget
from bench.contract import diagonal_gaussian_log_prob, reparameterize
from bench.estimators import gaussian_kl_per_dim
from bench_remedies.objectives import (
    KlWarmup,
    cyclical_beta,
    cyclical_beta_reference,
    cyclical_lr_scale,
    free_bits_kl,
)

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
    """Trains on the K-sample importance-weighted bound (Burda et al. 2016; yburda/iwae
    ``iwae.py`` 142-172: the gradient is sum_k w~_k grad log w_k with the normalized weights
    held constant, which is autograd of the log-mean-exp). The reference never clips gradients
    (``optimizers.py``, ``train.py``); ``max_grad_norm`` > 0 clips at that norm."""

    def __init__(self, k: int, max_grad_norm: float = 0.0) -> None:
        super().__init__()
        self.k, self.max_grad_norm = k, max_grad_norm

    def step(self, ctx: StepContext) -> dict[str, Tensor]:
        mu, logvar = ctx.model.encode(ctx.x)
        bound, _ = iwae_bound(ctx.model, ctx.x, mu, logvar, self.k, ctx.generator)
        loss = -bound.mean()
        if self.max_grad_norm > 0:
            ctx.update(loss, max_norm=self.max_grad_norm)
        else:
            ctx.update(loss, clip="none")
        return {"loss": loss, "kl": gaussian_kl_per_dim(mu, logvar)}


# ---- aggressive inference-network training ---------------------------------------------------


#: He et al.'s inner-loop check interval and switch patience, by data kind (``text.py`` 393 and
#: 455-464; ``image.py`` 320 and 379-392).
CHECK_EVERY = {"text": 15, "image": 10}
MI_PATIENCE = {"text": 1, "image": 5}


class InnerStop:
    """The stop rule of the encoder-only updates (vae-lagging-encoder ``text.py`` 366-400,
    ``image.py`` 300-327): the summed per-example loss over each window of ``check_every``
    updates, divided by its words (text) or examples (images), is compared with the previous
    window's (the first with 1e4); the updates stop when it is strictly higher."""

    def __init__(self, check_every: int) -> None:
        self.check_every, self.updates = check_every, 0
        self.previous, self.total, self.units = 1e4, 0.0, 0.0

    def add(self, loss_sum: float, units: float) -> bool:
        """One more update with this summed loss over this many units; True: stop now."""
        self.updates += 1
        self.total += loss_sum
        self.units += units
        if self.updates % self.check_every:
            return False
        current = self.total / self.units
        if self.previous - current < 0:
            return True
        self.previous, self.total, self.units = current, 0.0, 0.0
        return False


def mi_switch(mis: list[float], patience: int) -> int | None:
    """Which check ends aggressive training, for validation MI ``mis`` at successive checks:
    the ``patience``-th (cumulative) check below the best so far, the best starting at 0
    (``image.py`` 379-392; with patience 1 this is ``text.py`` 455-464's first drop, since MI
    never fell before it). None: it never ends."""
    best, bad = 0.0, 0
    for i, mi in enumerate(mis):
        if mi - best < 0:
            bad += 1
            if bad == patience:
                return i
        else:
            best = mi
    return None


class Aggressive(Method):
    """He et al. (2019), jxhe/vae-lagging-encoder ``text.py`` 325-424 and 455-464: while
    aggressive, each step first updates the encoder alone on fresh batches until the bound
    stops improving (:class:`InnerStop`, at most ``max_inner`` updates), then the decoder alone
    on the step's batch; every update clips the gradients of *all* parameters together before
    stepping one group. Every ``window`` epochs (1 in the reference) the method validates: it
    stops being aggressive at the ``mi_patience``-th validation MI below the best so far
    (:func:`mi_switch`). Then both groups update together. The KL weight warms up from
    ``kl_start`` over ``warm_up`` epochs (README: 0.1, 10), in the inner and outer losses alike.

    ``check_every`` and ``mi_patience`` 0 take the reference's value for the data kind (text:
    15 and 1; images: 10 and 5), told apart by ``model.num_tokens``."""

    optimizers = ("encoder", "decoder")
    host_reads = True  # the inner loop's stop rule reads each update's loss

    def __init__(
        self,
        window_steps: int,
        max_inner: int,
        check_every: int,
        mi_patience: int = 0,
        warmup: KlWarmup | None = None,
    ) -> None:
        super().__init__()
        self.window_steps, self.max_inner = max(1, window_steps), max_inner
        self.check_every, self.mi_patience, self.warmup = check_every, mi_patience, warmup
        self.state.update(
            aggressive=True,
            switch_step=None,
            encoder_updates=0,
            decoder_updates=0,
            mi_checks=[],
        )

    def beta(self, step: int) -> float:
        return 1.0 if self.warmup is None else self.warmup(step)

    def _kind(self, model: LatentVariableModel, x: Any) -> str:
        return "image" if model.num_tokens(x) is None else "text"

    def _losses(self, ctx: StepContext, x: Any) -> tuple[Tensor, Tensor]:
        log_px, kl, _, _ = ctx.forward(x)
        return -log_px[0] + self.beta(ctx.step) * kl.sum(-1), kl

    def _units(self, model: LatentVariableModel, x: Any, per_example: Tensor) -> float:
        tokens = model.num_tokens(x)  # words + </s> = the reference's (sent_len - 1)
        return float(len(per_example) if tokens is None else tokens.sum())

    def _encoder_updates(self, ctx: StepContext) -> int:
        every = self.check_every or CHECK_EVERY[self._kind(ctx.model, ctx.x)]
        stop, x, inner = InnerStop(every), ctx.x, 0
        while inner < self.max_inner:  # text.py 371: sub_iter from 1 while < 100: 99 at most
            per_example, _ = self._losses(ctx, x)
            ctx.update(per_example.mean(), "encoder", clip="all")
            inner += 1
            done = stop.add(
                float(per_example.detach().sum()), self._units(ctx.model, x, per_example)
            )
            if done or inner == self.max_inner:
                break
            x = ctx.next_batch()
        return inner

    def step(self, ctx: StepContext) -> dict[str, Tensor]:
        s = self.state
        inner = self._encoder_updates(ctx) if s["aggressive"] else 0
        s["encoder_updates"] += inner
        per_example, kl = self._losses(ctx, ctx.x)
        loss = per_example.mean()
        if s["aggressive"]:
            ctx.update(loss, "decoder", clip="all")
        else:
            ctx.update(loss, clip="all")
            s["encoder_updates"] += 1
        s["decoder_updates"] += 1
        if s["aggressive"] and (ctx.step + 1) % self.window_steps == 0:
            self._check_mi(ctx)
        return {
            "loss": loss,
            "kl": kl,
            "inner_updates": torch.tensor(float(inner)),
            "aggressive": torch.tensor(float(s["aggressive"])),
        }

    def _check_mi(self, ctx: StepContext) -> None:
        s = self.state
        s["mi_checks"].append([ctx.step, ctx.validate().mi()])
        patience = self.mi_patience or MI_PATIENCE[self._kind(ctx.model, ctx.x)]
        if mi_switch([mi for _, mi in s["mi_checks"]], patience) is not None:
            s["aggressive"], s["switch_step"] = False, ctx.step + 1


# ---- semi-amortized VAE -----------------------------------------------------------------------


def clip_tensor(g: Tensor, max_norm: float | None) -> Tensor:
    """``g`` scaled to norm ``max_norm`` at most, the whole tensor at once (sa-vae
    ``optim_n2n.py`` 55-70 applied to one tensor); the factor is a constant to autograd, as the
    reference clips ``.data``. No host read."""
    if not max_norm:
        return g
    factor = (max_norm / (g.detach().norm() + 1e-6)).clamp(max=1.0)
    return g * factor


class _ClipBackward(torch.autograd.Function):
    """Identity on ``(mu, logvar)``; in the backward pass their gradients are clipped together
    to ``max_norm`` (``optim_n2n.py`` 164-165: after each reverse step, the gradient with
    respect to the step's (mu, logvar))."""

    @staticmethod
    def forward(ctx: Any, mu: Tensor, logvar: Tensor, max_norm: float) -> tuple[Tensor, Tensor]:
        ctx.max_norm = max_norm
        return mu.clone(), logvar.clone()

    @staticmethod
    def backward(ctx: Any, g_mu: Tensor, g_lv: Tensor) -> tuple[Tensor, Tensor, None]:
        norm = torch.sqrt(g_mu.pow(2).sum() + g_lv.pow(2).sum())
        factor = (ctx.max_norm / (norm + 1e-6)).clamp(max=1.0)
        return g_mu * factor, g_lv * factor, None


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
    momentum: float = 0.5,
    beta: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """SVI from the encoder's output as harvardnlp/sa-vae runs it (``optim_n2n.py`` 72-115,
    ``train_text.py`` 114-120): ``steps`` heavy-ball steps on the batch *mean* -ELBO
    (``beta`` on the KL) with respect to (mu, logvar), one fresh sample per step; the gradients
    of mu and of logvar are clipped separately, each whole ``[B, D]`` tensor to
    ``max_grad_norm``; ``p_k = momentum * p_(k-1) - g_k``, ``x_(k+1) = x_k + lr * p_k``.

    With ``create_graph`` the result stays a differentiable function of the starting point and
    of the decoder (Kim et al. 2018), and the gradient reaching each step's (mu, logvar) in the
    backward pass is clipped to ``max_grad_norm`` too (``optim_n2n.py`` 164-165)."""
    velocity: list[Tensor] | None = None
    for _ in range(steps):
        if not create_graph:
            mu, logvar = mu.detach(), logvar.detach()
        mu, logvar = _differentiable(mu), _differentiable(logvar)
        if create_graph and max_grad_norm:
            mu, logvar = _ClipBackward.apply(mu, logvar, max_grad_norm)
        z = reparameterize(mu, logvar, 1, generator=generator)
        kl = gaussian_kl_per_dim(mu, logvar).sum(-1)
        neg_elbo = (-model.log_likelihood(x, z)[0] + beta * kl).mean()
        grads = torch.autograd.grad(neg_elbo, (mu, logvar), create_graph=create_graph)
        grads = [clip_tensor(g, max_grad_norm) for g in grads]
        if velocity is None:
            velocity = [-g for g in grads]
        else:
            velocity = [momentum * v - g for v, g in zip(velocity, grads, strict=True)]
        if not create_graph:
            velocity = [v.detach() for v in velocity]
        mu, logvar = mu + lr * velocity[0], logvar + lr * velocity[1]
    return mu, logvar


def _differentiable(t: Tensor) -> Tensor:
    return t if t.requires_grad else t.detach().requires_grad_()


class SemiAmortized(Method):
    """SA-VAE (Kim et al. 2018; harvardnlp/sa-vae ``train_text.py`` 192-227): the -ELBO at the
    refined posterior (:func:`refine`) trains the decoder directly and through the refinement,
    and the encoder only through the refinement; the model's gradients are clipped together
    (the budget's ``grad_clip``, 5 in the reference). The KL weight warms up as the reference's
    (``warmup``: from 0.1, +1/(10 x steps per epoch) before each step), in the refinement's
    loss and the final one alike."""

    def __init__(
        self,
        svi_steps: int,
        svi_lr: float,
        svi_max_grad_norm: float,
        svi_momentum: float = 0.5,
        warmup: KlWarmup | None = None,
    ) -> None:
        super().__init__()
        self.svi_steps, self.svi_lr, self.max_norm = svi_steps, svi_lr, svi_max_grad_norm
        self.momentum, self.warmup = svi_momentum, warmup

    def beta(self, step: int) -> float:
        return 1.0 if self.warmup is None else self.warmup(step)

    def step(self, ctx: StepContext) -> dict[str, Tensor]:
        beta = self.beta(ctx.step)
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
                momentum=self.momentum,
                beta=beta,
            )
            z = reparameterize(mu, logvar, 1, generator=ctx.generator)
            kl_refined = gaussian_kl_per_dim(mu, logvar)
            loss = (-ctx.model.log_likelihood(ctx.x, z)[0] + beta * kl_refined.sum(-1)).mean()
            ctx.update(loss)
        kl0 = gaussian_kl_per_dim(mu0.detach(), logvar0.detach())
        return {"loss": loss, "kl": kl0, "kl_refined": kl_refined.detach().sum(-1).mean()}


# ---- posterior transforms: BN-VAE and delta-VAE ----------------------------------------------


class BatchNormMean(nn.Module):
    """BN-VAE (Zhu et al. 2020; valdersoul/bn-vae ``modules/encoders/enc_lstm.py`` 163-165,
    185-189 and 206-208): mu -> gamma * (mu - mean_B) / sqrt(var_B + eps) + b, BatchNorm1d
    on the posterior mean only, with its weight fixed at gamma and its bias b learned (from
    0); ``eps`` 1e-5 and momentum 0.1 are BatchNorm1d's defaults, as there. In training mode
    the batch mean of mu_d^2 is gamma^2 v / (v + eps) + b_d^2, v the batch variance of mu_d,
    so each dimension's batch-mean KL is at least gamma^2 / 2 times v / (v + eps)."""

    def __init__(self, latent_dim: int, gamma: float, eps: float = 1e-5) -> None:
        super().__init__()
        self.gamma = gamma
        self.norm = nn.BatchNorm1d(latent_dim, eps=eps, affine=False)
        self.shift = nn.Parameter(torch.zeros(latent_dim))

    def forward(self, mu: Tensor, logvar: Tensor) -> tuple[Tensor, Tensor]:
        if self.training and len(mu) < 2:
            # One example has no batch statistics (BatchNorm1d raises); the reference skips
            # such a batch (``text_anneal_fb.py`` 354-355), here it is normalized with the
            # running statistics, which it leaves as they were.
            return self.gamma * _running_norm(self.norm, mu) + self.shift, logvar
        return self.gamma * self.norm(mu) + self.shift, logvar


def _running_norm(norm: nn.BatchNorm1d, mu: Tensor) -> Tensor:
    return (mu - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps)


class BnVae(Method):
    """BN-VAE with the reference's KL warm-up (README: ``--kl_start 0 --warm_up 10``;
    ``text_anneal_fb.py`` as Li et al.'s), trained by the runner's fast step."""

    def __init__(self, gamma: float, warmup: KlWarmup | None = None) -> None:
        super().__init__()
        self.gamma, self.warmup = gamma, warmup

    def beta(self, step: int) -> float:
        return 1.0 if self.warmup is None else self.warmup(step)

    def posterior_transform(self, latent_dim: int) -> nn.Module:
        return BatchNormMean(latent_dim, self.gamma)


def delta_variance_bound(delta_per_dim: float) -> float:
    """The variance s < 1 with KL(N(0, s) || N(0, 1)) = (s - 1 - ln s) / 2 = delta_per_dim:
    s = -W0(-exp(-(1 + 2 delta))). Any s' <= s has KL >= delta_per_dim whatever the mean."""
    return float(-lambertw(-math.exp(-(1.0 + 2.0 * delta_per_dim))).real)


def delta_variance_interval(delta_per_dim: float) -> tuple[float, float]:
    """The two roots s_l < 1 < s_u of ln s - s + 2 delta + 1 = 0 (the delta-VAE paper's eq. 4
    as bn-vae's ``enc_lstm.py`` 83-86 solves it with sympy): the branches 0 and -1 of
    Lambert's W."""
    arg = -math.exp(-(1.0 + 2.0 * delta_per_dim))
    return float(-lambertw(arg, 0).real), float(-lambertw(arg, -1).real)


class CommittedRate(nn.Module):
    """delta-VAE as its only public code writes it (valdersoul/bn-vae ``enc_lstm.py`` 81-89 and
    133-139, ``DeltaGaussianLSTMEncoder``, ``--fb 3``): sigma = l + (u - l) / clamp(1 +
    exp(-logvar_raw), 1, 50) inside [l, u] = the square roots of the eq.-4 roots, and
    mu = sqrt(2 delta + 1 + logvar - exp(logvar) + relu(mu_raw) + 1e-6), so each dimension's
    KL is exactly delta + relu(mu_raw) / 2 + 5e-7 (``delta`` per dimension)."""

    def __init__(self, delta: float) -> None:
        super().__init__()
        self.delta = delta
        low, high = delta_variance_interval(delta)
        self.l, self.u = math.sqrt(low), math.sqrt(high)

    def forward(self, mu: Tensor, logvar: Tensor) -> tuple[Tensor, Tensor]:
        std = self.l + (self.u - self.l) / torch.clamp(1.0 + torch.exp(-logvar), 1.0, 50.0)
        logvar = torch.log(std**2)
        inside = 2 * self.delta + 1 + logvar - torch.exp(logvar) + torch.relu(mu) + 1e-6
        return torch.sqrt(inside), logvar


class BoundedVariance(nn.Module):
    """delta-VAE's constraint for a N(0, I) prior, kept as the ``variance`` form: each
    posterior variance is squashed into [min_var, s_delta] and the mean left free, so every
    example's KL is at least ``delta`` (per example)."""

    def __init__(self, latent_dim: int, delta: float, min_var: float) -> None:
        super().__init__()
        self.high = delta_variance_bound(delta / latent_dim)
        self.low = min(min_var, self.high / 2)

    def forward(self, mu: Tensor, logvar: Tensor) -> tuple[Tensor, Tensor]:
        var = self.low + (self.high - self.low) * torch.sigmoid(logvar)
        return mu, torch.log(var)


DELTA_FORMS = ("bn-vae", "variance")


class DeltaVae(Method):
    """delta-VAE: ``form`` ``"bn-vae"`` (the public code's, :class:`CommittedRate`) or
    ``"variance"`` (:class:`BoundedVariance`); ``delta`` is per dimension in both."""

    def __init__(self, delta: float, min_var: float, form: str = "bn-vae") -> None:
        super().__init__()
        if form not in DELTA_FORMS:
            raise ValueError(f"delta-VAE form {form!r} is not one of {', '.join(DELTA_FORMS)}")
        self.delta, self.min_var, self.form = delta, min_var, form

    def posterior_transform(self, latent_dim: int) -> nn.Module:
        if self.form == "bn-vae":
            return CommittedRate(self.delta)
        return BoundedVariance(latent_dim, self.delta * latent_dim, self.min_var)


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


PRETRAIN, VAE = "pretrain", "vae"
START_FROM = ("best", "last")


class PretrainFreeBits(Method):
    """Li et al. (2019), bohanli/vae-pretraining-encoder, in one budget: an autoencoder (KL
    weight 0, ``text_beta.py --beta 0``) for the first ``pretrain`` of it, then the VAE run of
    ``text_anneal_fb.py`` 206-215 and 253-260: the encoder of the best autoencoder epoch (by
    validation reconstruction loss, ``start_from="best"``; ``"last"``: the last step's), the
    decoder re-initialized, fresh optimizers for both at the budget's learning rate, and free
    bits (``mode``/``target`` as their fb modes, README: ``--fb 2 --target_kl 8``) under a KL
    weight warmed up from 0 over ``warm_up`` of the remaining steps (README: 10 of the VAE run's
    100 epochs), increased before each step (``text_anneal_fb.py`` 271-273, 306).

    The phases are ``"pretrain"`` and ``"vae"``; the runner holds its selection, decay and
    early stopping until ``"vae"`` and starts them afresh there; a run that ends before it is
    ``failed``."""

    optimizers = ("encoder", "decoder")
    final_phase = VAE

    def __init__(
        self,
        total_steps: int,
        pretrain: float,
        mode: str,
        target: float,
        warm_up: float,
        start_from: str = "best",
    ) -> None:
        super().__init__()
        free_bits_kl(torch.ones(1, 1), mode, target)
        if start_from not in START_FROM:
            raise ValueError(f"start_from {start_from!r} is not one of {', '.join(START_FROM)}")
        self.mode, self.target, self.start_from = mode, target, start_from
        self.switch_at = round(pretrain * total_steps)
        self.warm_steps = round(warm_up * (total_steps - self.switch_at))
        self.state.update(
            resets=0,
            reset_step=None,
            unreset_tensors=None,
            best_autoencoder_loss=None,
            best_autoencoder_step=None,
        )

    def phase(self) -> str:
        return VAE if self.state["resets"] else PRETRAIN

    def beta(self, step: int) -> float:
        if step < self.switch_at:
            return 0.0
        if self.warm_steps <= 0:
            return 1.0
        return min(1.0, (step - self.switch_at + 1) / self.warm_steps)

    def step(self, ctx: StepContext) -> dict[str, Tensor]:
        if ctx.step >= self.switch_at and not self.state["resets"]:
            self._switch(ctx)
        log_px, kl, _, _ = ctx.forward(ctx.x)
        if self.phase() == PRETRAIN:
            loss = -log_px[0].mean()
        else:
            kl_term = self.beta(ctx.step) * free_bits_kl(kl, self.mode, self.target)
            loss = (-log_px[0] + kl_term).mean()
        ctx.update(loss)
        last = ctx.step == self.switch_at - 1
        if self.phase() == PRETRAIN and self.start_from == "best" and (ctx.last_of_epoch or last):
            self._watch_autoencoder(ctx)
        return {"loss": loss, "kl": kl}

    def _watch_autoencoder(self, ctx: StepContext) -> None:
        """Keep the encoder of the best validation reconstruction loss so far (``text_beta.py``
        selects ``model.pt`` on its validation loss at KL weight 0)."""
        loss = ctx.validate().loss(lambda log_px, kl: -log_px)
        best = self.state["best_autoencoder_loss"]
        if best is None or loss < best:
            self.state.update(best_autoencoder_loss=loss, best_autoencoder_step=ctx.step)
            self.tensors = {
                f"encoder.{i}": p.detach().clone() for i, p in enumerate(ctx.groups["encoder"])
            }

    def _switch(self, ctx: StepContext) -> None:
        with torch.no_grad():
            for i, p in enumerate(ctx.groups["encoder"]):
                kept = self.tensors.get(f"encoder.{i}")
                if kept is not None:
                    p.copy_(kept)
        self.tensors = {}
        unreset = reset_decoder(ctx.model, ctx.groups["decoder"], ctx.groups["encoder"])
        for name in self.optimizers:  # text_anneal_fb.py 253-256: new optimizers, lr restarted
            ctx.reset_optimizer(name, restart_lr=True)
        self.state.update(resets=1, reset_step=ctx.step, unreset_tensors=unreset)


# ---- InfoVAE / MMD-VAE -----------------------------------------------------------------------


def gaussian_kernel_mmd(a: Tensor, b: Tensor) -> Tensor:
    """Biased MMD^2 estimate between samples ``a`` [N, D] and ``b`` [M, D] with the kernel of
    Zhao et al.'s code, ShengjiaZhao/MMD-Variational-Autoencoder ``mmd_vae.py`` 59-71:
    k(u, v) = exp(-mean_d (u_d - v_d)^2 / D) = exp(-|u - v|^2 / D^2), every pair (diagonals
    included) averaged."""
    d = a.shape[-1]

    def k(u: Tensor, v: Tensor) -> Tensor:
        return torch.exp(-(u.unsqueeze(1) - v.unsqueeze(0)).pow(2).mean(-1) / d).mean()

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


# ---- cyclical annealing with its learning-rate restarts ------------------------------------

CYCLICAL_SCHEDULES = ("reference", "paper")
LR_RESTARTS = ("epoch", "step", "none")


class Cyclical(Method):
    """Cyclical KL annealing (Fu et al. 2019) as haofuml/cyclical_annealing's language-model
    script runs it (``language_model/train_text_cyc_ptb.py`` 116-121 and 167-178): ``cycles``
    equal cycles over the budget; in each, the KL weight restarts at ``start`` (0.1) and grows
    by 1 / (``ratio`` x cycle) before every step (``schedule="reference"``; ``"paper"``: the
    paper's eq. 6, :func:`cyclical_beta`), and the learning rate follows a half cosine from
    the budget's rate, restarted each cycle and set once per epoch (``lr_restarts="epoch"``;
    ``"step"``: every step, as the dialog and semi-supervised scripts; ``"none"``: the
    runner's rate). While it sets the rate it holds the runner's learning-rate decay (the
    reference decays nothing). Trained by the runner's fast step."""

    def __init__(
        self,
        budget: TrainingBudget,
        cycles: int,
        ratio: float,
        start: float = 0.1,
        schedule: str = "reference",
        lr_restarts: str = "epoch",
    ) -> None:
        super().__init__()
        if schedule not in CYCLICAL_SCHEDULES:
            raise ValueError(f"schedule {schedule!r} is not one of {', '.join(CYCLICAL_SCHEDULES)}")
        if lr_restarts not in LR_RESTARTS:
            raise ValueError(f"lr_restarts {lr_restarts!r} is not one of {', '.join(LR_RESTARTS)}")
        self.total_steps, self.steps_per_epoch = max(1, budget.total_steps), budget.steps_per_epoch
        self.cycles, self.ratio, self.start = cycles, ratio, start
        self.schedule, self.lr_restarts = schedule, lr_restarts

    def beta(self, step: int) -> float:
        if self.schedule == "paper":
            return cyclical_beta(step, self.total_steps, self.cycles, self.ratio)
        return cyclical_beta_reference(step, self.total_steps, self.cycles, self.ratio, self.start)

    def lr_scale(self, step: int) -> float | None:
        return cyclical_lr_scale(
            step, self.steps_per_epoch, self.total_steps, self.cycles, self.lr_restarts
        )

    def holds(self, decision: str) -> bool:
        return decision == "lr_decay" and self.lr_restarts != "none"
