"""Training clips pre-rendered into compact uint8 shards, and the bank that serves batches from them.

``python -m vsarvo.training.shards --out shards/ --clips 512 --workers 15`` renders procedural clips
(clip ``i`` from the generator seeded ``(seed, i)``, as ``--render-workers`` does) and writes them as
``shard_00000.npz``, ``shard_00001.npz``, ... : NumPy archives holding ``blur`` and ``sharp``, uint8
[clips, frames, 3, size, size], each written through a temporary name so a reader never sees half a
shard. The CPU renders; the GPU only reads. ``python -m vsarvo.training.shards footage ...`` writes
zip-compressed shards of the same layout from the photo footage pipeline instead
(:mod:`vsarvo.training.footage_shards`), small enough to carry to a machine without ffmpeg or photos.

:class:`ShardBank` holds every shard of a folder on the training device as one uint8 tensor and cuts a
batch (window, crop, one of the 8 flips/rotations per clip) with a single gather there, so a GPU step
never waits for the host. ``refresh()`` takes in shards written since, so training can start while a
renderer is still filling the folder. :class:`MixedShardBank` draws each sample of a batch from one
of two banks (footage and procedural) at a given share and counts what it drew.
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from vsarvo.atomic import atomic_path

from .data.rendered import TRAIN_BLUR, _render

__all__ = ["SHARD_GLOB", "to_uint8", "encode_shard", "write_shard", "read_shard", "write_shards", "ShardBank",
           "MixedShardBank", "with_footage", "main"]

SHARD_GLOB = "shard_*.npz"


def to_uint8(clips: torch.Tensor) -> np.ndarray:
    """Float frames in [0, 1] -> uint8, rounded as the metrics quantise."""
    return (clips.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def encode_shard(blur: np.ndarray, sharp: np.ndarray, compress: bool = False) -> bytes:
    """The bytes of one shard file (``compress``: zip-deflated, about half the size of the raw pixels)."""
    if blur.dtype != np.uint8 or sharp.dtype != np.uint8 or blur.shape != sharp.shape or blur.ndim != 5:
        raise ValueError(f"a shard holds uint8 [clips, frames, 3, H, W] pairs, got {blur.dtype} {blur.shape} "
                         f"and {sharp.dtype} {sharp.shape}")
    buffer = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buffer, blur=blur, sharp=sharp)
    return buffer.getvalue()


def write_shard(path: Path, blur: np.ndarray, sharp: np.ndarray, compress: bool = False) -> None:
    """One shard: ``blur`` and ``sharp`` uint8 [clips, frames, 3, H, W], through a temporary name."""
    data = encode_shard(blur, sharp, compress)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


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


class MixedShardBank:
    """Batches of two banks: each sample comes from ``first`` with probability ``share``, else ``second``.

    Both banks must cut the same window and crop. ``drawn`` counts the samples served from each bank;
    a batch is fully determined by its seed and the shards loaded.
    """

    def __init__(self, first: ShardBank, second: ShardBank, share: float) -> None:
        if not 0 <= share <= 1:
            raise ValueError(f"the share of the first bank must lie in [0, 1], got {share}")
        if (first.window, first.crop) != (second.window, second.crop):
            raise ValueError(f"the banks cut different windows/crops: {first.window}/{first.crop} and "
                             f"{second.window}/{second.crop}")
        self.first, self.second, self.share = first, second, share
        self.window, self.crop, self.device = first.window, first.crop, first.device
        self.drawn = [0, 0]

    @property
    def clips(self) -> int:
        return self.first.clips + self.second.clips

    def __len__(self) -> int:
        return len(self.first) + len(self.second)

    def refresh(self) -> int:
        return self.first.refresh() + self.second.refresh()

    def sample_batch(self, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` windows, each from the first bank with probability ``share`` (drawn from ``seed``)."""
        g = torch.Generator().manual_seed(seed)
        from_first = torch.rand(size, generator=g) < self.share
        shape = (size, self.window, 3, self.crop, self.crop)
        blur = torch.empty(shape, device=self.device)
        sharp = torch.empty(shape, device=self.device)
        for k, (bank, mask) in enumerate(((self.first, from_first), (self.second, ~from_first))):
            count = int(mask.sum())
            if count:
                sub_seed = int(torch.randint(2**31 - 1, (), generator=g))
                rows = mask.nonzero().squeeze(1).to(self.device)
                blur[rows], sharp[rows] = bank.sample_batch(count, sub_seed)
            self.drawn[k] += count
        return blur, sharp


def with_footage(bank: ShardBank, folder: str | Path, share: float) -> MixedShardBank:
    """``bank`` with a ``share`` of each batch drawn from the footage shards in ``folder`` instead (the same
    window, crop and device): how every GPU call mixes the carried footage into its procedural shards."""
    footage = ShardBank(folder, window=bank.window, crop=bank.crop, device=bank.device)
    return MixedShardBank(footage, bank, share)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["footage"]:
        from .footage_shards import main as footage_main

        return footage_main(argv[1:])
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
