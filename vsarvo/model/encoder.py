"""The frame encoder F_theta (paper Sec. 3.1)."""
from __future__ import annotations

import torch
from torch import nn

from .resblock import ResBlock

__all__ = ["Encoder"]


class Encoder(nn.Module):
    """Frame features: [B, 3, H, W] -> [B, channels, H/4, W/4]; H and W must be multiples of 4.

    The paper's layout: an input conv and five residual blocks at full resolution, a stride-2 conv and
    five blocks at half, a stride-2 conv and five blocks at quarter resolution. ``width`` is the
    full-resolution width, twice that (capped at ``channels``) at half resolution. The encoder is
    purely convolutional, so an output depends only on inputs within ``receptive_radius`` full-resolution
    pixels and the stage can run it in overlapping tiles exactly.
    """

    BLOCKS_PER_SCALE = 5
    # Each scale is a 3x3 conv then its blocks; one of its pixels is 1, 2 or 4 full-resolution pixels.
    receptive_radius = (1 + 2 + 4) * (1 + BLOCKS_PER_SCALE * ResBlock.receptive_radius)

    def __init__(self, *, width: int, channels: int) -> None:
        super().__init__()
        if width < 1 or channels < 1:
            raise ValueError(f"Encoder width and channels must be >= 1, got width={width}, channels={channels}")
        half = min(2 * width, channels)
        self.full = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            *[ResBlock(channels=width) for _ in range(self.BLOCKS_PER_SCALE)],
        )
        self.reduced = nn.Sequential(
            nn.Conv2d(width, half, 3, stride=2, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            *[ResBlock(channels=half) for _ in range(self.BLOCKS_PER_SCALE)],
            nn.Conv2d(half, channels, 3, stride=2, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            *[ResBlock(channels=channels) for _ in range(self.BLOCKS_PER_SCALE)],
        )
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduced(self.full(x))
