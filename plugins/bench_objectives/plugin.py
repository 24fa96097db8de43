"""Training objectives: the ELBO, linear KL annealing and free bits."""

from __future__ import annotations

from torch import Tensor

from bench import Objective, ObjectiveSpec, Param, hookimpl


class Elbo(Objective):
    """-ELBO with an optional KL weight schedule: -log p(x|z) + beta(step) * KL."""

    def __call__(self, log_px: Tensor, kl: Tensor, step: int) -> Tensor:
        return (-log_px + self.beta(step) * kl.sum(-1)).mean()


class LinearAnneal(Elbo):
    """beta rises linearly from ``beta0`` to 1 over ``steps`` optimizer steps (KL warm-up)."""

    def __init__(self, beta0: float, steps: int) -> None:
        self.beta0 = beta0
        self.steps = max(1, steps)

    def beta(self, step: int) -> float:
        return min(1.0, self.beta0 + (1.0 - self.beta0) * step / self.steps)


class FreeBits(Objective):
    """Free bits (Kingma et al. 2016): each latent dimension's batch-averaged KL is clamped
    from below at ``lam`` nats, so the optimizer gains nothing by pushing it under ``lam``."""

    def __init__(self, lam: float) -> None:
        self.lam = lam

    def __call__(self, log_px: Tensor, kl: Tensor, step: int) -> Tensor:
        kl_dims = kl.mean(0).clamp(min=self.lam)
        return -log_px.mean() + kl_dims.sum()


def _anneal(steps_per_epoch: int, beta0: float, epochs: float) -> Objective:
    return LinearAnneal(beta0, round(epochs * steps_per_epoch))


@hookimpl
def register_objectives(register):
    register(ObjectiveSpec("elbo", lambda steps_per_epoch: Elbo(), "plain ELBO (beta = 1)"))
    register(
        ObjectiveSpec(
            "kl-anneal",
            _anneal,
            "linear KL warm-up: beta from beta0 to 1 over `epochs` epochs",
            params={
                "beta0": Param(0.1, 0.0, 1.0, help="initial KL weight"),
                "epochs": Param(10.0, 0.5, 50.0, help="warm-up length in epochs"),
            },
        )
    )
    register(
        ObjectiveSpec(
            "free-bits",
            lambda steps_per_epoch, lam: FreeBits(lam),
            "free bits: per-dimension KL floor lambda (nats), batch-averaged",
            params={"lam": Param(0.5, 0.0, 2.0, help="per-dimension KL target, nats")},
        )
    )
