"""The LSTM VAE and skip-VAE as the skip-VAE reference code builds them (yoonkim/skip-vae
``models_text_skip.py``). They differ from :class:`bench_text.lstm.LSTMVAE` in one place: the
decoder's initial hidden state is ``Linear(z)`` for the **last** layer only, every other layer
starting from zeros (line 102, ``self.h0[-1] = self.latent_hidden_linear(q_z)``), where the
harness's model gives every layer its own ``Linear(z)``. With one decoder layer (the default)
the two are the same function.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bench_text.lstm import LSTMVAE, LSTMDecoder


class ReferenceLSTMDecoder(LSTMDecoder):
    @staticmethod
    def h0_layers(layers: int) -> int:
        return 1  # latent_hidden_linear: one layer's worth

    def initial_h(self, z: Tensor) -> Tensor:
        h_last = self.init_h(z).unsqueeze(0)  # [1, R, H]
        if self.layers == 1:
            return h_last
        return torch.cat([h_last.new_zeros(self.layers - 1, *h_last.shape[1:]), h_last])


class ReferenceLSTMVAE(LSTMVAE):
    decoder_class = ReferenceLSTMDecoder
