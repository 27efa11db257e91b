"""Motion blur as a camera makes it: light integrated over the time the shutter is open.

Frame ``i`` is exposed from ``i - duty/2`` to ``i + duty/2`` (in frame periods): its blurry image is
the mean of scene renders at evenly spaced sub-frame times in that interval, and its sharp ground
truth is the render at the middle of the shutter, ``i``. One sub-frame means no blur: the exposure
is then the very same render as the ground truth, bit for bit.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

__all__ = ["sub_frame_times", "sub_frame_count", "expose"]

MAX_SUB_FRAMES = 24
# The most the image may move between sub-frames, in rendered pixels: one pixel, the footprint of the
# bilinear sample (and at 2x supersampling half that of the pooling), so sub-frames join into a streak.
_STEP_PX = 1.0


def sub_frame_count(blur_px: float) -> int:
    """Sub-frames needed so that consecutive ones move the image at most ~1 rendered px: 1 for no motion.

    Motion below a thousandth of a pixel (rounding in the path's algebra) counts as none.
    """
    if blur_px < 1e-3:
        return 1
    return int(min(MAX_SUB_FRAMES, max(2, math.ceil(blur_px / _STEP_PX) + 1)))


def sub_frame_times(frame: float, duty: float, count: int) -> np.ndarray:
    """``count`` times spread evenly over the shutter of ``frame`` (centres of equal slices)."""
    if not 0 < duty <= 1 or count < 1:
        raise ValueError(f"duty must be in (0, 1] and count >= 1; got duty={duty}, count={count}")
    return frame + duty * ((np.arange(count) + 0.5) / count - 0.5)


def expose(render: Callable[[np.ndarray], torch.Tensor], frames: int, duty: float, count: int) -> torch.Tensor:
    """Blurry frames [T, C, H, W]: the mean of ``count`` renders over each frame's shutter."""
    if count == 1:
        return render(np.arange(frames, dtype=np.float64))
    exposures = [render(sub_frame_times(i, duty, count)).mean(0) for i in range(frames)]
    return torch.stack(exposures)
