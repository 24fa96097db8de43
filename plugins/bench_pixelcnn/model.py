"""PixelCNN VAE and skip-VAE: a residual convolutional encoder and a gated PixelCNN decoder
with a per-pixel Bernoulli likelihood (Dieng et al. 2019, section 5.1 and appendix)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from bench import LatentVariableModel
from bench.errors import ConfigError
from bench.likelihoods import bernoulli_log_likelihood
from bench_pixelcnn.pixelcnn import GatedPixelCNN
from bench_pixelcnn.plugin import SAVAE_KERNELS as SAVAE_KERNELS  # the SA-VAE decoder's kernels


class ResidualBlock(nn.Module):
    """Pre-activation residual block: x + conv(relu(conv(relu(x))))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(torch.relu(self.conv1(torch.relu(x))))


class ResNetEncoder(nn.Module):
    """``blocks`` residual blocks, each followed by a stride-2 convolution, then linear heads to
    the posterior mean and log-variance."""

    def __init__(
        self, shape: tuple[int, int, int], channels: int, blocks: int, latent_dim: int
    ) -> None:
        super().__init__()
        c, h, w = shape
        layers: list[nn.Module] = [nn.Conv2d(c, channels, 3, padding=1)]
        for _ in range(blocks):
            layers += [ResidualBlock(channels), nn.Conv2d(channels, channels, 3, 2, padding=1)]
            h, w = (h + 1) // 2, (w + 1) // 2  # a 3x3, stride-2, pad-1 convolution
        self.body = nn.Sequential(*layers)
        features = channels * h * w
        self.mu = nn.Linear(features, latent_dim)
        self.logvar = nn.Linear(features, latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        feats = torch.relu(self.body(x)).flatten(1)
        return self.mu(feats), self.logvar(feats)


def resolve_kernels(layers: int, kernel: int, kernels: Sequence[int] | None) -> tuple[int, ...]:
    """Per-layer kernel sizes: ``kernels`` if given (its length sets the depth), else ``kernel``
    repeated ``layers`` times."""
    if kernels:
        ks = tuple(int(k) for k in kernels)
        if layers and len(ks) != layers:
            raise ConfigError(
                f"pixelcnn: kernels has {len(ks)} entries but layers is {layers}; give one "
                "kernel size per layer"
            )
    else:
        if layers < 1:
            raise ConfigError(f"pixelcnn: layers must be >= 1, got {layers}")
        ks = (int(kernel),) * layers
    bad = [k for k in ks if k < 1 or k % 2 == 0]
    if bad:
        raise ConfigError(f"pixelcnn: kernel sizes must be odd and positive, got {bad}")
    return ks


def check_positive(what: str, **sizes: int) -> None:
    """A ConfigError naming the first of ``sizes`` that is below 1."""
    for name, value in sizes.items():
        if value < 1:
            raise ConfigError(f"{what}: {name} must be >= 1, got {value}")


def folded_logits(logits_fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, z: Tensor) -> Tensor:
    """Logits ``[K, B, C, H, W]`` for images ``x [B, C, H, W]`` and ``z [K, B, D]`` from
    ``logits_fn(x [N, ...], z [N, D])``: K is folded into the batch, so one decoder pass scores
    all K x B (image, z) pairs."""
    k, b, d = z.shape
    xk = x.unsqueeze(0).expand(k, *x.shape).reshape(k * b, *x.shape[1:])
    return logits_fn(xk, z.reshape(k * b, d)).view(k, b, *x.shape[1:])


class PixelCNNVAE(LatentVariableModel):
    """Bernoulli PixelCNN VAE. ``skip`` switches between the plain VAE (z at the first decoder
    layer) and the skip-VAE (z at every layer and at the output)."""

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
        if len(shape) != 3 or shape[0] != 1:
            raise ConfigError(
                f"pixelcnn models take single-channel images [1, H, W]; this data set's "
                f"examples have shape {list(shape)}"
            )
        check_positive(
            "pixelcnn",
            latent_dim=latent_dim,
            channels=channels,
            z_channels=z_channels,
            enc_channels=enc_channels,
        )
        self.shape = (int(shape[0]), int(shape[1]), int(shape[2]))
        self.latent_dim = latent_dim
        self.skip = skip
        self.z_channels = z_channels
        self.kernels = resolve_kernels(layers, kernel, kernels)
        self.encoder = ResNetEncoder(self.shape, enc_channels, enc_blocks, latent_dim)
        _, h, w = self.shape
        self.z_to_map = nn.Linear(latent_dim, z_channels * h * w)
        self.decoder = GatedPixelCNN(self.shape[0], channels, self.kernels, z_channels, skip)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.encoder(x)

    def z_map(self, z: Tensor) -> Tensor:
        """``[N, D] -> [N, z_channels, H, W]``."""
        _, h, w = self.shape
        return self.z_to_map(z).view(-1, self.z_channels, h, w)

    def logits(self, x: Tensor, z: Tensor) -> Tensor:
        """Bernoulli logits ``[N, 1, H, W]`` for images ``x [N, 1, H, W]`` and ``z [N, D]``."""
        return self.decoder(x, self.z_map(z))

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        return bernoulli_log_likelihood(folded_logits(self.logits, x, z), x)

    def decode_mean(self, z: Tensor) -> Tensor | None:
        # The mean of an autoregressive p(x|z) has no closed form; grids use sample() instead.
        return None

    @torch.no_grad()
    def sample(
        self, z: Tensor, generator: torch.Generator | None = None, greedy: bool = False
    ) -> Tensor:
        """Draw ``x ~ p(x|z)`` for ``z [N, D]`` pixel by pixel (H x W decoder passes, each over
        the few rows that can influence the current one)."""
        c, h, w = self.shape
        zmap = self.z_map(z)
        x = torch.zeros(z.shape[0], c, h, w, device=z.device, dtype=zmap.dtype)
        for i in range(h):
            for j in range(w):
                probs = torch.sigmoid(self.decoder.row_logits(x, zmap, i)[:, :, j])
                if greedy:
                    x[:, :, i, j] = (probs > 0.5).to(x.dtype)
                else:
                    x[:, :, i, j] = torch.bernoulli(probs, generator=generator)
        return x
