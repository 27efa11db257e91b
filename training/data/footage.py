"""Training clips rendered from real photographs with the footage degradation, served as augmented windows.

:class:`FootageClips` renders ``clips`` clips with :func:`~.degrade.render_footage_clip` from the
*train* split of the installed photos (:func:`~.photos.list_photos`; the held-out photos are for
``arvo eval --set realistic`` only), with foreground objects cut from another train photo. Photos
whose shorter side is under twice the frame edge are skipped: a clip of them would be mostly
mirrored padding. Clip ``i`` is drawn from its own generator seeded ``(seed, i)``, so the clips are
the same in one process or in any number of worker processes (ffmpeg runs in a subprocess per
clip, so processes are what makes rendering faster). Decoded photos are kept in a small per-process
cache. Rendered clips are stored as uint8 and may be cached on disk.

:class:`MixedClips` serves a share of its items from one dataset and the rest from another: the
footage clips with the procedural clips as a supplement.
"""
from __future__ import annotations

import functools
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vsarvo.atomic import atomic_path

from .degrade import FootageSettings, render_footage_clip

__all__ = ["usable_photos", "render_clip", "FootageClips", "MixedClips"]


@functools.lru_cache(maxsize=4)
def _decoded(path: str) -> Image.Image:
    """A photo decoded once per process (the largest are 20 MP: decoding costs more than a clip's crop)."""
    with Image.open(path) as image:
        return image.convert("RGB")


def _to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """Frames on 8-bit levels in [0, 1] stored exactly as uint8 (a quarter of the memory)."""
    return (frames * 255).round().to(torch.uint8)


def usable_photos(photos: Sequence[str | os.PathLike[str]], size: tuple[int, int]) -> list[Path]:
    """The photos whose shorter side is at least twice the longer frame edge, in the order given."""
    usable = []
    for photo in photos:
        with Image.open(photo) as image:  # reads the header only
            if min(image.size) >= 2 * max(size):
                usable.append(Path(photo))
    return usable


def render_clip(photos: Sequence[Path], index: int, seed: int, settings: FootageSettings) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Clip ``index``: (blurry, sharp) uint8 [T, 3, H, W] and its record, from the generator ``(seed, index)``.

    The background photo and the photo the objects are cut from are drawn from ``photos`` (two
    different ones when there are two or more).
    """
    rng = np.random.default_rng((seed, index))
    pick = int(rng.integers(len(photos)))
    other = (pick + 1 + int(rng.integers(len(photos) - 1))) % len(photos) if len(photos) > 1 else pick
    clip = render_footage_clip(_decoded(str(photos[pick])), seed=int(rng.integers(2**62)), settings=settings,
                               foreground=_decoded(str(photos[other])))
    record = {**clip.record.to_dict(), "photo": _photo_name(photos[pick]), "foreground": _photo_name(photos[other])}
    return _to_uint8(clip.blurry), _to_uint8(clip.sharp), record


def _photo_name(path: Path) -> str:
    """The photo's name as the manifest gives it: ``<package>/<file>``."""
    return f"{path.parent.name}/{path.name}"


def _render_job(args: tuple[Sequence[Path], int, int, FootageSettings]) -> tuple[torch.Tensor, torch.Tensor, dict]:
    # One thread per clip: the processes are the parallelism, and any worker count gives the same bits.
    torch.set_num_threads(1)
    return render_clip(*args)


def _render_all(photos: list[Path], clips: int, seed: int, settings: FootageSettings, workers: int) -> list:
    jobs = [(photos, i, seed, settings) for i in range(clips)]
    if workers <= 1:
        threads = torch.get_num_threads()
        try:
            results = []
            for i, job in enumerate(jobs):
                results.append(_render_job(job))
                print(f"\rrendering footage clips {i + 1}/{clips}", end="", file=sys.stderr, flush=True)
            print(file=sys.stderr)
            return results
        finally:
            torch.set_num_threads(threads)
    # spawn, not fork: a forked child of a process that has run torch can deadlock in its thread pools.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        return list(pool.map(_render_job, jobs, chunksize=max(1, clips // (4 * workers))))


