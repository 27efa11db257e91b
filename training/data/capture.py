"""What a camera and its encoder add to frames that are already blurry: sensor noise and lossy 4:2:0 video.

The footage pipeline (:mod:`.degrade`) renders blur from a photo; datasets that come with their own
blurry frames (folders on disk, the procedural clips) get only this second half of it: the sRGB
frames are taken back to linear light, given shot and read noise there, encoded with the sRGB curve
and rounded to 8 bits, then compressed with H.264 or H.265 in yuv420p and decoded back to RGB
(:mod:`.compression`). Levels, codec and CRF are drawn from a :class:`~.degrade.FootageSettings`.
The sharp ground truth is never touched.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .compression import compress_frames
from .degrade import FootageSettings
from .sensor import add_sensor_noise, linear_to_srgb, srgb_to_linear, to_8bit_levels

__all__ = ["CAPTURE", "degrade_blurry_frames", "even_size"]

# The footage pipeline's defaults: noise levels, codecs x264/x265 and CRF 18-30.
CAPTURE = FootageSettings()


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def even_size(*clips: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``clips`` [..., H, W] cut to an even height and width (4:2:0 needs both), bottom/right edge dropped."""
    height, width = clips[0].shape[-2:]
    return tuple(clip[..., : height - height % 2, : width - width % 2] for clip in clips)


def degrade_blurry_frames(blurry: torch.Tensor, rng: np.random.Generator,
                          settings: FootageSettings = CAPTURE) -> tuple[torch.Tensor, dict]:
    """``blurry`` [T, 3, H, W] sRGB in [0, 1] (H, W even) with sensor noise and a codec round trip.

    Returns the decoded frames (float, 8-bit levels) and what was drawn: noise levels, codec and CRF.
    """
    if blurry.ndim != 4 or blurry.shape[1] != 3:
        raise ValueError(f"blurry frames must be [T, 3, H, W], got {tuple(blurry.shape)}")
    if blurry.shape[-2] % 2 or blurry.shape[-1] % 2:
        raise ValueError(f"4:2:0 compression needs an even frame size, got {tuple(blurry.shape[-2:])}; "
                         "cut the frames with even_size() first")
    shot = _log_uniform(rng, *settings.shot_noise) if settings.noise else 0.0
    read = _log_uniform(rng, *settings.read_noise) if settings.noise else 0.0
    linear = srgb_to_linear(blurry.float().clamp(0, 1))
    frames = to_8bit_levels(linear_to_srgb(add_sensor_noise(linear, rng, shot=shot, read=read)))
    record = {"shot_noise": shot, "read_noise": read, "codec": None, "crf": None}
    if settings.compress:
        codec = str(settings.codecs[int(rng.integers(len(settings.codecs)))])
        crf = int(rng.integers(settings.crf[0], settings.crf[1] + 1))
        pixels = (frames.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)
        decoded = compress_frames(pixels, codec=codec, crf=crf)
        frames = torch.from_numpy(decoded).permute(0, 3, 1, 2).float() / 255
        record.update(codec=codec, crf=crf)
    return frames.contiguous(), record
