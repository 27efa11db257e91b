"""Training data as torch Datasets of frame windows.

:class:`VideoWindowDataset` (and :class:`vsarvo.training.data.rendered.RenderedClips` for procedural clips) yield
``(blur, sharp)``: float32 tensors ``[window, 3, h, w]`` in [0, 1] holding
frames ``i - window // 2 .. i + window // 2`` of one video around a centre
frame ``i`` — five frames for ARVo's two progressive stages
(``window = 2 * stages + 1``). Near a clip's ends the indices are clamped,
so the edge frame repeats, as the VapourSynth filter does at clip edges.

Training augmentation draws, once per window, a random crop, horizontal and
vertical flips and a rotation by a multiple of 90 degrees, and applies the
same to every frame, blurry and sharp alike (the frames must stay aligned).
Randomness comes from torch's generator, which DataLoader seeds per worker.

On-disk layouts (:data:`LAYOUTS`), detected by :func:`find_videos`::

    <root>/<split>/<video>/input/*.jpg          + GT/             DVD
    <root>/<split>/<video>/blur/                + gt/             DVD, variant
    <root>/<split>/<video>/blur/*.png           + sharp/          GoPro; also what
                                                                  vsarvo.training.data.synthesis writes
    <root>/<split>/<video>/blurry_resize/*.png  + sharp_resize/   HFR-DVD

Frames pair up by natural name order within a video (HFR-DVD's frame
numbers are not contiguous; order is all that matters).
:func:`paired_videos` takes explicit blurry and sharp folders instead.
"""
from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .capture import degrade_blurry_frames, even_size
from .degrade import FootageSettings
from .frames import list_frames, natural_key, read_rgb
from .procedural import FLOW_PAIR_SETTINGS, ClipSettings, make_flow_pair
from .sources import Split

__all__ = [
    "Layout", "LAYOUTS", "VideoPairs", "find_videos", "paired_videos", "window_indices",
    "VideoWindowDataset", "FlowPairDataset",
]


@dataclass(frozen=True)
class Layout:
    """A dataset's folder names for the blurry and the sharp frames of a video."""

    name: str
    blur: str
    sharp: str


LAYOUTS: tuple[Layout, ...] = (
    Layout("DVD", "input", "GT"),
    Layout("DVD (variant)", "blur", "gt"),
    Layout("GoPro / vsarvo.training.data.synthesis", "blur", "sharp"),
    Layout("HFR-DVD", "blurry_resize", "sharp_resize"),
)


@dataclass(frozen=True)
class VideoPairs:
    """One video: its name and its blurry and sharp frame files, paired by position."""

    name: str
    blur: tuple[Path, ...]
    sharp: tuple[Path, ...]


def _pair_frames(name: str, blur_dir: Path, sharp_dir: Path) -> VideoPairs:
    blur, sharp = list_frames(blur_dir), list_frames(sharp_dir)
    if not blur:
        raise ValueError(f"video {name!r}: no image files in {blur_dir}")
    if len(blur) != len(sharp):
        raise ValueError(f"video {name!r}: {len(blur)} blurry frames in {blur_dir} but {len(sharp)} sharp frames in {sharp_dir}")
    return VideoPairs(name=name, blur=tuple(blur), sharp=tuple(sharp))


def _subfolders(folder: Path) -> list[Path]:
    # Hidden folders are skipped: synthesis builds videos under ".<name>.partial".
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: natural_key(p.name))


def _has(folder: Path, layout: Layout) -> bool:
    return (folder / layout.blur).is_dir() and (folder / layout.sharp).is_dir()


