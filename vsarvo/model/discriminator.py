"""Temporal discriminator (paper Sec. 3.4): is a 3-frame sequence restored or ground truth?"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["TemporalDiscriminator"]


class TemporalDiscriminator(nn.Module):
    """Four Conv3d layers, global average pooling and a linear binary classifier.

    Takes a sequence [B, T, 3, H, W] (T = 3: R1_{i-1}, R2_i, R1_{i+1} or the sharp S_{i-1..i+1}) and
    returns one logit per sequence [B] (positive = ground truth). Widths double per layer from
    ``width`` (our choice; the paper does not give them); each layer halves H and W and mixes time with
    a temporal kernel of 3.
    """

    def __init__(self, *, width: int = 32) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"TemporalDiscriminator width must be >= 1, got {width}")
        layers: list[nn.Module] = []
        cin = 3
        for i in range(4):
            cout = width * 2 ** i
            layers += [nn.Conv3d(cin, cout, (3, 4, 4), stride=(1, 2, 2), padding=(1, 1, 1)), nn.LeakyReLU(0.2, inplace=True)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.classify = nn.Linear(cin, 1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.features(frames.transpose(1, 2))  # Conv3d wants [B, C, T, H, W]
        return self.classify(x.mean(dim=(2, 3, 4))).squeeze(1)
