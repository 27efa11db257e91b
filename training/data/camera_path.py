"""Hand-held motion paths in continuous time: where each screen pixel looks at time ``t``.

A path maps centred screen coordinates ``u`` (pixels, origin at the frame centre, time in frame
periods) to content coordinates ``A(t) u + b(t)``. A hand-held camera drifts at a velocity that
changes during the clip (acceleration), trembles (a few sinusoids with periods of 2-10 frames, as
hand tremor is at 30 fps), rolls a little and zooms slightly. The same model moves a foreground
object across the screen (no zoom, more rotation). Paths are sampled at sub-frame times by the
shutter (:mod:`.shutter`) and scaled so that their mean screen speed is a requested number of
pixels per frame; a speed of zero gives a path that is exactly static.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MotionPath", "sample_path", "mean_speed", "mean_path_length"]

_TREMOR_WAVES = 3


@dataclass(frozen=True)
class MotionPath:
    """Pose parameters of one path; :meth:`pose` evaluates them at any times."""

    offset: np.ndarray  # [2] content position of the screen centre at t = 0
    velocity: np.ndarray  # [2] px per frame
    acceleration: np.ndarray  # [2] px per frame^2
    tremor_amplitude: np.ndarray  # [K, 2] px
    tremor_frequency: np.ndarray  # [K] cycles per frame
    tremor_phase: np.ndarray  # [K, 2]
    roll_rate: float  # radians per frame
    roll_tremor: float  # radians
    zoom_rate: float  # log scale per frame
    base_angle: float = 0.0

    def pose(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``A [N, 2, 2]`` and ``b [N, 2]`` at ``times [N]``: content = A @ screen + b."""
        t = np.asarray(times, dtype=np.float64)[:, None]
        wave = np.sin(2 * np.pi * self.tremor_frequency[None, :, None] * t[:, :, None] + self.tremor_phase[None])
        shift = self.velocity * t + 0.5 * self.acceleration * t**2 + (self.tremor_amplitude[None] * wave).sum(1)
        angle = self.base_angle + self.roll_rate * t[:, 0] + self.roll_tremor * np.sin(2 * np.pi * 0.23 * t[:, 0])
        scale = np.exp(self.zoom_rate * t[:, 0])
        cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
        matrix = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
        return matrix, self.offset + shift

    def scaled(self, factor: float) -> MotionPath:
        """The same path with every motion term multiplied by ``factor`` (offset and base angle kept)."""
        return MotionPath(self.offset, self.velocity * factor, self.acceleration * factor,
                          self.tremor_amplitude * factor, self.tremor_frequency, self.tremor_phase,
                          self.roll_rate * factor, self.roll_tremor * factor, self.zoom_rate * factor,
                          self.base_angle)


def _probe_points(size: tuple[int, int]) -> np.ndarray:
    """A 5x5 grid of screen points spanning the frame, centred coordinates."""
    height, width = size
    ys, xs = np.meshgrid(np.linspace(-(height - 1) / 2, (height - 1) / 2, 5),
                         np.linspace(-(width - 1) / 2, (width - 1) / 2, 5), indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], -1)


def _screen_motion(path: MotionPath, times: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Screen displacement magnitudes [N-1, P] of content points between consecutive ``times``.

    A content point seen at screen ``u`` at one time is seen at ``A2^-1 (A1 u + b1 - b2)`` at the next:
    the screen motion is the difference.
    """
    matrix, shift = path.pose(times)
    points = _probe_points(size)
    content = np.einsum("nij,pj->npi", matrix[:-1], points) + shift[:-1, None]
    later = np.einsum("nij,npj->npi", np.linalg.inv(matrix[1:]), content - shift[1:, None])
    return np.linalg.norm(later - points[None], axis=-1)


def mean_speed(path: MotionPath, frames: int, size: tuple[int, int]) -> float:
    """Mean screen displacement in pixels between consecutive frame times, over the frame."""
    return float(_screen_motion(path, np.arange(frames, dtype=np.float64), size).mean())


def mean_path_length(path: MotionPath, times: np.ndarray, size: tuple[int, int]) -> float:
    """Mean screen length in pixels of the path traced between the first and last of ``times``."""
    if len(times) < 2:
        return 0.0
    return float(_screen_motion(path, np.asarray(times, dtype=np.float64), size).sum(0).mean())


def sample_path(rng: np.random.Generator, *, speed: float, frames: int, size: tuple[int, int],
                roll_share: float = 0.25, zoom_share: float = 0.1, offset: np.ndarray | None = None,
                base_angle: float = 0.0) -> MotionPath:
    """A random hand-held path whose mean screen speed over ``frames`` is ``speed`` px per frame.

    ``roll_share`` and ``zoom_share`` bound how much of the motion at the frame's corners comes from
    roll and zoom rather than translation (drift, acceleration, tremor), so a fast shake rolls more
    than a slow one, as hands do, while the roll stays a small fraction of the motion.
    """
    if speed < 0 or frames < 2:
        raise ValueError(f"speed must be >= 0 and frames >= 2; got speed={speed}, frames={frames}")
    direction = rng.uniform(0, 2 * np.pi)
    velocity = np.array([np.cos(direction), np.sin(direction)]) * rng.uniform(0.3, 1.0)
    corner = 0.5 * float(np.hypot(*size))
    rate = np.linalg.norm(velocity) / corner  # the roll (radians) or zoom (log) moving a corner like the pan
    # The velocity changes by up to its own size over the clip: a pan that speeds up, slows or turns.
    acceleration = rng.normal(0, 0.5, 2) * np.linalg.norm(velocity) / max(frames - 1, 1)
    path = MotionPath(
        offset=np.zeros(2) if offset is None else np.asarray(offset, dtype=np.float64),
        velocity=velocity, acceleration=acceleration,
        tremor_amplitude=rng.uniform(0, 0.25, (_TREMOR_WAVES, 2)) * rng.uniform(0, 1),
        tremor_frequency=rng.uniform(0.1, 0.5, _TREMOR_WAVES),
        tremor_phase=rng.uniform(0, 2 * np.pi, (_TREMOR_WAVES, 2)),
        roll_rate=float(rng.uniform(-roll_share, roll_share) * rate),
        roll_tremor=float(rng.uniform(0, roll_share) * rate),
        zoom_rate=float(rng.uniform(-zoom_share, zoom_share) * rate), base_angle=base_angle)
    if speed == 0:
        return path.scaled(0.0)
    # Rotation and zoom scale with the translation, so one factor hits the speed target; the motion is
    # almost linear in it, and a second pass corrects the rest.
    factor = speed / max(mean_speed(path, frames, size), 1e-9)
    path = path.scaled(factor)
    return path.scaled(speed / max(mean_speed(path, frames, size), 1e-9))