def find_videos(root: Path, split: str | None = None) -> list[VideoPairs]:
    """The videos of ``<root>/<split>`` (or of ``root`` with no split), layout auto-detected.

    The folder may also be a single video (holding the blurry and sharp
    folders itself). Every video folder must match the same layout; raises
    ``ValueError`` listing the expected layouts when none fits.
    """
    base = Path(root) / split if split else Path(root)
    if not base.is_dir():
        raise ValueError(f"dataset folder {base} does not exist")
    for layout in LAYOUTS:
        if _has(base, layout):
            return [_pair_frames(base.name, base / layout.blur, base / layout.sharp)]
    videos = _subfolders(base)
    for layout in LAYOUTS:
        if videos and all(_has(video, layout) for video in videos):
            return [_pair_frames(video.name, video / layout.blur, video / layout.sharp) for video in videos]
    expected = "\n".join(f"  <video>/{layout.blur}/ + <video>/{layout.sharp}/   ({layout.name})" for layout in LAYOUTS)
    found = "\n".join(
        f"  {video.name}/ holds: {', '.join(sorted(p.name for p in _subfolders(video))) or 'no folders'}" for video in videos[:10]
    ) or "  no video folders"
    raise ValueError(
        f"no known video dataset layout in {base}: every video folder in it must hold one of\n{expected}\n"
        f"(or {base} itself must be one such video folder); found:\n{found}"
    )


def paired_videos(blur_dir: Path, sharp_dir: Path) -> list[VideoPairs]:
    """Videos from explicit blurry and sharp folders.

    Either both hold frames directly (one video), or both hold one subfolder
    of frames per video, with the same names on both sides.
    """
    blur_dir, sharp_dir = Path(blur_dir), Path(sharp_dir)
    for folder in (blur_dir, sharp_dir):
        if not folder.is_dir():
            raise ValueError(f"{folder} is not a folder")
    if list_frames(blur_dir):
        return [_pair_frames(blur_dir.name, blur_dir, sharp_dir)]
    blur_videos = {p.name: p for p in _subfolders(blur_dir)}
    sharp_videos = {p.name: p for p in _subfolders(sharp_dir)}
    if not blur_videos:
        raise ValueError(f"{blur_dir} holds neither frames nor video folders")
    if blur_videos.keys() != sharp_videos.keys():
        raise ValueError(
            f"video folders differ: only in {blur_dir}: {sorted(blur_videos.keys() - sharp_videos.keys())}, "
            f"only in {sharp_dir}: {sorted(sharp_videos.keys() - blur_videos.keys())}"
        )
    return [_pair_frames(name, blur_videos[name], sharp_videos[name]) for name in sorted(blur_videos, key=natural_key)]


def _check_window(window: int) -> None:
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number of frames (2 * stages + 1), got {window}")


def window_indices(centre: int, window: int, n_frames: int) -> list[int]:
    """Frame indices of the window around ``centre``, clamped to ``[0, n_frames - 1]``."""
    radius = window // 2
    return [min(max(centre + offset, 0), n_frames - 1) for offset in range(-radius, radius + 1)]


def _random_crop_box(height: int, width: int, crop: int) -> tuple[int, int]:
    if height < crop or width < crop:
        raise ValueError(f"crop={crop} is larger than the {width}x{height} frames")
    top = int(torch.randint(height - crop + 1, ()))
    left = int(torch.randint(width - crop + 1, ()))
    return top, left


