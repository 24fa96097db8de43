"""The PixelCNN VAE and skip-VAE exactly as the skip-VAE reference code builds them
(yoonkim/skip-vae ``models_img_skip.py``, ``CNNVAE`` and its parts; defaults from
``train_img_skip.py``). Line numbers below are those of the reference files.

Where this differs from :class:`bench_pixelcnn.model.PixelCNNVAE` (kept as the harness's own
variant):

- **z maps**: one ``Linear(z -> z_channels x H x W)`` per decoder layer (lines 67-68, 85), and
  for the skip model one more before the output (172, 211). Each map is concatenated to the
  layer's input and passes through the layer's *masked* convolutions with the image features
  (86-88), so in the first layer (mask A) pixel (0, 0) sees no map at all: in the plain VAE the
  first pixel is independent of z.
- **output head**: a single 1x1 convolution on the last horizontal stack (183-185, 213), no
  hidden 1x1 convolution or ReLU.
- **gated layer** (14-50): the vertical stack is shifted down one row in *every* layer
  (26-27, 38); the horizontal stack is masked (current column excluded) in the first layer
  only; later layers add a 1x1 projection of their input as the residual (35, 48-49).
- **encoder** (99-132, 161-176): residual blocks with BatchNorm (conv-BN-ReLU-conv-BN, a 1x1
  projection where the width changes, ReLU after the sum), each followed by a 2x2 stride-2
  convolution (28 -> 14 -> 7 -> 3).
- **initialisation**: every ``nn.Linear`` weight ~ N(0, 2 / fan_in) ("He", 10-12, 187-189);
  convolutions, BatchNorm and biases keep PyTorch's defaults.
- **likelihood**: probabilities clamped to [1e-5, 1 - 1e-5] (sa-vae ``utils.py`` line 18), done
  here as the equivalent clamp of the logits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench import LatentVariableModel
from bench.errors import ConfigError
from bench.likelihoods import bernoulli_log_likelihood
from bench_pixelcnn.model import check_positive, folded_logits, resolve_kernels
from bench_pixelcnn.pixelcnn import gate

# sa-vae utils.log_bernoulli_loss clamps p to [1e-5, 1 - 1e-5]; sigmoid is monotone, so this
# logit clamp gives the same values and the same (zero) gradient outside the range.
PROB_EPS = 1e-5
LOGIT_CLAMP = math.log((1.0 - PROB_EPS) / PROB_EPS)


def he_init(linear: nn.Linear) -> None:
    """The reference's ``he_init``: weight ~ N(0, sqrt(2 / fan_in)); the bias is left alone."""
    nn.init.normal_(linear.weight, 0.0, math.sqrt(2.0 / linear.in_features))


