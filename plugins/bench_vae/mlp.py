"""Bernoulli VAEs with MLP encoder and decoder, plain and skip (Dieng et al. 2019, MLP variant).

Plain: z enters only the first decoder layer. Skip: z enters every decoder layer's
pre-activation and the output layer, h_l = act(W_l h_{l-1} + U_l z), logits = W h_L + U z.
The blocks and the likelihood head are the public ones of :mod:`bench.blocks` and
:mod:`bench.likelihoods`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from bench import LatentVariableModel
from bench.blocks import MLPDecoder, MLPEncoder
from bench.likelihoods import bernoulli_log_likelihood


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
        return bernoulli_log_likelihood(self.decoder(z), x)

    def decode_mean(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.decoder(z)).view(-1, *self.shape)
