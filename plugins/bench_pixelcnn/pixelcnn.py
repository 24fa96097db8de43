"""A gated PixelCNN decoder (van den Oord et al. 2016) conditioned on a latent feature map.

Two stacks per layer, which together remove the original PixelCNN's blind spot:

- the **vertical** stack convolves a ``(k//2 + 1) x k`` window of rows ending at the current
  one. In the first layer the window ends one row higher ("mask A" for rows), so the vertical
  features at row ``i`` depend on input rows ``< i`` only, in every layer;
- the **horizontal** stack convolves a ``1 x (k//2 + 1)`` window of the current row ending at
  the current column, plus a 1x1 projection of the vertical stack at the same position. In the
  first layer its window ends one column to the left ("mask A"), so the output at pixel ``i``
  never sees pixel ``i`` or any later pixel in raster order, and sees every earlier pixel
  within the receptive field (rows above through the vertical stack, including those to the
  right: no blind spot).

Both stacks use the gated activation ``tanh(a) * sigmoid(b)``; the horizontal stack is
residual after the first layer. Only the horizontal stack feeds the output. The causal windows
are cut from a symmetrically padded convolution's output (a view, no extra padding pass).

Conditioning on z: z is mapped once by a linear layer to a ``z_channels x H x W`` feature map
that is concatenated to a layer's input channels. Concatenation followed by a convolution is
the sum of a convolution over the features and one over the map, and only the features need
the causal mask (the map does not depend on x), so each conditioned layer holds a separate
convolution over the map with the same window as the stack it feeds, not shifted. Even pixel
(0, 0) therefore depends on z. Which layers get the map is the only difference between the
plain and the skip model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def gate(t: Tensor) -> Tensor:
    a, b = t.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


def causal_conv(
    in_channels: int, out_channels: int, rows: int, cols: int, shift: int, bias: bool = True
) -> nn.Conv2d:
    """A convolution whose output, cropped to the input's height and width, is causal.

    Vertical stack (``rows > 1``): output ``(i, j)`` sees rows ``i - shift - rows + 1 ..
    i - shift`` and the ``cols`` columns centred on ``j``. Horizontal stack (``rows == 1``):
    it sees row ``i``, columns ``j - shift - cols + 1 .. j - shift``. The padding puts the
    window's reach before the current position; the crop drops what falls after it.
    """
    # Horizontal: pad columns by the reach to the left. Vertical: pad rows upwards, columns
    # symmetrically (the vertical stack may look right as well as left).
    padding = (0, cols - 1 + shift) if rows == 1 else (rows - 1 + shift, cols // 2)
    return nn.Conv2d(in_channels, out_channels, (rows, cols), padding=padding, bias=bias)


class GatedLayer(nn.Module):
    """One gated layer with vertical and horizontal stacks; ``z_channels > 0`` conditions it."""

    def __init__(
        self, in_channels: int, channels: int, kernel: int, first: bool, z_channels: int
    ) -> None:
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"PixelCNN kernel sizes must be odd and positive, got {kernel}")
        self.first = first
        reach = kernel // 2 + 1
        shift = 1 if first else 0
        self.v_conv = causal_conv(in_channels, 2 * channels, reach, kernel, shift)
        self.h_conv = causal_conv(in_channels, 2 * channels, 1, reach, shift)
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.h_out = nn.Conv2d(channels, channels, 1)
        # The z map's share of a convolution over [features, z map]: same window, no shift.
        self.v_z: nn.Conv2d | None = None
        self.h_z: nn.Conv2d | None = None
        if z_channels > 0:
            self.v_z = causal_conv(z_channels, 2 * channels, reach, kernel, 0, bias=False)
            self.h_z = causal_conv(z_channels, 2 * channels, 1, reach, 0, bias=False)

    def forward(self, v: Tensor, h: Tensor, zmap: Tensor | None) -> tuple[Tensor, Tensor]:
        rows, cols = h.shape[-2:]
        v_pre = self.v_conv(v)[:, :, :rows, :cols]
        h_pre = self.h_conv(h)[:, :, :rows, :cols]
        if self.v_z is not None and self.h_z is not None and zmap is not None:
            v_pre = v_pre + self.v_z(zmap)[:, :, :rows, :cols]
            h_pre = h_pre + self.h_z(zmap)[:, :, :rows, :cols]
        # The vertical features at row i already exclude row i, so no shift is needed here.
        h_pre = h_pre + self.v_to_h(v_pre)
        h_new = self.h_out(gate(h_pre))
        if not self.first:
            h_new = h_new + h
        return gate(v_pre), h_new


class GatedPixelCNN(nn.Module):
    """Bernoulli logits ``[N, 1, H, W]`` for binary images ``x`` given a z map.

    ``skip=False``: the map enters the first layer only. ``skip=True``: it enters every layer
    (both stacks) and is concatenated once more before the final 1x1 output convolution.
    """

    def __init__(
        self,
        image_channels: int,
        channels: int,
        kernels: Sequence[int],
        z_channels: int,
        skip: bool,
    ) -> None:
        super().__init__()
        self.skip = skip
        self.z_channels = z_channels
        self.layers = nn.ModuleList(
            GatedLayer(
                image_channels if i == 0 else channels,
                channels,
                k,
                first=i == 0,
                z_channels=z_channels if (skip or i == 0) else 0,
            )
            for i, k in enumerate(kernels)
        )
        self.out_hidden = nn.Conv2d(channels, channels, 1)
        self.out = nn.Conv2d(channels + (z_channels if skip else 0), image_channels, 1)

    def forward(self, x: Tensor, zmap: Tensor) -> Tensor:
        v = h = x
        for layer in self.layers:
            v, h = layer(v, h, zmap)
        out = torch.relu(self.out_hidden(torch.relu(h)))
        if self.skip:
            out = torch.cat([out, zmap], dim=1)
        return self.out(out)

    @property
    def receptive_rows(self) -> int:
        """How many rows above its own an output pixel can see: one for the first layer's
        shift plus each layer's upward reach."""
        return 1 + sum(layer.v_conv.kernel_size[0] - 1 for layer in self.layers)

    def row_logits(self, x: Tensor, zmap: Tensor, row: int) -> Tensor:
        """Logits of one row, ``[N, C, W]``, from the rows that can influence it only.

        Every convolution is causal in rows, so the output at ``row`` depends on input rows
        ``row - receptive_rows .. row`` alone; features near the top of that window are wrong
        (they miss rows above it) but never reach the last row. Used by the pixel loop.
        """
        top = max(0, row - self.receptive_rows)
        return self(x[:, :, top : row + 1], zmap[:, :, top : row + 1])[:, :, -1]

    def z_injections(self) -> list[nn.Module]:
        """Every module that reads the z map (for tests and documentation)."""
        mods: list[nn.Module] = []
        for layer in self.layers:
            if layer.v_z is not None and layer.h_z is not None:
                mods += [layer.v_z, layer.h_z]
        if self.skip:
            mods.append(self.out)
        return mods
