"""The HFR-DVD recipe: blurry/sharp pairs from high-frame-rate footage.

The paper (Section 4) makes HFR-DVD from 1,000 fps video: every frame is
downsized to 960x540 (which also averages away sensor noise), and the video is
subsampled by keeping the middle frame of every ``N`` frames, ``N`` drawn
at random from [38, 44] for each output frame; a blurry frame is the
average of the 41 frames centred on its kept (sharp) frame.

So output frame ``k`` has a middle source frame ``m_k`` with
``m_0 = window // 2`` (the first complete window) and
``m_{k+1} = m_k + N_k``; its blurry frame averages source frames
``m_k - window // 2 .. m_k + window // 2`` and its sharp frame is ``m_k``.
Output stops at the last complete window. The paper does not say in which
colour space it averaged; we average the stored (gamma-encoded) values, as
a camera recording gives them, and round to the nearest 8-bit level.

The functions here are pure and streaming (constant memory: the last
``window`` frames), so they work on arbitrarily long videos.
"""
from __future__ import annotations

import collections
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .frames import list_frames, read_rgb

__all__ = ["middle_frames", "average_frames", "hfr_pairs", "read_video_frames", "read_folder_frames"]


def _check_recipe(window: int, step: tuple[int, int]) -> None:
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number of frames, got {window}")
    if not 1 <= step[0] <= step[1]:
        raise ValueError(f"step must be a range 1 <= low <= high, got {step}")


def middle_frames(rng: np.random.Generator, *, window: int = 41, step: tuple[int, int] = (38, 44)) -> Iterator[int]:
    """Endless indices of the source frames kept as sharp frames, in order.

    The first is ``window // 2``; each next one is ``step[0]..step[1]``
    (inclusive, uniform, drawn from ``rng``) frames after the previous.
    """
    _check_recipe(window, step)
    middle = window // 2
    while True:
        yield middle
        middle += int(rng.integers(step[0], step[1] + 1))


def average_frames(frames: Sequence[np.ndarray]) -> np.ndarray:
    """The per-pixel mean of uint8 frames, rounded to the nearest level (halves round up)."""
    if not frames:
        raise ValueError("average_frames needs at least one frame")
    total = np.sum(np.stack(frames), axis=0, dtype=np.uint32)
    # Integer arithmetic: exact, and (total + n/2) // n rounds to nearest.
    return ((total + len(frames) // 2) // len(frames)).astype(np.uint8)


def hfr_pairs(
    frames: Iterable[np.ndarray], *, window: int = 41, step: tuple[int, int] = (38, 44), seed: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream ``(blurry, sharp)`` uint8 frame pairs from high-frame-rate ``frames`` (uint8 [H, W, 3]).

    ``seed`` fixes the random steps, so the same video and seed give the same pairs.
    """
    middles = middle_frames(np.random.default_rng(seed), window=window, step=step)
    radius = window // 2
    recent: collections.deque[np.ndarray] = collections.deque(maxlen=window)
    middle = next(middles)
    for index, frame in enumerate(frames):
        recent.append(frame)
        if index == middle + radius:
            yield average_frames(list(recent)), recent[radius]
            middle = next(middles)


def read_video_frames(path: Path, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """Decode a video file with ffmpeg, resized to ``size = (width, height)``, as RGB uint8 frames.

    Every decoded frame comes out once (no frame-rate conversion). Downsizing
    uses area averaging. Raises ``RuntimeError`` with ffmpeg's message when
    decoding fails.
    """
    width, height = size
    command = [
        "ffmpeg", "-v", "error", "-nostdin", "-i", str(path),
        "-vf", f"scale={width}:{height}:flags=area", "-fps_mode", "passthrough",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1",
    ]
    frame_bytes = width * height * 3
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    finished = False
    try:
        while True:
            data = process.stdout.read(frame_bytes)
            if len(data) < frame_bytes:
                break
            yield np.frombuffer(data, np.uint8).reshape(height, width, 3)
        finished = True
    finally:
        # Reached early when the consumer stops reading: stop ffmpeg then.
        process.stdout.close()
        if not finished:
            process.kill()
        error = process.stderr.read().decode(errors="replace")
        process.stderr.close()
        returncode = process.wait()
    if returncode != 0:
        raise RuntimeError(f"ffmpeg could not decode {path} (exit {returncode}): {error.strip()[-2000:]}")
    if data:
        raise RuntimeError(f"ffmpeg's output for {path} ended mid-frame ({len(data)} of {frame_bytes} bytes)")


def read_folder_frames(folder: Path, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """The images in ``folder`` (natural name order) as RGB uint8 frames of ``size = (width, height)``.

    Downsizing uses a box (area) filter, like :func:`read_video_frames`.
    """
    files = list_frames(folder)
    if not files:
        raise ValueError(f"no image files in {folder}")
    for file in files:
        frame = read_rgb(file)
        if frame.shape[1::-1] != tuple(size):
            image = Image.fromarray(frame)
            shrinking = image.width >= size[0] and image.height >= size[1]
            frame = np.asarray(image.resize(size, Image.Resampling.BOX if shrinking else Image.Resampling.LANCZOS))
        yield frame
