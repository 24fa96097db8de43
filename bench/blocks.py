"""Network blocks for models: an MLP encoder to a diagonal-Gaussian posterior and an MLP
decoder from z, with optional skip connections from z into every layer (Dieng et al. 2019).

Both work on any leading shape: the decoder maps ``z [K, B, D]`` to ``[K, B, F]`` in one call,
which is what :meth:`~bench.contract.LatentVariableModel.log_likelihood` needs.
"""

from __future__ import annotations

from torch import Tensor, nn


class MLPEncoder(nn.Module):
    """``x [B, ...] -> (mu [B, D], logvar [B, D])``: flatten, ``layers`` hidden layers of
    ``hidden`` units with ``activation``, then one linear head split into mean and log-variance.

    Args:
        in_features: values per example once flattened (784 for ``[1, 28, 28]``).
        hidden: units per hidden layer.
        layers: hidden layers (0: the head reads the input directly).
        latent_dim: D.
        activation: a module class, instantiated once per hidden layer.
    """

    def __init__(
        self,
        in_features: int,
        hidden: int,
        layers: int,
        latent_dim: int,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = in_features
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), activation()]
            width = hidden
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(width, 2 * latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.head(self.body(x.flatten(1))).chunk(2, dim=-1)
        return mu, logvar


class MLPDecoder(nn.Module):
    """``z [..., D] -> [..., out_features]`` (logits or means, as the likelihood wants).

    Plain (``skip=False``): z enters the first layer only. Skip (``skip=True``): z also enters
    every later hidden layer's pre-activation and the output,
    ``h_l = act(W_l h_{l-1} + U_l z)`` and ``out = W h_L + U z``, so the output cannot ignore z
    without the optimizer zeroing ``U`` (the generative skip model of Dieng et al. 2019).

    Args:
        latent_dim: D.
        hidden: units per hidden layer.
        layers: hidden layers (0: one linear map from z; ``skip`` then changes nothing).
        out_features: values per example (pixels, or a flattened event).
        skip: add the skip connections.
        activation: a module class for the hidden layers.
    """

    def __init__(
        self,
        latent_dim: int,
        hidden: int,
        layers: int,
        out_features: int,
        skip: bool = False,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.skip = skip and layers > 0
        self.act = activation()
        self.hidden = nn.ModuleList(
            nn.Linear(latent_dim if i == 0 else hidden, hidden) for i in range(layers)
        )
        n_skips = layers if self.skip else 0
        self.z_in = nn.ModuleList(
            nn.Linear(latent_dim, hidden, bias=False) for _ in range(n_skips - 1)
        )
        self.out = nn.Linear(hidden if layers else latent_dim, out_features)
        self.z_out = nn.Linear(latent_dim, out_features, bias=False) if self.skip else None

    def forward(self, z: Tensor) -> Tensor:
        h = z
        for i, layer in enumerate(self.hidden):
            pre = layer(h)
            if self.skip and i > 0:
                pre = pre + self.z_in[i - 1](z)
            h = self.act(pre)
        out = self.out(h)
        if self.z_out is not None:
            out = out + self.z_out(z)
        return out
