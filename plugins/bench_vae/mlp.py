"""Bernoulli VAEs with MLP encoder and decoder, plain and skip (Dieng et al. 2019, MLP variant).

Plain: z enters only the first decoder layer. Skip: z enters every decoder layer's
pre-activation and the output layer, h_l = act(W_l h_{l-1} + U_l z), logits = W h_L + U z.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench import LatentVariableModel


class MLPEncoder(nn.Module):
    def __init__(self, in_features: int, hidden: int, layers: int, latent_dim: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = in_features
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(width, 2 * latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.head(self.body(x.flatten(1))).chunk(2, dim=-1)
        return mu, logvar


class MLPDecoder(nn.Module):
    """Returns Bernoulli logits ``[..., F]`` for z ``[..., D]``."""

    def __init__(
        self, latent_dim: int, hidden: int, layers: int, out_features: int, skip: bool
    ) -> None:
        super().__init__()
        self.skip = skip
        self.hidden = nn.ModuleList(
            nn.Linear(latent_dim if i == 0 else hidden, hidden) for i in range(layers)
        )
        # The skip connections: z into every later layer and into the output layer.
        n_skips = layers if skip else 0
        self.z_in = nn.ModuleList(
            nn.Linear(latent_dim, hidden, bias=False) for _ in range(n_skips - 1)
        )
        self.out = nn.Linear(hidden, out_features)
        self.z_out = nn.Linear(latent_dim, out_features, bias=False) if skip else None

    def forward(self, z: Tensor) -> Tensor:
        h = torch.relu(self.hidden[0](z))
        for i, layer in enumerate(self.hidden[1:]):
            pre = layer(h)
            if self.skip:
                pre = pre + self.z_in[i](z)
            h = torch.relu(pre)
        logits = self.out(h)
        if self.z_out is not None:
            logits = logits + self.z_out(z)
        return logits


class MLPVAE(LatentVariableModel):
    def __init__(
        self,
        shape: tuple[int, ...],
        latent_dim: int,
        hidden: int,
        enc_layers: int,
        dec_layers: int,
        skip: bool,
    ) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.latent_dim = latent_dim
        features = math.prod(shape)
        self.encoder = MLPEncoder(features, hidden, enc_layers, latent_dim)
        self.decoder = MLPDecoder(latent_dim, hidden, dec_layers, features, skip)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.encoder(x)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        logits = self.decoder(z)  # [K, B, F]
        target = x.flatten(1).expand_as(logits)
        return -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)

    def decode_mean(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.decoder(z)).view(-1, *self.shape)
