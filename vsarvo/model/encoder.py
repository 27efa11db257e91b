"""The frame encoder (paper Sec. 3.1) and the residual block shared by the convolutional parts."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["ResBlock", "Encoder"]


class ResBlock(nn.Module):
    """conv3x3 - ReLU - conv3x3 plus identity, as in SRN-DeblurNet; shape preserving, receptive radius 2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Encoder(nn.Module):
    """Frame features F_theta: [B, 3, H, W] -> [B, C, H/4, W/4]; H and W must be multiples of 4.

    Exactly the paper's layout: an input conv, five residual blocks at full resolution, a stride-2 conv,
    five at half, a stride-2 conv, five at quarter resolution. It is split into ``full`` (everything at
    full resolution, purely local: receptive radius ``FULL_RADIUS`` pixels, so it can run in overlapping
    tiles exactly) and ``reduced`` (the rest).
    """

    BLOCKS_PER_SCALE = 5
    FULL_RADIUS = 1 + 2 * BLOCKS_PER_SCALE  # input conv + 5 blocks of two 3x3 convs

    def __init__(self, *, width: int, channels: int) -> None:
        super().__init__()
        half = min(2 * width, channels)
        self.full = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            *[ResBlock(width) for _ in range(self.BLOCKS_PER_SCALE)],
        )
        self.reduced = nn.Sequential(
            nn.Conv2d(width, half, 3, stride=2, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            *[ResBlock(half) for _ in range(self.BLOCKS_PER_SCALE)],
            nn.Conv2d(half, channels, 3, stride=2, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            *[ResBlock(channels) for _ in range(self.BLOCKS_PER_SCALE)],
        )
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduced(self.full(x))
