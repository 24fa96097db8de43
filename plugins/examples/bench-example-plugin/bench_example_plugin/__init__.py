"""An example third-party plugin: a Bernoulli VAE whose decoder is a single linear map, and a
metric (the mean posterior standard deviation) that every leaderboard then shows as a column.

It also adds a training method (``encoder-boost``). Nothing here is special to first-party
code: it implements the model contract with the public blocks (:mod:`bench.blocks`,
:mod:`bench.likelihoods`) and the method hook, computes its metric from the public evaluation
context, and registers through the public ``bench`` entry-point group.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from bench import (
    LatentVariableModel,
    Method,
    MetricSpec,
    MetricValue,
    ModelSpec,
    ObjectiveSpec,
    StepContext,
    hookimpl,
    int_param,
)
from bench.blocks import MLPDecoder, MLPEncoder
from bench.evaluation import EvalContext
from bench.likelihoods import bernoulli_log_likelihood


class LinearDecoderVAE(LatentVariableModel):
    def __init__(self, shape: tuple[int, ...], latent_dim: int, hidden: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        features = math.prod(shape)
        self.encoder = MLPEncoder(features, hidden, 1, latent_dim, activation=nn.Tanh)
        self.decoder = MLPDecoder(latent_dim, hidden, 0, features)  # no hidden layer: linear

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.encoder(x)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        return bernoulli_log_likelihood(self.decoder(z), x)


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            "linear-decoder-vae",
            lambda info, latent_dim, hidden: LinearDecoderVAE(info.shape, latent_dim, hidden),
            "example third-party model: MLP encoder, linear Bernoulli decoder",
            kinds=("image",),
            params={
                "latent_dim": int_param(8, 2, 32, minimum=1, help="latent dimensions"),
                "hidden": int_param(64, 16, 256, minimum=1, help="encoder hidden units"),
            },
        )
    )


class EncoderBoost(Method):
    """An example training method: the KL weight warms up over half the budget, and every
    fourth step also updates the encoder alone on another batch."""

    optimizers = ("encoder", "decoder")

    def __init__(self, total_steps: int) -> None:
        super().__init__()
        self.total_steps = max(1, total_steps)
        self.state["extra_encoder_updates"] = 0

    def beta(self, step: int) -> float:
        return min(1.0, 2 * step / self.total_steps)

    def step(self, ctx: StepContext) -> dict[str, Tensor]:
        if ctx.step % 4 == 0:
            log_px, kl, _, _ = ctx.forward(ctx.next_batch())
            ctx.update(self.loss(log_px[0], kl, ctx.step), "encoder")
            self.state["extra_encoder_updates"] += 1
        log_px, kl, _, _ = ctx.forward(ctx.x)
        loss = self.loss(log_px[0], kl, ctx.step)
        ctx.update(loss)
        return {"loss": loss, "kl": kl}


@hookimpl
def register_objectives(register):
    register(
        ObjectiveSpec(
            "encoder-boost",
            lambda budget: EncoderBoost(budget.total_steps),
            "example third-party method: KL warm-up and extra encoder updates",
        )
    )


def posterior_std(ctx: EvalContext) -> MetricValue:
    """Mean standard deviation of q(z|x) over examples and dimensions: 1 where the posterior
    has collapsed to the prior, lower where z carries information about x."""
    p = ctx.posterior
    return MetricValue(float(p.logvar.mul(0.5).exp().mean()), {"n": len(p.mu)})


@hookimpl
def register_metrics(register):
    register(
        MetricSpec(
            "posterior_std",
            posterior_std,
            "min",
            "mean posterior standard deviation (1: the posterior is the prior)",
            label="Posterior std",
        )
    )
