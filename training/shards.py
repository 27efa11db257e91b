"""Training clips pre-rendered into compact uint8 shards, and the bank that serves batches from them.

``python -m vsarvo.training.shards --out shards/ --clips 512 --workers 15`` renders procedural clips
(clip ``i`` from the generator seeded ``(seed, i)``, as ``--render-workers`` does) and writes them as
``shard_00000.npz``, ``shard_00001.npz``, ... : uncompressed NumPy archives holding ``blur`` and
``sharp``, uint8 [clips, frames, 3, size, size], each written through a temporary name so a reader
never sees half a shard. The CPU renders; the GPU only reads.

:class:`ShardBank` holds every shard of a folder on the training device as one uint8 tensor and cuts a
batch (window, crop, one of the 8 flips/rotations per clip) with a single gather there, so a GPU step
never waits for the host. ``refresh()`` takes in shards written since, so training can start while a
renderer is still filling the folder.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from vsarvo.atomic import atomic_path

from .data.rendered import TRAIN_BLUR, _render

__all__ = ["SHARD_GLOB", "to_uint8", "write_shard", "read_shard", "write_shards", "ShardBank", "main"]

SHARD_GLOB = "shard_*.npz"


def to_uint8(clips: torch.Tensor) -> np.ndarray:
    """Float frames in [0, 1] -> uint8, rounded as the metrics quantise."""
    return (clips.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def write_shard(path: Path, blur: np.ndarray, sharp: np.ndarray) -> None:
    """One shard: ``blur`` and ``sharp`` uint8 [clips, frames, 3, H, W], through a temporary name."""
    if blur.dtype != np.uint8 or sharp.dtype != np.uint8 or blur.shape != sharp.shape or blur.ndim != 5:
        raise ValueError(f"a shard holds uint8 [clips, frames, 3, H, W] pairs, got {blur.dtype} {blur.shape} "
                         f"and {sharp.dtype} {sharp.shape}")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, blur=blur, sharp=sharp)


def read_shard(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A shard's (blur, sharp) uint8 arrays."""
    with np.load(path, allow_pickle=False) as data:
        return data["blur"], data["sharp"]


def write_shards(out: Path, *, clips: int, frames: int, size: int, seed: int = 0, workers: int = 1,
                 per_shard: int = 16, split: str = "train") -> list[Path]:
    """Renders ``clips`` procedural clips (TRAIN_BLUR) into shards of ``per_shard`` clips under ``out``."""
    for name, value, low in (("clips", clips, 1), ("frames", frames, 1), ("size", size, 64),
                             ("per_shard", per_shard, 1), ("workers", workers, 1)):
        if value < low:
            raise ValueError(f"--{name.replace('_', '-')} {value} is out of range: give at least {low}")
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    blur: list[torch.Tensor] = []
    sharp: list[torch.Tensor] = []
    for i, (b, s) in enumerate(_render(clips, frames, size, TRAIN_BLUR, split, seed, workers)):
        blur.append(b)
        sharp.append(s)
        if len(blur) == per_shard or i == clips - 1:
            path = out / f"shard_{len(written):05d}.npz"
            write_shard(path, to_uint8(torch.stack(blur)), to_uint8(torch.stack(sharp)))
            written.append(path)
            blur, sharp = [], []
            print(f"shards: {i + 1}/{clips} clips written", file=sys.stderr, flush=True)
    return written


