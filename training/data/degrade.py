"""Render a short clip from a sharp photo, degraded the way phone and camcorder footage is.

A clip is a crop of the photo seen by a hand-held camera (:mod:`.camera_path`) with moving cut-out
objects (:mod:`.foreground`) over it (:mod:`.moving_scene`); each frame is exposed over a shutter of
25-100 % of the frame time (:mod:`.shutter`), gets sensor noise in linear light and the sRGB curve
(:mod:`.sensor`), and is compressed with H.264 or H.265 in 4:2:0 and decoded back (:mod:`.compression`).
The ground truth is the mid-shutter render with the same curve and 8-bit rounding and nothing else.

Each clip draws a blur class: ``none`` (camera and objects still: the model must leave such frames
alone), ``mild`` or ``strong``, by the length of the blur streak the shutter records.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image

from .camera_path import MotionPath, mean_path_length, mean_speed, sample_path
from .compression import compress_frames
from .foreground import cut_out
from .moving_scene import Layer, MovingScene, pool_to_output
from .sensor import add_sensor_noise, linear_to_srgb, srgb_to_linear, to_8bit_levels
from .shutter import expose, sub_frame_count, sub_frame_times

__all__ = ["FootageSettings", "FootageClip", "ClipRecord", "render_footage_clip"]

BLUR_CLASSES = ("none", "mild", "strong")


@dataclass(frozen=True)
class FootageSettings:
    """How clips are drawn. Ranges are (low, high), sampled uniformly unless said otherwise."""

    frames: int = 5
    size: tuple[int, int] = (256, 256)  # height, width; both even (4:2:0)
    supersample: int = 2
    class_shares: tuple[float, float, float] = (0.15, 0.35, 0.5)  # none, mild, strong
    mild_blur_px: tuple[float, float] = (0.5, 3.0)  # streak length within one exposure, output pixels
    strong_blur_px: tuple[float, float] = (3.0, 24.0)
    supersampled_blur_px: float = 3.0  # exposures with longer streaks are rendered at output scale
    duty: tuple[float, float] = (0.25, 1.0)  # shutter open time / frame time
    objects: tuple[int, int] = (0, 2)  # inclusive
    content_scale: tuple[float, float] = (1.0, 3.0)  # photo pixels per working pixel, log-uniform
    shot_noise: tuple[float, float] = (2e-5, 1.5e-3)  # log-uniform; 0 with noise=False
    read_noise: tuple[float, float] = (3e-4, 3e-3)  # log-uniform
    noise: bool = True
    codecs: tuple[str, ...] = ("libx264", "libx265")
    crf: tuple[int, int] = (18, 30)  # inclusive
    compress: bool = True

    def __post_init__(self) -> None:
        if self.frames < 2 or any(s <= 0 or s % 2 for s in self.size) or self.supersample < 1:
            raise ValueError(f"need frames >= 2, even positive size and supersample >= 1; got {self}")
        if not 0 < self.duty[0] <= self.duty[1] <= 1:
            raise ValueError(f"duty must lie in (0, 1], got {self.duty}")
        if abs(sum(self.class_shares) - 1) > 1e-6 or min(self.class_shares) < 0:
            raise ValueError(f"class_shares must be >= 0 and sum to 1, got {self.class_shares}")


@dataclass(frozen=True)
class ClipRecord:
    """What was done to one clip, for filtering and for per-class evaluation."""

    blur_class: str
    motion_px: float  # mean camera motion between frames, output pixels per frame
    blur_px: float  # mean camera blur streak within one exposure, output pixels
    object_motion_px: tuple[float, ...]  # per foreground object, output pixels per frame
    duty: float
    sub_frames: int
    shot_noise: float
    read_noise: float
    codec: str | None
    crf: int | None
    seed: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FootageClip:
    """Blurry input and clean ground truth, float [T, 3, H, W] sRGB in [0, 1], and how they were made."""

    blurry: torch.Tensor
    sharp: torch.Tensor
    record: ClipRecord


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _motion_reach(path: MotionPath, settings: FootageSettings) -> np.ndarray:
    """Half-extent (x, y) in output pixels of the content the camera sees over the whole clip."""
    times = np.linspace(-0.5, settings.frames - 0.5, 4 * settings.frames + 1)
    matrix, shift = path.pose(times)
    height, width = settings.size
    corners = np.array([[-width, -height], [width, -height], [-width, height], [width, height]]) / 2
    content = np.einsum("nij,pj->npi", matrix, corners) + shift[:, None]
    return np.abs(content).reshape(-1, 2).max(0) + 2


def _background(photo: Image.Image, reach: np.ndarray, rng: np.random.Generator,
                settings: FootageSettings) -> torch.Tensor:
    """The photo region the camera sweeps, shrunk to working resolution, linear light [3, h, w]."""
    ss = settings.supersample
    need_w, need_h = (np.ceil(reach + 1) * 2 * ss).astype(int)  # multiples of ss, see MovingScene.at_output_scale
    top_scale = max(1.0, min(settings.content_scale[1], photo.width / need_w, photo.height / need_h))
    scale = _log_uniform(rng, min(settings.content_scale[0], top_scale), top_scale)
    box_w, box_h = min(photo.width, round(need_w * scale)), min(photo.height, round(need_h * scale))
    left, top = int(rng.integers(0, photo.width - box_w + 1)), int(rng.integers(0, photo.height - box_h + 1))
    # A photo too small for the sweep is used whole; the scene mirrors it at the edges.
    out_w, out_h = (min(need, round(box / scale)) // ss * ss for need, box in ((need_w, box_w), (need_h, box_h)))
    region = photo.crop((left, top, left + box_w, top + box_h)).resize((out_w, out_h), Image.Resampling.LANCZOS)
    array = torch.from_numpy(np.asarray(region, dtype=np.float32) / 255).permute(2, 0, 1)
    return srgb_to_linear(array.contiguous())


def _objects(photo: Image.Image, rng: np.random.Generator, settings: FootageSettings,
             blur_range: tuple[float, float] | None, duty: float) -> list[Layer]:
    """Foreground layers cut from ``photo``, each on its own path (still when ``blur_range`` is None)."""
    count = int(rng.integers(settings.objects[0], settings.objects[1] + 1))
    if count == 0:
        return []
    layers = []
    height, width = settings.size
    for _ in range(count):
        side = settings.supersample * int(min(height, width) * rng.uniform(0.2, 0.45))
        speed = 0.0 if blur_range is None else rng.uniform(*blur_range) / duty
        offset = rng.uniform(-0.35, 0.35, 2) * np.array([width, height])
        path = sample_path(rng, speed=speed, frames=settings.frames, size=settings.size, roll_share=0.5,
                           zoom_share=0.0, offset=offset, base_angle=float(rng.uniform(0, 2 * np.pi)))
        layers.append(Layer(cut_out(photo, rng, side), path))
    return layers


def _sensor_output(linear: torch.Tensor, rng: np.random.Generator, shot: float, read: float) -> torch.Tensor:
    return to_8bit_levels(linear_to_srgb(add_sensor_noise(linear, rng, shot=shot, read=read)))


def _compress(blurry: torch.Tensor, rng: np.random.Generator, settings: FootageSettings) -> tuple[torch.Tensor, str | None, int | None]:
    if not settings.compress:
        return blurry, None, None
    codec = str(settings.codecs[int(rng.integers(len(settings.codecs)))])
    crf = int(rng.integers(settings.crf[0], settings.crf[1] + 1))
    frames = (blurry.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)
    decoded = compress_frames(frames, codec=codec, crf=crf)
    return torch.from_numpy(decoded).permute(0, 3, 1, 2).float() / 255, codec, crf


def render_footage_clip(photo: Image.Image | str, *, seed: int, settings: FootageSettings = FootageSettings(),
                        foreground: Image.Image | str | None = None) -> FootageClip:
    """One degraded clip of ``photo`` (RGB), with objects cut from ``foreground`` (default: the photo)."""
    photo = Image.open(photo) if isinstance(photo, str) else photo
    photo = photo.convert("RGB")
    cutouts = photo if foreground is None else (Image.open(foreground) if isinstance(foreground, str) else foreground).convert("RGB")
    rng = np.random.default_rng(seed)
    blur_class = BLUR_CLASSES[int(rng.choice(3, p=settings.class_shares))]
    duty = float(rng.uniform(*settings.duty))
    blur_range = {"none": None, "mild": settings.mild_blur_px, "strong": settings.strong_blur_px}[blur_class]
    speed = 0.0 if blur_range is None else float(rng.uniform(*blur_range)) / duty
    camera = sample_path(rng, speed=speed, frames=settings.frames, size=settings.size)
    background = _background(photo, _motion_reach(camera, settings), rng, settings)
    scene = MovingScene(Layer(background, camera), _objects(cutouts, rng, settings, blur_range, duty),
                        settings.size, settings.supersample)
    streaks = np.array([[mean_path_length(layer.path, sub_frame_times(i, duty, 9), settings.size)
                         for i in range(settings.frames)] for layer in [scene.background, *scene.objects]])
    exposure_scene = scene if streaks.max() <= settings.supersampled_blur_px else scene.at_output_scale()
    count = sub_frame_count(float(streaks.max()) * exposure_scene.supersample)
    sharp_linear = pool_to_output(scene.render(np.arange(settings.frames, dtype=np.float64)), settings.supersample)
    blurry_linear = pool_to_output(expose(exposure_scene.render, settings.frames, duty, count),
                                   exposure_scene.supersample)
    shot = _log_uniform(rng, *settings.shot_noise) if settings.noise else 0.0
    read = _log_uniform(rng, *settings.read_noise) if settings.noise else 0.0
    sharp = to_8bit_levels(linear_to_srgb(sharp_linear))
    blurry, codec, crf = _compress(_sensor_output(blurry_linear, rng, shot, read), rng, settings)
    record = ClipRecord(blur_class, mean_speed(camera, settings.frames, settings.size), float(streaks[0].mean()),
                        tuple(mean_speed(o.path, settings.frames, settings.size) for o in scene.objects),
                        duty, count, shot, read, codec, crf, seed)
    return FootageClip(blurry, sharp, record)
