"""Training objectives: the ELBO, linear KL annealing, free bits and the reference warm-up."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench import Objective, ObjectiveSpec, ScheduledObjective, float_param, hookimpl
from bench_objectives import reference

if TYPE_CHECKING:
    from torch import Tensor

    from bench import TrainingBudget


class Elbo(ScheduledObjective):
    """-ELBO: -log p(x|z) + KL, batch mean (β = 1 at every step)."""


class LinearAnneal(ScheduledObjective):
    """β rises linearly from ``beta0`` to 1 over ``epochs`` epochs (KL warm-up), then stays 1."""

    def __init__(self, budget: TrainingBudget, beta0: float, epochs: float) -> None:
        super().__init__(budget)
        self.beta0 = beta0
        self.steps = max(1, round(epochs * self.steps_per_epoch))

    def beta(self, step: int) -> float:
        return min(1.0, self.beta0 + (1.0 - self.beta0) * step / self.steps)


class FreeBits(Objective):
    """Free bits (Kingma et al. 2016): each latent dimension's batch-averaged KL is clamped
    from below at ``lam`` nats, so the optimizer gains nothing by pushing it under ``lam``.

    As openai/iaf ``tf_train.py`` 77-82 (``kl_min``, default 0.25 at line 106) and
    ``models.py`` 457-461: per latent group, KL averaged over the minibatch, then
    ``max(kl_min, .)``, summed over groups; with vector latents a group is one dimension."""

    def __init__(self, lam: float) -> None:
        self.lam = lam

    def __call__(self, log_px: Tensor, kl: Tensor, step: int) -> Tensor:
        kl_dims = kl.mean(0).clamp(min=self.lam)
        return -log_px.mean() + kl_dims.sum()


@hookimpl
def register_objectives(register):
    register(ObjectiveSpec("elbo", Elbo, "plain ELBO (beta = 1)"))
    register(
        ObjectiveSpec(
            "kl-anneal",
            LinearAnneal,
            "linear KL warm-up: beta from beta0 to 1 over `epochs` epochs",
            params={
                "beta0": float_param(
                    0.1, 0.0, 1.0, minimum=0.0, maximum=1.0, help="initial KL weight"
                ),
                "epochs": float_param(
                    10.0, 0.5, 50.0, minimum=0.0, help="warm-up length in epochs"
                ),
            },
        )
    )
    register(
        ObjectiveSpec(
            "free-bits",
            lambda budget, lam: FreeBits(lam),
            "free bits: per-dimension KL floor lambda (nats), batch-averaged",
            params={
                "lam": float_param(
                    0.25, 0.0, 2.0, minimum=0.0, help="per-dimension KL target, nats (iaf: 0.25)"
                )
            },
        )
    )
    register(
        ObjectiveSpec(
            "kl-anneal-ref",
            reference.ReferenceWarmup,
            "KL warm-up as the skip-VAE reference code runs it: beta starts at beta0 and gains "
            "1/(epochs x steps per epoch) before every step, reaching 1 after (1 - beta0) x epochs",
            params={
                "beta0": float_param(
                    0.1, 0.0, 1.0, minimum=0.0, maximum=1.0, help="initial KL weight"
                ),
                "epochs": float_param(
                    10.0, 0.5, 50.0, minimum=0.0, help="warm-up epochs W (β = 1 at (1 - β0) W)"
                ),
            },
        )
    )