class BatchNormResidualBlock(nn.Module):
    """relu(x' + bn(conv(relu(bn(conv(x)))))), x' = x or a 1x1 projection of it."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.proj = None if in_channels == channels else nn.Conv2d(in_channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        res = x if self.proj is None else self.proj(x)
        return F.relu(res + out)


class ReferenceEncoder(nn.Module):
    """``blocks`` x (residual block with BatchNorm, 2x2 stride-2 convolution), then linear heads
    to the posterior mean and log-variance."""

    def __init__(
        self, shape: tuple[int, int, int], channels: int, blocks: int, latent_dim: int
    ) -> None:
        super().__init__()
        c, h, w = shape
        layers: list[nn.Module] = []
        for i in range(blocks):
            layers += [
                BatchNormResidualBlock(c if i == 0 else channels, channels),
                nn.Conv2d(channels, channels, kernel_size=2, stride=2),
            ]
            h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise ConfigError(f"pixelcnn-ref: {blocks} encoder blocks halve {shape[1:]} to nothing")
        self.body = nn.Sequential(*layers)
        self.mu = nn.Linear(channels * h * w, latent_dim)
        self.logvar = nn.Linear(channels * h * w, latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        feats = self.body(x).flatten(1)
        return self.mu(feats), self.logvar(feats)


class ReferenceGatedLayer(nn.Module):
    """The reference ``GatedMaskedConv2d``: vertical stack over the ``k//2 + 1`` rows ending one
    row above the current one, horizontal stack over the ``k//2 + 1`` columns ending at the
    current one (mask B) or one to its left (mask A, first layer)."""

    def __init__(self, in_channels: int, channels: int, kernel: int, mask_a: bool) -> None:
        super().__init__()
        self.pad = kernel // 2
        self.mask_a = mask_a
        self.v_conv = nn.Conv2d(in_channels, 2 * channels, (self.pad + 1, kernel))
        self.vh_conv = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.h_conv = nn.Conv2d(in_channels, 2 * channels, (1, self.pad + 1))
        self.h_conv_res = nn.Conv2d(channels, channels, 1)
        self.h_res = None if mask_a else nn.Conv2d(in_channels, channels, 1)

    def forward(self, v: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        p = self.pad
        v_out = self.v_conv(F.pad(v, (p, p, p, 0)))
        v_out = F.pad(v_out, (0, 0, 1, 0))[:, :, :-1]  # down one row: rows above only
        h_out = self.h_conv(F.pad(h, (p, 0, 0, 0)))
        if self.mask_a:
            h_out = F.pad(h_out, (1, 0, 0, 0))[:, :, :, :-1]  # right one column
        h_new = self.h_conv_res(gate(h_out + self.vh_conv(v_out)))
        if self.h_res is not None:
            h_new = h_new + self.h_res(h)
        return gate(v_out), h_new


class ReferencePixelCNNDecoder(nn.Module):
    """Bernoulli logits ``[N, C, H, W]`` from images and ``z [N, D]``: per-layer z maps
    concatenated to the first layer's input (plain) or every layer's (skip), and the skip
    model's extra map beside the last layer's output."""

    def __init__(
        self,
        shape: tuple[int, int, int],
        latent_dim: int,
        channels: int,
        kernels: Sequence[int],
        z_channels: int,
        skip: bool,
    ) -> None:
        super().__init__()
        c, h, w = shape
        self.map_shape = (z_channels, h, w)
        self.skip = skip
        n = len(kernels)
        # The reference also builds maps for the plain model's later layers and never reads
        # them; only the maps that are read exist here (same function, same training).
        self.z_maps = nn.ModuleList(
            nn.Linear(latent_dim, z_channels * h * w) for _ in range(n if skip else 1)
        )
        extra = z_channels if skip else 0
        self.layers = nn.ModuleList(
            ReferenceGatedLayer(
                c + z_channels if i == 0 else channels + extra, channels, k, mask_a=i == 0
            )
            for i, k in enumerate(kernels)
        )
        self.out_map = nn.Linear(latent_dim, z_channels * h * w) if skip else None
        self.out = nn.Conv2d(channels + extra, c, 1)

    def _map(self, linear: nn.Linear, z: Tensor) -> Tensor:
        return linear(z).view(z.shape[0], *self.map_shape)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        v = h = x
        for i, layer in enumerate(self.layers):
            if i < len(self.z_maps):
                m = self._map(self.z_maps[i], z)
                v, h = torch.cat([v, m], 1), torch.cat([h, m], 1)
            v, h = layer(v, h)
        if self.out_map is not None:
            h = torch.cat([h, self._map(self.out_map, z)], 1)
        return self.out(h)

    def z_injections(self) -> list[nn.Module]:
        """Every module that reads z (for tests and documentation)."""
        return [*self.z_maps, *([self.out_map] if self.out_map is not None else [])]


class ReferencePixelCNNVAE(LatentVariableModel):
    """The reference CNNVAE: BatchNorm residual encoder, gated PixelCNN decoder with per-layer
    z maps; ``skip`` feeds a map to every layer and to the output. Defaults are
    ``train_img_skip.py``'s (lines 35-40): z 20, encoder 3 x 64, decoder 8 x 32 with 3x3
    kernels, one map channel."""

    def __init__(
        self,
        shape: Sequence[int],
        latent_dim: int = 20,
        layers: int = 8,
        channels: int = 32,
        kernel: int = 3,
        kernels: Sequence[int] | None = None,
        z_channels: int = 1,
        enc_channels: int = 64,
        enc_blocks: int = 3,
        skip: bool = False,
    ) -> None:
        super().__init__()
        if len(shape) != 3:
            raise ConfigError(f"pixelcnn-ref models take images [C, H, W], got {list(shape)}")
        check_positive(
            "pixelcnn-ref",
            latent_dim=latent_dim,
            channels=channels,
            z_channels=z_channels,
            enc_channels=enc_channels,
            enc_blocks=enc_blocks,
        )
        self.shape = (int(shape[0]), int(shape[1]), int(shape[2]))
        self.latent_dim = latent_dim
        self.skip = skip
        self.kernels = resolve_kernels(layers, kernel, kernels)
        self.encoder = ReferenceEncoder(self.shape, enc_channels, enc_blocks, latent_dim)
        self.decoder = ReferencePixelCNNDecoder(
            self.shape, latent_dim, channels, self.kernels, z_channels, skip
        )
        for m in self.modules():
            if isinstance(m, nn.Linear):
                he_init(m)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.encoder(x)

    def logits(self, x: Tensor, z: Tensor) -> Tensor:
        """Bernoulli logits ``[N, C, H, W]`` for images ``x [N, C, H, W]`` and ``z [N, D]``."""
        return self.decoder(x, z)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        logits = folded_logits(self.logits, x, z).clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
        return bernoulli_log_likelihood(logits, x)

    @torch.no_grad()
    def sample(
        self, z: Tensor, generator: torch.Generator | None = None, greedy: bool = False
    ) -> Tensor:
        """Draw ``x ~ p(x|z)`` for ``z [N, D]`` pixel by pixel (one decoder pass per pixel)."""
        c, h, w = self.shape
        x = torch.zeros(z.shape[0], c, h, w, device=z.device, dtype=z.dtype)
        for i in range(h):
            for j in range(w):
                logits = self.logits(x, z)[:, :, i, j].clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
                probs = torch.sigmoid(logits)
                if greedy:
                    x[:, :, i, j] = (probs > 0.5).to(x.dtype)
                else:
                    x[:, :, i, j] = torch.bernoulli(probs, generator=generator)
        return x
