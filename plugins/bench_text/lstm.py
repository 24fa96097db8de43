"""LSTM VAE and skip-VAE for text (Bowman et al. 2016; Dieng et al. 2019, text variant).

Encoder: embeddings -> LSTM -> last hidden state -> (mu, logvar).
Decoder (both): z is concatenated to every input embedding and h_0 = Linear(z) (c_0 = 0).
Skip decoder: in addition z is concatenated to the LSTM output before the vocabulary softmax,
and to the input of every decoder layer after the first.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call

from bench import LatentVariableModel
from bench.likelihoods import categorical_log_likelihood
from bench_text.batching import TokenBatch

# Logit elements ([rows, L, V]) decoded at once in log_likelihood: bounds the memory of an
# importance-weighted evaluation with many samples, whatever K and B are. A GPU gets larger
# slices (1 GiB of fp32 logits) since small ones would leave it idle.
LOGIT_BUDGET = 2**25
LOGIT_BUDGET_CUDA = 2**28


def run_lstm(rnn: nn.LSTM, inputs: Tensor, state: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """``rnn(inputs, state)``'s outputs; under autocast in bf16 or fp32, never in fp16.

    cuDNN's autocast rule for RNNs casts to fp16 whatever autocast's dtype, and the harness
    trains without a gradient scaler; on the CPU, oneDNN rejects the LSTM under autocast. So
    under autocast the LSTM runs outside it, in bf16 when that is the autocast dtype and in
    fp32 otherwise, with its weights cast for the call (gradients still reach the fp32
    weights), as autocast itself would cast them.
    """
    device = inputs.device.type
    if not torch.is_autocast_enabled(device):
        return rnn(inputs, state)[0]
    dtype = torch.get_autocast_dtype(device)
    if dtype != torch.bfloat16:
        dtype = torch.float32
    with torch.autocast(device, enabled=False):
        weights = {name: p.to(dtype) for name, p in rnn.named_parameters()}
        cast_state = None if state is None else tuple(s.to(dtype) for s in state)
        return functional_call(rnn, weights, (inputs.to(dtype), cast_state))[0]


class LSTMEncoder(nn.Module):
    def __init__(
        self, vocab: int, emb: int, hidden: int, layers: int, latent_dim: int, pad_id: int
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, emb, padding_idx=pad_id)
        self.rnn = nn.LSTM(emb, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, 2 * latent_dim)

    def forward(self, x: TokenBatch) -> tuple[Tensor, Tensor]:
        out = run_lstm(self.rnn, self.embed(x.ids))  # [B, L, H]
        # The state after </s>: later (padding) steps cannot affect it in a forward LSTM.
        last = (x.lengths - 1).view(-1, 1, 1).expand(-1, 1, out.shape[-1])
        mu, logvar = self.head(out.gather(1, last).squeeze(1)).chunk(2, dim=-1)
        return mu, logvar


class LSTMDecoder(nn.Module):
    """One ``nn.LSTM`` per layer so z can be concatenated between layers (skip)."""

    def __init__(
        self,
        vocab: int,
        emb: int,
        hidden: int,
        layers: int,
        latent_dim: int,
        dropout: float,
        skip: bool,
        pad_id: int,
    ) -> None:
        super().__init__()
        self.skip = skip
        self.layers = layers
        self.hidden = hidden
        self.embed = nn.Embedding(vocab, emb, padding_idx=pad_id)
        self.drop = nn.Dropout(dropout)
        self.init_h = nn.Linear(latent_dim, self.h0_layers(layers) * hidden)
        self.rnns = nn.ModuleList(
            nn.LSTM(
                (emb if i == 0 else hidden) + (latent_dim if i == 0 or skip else 0),
                hidden,
                batch_first=True,
            )
            for i in range(layers)
        )
        self.out = nn.Linear(hidden + (latent_dim if skip else 0), vocab)

    def project(self, h: Tensor, z: Tensor) -> Tensor:
        """Vocabulary logits from LSTM outputs ``h [R, L, H]``; the skip decoder also sees
        ``z [R, D]`` here, the plain one ignores it."""
        if self.skip:
            h = torch.cat([h, z.unsqueeze(1).expand(-1, h.shape[1], -1)], dim=-1)
        return self.out(h)

    @staticmethod
    def h0_layers(layers: int) -> int:
        """How many layers get ``h_0 = Linear(z)``: all of them here."""
        return layers

    def initial_h(self, z: Tensor) -> Tensor:
        """``h_0`` of every layer, ``[layers, R, H]``: ``Linear(z)`` for each."""
        return self.init_h(z).view(z.shape[0], self.layers, self.hidden).transpose(0, 1)

    def forward(self, emb: Tensor, z: Tensor) -> Tensor:
        """Logits ``[R, L, V]`` for embedded inputs ``emb [R, L, E]`` and ``z [R, D]``."""
        zs = z.unsqueeze(1).expand(-1, emb.shape[1], -1)
        h0 = self.initial_h(z)
        h = self.drop(emb)
        for i, rnn in enumerate(self.rnns):
            inp = torch.cat([h, zs], dim=-1) if i == 0 or self.skip else h
            state = (h0[i : i + 1].contiguous(), torch.zeros_like(h0[i : i + 1]))
            h = run_lstm(rnn, inp, state)
        return self.project(self.drop(h), z)


class LSTMVAE(LatentVariableModel):
    decoder_class: type[LSTMDecoder] = LSTMDecoder

    def __init__(
        self,
        vocab_size: int,
        pad_id: int,
        latent_dim: int,
        emb_dim: int,
        hidden: int,
        enc_layers: int,
        dec_layers: int,
        dec_dropout: float,
        init_range: float,
        skip: bool,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.vocab_size = vocab_size
        self.encoder = LSTMEncoder(vocab_size, emb_dim, hidden, enc_layers, latent_dim, pad_id)
        self.decoder = self.decoder_class(
            vocab_size, emb_dim, hidden, dec_layers, latent_dim, dec_dropout, skip, pad_id
        )
        if init_range > 0:
            # The paper's code initialises every parameter uniform(-0.1, 0.1).
            for p in self.parameters():
                nn.init.uniform_(p, -init_range, init_range)

    def encode(self, x: TokenBatch) -> tuple[Tensor, Tensor]:
        return self.encoder(x)

    def log_likelihood(self, x: TokenBatch, z: Tensor) -> Tensor:
        """Sum over real target tokens (words and ``</s>``) of log p(x_t | x_<t, z); padding
        is excluded. ``z [K, B, D]`` -> ``[K, B]``: the K copies of each sentence are decoded
        as one batch of K*B rows, in slices bounded by ``LOGIT_BUDGET``."""
        k, b, d = z.shape
        inputs, targets, mask = x.inputs, x.targets, x.target_mask  # [B, T]
        emb = self.decoder.embed(inputs)  # [B, T, E], shared by the K samples
        t = inputs.shape[1]
        budget = LOGIT_BUDGET_CUDA if z.device.type == "cuda" else LOGIT_BUDGET
        rows = max(1, budget // max(1, t * self.vocab_size))
        flat_z = z.reshape(k * b, d)
        if k * b <= rows:
            # The common training case: no gather of the shared embeddings and targets.
            emb, targets, mask = emb.repeat(k, 1, 1), targets.repeat(k, 1), mask.repeat(k, 1)
            return categorical_log_likelihood(self.decoder(emb, flat_z), targets, mask).view(k, b)
        out = []
        for start in range(0, k * b, rows):
            sel = torch.arange(start, min(start + rows, k * b), device=z.device) % b
            logits = self.decoder(emb[sel], flat_z[start : start + rows])  # [R, T, V]
            out.append(categorical_log_likelihood(logits, targets[sel], mask[sel]))
        return torch.cat(out).view(k, b)

    def num_tokens(self, x: TokenBatch) -> Tensor:
        return x.num_tokens()
