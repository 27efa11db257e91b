"""Reconstruction network in the style of SRN-DeblurNet (Tao et al., CVPR 2018)."""
from __future__ import annotations

import torch
from torch import nn

from .encoder import ResBlock

__all__ = ["Reconstruction"]


class Reconstruction(nn.Module):
    """Aggregated features at H/4 plus the blurry reference -> restored reference frame.

    An SRN-style encoder-decoder (ResBlocks per scale, transposed-conv upsampling, skip connections)
    that starts from the H/4 features, upsamples x4 with skip inputs computed from the blurry reference
    at full and half resolution, and predicts a residual added to the blurry reference. SRN's
    multi-scale recurrence is left out: ARVo's progressive stages play that role (our assumption; the
    paper defers the details to its supplement). Widths: ``width`` at full resolution, doubling per
    scale.

    The full-resolution parts (``skip_full`` and ``decode_full``) are purely local, so they can run in
    overlapping tiles exactly: ``skip_full`` has receptive radius ``SKIP_RADIUS`` and ``decode_full``
    ``DECODE_RADIUS`` pixels.
    """

    def __init__(self, *, in_channels: int, width: int, blocks: int) -> None:
        super().__init__()
        w1, w2, w3 = width, 2 * width, 4 * width
        self.skip_full = nn.Sequential(
            nn.Conv2d(3, w1, 3, padding=1), nn.LeakyReLU(0.1, inplace=True), ResBlock(w1),
        )
        self.skip_half = nn.Sequential(
            nn.Conv2d(w1, w2, 3, stride=2, padding=1), nn.LeakyReLU(0.1, inplace=True), ResBlock(w2),
        )
        self.fuse = nn.Sequential(nn.Conv2d(in_channels, w3, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))
        self.quarter_blocks = nn.Sequential(*[ResBlock(w3) for _ in range(blocks)])
        self.up_half = nn.ConvTranspose2d(w3, w2, 4, stride=2, padding=1)
        self.half_blocks = nn.Sequential(*[ResBlock(w2) for _ in range(blocks)])
        self.up_full = nn.ConvTranspose2d(w2, w1, 4, stride=2, padding=1)
        self.decode_full = nn.Sequential(*[ResBlock(w1) for _ in range(blocks)], nn.Conv2d(w1, 3, 3, padding=1))
        # Start close to the identity (output = blurry input): a freshly initialised residual head would
        # add noise and cost the first few hundred steps just learning to be quiet. Small, not zero, so
        # every layer still receives a gradient from the first step.
        with torch.no_grad():
            self.decode_full[-1].weight.mul_(0.01)
            self.decode_full[-1].bias.zero_()
        self.SKIP_RADIUS = 1 + 2
        self.DECODE_RADIUS = 2 * blocks + 1

    def middle(self, features: torch.Tensor, skip_half: torch.Tensor) -> torch.Tensor:
        """Quarter- and half-resolution decoder: H/4 features -> H/2 features."""
        x = self.quarter_blocks(self.fuse(features))
        return self.half_blocks(self.up_half(x) + skip_half)

    def tail(self, half: torch.Tensor, blurry: torch.Tensor, skip_full: torch.Tensor | None = None) -> torch.Tensor:
        """Full-resolution decoder: H/2 features + blurry reference -> restored frame (purely local)."""
        if skip_full is None:
            skip_full = self.skip_full(blurry)
        return blurry + self.decode_full(self.up_full(half) + skip_full)

    def forward(self, features: torch.Tensor, blurry: torch.Tensor) -> torch.Tensor:
        skip_full = self.skip_full(blurry)
        return self.tail(self.middle(features, self.skip_half(skip_full)), blurry, skip_full)