class FootageClips(torch.utils.data.Dataset):
    """``clips`` footage clips of train photos, yielding (blurry [window,3,c,c], sharp [window,3,c,c]) float.

    Each item picks a clip (index modulo ``clips``), a window of ``window`` consecutive frames, a
    ``crop`` (None = whole frame) and, with ``augment``, one of the 8 flips/rotations for every frame;
    randomness comes from torch's global generator, so a caller that seeds it gets the same items.
    """

    def __init__(self, photos: Sequence[str | os.PathLike[str]], *, clips: int, window: int, crop: int | None,
                 settings: FootageSettings = FootageSettings(), seed: int = 0, augment: bool = True,
                 workers: int = 0, cache: str | os.PathLike[str] | None = None) -> None:
        if settings.frames < window:
            raise ValueError(f"footage clips of {settings.frames} frames cannot hold a window of {window}")
        self.window, self.crop, self.augment = window, crop, augment
        path = Path(cache) if cache else None
        if path is not None and path.is_file():
            data = torch.load(path, weights_only=False)
            self.blur, self.sharp, self.records = data["blur"], data["sharp"], data["records"]
            return
        usable = usable_photos(photos, settings.size)
        if not usable:
            raise ValueError(f"none of the {len(photos)} photos is at least twice the {settings.size} frame size; "
                             "install the photos with 'make photos' or use a smaller frame size")
        rendered = _render_all(usable, clips, seed, settings, workers)
        self.blur = torch.stack([b for b, _, _ in rendered])
        self.sharp = torch.stack([s for _, s, _ in rendered])
        self.records = [r for _, _, r in rendered]
        if path is not None:
            with atomic_path(path) as tmp:
                torch.save({"blur": self.blur, "sharp": self.sharp, "records": self.records}, tmp)

    def __len__(self) -> int:
        return self.blur.shape[0] * (self.blur.shape[1] - self.window + 1)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        n_clips, n_frames = self.blur.shape[:2]
        clip = index % n_clips
        starts = n_frames - self.window + 1
        start = int(torch.randint(starts, ()).item()) if self.augment else (index // n_clips) % starts
        blur = self.blur[clip, start:start + self.window]
        sharp = self.sharp[clip, start:start + self.window]
        height, width = blur.shape[-2:]
        if self.crop is not None and self.crop < min(height, width):
            y = int(torch.randint(height - self.crop + 1, ()).item())
            x = int(torch.randint(width - self.crop + 1, ()).item())
            blur = blur[..., y:y + self.crop, x:x + self.crop]
            sharp = sharp[..., y:y + self.crop, x:x + self.crop]
        if self.augment:
            turns, flip = int(torch.randint(4, ()).item()), bool(torch.randint(2, ()).item())
            blur, sharp = (torch.rot90(t, turns, dims=(-2, -1)) for t in (blur, sharp))
            if flip:
                blur, sharp = blur.flip(-1), sharp.flip(-1)
        return blur.float().div(255).contiguous(), sharp.float().div(255).contiguous()


class MixedClips(torch.utils.data.Dataset):
    """Items of ``first`` for a ``share`` of indices (spread evenly), of ``second`` for the rest.

    Index ``k`` goes to ``first`` when ``k mod 100 < round(100 * share)``; the item within the chosen
    dataset is ``k // 100`` modulo its length. Random indices (as :func:`~.run_data.fetch_batch`
    draws them) therefore come from ``first`` with probability ``share``.
    """

    _SLOTS = 100

    def __init__(self, first: torch.utils.data.Dataset, second: torch.utils.data.Dataset, share: float) -> None:
        if not 0 <= share <= 1:
            raise ValueError(f"share must lie in [0, 1], got {share}")
        self.first, self.second = first, second
        self.first_slots = round(self._SLOTS * share)

    def __len__(self) -> int:
        return self._SLOTS * max(len(self.first), len(self.second))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        slot, item = index % self._SLOTS, index // self._SLOTS
        source = self.first if slot < self.first_slots else self.second
        return source[item % len(source)]