class ShardBank:
    """The shards of ``folder`` on ``device``, serving (blur, sharp) float batches [B, window, 3, crop, crop].

    A batch is fully determined by its seed and the shards loaded, like ``fetch_batch``'s.
    """

    def __init__(self, folder: str | Path, *, window: int, crop: int, device: torch.device | str = "cpu",
                 refresh_every: int = 20) -> None:
        self.folder, self.window, self.crop = Path(folder), window, crop
        self.device, self.refresh_every = torch.device(device), refresh_every
        self.loaded: list[str] = []
        self.blur = self.sharp = torch.empty(0, dtype=torch.uint8)
        self.calls = 0
        if not self.refresh():
            raise ValueError(f"no shards ({SHARD_GLOB}) in {self.folder}: write them with "
                             f"`python -m vsarvo.training.shards --out {self.folder}`")

    def refresh(self) -> int:
        """Loads the shards written since the last call; returns how many."""
        new = sorted(p for p in self.folder.glob(SHARD_GLOB) if p.name not in self.loaded)
        if not new:
            return 0
        pairs = [read_shard(p) for p in new]
        blur = torch.cat([torch.from_numpy(b) for b, _ in pairs]).to(self.device)
        sharp = torch.cat([torch.from_numpy(s) for _, s in pairs]).to(self.device)
        _, frames, _, h, w = blur.shape
        if frames < self.window or min(h, w) < self.crop:
            raise ValueError(f"shards in {self.folder} hold {frames} frames of {w}x{h}: too small for "
                             f"windows of {self.window} frames and {self.crop}px crops")
        if len(self.loaded):
            blur, sharp = torch.cat([self.blur, blur]), torch.cat([self.sharp, sharp])
        self.blur, self.sharp = blur, sharp
        self.loaded += [p.name for p in new]
        return len(new)

    @property
    def clips(self) -> int:
        return self.blur.shape[0]

    def __len__(self) -> int:
        return self.clips * (self.blur.shape[1] - self.window + 1)

    def sample_batch(self, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` windows: random clip, start, crop and flip/rotation, drawn from ``seed``."""
        self.calls += 1
        if self.calls % self.refresh_every == 0:
            self.refresh()
        g = torch.Generator().manual_seed(seed)
        _, frames, _, h, w = self.blur.shape
        c, t = self.crop, self.window
        clip = torch.randint(self.clips, (size,), generator=g)
        start = torch.randint(frames - t + 1, (size,), generator=g)
        y = torch.randint(h - c + 1, (size,), generator=g)
        x = torch.randint(w - c + 1, (size,), generator=g)
        flip_y, flip_x, swap = (torch.randint(2, (size,), generator=g).bool() for _ in range(3))
        steps = torch.arange(c)
        rows = y[:, None] + torch.where(flip_y[:, None], c - 1 - steps, steps)
        cols = x[:, None] + torch.where(flip_x[:, None], c - 1 - steps, steps)
        # The 8 flips/rotations: flip rows, flip columns, and (swap) transpose.
        row_grid = torch.where(swap[:, None, None], rows[:, None, :], rows[:, :, None]).expand(size, c, c)
        col_grid = torch.where(swap[:, None, None], cols[:, :, None], cols[:, None, :]).expand(size, c, c)
        index = [t.to(self.device) for t in (clip[:, None, None, None], (start[:, None] + torch.arange(t))[:, :, None, None],
                                             row_grid[:, None], col_grid[:, None])]
        pair = []
        for bank in (self.blur, self.sharp):
            # Advanced indices around the channel slice: the result is [B, T, c, c, 3].
            cut = bank[index[0], index[1], :, index[2], index[3]]
            pair.append(cut.permute(0, 1, 4, 2, 3).float().div_(255).contiguous())
        return pair[0], pair[1]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vsarvo.training.shards", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder the shards are written to")
    p.add_argument("--clips", type=int, default=512)
    p.add_argument("--frames", type=int, default=9, help="frames per clip")
    p.add_argument("--size", type=int, default=160, help="frame edge in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="rendering processes")
    p.add_argument("--per-shard", type=int, default=16, help="clips per shard file")
    args = p.parse_args(argv)
    try:
        write_shards(Path(args.out), clips=args.clips, frames=args.frames, size=args.size, seed=args.seed,
                     workers=args.workers, per_shard=args.per_shard)
    except ValueError as exc:
        print(f"shards: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
