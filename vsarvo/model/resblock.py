"""The residual block shared by the encoder and the reconstruction net."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["ResBlock"]


class ResBlock(nn.Module):
    """conv3x3 - ReLU - conv3x3 plus the identity, as in SRN-DeblurNet.

    Takes and returns [B, channels, H, W]. Purely local: an output pixel depends on inputs within
    ``receptive_radius`` pixels (two 3x3 convolutions), which is what lets the stage tile it exactly.
    """

    receptive_radius = 2

    def __init__(self, *, channels: int) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"ResBlock channels must be >= 1, got {channels}")
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