def _augment(*clips: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Apply one random flip/rotation to every frame of every clip [T, C, H, W]."""
    flip_h, flip_v = torch.randint(2, (2,)).tolist()
    quarter_turns = int(torch.randint(4, ()))
    out = []
    for clip in clips:
        if flip_h:
            clip = clip.flip(-1)
        if flip_v:
            clip = clip.flip(-2)
        out.append(torch.rot90(clip, quarter_turns, dims=(-2, -1)).contiguous())
    return tuple(out)


def _to_float(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 frames [T, H, W, 3] (numpy) or [T, 3, H, W] (torch) → float32 [T, 3, H, W] in [0, 1]."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    return frames.float() / 255.0


class VideoWindowDataset(Dataset):
    """Frame windows from videos on disk; one item per frame of every video.

    Takes the videos (from :func:`find_videos` or :func:`paired_videos`),
    ``window`` (odd), ``crop`` (side of the square random crop; ``None``
    keeps whole frames) and ``augment`` (random flips and rotations).
    Item ``k`` is ``(blur, sharp)``, each [window, 3, crop, crop] float32.

    ``degrade`` (a :class:`~.degrade.FootageSettings`) gives the blurry frames of each item sensor
    noise and a 4:2:0 codec round trip (:mod:`.capture`), drawn from a seed taken from torch's
    generator; frames are first cut to an even size. The sharp frames stay clean.
    """

    def __init__(self, videos: Sequence[VideoPairs], *, window: int = 5, crop: int | None = 256, augment: bool = True,
                 degrade: FootageSettings | None = None) -> None:
        _check_window(window)
        if crop is not None and crop < 1:
            raise ValueError(f"crop must be a positive size or None, got {crop}")
        if not videos:
            raise ValueError("no videos given")
        self.videos = list(videos)
        self.window = window
        self.crop = crop
        self.augment = augment
        self.degrade = degrade
        self._starts = np.cumsum([0] + [len(v.blur) for v in self.videos]).tolist()

    @classmethod
    def from_folder(cls, root: Path, split: str | None = None, **options) -> VideoWindowDataset:
        """The dataset of ``<root>/<split>`` in any of :data:`LAYOUTS` (options as for the constructor)."""
        return cls(find_videos(root, split), **options)

    def __len__(self) -> int:
        return self._starts[-1]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} windows")
        video_index = bisect.bisect_right(self._starts, index) - 1
        video = self.videos[video_index]
        frames = window_indices(index - self._starts[video_index], self.window, len(video.blur))
        blur = np.stack([read_rgb(video.blur[i]) for i in frames])
        sharp = np.stack([read_rgb(video.sharp[i]) for i in frames])
        if blur.shape != sharp.shape:
            raise ValueError(f"video {video.name!r}: blurry frames are {blur.shape[1:3]} but sharp frames are {sharp.shape[1:3]}")
        if self.crop is not None:
            top, left = _random_crop_box(blur.shape[1], blur.shape[2], self.crop)
            box = (slice(None), slice(top, top + self.crop), slice(left, left + self.crop))
            blur, sharp = blur[box], sharp[box]
        blur_t, sharp_t = _to_float(blur), _to_float(sharp)
        if self.degrade is not None:
            blur_t, sharp_t = even_size(blur_t, sharp_t)
            rng = np.random.default_rng(int(torch.randint(2**62, ())))
            blur_t = degrade_blurry_frames(blur_t, rng, self.degrade)[0]
        if self.augment:
            blur_t, sharp_t = _augment(blur_t, sharp_t)
        return blur_t, sharp_t


class FlowPairDataset(Dataset):
    """A fixed set of frame pairs with ground-truth flow, for pretraining the flow network.

    Pair ``k`` comes from :func:`~vsarvo.training.data.procedural.make_flow_pair`
    with ``numpy.random.default_rng([seed, k])``. Items are
    ``(frame0 [3, H, W], frame1 [3, H, W], flow [2, H, W], valid [H, W] bool)``,
    flow from frame 0 to frame 1 (warping frame 1 by it gives frame 0 where
    valid). Not augmented: flips and rotations would have to transform the
    flow vectors too, and random scenes already move in every direction.
    """

    def __init__(
        self, *, pairs: int, size: tuple[int, int] = (256, 256), settings: ClipSettings = FLOW_PAIR_SETTINGS,
        split: Split = "train", seed: int = 0,
    ) -> None:
        if pairs < 1:
            raise ValueError(f"pairs must be >= 1, got {pairs}")
        items = [make_flow_pair(np.random.default_rng([seed, k]), size, settings, split=split) for k in range(pairs)]
        self._frames = (torch.stack([torch.stack(item[:2]) for item in items]) * 255.0).round().to(torch.uint8)
        self._flow = torch.stack([item[2] for item in items])
        self._valid = torch.stack([item[3] for item in items])

    def __len__(self) -> int:
        return self._frames.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        frames = self._frames[index].float() / 255.0
        return frames[0], frames[1], self._flow[index], self._valid[index]
