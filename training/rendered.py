"""Procedural training clips rendered once, cached on disk, served as augmented windows."""
from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from vsarvo.atomic import atomic_path

from .procedural import ClipSettings, make_clip

__all__ = ["TRAIN_BLUR", "RenderedClips"]

# Blur the shipped weights were trained on: a little wider than the 24-30 dB test range on both sides,
# so the model sees both near-sharp and heavily smeared frames.
TRAIN_BLUR = ClipSettings(speed=(1.5, 8.0), layer_speed=(0.0, 9.0), exposure=(0.4, 1.0), sub_frames=16)


class RenderedClips(torch.utils.data.Dataset):
    """``clips`` procedural clips of ``frames`` x ``size``^2, yielding (blur [T,3,c,c], sharp [T,3,c,c]).

    Each item picks a clip (index modulo ``clips``), a random window of ``window`` consecutive frames,
    a random ``crop`` (None = whole frame) and one of the 8 flips/rotations applied to every frame.
    Randomness comes from torch's global generator, so a caller that seeds it gets the same items.
    Rendered clips are cached as ``cache`` (a .pt of plain tensors) when given.

    ``workers`` = 0 renders every clip in turn from one generator seeded with ``seed`` (the stream the
    shipped weights were trained on). ``workers`` >= 1 renders clip ``i`` from its own generator seeded
    with ``(seed, i)``, in that many processes: the clips are then the same for any worker count, and
    a GPU host's idle cores render a large set in seconds rather than minutes.
    """

    def __init__(self, *, clips: int, frames: int, size: int, window: int, crop: int | None,
                 split: str = "train", seed: int = 0, augment: bool = True,
                 settings: ClipSettings = TRAIN_BLUR, cache: str | os.PathLike[str] | None = None,
                 workers: int = 0) -> None:
        if frames < window:
            raise ValueError(f"frames ({frames}) must be >= window ({window})")
        self.window, self.crop, self.augment = window, crop, augment
        path = Path(cache) if cache else None
        if path is not None and path.is_file():
            data = torch.load(path, weights_only=True)
            self.blur, self.sharp = data["blur"], data["sharp"]
        else:
            if workers > 0:
                blur, sharp = _render_per_clip_seeds(clips, frames, size, settings, split, seed, workers)
            else:
                rng = np.random.default_rng(seed)
                blur, sharp = [], []
                for i in range(clips):
                    b, s, _ = make_clip(rng, frames, (size, size), settings, split=split)
                    blur.append(b)
                    sharp.append(s)
                    _progress(split, i + 1, clips)
                print(file=sys.stderr)
            self.blur, self.sharp = torch.stack(blur), torch.stack(sharp)
            if path is not None:
                with atomic_path(path) as tmp:
                    torch.save({"blur": self.blur, "sharp": self.sharp}, tmp)

    def __len__(self) -> int:
        return self.blur.shape[0] * (self.blur.shape[1] - self.window + 1)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        n_clips, n_frames = self.blur.shape[:2]
        clip = index % n_clips
        start = int(torch.randint(n_frames - self.window + 1, ()).item()) if self.augment else (index // n_clips) % (n_frames - self.window + 1)
        blur = self.blur[clip, start:start + self.window]
        sharp = self.sharp[clip, start:start + self.window]
        if self.crop is not None and self.crop < blur.shape[-1]:
            h, w = blur.shape[-2:]
            y = int(torch.randint(h - self.crop + 1, ()).item())
            x = int(torch.randint(w - self.crop + 1, ()).item())
            blur = blur[..., y:y + self.crop, x:x + self.crop]
            sharp = sharp[..., y:y + self.crop, x:x + self.crop]
        if self.augment:
            k = int(torch.randint(4, ()).item())
            flip = bool(torch.randint(2, ()).item())
            blur, sharp = (torch.rot90(t, k, dims=(-2, -1)) for t in (blur, sharp))
            if flip:
                blur, sharp = blur.flip(-1), sharp.flip(-1)
        return blur.contiguous(), sharp.contiguous()


def _progress(split: str, done: int, total: int) -> None:
    print(f"\rrendering {split} clips {done}/{total}", end="", file=sys.stderr, flush=True)


def _render_one(args: tuple[int, int, int, ClipSettings, str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    index, frames, size, settings, split, seed = args
    # One thread per clip: the processes are the parallelism, and any worker count gives the same bits.
    torch.set_num_threads(1)
    blur, sharp, _ = make_clip(np.random.default_rng((seed, index)), frames, (size, size), settings, split=split)
    return blur, sharp


def _render_per_clip_seeds(clips: int, frames: int, size: int, settings: ClipSettings, split: str,
                           seed: int, workers: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Clip ``i`` from the generator seeded ``(seed, i)``; ``workers`` > 1 renders in spawned processes."""
    jobs = [(i, frames, size, settings, split, seed) for i in range(clips)]
    if workers == 1:
        results = []
        threads = torch.get_num_threads()
        try:
            for i, job in enumerate(jobs):
                results.append(_render_one(job))
                _progress(split, i + 1, clips)
        finally:
            torch.set_num_threads(threads)
    else:
        # spawn, not fork: a forked child of a process that has run torch can deadlock in its thread pools.
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            results = []
            for i, result in enumerate(pool.map(_render_one, jobs, chunksize=max(1, clips // (4 * workers)))):
                results.append(result)
                _progress(split, i + 1, clips)
    print(file=sys.stderr)
    return [b for b, _ in results], [s for _, s in results]
