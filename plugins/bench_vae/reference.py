"""The MLP VAE and skip-VAE exactly as the skip-VAE reference code builds them
(yoonkim/skip-vae ``models_img_skip.py`` lines 216-264, ``MLPVAE``).

Where this differs from :class:`bench_vae.mlp.MLPVAE` (kept as the harness's own variant):
1,024 hidden units (line 227); the decoder maps z through a linear layer with no activation
(236, 255) before two ReLU layers; the skip model adds ``Linear(z)`` to the pre-activation of
both of those layers (257-260) but not to the output layer (262); PyTorch's default
initialisation (this class is not passed through ``he_init``); probabilities clamped to
[1e-5, 1 - 1e-5] in the loss (sa-vae ``utils.py`` line 18).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from bench import LatentVariableModel
from bench.errors import ConfigError
from bench.likelihoods import bernoulli_log_likelihood

# sa-vae utils.log_bernoulli_loss clamps p to [1e-5, 1 - 1e-5]: the same as clamping logits.
LOGIT_CLAMP = math.log((1.0 - 1e-5) / 1e-5)


class ReferenceMLPVAE(LatentVariableModel):
    def __init__(
        self, shape: tuple[int, ...], latent_dim: int = 20, hidden: int = 1024, skip: bool = False
    ) -> None:
        super().__init__()
        if latent_dim < 1 or hidden < 1:
            raise ConfigError(
                f"mlp-ref: latent_dim and hidden must be >= 1 ({latent_dim}, {hidden})"
            )
        self.shape = tuple(shape)
        self.latent_dim = latent_dim
        self.skip = skip
        features = math.prod(shape)
        self.enc = nn.Sequential(
            nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.mu = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)
        self.dec_init = nn.Linear(latent_dim, hidden)
        self.dec_layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(2))
        # The reference builds these for the plain model too and never reads them: only the
        # skip model's exist here (same function, same training).
        self.z_layers = nn.ModuleList(
            nn.Linear(latent_dim, hidden) for _ in range(2 if skip else 0)
        )
        self.dec_last = nn.Linear(hidden, features)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.enc(x.flatten(1))
        return self.mu(h), self.logvar(h)

    def logits(self, z: Tensor) -> Tensor:
        """Bernoulli logits ``[..., F]`` for ``z [..., D]``."""
        h = self.dec_init(z)
        for i, layer in enumerate(self.dec_layers):
            pre = layer(h)
            if self.skip:
                pre = pre + self.z_layers[i](z)
            h = torch.relu(pre)
        return self.dec_last(h)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        return bernoulli_log_likelihood(self.logits(z).clamp(-LOGIT_CLAMP, LOGIT_CLAMP), x)

    def decode_mean(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.logits(z)).view(-1, *self.shape)
