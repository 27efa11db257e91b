"""Foreground objects: soft-edged cut-outs of a photo that move over the scene on their own.

Real footage has things that move differently from the camera (people, cars, a hand); a patch of
another photo with an irregular, slightly feathered outline moving on its own path gives the model
occlusions and motion that no single global warp explains.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .sensor import srgb_to_linear

__all__ = ["blob_mask", "cut_out"]

_OUTLINE_WAVES = 4


def blob_mask(rng: np.random.Generator, side: int, feather: float = 1.5) -> torch.Tensor:
    """An irregular, convex-ish shape [side, side] in [0, 1]: 1 inside, a ~``feather`` px soft edge.

    The outline is a circle whose radius varies with angle by a few random harmonics.
    """
    ys, xs = torch.meshgrid(torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32),
                            indexing="ij")
    centre = (side - 1) / 2
    dx, dy = xs - centre, ys - centre
    angle = torch.atan2(dy, dx)
    radius = torch.full_like(angle, 0.36 * side)
    for harmonic in range(2, 2 + _OUTLINE_WAVES):
        radius = radius + 0.04 * side * float(rng.uniform(-1, 1)) * torch.cos(harmonic * angle + float(rng.uniform(0, 6.3)))
    distance = torch.sqrt(dx**2 + dy**2)
    return ((radius - distance) / feather + 0.5).clamp(0, 1)


def cut_out(photo: Image.Image, rng: np.random.Generator, side: int) -> torch.Tensor:
    """A premultiplied, linear-light RGBA object [4, side, side] cut from a random region of ``photo``.

    The region is 1-2 times ``side`` (as the photo allows) and is shrunk to ``side``, so the object is
    about as sharp as the background.
    """
    region = int(min(photo.width, photo.height, round(side * rng.uniform(1.0, 2.0))))
    left = int(rng.integers(0, photo.width - region + 1))
    top = int(rng.integers(0, photo.height - region + 1))
    patch = photo.crop((left, top, left + region, top + region)).resize((side, side), Image.Resampling.LANCZOS)
    rgb = srgb_to_linear(torch.from_numpy(np.asarray(patch, dtype=np.float32) / 255).permute(2, 0, 1).contiguous())
    alpha = blob_mask(rng, side)[None]
    return torch.cat([rgb * alpha, alpha], 0)
