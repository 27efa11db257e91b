"""Procedural training clips rendered once, cached on disk, served as augmented windows."""
from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from vsarvo.atomic import atomic_path

from .capture import degrade_blurry_frames, even_size
from .degrade import FootageSettings
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

    ``degrade`` (a :class:`~.degrade.FootageSettings`) adds sensor noise and a 4:2:0 codec round trip
    to the blurry frames of clip ``i``, drawn from the generator ``(seed, i, 1)`` (:mod:`.capture`); the
    sharp frames stay clean.
    """

    def __init__(self, *, clips: int, frames: int, size: int, window: int, crop: int | None,
                 split: str = "train", seed: int = 0, augment: bool = True,
                 settings: ClipSettings = TRAIN_BLUR, cache: str | os.PathLike[str] | None = None,
                 workers: int = 0, degrade: FootageSettings | None = None) -> None:
        if frames < window:
            raise ValueError(f"frames ({frames}) must be >= window ({window})")
        self.window, self.crop, self.augment = window, crop, augment
        path = Path(cache) if cache else None
        if path is not None and path.is_file():
            data = torch.load(path, weights_only=True)
            self.blur, self.sharp = data["blur"], data["sharp"]
        else:
            blur, sharp = [], []
            for i, (b, s) in enumerate(_render(clips, frames, size, settings, split, seed, workers)):
                if degrade is not None:
                    b, s = even_size(b, s)
                    b = degrade_blurry_frames(b, np.random.default_rng((seed, i, 1)), degrade)[0]
                blur.append(b)
                sharp.append(s)
                print(f"\rrendering {split} clips {i + 1}/{clips}", end="", file=sys.stderr, flush=True)
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


def _render_one(args: tuple[int, int, int, ClipSettings, str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    index, frames, size, settings, split, seed = args
    # One thread per clip: the processes are the parallelism, and any worker count gives the same bits.
    torch.set_num_threads(1)
    blur, sharp, _ = make_clip(np.random.default_rng((seed, index)), frames, (size, size), settings, split=split)
    return blur, sharp


def _render(clips: int, frames: int, size: int, settings: ClipSettings, split: str, seed: int,
            workers: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(blur, sharp) of each clip in order: from one generator (``workers`` = 0), else clip ``i`` from
    the generator seeded ``(seed, i)``, in this process (1) or in ``workers`` spawned processes."""
    if workers == 0:
        rng = np.random.default_rng(seed)
        for _ in range(clips):
            blur, sharp, _ = make_clip(rng, frames, (size, size), settings, split=split)
            yield blur, sharp
        return
    jobs = [(i, frames, size, settings, split, seed) for i in range(clips)]
    if workers == 1:
        threads = torch.get_num_threads()
        try:
            yield from map(_render_one, jobs)
        finally:
            torch.set_num_threads(threads)
        return
    # spawn, not fork: a forked child of a process that has run torch can deadlock in its thread pools.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        # One clip per task: clips arrive in order as they are done, so a reader of the first ones
        # (the shard writer feeding a GPU run) does not wait for whole chunks.
        yield from pool.map(_render_one, jobs, chunksize=1)
