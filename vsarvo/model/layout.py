"""Memory layout of 4-D activations: which one a tensor is in, so outputs built from it can follow."""
from __future__ import annotations

import torch

__all__ = ["memory_format_of"]


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """``torch.channels_last`` when ``x`` [B, C, H, W] is laid out NHWC (and not also NCHW, as a
    one-channel or one-pixel map is), else ``torch.contiguous_format``.

    Tensors assembled by hand (stacked costs, resampled frames) come out NCHW; converting them to the
    layout of the activations they meet spares each following convolution a layout conversion.
    """
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format
