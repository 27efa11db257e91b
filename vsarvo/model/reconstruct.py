"""The reconstruction network, in the style of SRN-DeblurNet (Tao et al., CVPR 2018)."""
from __future__ import annotations

import torch
from torch import nn

from .resblock import ResBlock

__all__ = ["Reconstruction"]


class Reconstruction(nn.Module):
    """Aggregated features at H/4 plus the blurry frames -> the restored reference frame.

    An SRN-style encoder-decoder: ``blocks`` residual blocks per scale, transposed-conv upsampling from
    H/4 to H, and skip inputs computed from the blurry frames at full and half resolution. It predicts
    a residual added to the blurry reference. The skip input is ``skip_frames`` RGB frames stacked as
    channels with the reference first: 1 (the reference alone) or 3 (the reference, the aligned
    previous frame, the aligned next frame); reference first, so that a model trained on the reference
    alone grows into one with neighbours by appending input channels. Widths: ``width`` at full
    resolution, doubling per scale. SRN's multi-scale recurrence is left out: ARVo's progressive stages
    play that role (our assumption; the paper defers the details to its supplement).

    The stage runs two parts in overlapping tiles, exactly, because both are purely local: ``skip``
    (frames -> half-resolution skip features, radius ``skip_radius``) and ``tail`` (half-resolution
    features and frames -> output, radius ``tail_radius``), both radii in full-resolution pixels.
    """

    # skip_full: a 3x3 conv and a ResBlock; skip_half adds the same at half resolution (2 px each).
    SKIP_FULL_RADIUS = 1 + ResBlock.receptive_radius
    skip_radius = SKIP_FULL_RADIUS + 2 * SKIP_FULL_RADIUS

    def __init__(self, *, in_channels: int, width: int, blocks: int, skip_frames: int = 1) -> None:
        super().__init__()
        if skip_frames not in (1, 3):
            raise ValueError(f"skip_frames must be 1 or 3, got {skip_frames}")
        if blocks < 1:
            raise ValueError(f"blocks must be >= 1, got {blocks}")
        self.skip_frames = skip_frames
        self.blocks = blocks
        w1, w2, w3 = width, 2 * width, 4 * width
        self.skip_full = nn.Sequential(
            nn.Conv2d(3 * skip_frames, w1, 3, padding=1), nn.LeakyReLU(0.1, inplace=True), ResBlock(channels=w1),
        )
        self.skip_half = nn.Sequential(
            nn.Conv2d(w1, w2, 3, stride=2, padding=1), nn.LeakyReLU(0.1, inplace=True), ResBlock(channels=w2),
        )
        self.fuse = nn.Sequential(nn.Conv2d(in_channels, w3, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))
        self.quarter_blocks = nn.Sequential(*[ResBlock(channels=w3) for _ in range(blocks)])
        self.up_half = nn.ConvTranspose2d(w3, w2, 4, stride=2, padding=1)
        self.half_blocks = nn.Sequential(*[ResBlock(channels=w2) for _ in range(blocks)])
        self.up_full = nn.ConvTranspose2d(w2, w1, 4, stride=2, padding=1)
        self.decode_full = nn.Sequential(*[ResBlock(channels=w1) for _ in range(blocks)],
                                         nn.Conv2d(w1, 3, 3, padding=1))
        # Start close to the identity (output = blurry input): a freshly initialised residual head would
        # add noise and cost the first few hundred steps just learning to be quiet. Small, not zero, so
        # every layer still receives a gradient from the first step.
        with torch.no_grad():
            self.decode_full[-1].weight.mul_(0.01)
            self.decode_full[-1].bias.zero_()

    @property
    def tail_radius(self) -> int:
        """Receptive radius of ``tail`` in full-resolution pixels; it grows with ``blocks``.

        A bound: the upsampling's 2 px plus skip_full's radius (their sum needs only the larger), then
        decode_full's blocks and output conv.
        """
        return 2 + self.SKIP_FULL_RADIUS + self.blocks * ResBlock.receptive_radius + 1

    def skip(self, frames: torch.Tensor) -> torch.Tensor:
        """Stacked blurry frames [B, 3 * skip_frames, H, W] -> half-resolution skip features (purely local)."""
        return self.skip_half(self.skip_full(frames))

    def middle(self, features: torch.Tensor, skip_half: torch.Tensor) -> torch.Tensor:
        """Quarter- and half-resolution decoder: H/4 features -> H/2 features."""
        x = self.quarter_blocks(self.fuse(features))
        return self.half_blocks(self.up_half(x) + skip_half)

    def reference(self, frames: torch.Tensor) -> torch.Tensor:
        """The blurry reference out of the stacked skip frames [B, 3 * skip_frames, H, W]."""
        return frames[:, :3]

    def tail(self, half: torch.Tensor, frames: torch.Tensor, skip_full: torch.Tensor | None = None) -> torch.Tensor:
        """Full-resolution decoder: H/2 features + stacked blurry frames -> restored frame (purely local).

        ``skip_full``: ``self.skip_full(frames)`` when the caller already has it (on the whole frame).
        """
        if skip_full is None:
            skip_full = self.skip_full(frames)
        return self.reference(frames) + self.decode_full(self.up_full(half) + skip_full)

    def forward(self, features: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        skip_full = self.skip_full(frames)
        return self.tail(self.middle(features, self.skip_half(skip_full)), frames, skip_full)
