"""Remedies that only reweight the loss: beta-VAE, cyclical KL annealing, KL-target free bits;
and the schedules the remedies share (the reference codes' KL warm-ups, cyclical beta and
learning rate).

They are :class:`~bench.Objective` s, so the runner's fast default step trains them. This
module imports no torch (it is loaded with the plugin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench import Objective

if TYPE_CHECKING:
    from torch import Tensor


class BetaVae(Objective):
    """-log p(x|z) + beta * KL with a constant beta (Higgins et al. 2017)."""

    def __init__(self, beta: float) -> None:
        self._beta = beta

    def __call__(self, log_px: Tensor, kl: Tensor, step: int) -> Tensor:
        return (-log_px + self._beta * kl.sum(-1)).mean()

    def beta(self, step: int) -> float:
        return self._beta


@dataclass(frozen=True)
class KlWarmup:
    """The KL warm-up as the reference codes run it: the weight starts at ``start`` and, *before*
    every step, grows by a fixed increment up to 1, so step ``t`` (from 0) trains with
    ``min(1, start + (t + 1) * increment)``.

    ``span="rest"`` (jxhe/vae-lagging-encoder ``text.py`` 337-338 and 364,
    bohanli/vae-pretraining-encoder ``text_anneal_fb.py`` 271-273 and 306): the increment is
    ``(1 - start) / (epochs * steps_per_epoch)``, so the weight reaches 1 after ``epochs``.
    ``span="one"`` (harvardnlp/sa-vae ``train_text.py`` 104-107 and 154-155): the increment is
    ``1 / (epochs * steps_per_epoch)``, so from ``start`` 0.1 it reaches 1 after 0.9 of them.
    ``epochs`` 0: no warm-up (weight 1)."""

    start: float
    epochs: float
    steps_per_epoch: int
    span: str = "rest"

    def __call__(self, step: int) -> float:
        total = self.epochs * self.steps_per_epoch
        if total <= 0:
            return 1.0
        increment = (1.0 - self.start if self.span == "rest" else 1.0) / total
        return min(1.0, self.start + (step + 1) * increment)


def cyclical_beta(step: int, total_steps: int, cycles: int, ratio: float) -> float:
    """Fu et al. (2019), eq. 6 with t = step + 1: tau = mod(t - 1, ceil(T / M)) / (T / M);
    beta = tau / R while tau <= R, else 1."""
    tau = (step % math.ceil(total_steps / cycles)) / (total_steps / cycles)
    return tau / ratio if tau <= ratio else 1.0


def cyclical_beta_reference(
    step: int, total_steps: int, cycles: int, ratio: float, start: float
) -> float:
    """The schedule of the reference's language-model script (haofuml/cyclical_annealing
    ``language_model/train_text_cyc_ptb.py`` 118-121, 172-178): each cycle restarts the weight
    at ``start`` (0.1), which then grows by ``1 / (R * T / M)`` before every step
    (``1 / (warmup * len(train_data))`` with warmup 5 of a 10-epoch cycle: R = 0.5)."""
    period = total_steps / cycles
    j = step % math.ceil(period)
    return min(1.0, start + (j + 1) / (ratio * period))


def cyclical_lr_scale(step: int, steps_per_epoch: int, total_steps: int, cycles: int, per: str):
    """The reference's learning rate as a multiple of its initial value: a half cosine from 1
    towards 0 over each cycle, restarting with it (``train_text_cyc_ptb.py`` 167-170:
    ``lr * 0.5 * (1 + cos(pi * ((epoch - 1) % cycle) / cycle))``, set once per epoch;
    ``dialog/models/cvae_cyc.py`` 174-176 and ``semi/semi_yelp_cyc_pre.py`` 229-234 set it
    every step). ``per``: ``"epoch"`` (the language model's, the text experiments),
    ``"step"``, or ``"none"`` (None: the runner's rate)."""
    if per == "none":
        return None
    period = math.ceil(total_steps / cycles)
    at = step if per == "step" else step - step % max(1, steps_per_epoch)
    return 0.5 * (1.0 + math.cos(math.pi * (at % period) / period))


class CyclicalAnneal(BetaVae):
    """KL weight rising linearly from 0 to 1 over the first ``ratio`` of each of ``cycles``
    equal cycles spanning the whole budget, then held at 1 until the cycle ends."""

    def __init__(self, total_steps: int, cycles: int, ratio: float) -> None:
        self.total_steps, self.cycles, self.ratio = max(1, total_steps), cycles, ratio

    def __call__(self, log_px: Tensor, kl: Tensor, step: int) -> Tensor:
        return (-log_px + self.beta(step) * kl.sum(-1)).mean()

    def beta(self, step: int) -> float:
        return cyclical_beta(step, self.total_steps, self.cycles, self.ratio)


def free_bits_kl(kl: Tensor, mode: str, target: float) -> Tensor:
    """The KL term of Li et al. (2019)'s free bits, per example ``[B]``: KL counts only where
    it exceeds its target (a mask, no gradient below). ``target`` is the total in nats;
    ``dimension`` compares each dimension with ``target / D``."""
    if mode == "dimension":
        dims = kl.shape[-1]
        return (kl * (kl > target / dims)).sum(-1)
    total = kl.sum(-1)
    if mode == "example":
        return total * (total > target)
    if mode == "batch":
        return total * (total.mean() > target)
    raise ValueError(f"free-bits mode {mode!r} is not one of example, batch, dimension")


class KlTargetFreeBits(Objective):
    """-log p(x|z) + beta * KL masked below a target, per example, per batch or per dimension
    (Li et al. 2019, ``text_anneal_fb.py`` 312-331: the warm-up weight multiplies the masked
    KL). ``warmup`` None: weight 1."""

    def __init__(self, mode: str, target: float, warmup: KlWarmup | None = None) -> None:
        from torch import Tensor

        free_bits_kl(Tensor([[1.0]]), mode, target)  # reject a bad mode at build time
        self.mode, self.target, self.warmup = mode, target, warmup

    def __call__(self, log_px: Tensor, kl: Tensor, step: int) -> Tensor:
        kl_term = self.beta(step) * free_bits_kl(kl, self.mode, self.target)
        return (-log_px + kl_term).mean()

    def beta(self, step: int) -> float:
        return 1.0 if self.warmup is None else self.warmup(step)
