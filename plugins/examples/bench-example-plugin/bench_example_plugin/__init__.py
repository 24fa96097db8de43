"""An example third-party plugin: a Bernoulli VAE whose decoder is a single linear map.

Nothing here is special to first-party code: it implements the model contract and registers
through the public ``bench`` entry-point group.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from bench import LatentVariableModel, ModelSpec, Param, hookimpl


class LinearDecoderVAE(LatentVariableModel):
    def __init__(self, shape: tuple[int, ...], latent_dim: int, hidden: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        features = math.prod(shape)
        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(features, hidden), nn.Tanh(), nn.Linear(hidden, 2 * latent_dim)
        )
        self.decoder = nn.Linear(latent_dim, features)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        logits = self.decoder(z)
        target = x.flatten(1).expand_as(logits)
        return -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            "linear-decoder-vae",
            lambda info, latent_dim, hidden: LinearDecoderVAE(info.shape, latent_dim, hidden),
            "example third-party model: MLP encoder, linear Bernoulli decoder",
            kinds=("image",),
            params={"latent_dim": Param(8, 2, 32, step=1), "hidden": Param(64, 16, 256, step=1)},
        )
    )
