"""What a camera adds between scene light and an 8-bit frame: sensor noise, the sRGB curve, quantisation.

Noise is added in linear light, where it is physical: shot noise with variance proportional to the
signal (``shot * x``) plus signal-independent read noise (standard deviation ``read``). The result
is clipped, encoded with the sRGB transfer curve and rounded to 8-bit levels, like the frames a
camera hands to its encoder. The ground truth goes through the same curve and rounding without the
noise, so the two differ by nothing else.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["srgb_to_linear", "linear_to_srgb", "add_sensor_noise", "to_8bit_levels"]


def srgb_to_linear(image: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded values in [0, 1] to linear light (IEC 61966-2-1)."""
    return torch.where(image <= 0.04045, image / 12.92, ((image + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(image: torch.Tensor) -> torch.Tensor:
    """Linear light in [0, 1] to sRGB-encoded values (IEC 61966-2-1)."""
    image = image.clamp(0, 1)
    return torch.where(image <= 0.0031308, image * 12.92, 1.055 * image.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)


def add_sensor_noise(linear: torch.Tensor, rng: np.random.Generator, *, shot: float, read: float) -> torch.Tensor:
    """``linear`` plus shot noise (variance ``shot * x``) and read noise (std ``read``), clipped to [0, 1]."""
    if shot < 0 or read < 0:
        raise ValueError(f"noise levels must be >= 0; got shot={shot}, read={read}")
    if shot == 0 and read == 0:
        return linear
    generator = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
    normal = torch.randn(linear.shape, generator=generator, dtype=linear.dtype)
    sigma = torch.sqrt(shot * linear.clamp_min(0) + read**2)
    return (linear + sigma * normal).clamp(0, 1)


def to_8bit_levels(image: torch.Tensor) -> torch.Tensor:
    """Values in [0, 1] rounded to the nearest of 256 levels (still float in [0, 1])."""
    return torch.round(image.clamp(0, 1) * 255) / 255
