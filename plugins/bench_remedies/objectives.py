"""Remedies that only reweight the loss: beta-VAE, cyclical KL annealing, KL-target free bits.

They are :class:`~bench.Objective` s, so the runner's fast default step trains them.
"""

from __future__ import annotations

import math
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


def cyclical_beta(step: int, total_steps: int, cycles: int, ratio: float) -> float:
    """Fu et al. (2019), eq. 6 with t = step + 1: tau = mod(t - 1, ceil(T / M)) / (T / M);
    beta = tau / R while tau <= R, else 1."""
    tau = (step % math.ceil(total_steps / cycles)) / (total_steps / cycles)
    return tau / ratio if tau <= ratio else 1.0


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
    """-log p(x|z) + KL masked below a target, per example, per batch or per dimension."""

    def __init__(self, mode: str, target: float) -> None:
        from torch import Tensor

        free_bits_kl(Tensor([[1.0]]), mode, target)  # reject a bad mode at build time
        self.mode, self.target = mode, target

    def __call__(self, log_px: Tensor, kl: Tensor, step: int) -> Tensor:
        return (-log_px + free_bits_kl(kl, self.mode, self.target)).mean()
