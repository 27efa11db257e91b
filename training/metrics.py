"""Evaluation metrics for restored video: PSNR, SSIM and flicker.

All three take 8-bit RGB frames (``uint8`` arrays ``H x W x 3``), the form in
which the paper's results and the datasets' ground truth are stored, so a
restored float frame is quantised to 8 bits before it is scored.

* :func:`psnr` — ``20 * log10(255 / RMSE)`` over all pixels and channels.
* :func:`ssim` — Wang et al. (2004) SSIM with an 11-tap Gaussian window
  (sigma 1.5), K1 = 0.01, K2 = 0.03, dynamic range 255 and population
  (co)variances, averaged over the three channels. It matches
  ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1)``;
  scikit-image is only used by the tests to check that.
* :func:`flicker` — temporal consistency of a restored sequence against its
  ground truth (defined in its docstring).

``crop`` removes that many pixels from every border before scoring, for
protocols that ignore the frame edge.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["psnr", "ssim", "flicker"]

_SSIM_SIGMA = 1.5
# scikit-image (through scipy.ndimage) truncates the Gaussian at 3.5 sigma:
# radius int(3.5 * 1.5 + 0.5) = 5, i.e. the 11-tap window of Wang et al.
_SSIM_RADIUS = 5
_DATA_RANGE = 255.0
_C1 = (0.01 * _DATA_RANGE) ** 2
_C2 = (0.03 * _DATA_RANGE) ** 2


def _check_pair(a: np.ndarray, b: np.ndarray, crop: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate two RGB uint8 frames and return them border-cropped as float64."""
    a = np.asarray(a)
    b = np.asarray(b)
    for name, x in (("a", a), ("b", b)):
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[2] != 3:
            raise ValueError(f"{name} must be an RGB uint8 array H x W x 3, got {x.dtype} {x.shape}")
    if a.shape != b.shape:
        raise ValueError(f"a and b differ in shape: {a.shape} vs {b.shape}")
    if crop < 0 or 2 * crop >= min(a.shape[:2]):
        raise ValueError(f"crop={crop} must be >= 0 and leave pixels of a {a.shape[1]}x{a.shape[0]} frame")
    if crop:
        a = a[crop:-crop, crop:-crop]
        b = b[crop:-crop, crop:-crop]
    return a.astype(np.float64), b.astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray, crop: int = 0) -> float:
    """Peak signal-to-noise ratio in dB between two RGB uint8 frames.

    Returns ``inf`` for identical frames (after ``crop``).
    """
    x, y = _check_pair(a, b, crop)
    mse = float(np.mean((x - y) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(_DATA_RANGE**2 / mse)


def _gaussian_window() -> np.ndarray:
    offsets = np.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (offsets / _SSIM_SIGMA) ** 2)
    return weights / weights.sum()


def _filter_valid(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter of ``x`` (H x W x C), kept only where the window fits.

    scikit-image filters with reflected borders and then crops the window
    radius off every side, which leaves exactly these 'valid' positions: the
    border handling never reaches the score.
    """
    size = window.size
    rows = np.lib.stride_tricks.sliding_window_view(x, size, axis=0) @ window
    return np.lib.stride_tricks.sliding_window_view(rows, size, axis=1) @ window


def ssim(a: np.ndarray, b: np.ndarray, crop: int = 0) -> float:
    """Mean structural similarity between two RGB uint8 frames, averaged over channels.

    The frames (after ``crop``) must be at least 11 x 11 pixels.
    """
    x, y = _check_pair(a, b, crop)
    size = 2 * _SSIM_RADIUS + 1
    if min(x.shape[:2]) < size:
        raise ValueError(f"SSIM needs frames of at least {size}x{size} pixels after crop, got {x.shape[1]}x{x.shape[0]}")
    window = _gaussian_window()
    mu_x = _filter_valid(x, window)
    mu_y = _filter_valid(y, window)
    var_x = _filter_valid(x * x, window) - mu_x * mu_x
    var_y = _filter_valid(y * y, window) - mu_y * mu_y
    cov_xy = _filter_valid(x * y, window) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + _C1) * (2 * cov_xy + _C2)) / (
        (mu_x * mu_x + mu_y * mu_y + _C1) * (var_x + var_y + _C2)
    )
    # Mean per channel, then over channels (scikit-image's channel_axis rule);
    # with equal-sized channels this is the mean of the whole map.
    return float(ssim_map.mean(axis=(0, 1)).mean())


def flicker(restored: Sequence[np.ndarray], sharp: Sequence[np.ndarray], crop: int = 0) -> float:
    """Temporal inconsistency of a restored sequence, in 8-bit levels (lower is better).

    Defined as the mean absolute difference between the temporal differences
    of the restored and the ground-truth sequences::

        flicker = mean over t = 1..T-1, pixels, channels of
                  | (R[t] - R[t-1]) - (S[t] - S[t-1]) |

    An error that stays the same from frame to frame (a constant tint, a
    fixed blur) costs nothing; an error that changes between frames — the
    flicker and temporal jitter a per-frame metric does not see — does.
    Takes two equally long sequences (at least two frames) of RGB uint8
    frames of one size; returns a float >= 0.
    """
    if len(restored) != len(sharp):
        raise ValueError(f"restored has {len(restored)} frames but sharp has {len(sharp)}")
    if len(restored) < 2:
        raise ValueError(f"flicker needs at least 2 frames, got {len(restored)}")
    pairs = [_check_pair(r, s, crop) for r, s in zip(restored, sharp)]
    restored_f = np.stack([r for r, _ in pairs])
    sharp_f = np.stack([s for _, s in pairs])
    return float(np.mean(np.abs(np.diff(restored_f, axis=0) - np.diff(sharp_f, axis=0))))
