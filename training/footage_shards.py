"""Footage clips of the train photos pre-rendered into compressed uint8 shards under a size budget.

``python -m vsarvo.training.shards footage --photos data/photos --out carry/footage_shards --max-mb 22``
renders clips with the realistic footage pipeline (:func:`~.data.footage.render_clip`: hand-held
camera paths, moving objects, shutter duty, sensor noise, x264/x265 yuv420p compression) from the
*train* split of the installed photos only, clip ``i`` from the generator seeded ``(seed, i)``, and
writes them as zip-compressed ``shard_NNNNN.npz`` files that :class:`~.shards.ShardBank` reads. It
stops at ``--clips`` or when the next clip would take the folder's shards past ``--max-mb``, whichever
comes first, and writes ``footage.json`` (settings, clip count, bytes, each clip's record).

The GPU machine has neither ffmpeg nor the photos; a folder written here travels with the device
call (``carry``), so its size counts against the call's 64 MiB together with the working tree.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vsarvo.atomic import atomic_path, write_text_atomic

from .data.degrade import FootageSettings
from .data.footage import _render_job, usable_photos
from .data.photos import list_photos
from .shards import SHARD_GLOB, encode_shard

__all__ = ["MANIFEST", "write_footage_shards", "main"]

MANIFEST = "footage.json"


def _fitting_shard(blur: list[np.ndarray], sharp: list[np.ndarray], room: int) -> tuple[bytes, int]:
    """The compressed shard of the most leading clips whose bytes fit in ``room``, and how many clips."""
    count = len(blur)
    while count:
        data = encode_shard(np.stack(blur[:count]), np.stack(sharp[:count]), compress=True)
        if len(data) <= room:
            return data, count
        # Shrink in proportion to the overshoot (at least one clip) rather than one clip at a time.
        count = min(count - 1, int(count * room / len(data)))
    return b"", 0


def write_footage_shards(photos_root: str | Path, out: str | Path, *, max_bytes: int, clips: int = 1000,
                         size: int = 128, frames: int = 5, seed: int = 0, workers: int = 1,
                         per_shard: int = 16) -> dict[str, Any]:
    """Renders footage clips into ``out`` within ``max_bytes`` (see the module's docstring); returns the manifest."""
    for name, value, low in (("clips", clips, 1), ("frames", frames, 2), ("size", size, 32),
                             ("per_shard", per_shard, 1), ("workers", workers, 1), ("max_bytes", max_bytes, 1)):
        if value < low:
            raise ValueError(f"--{name.replace('_', '-')} {value} is out of range: give at least {low}")
    out = Path(out)
    if out.is_dir() and any(out.glob(SHARD_GLOB)):
        raise ValueError(f"{out} already holds shards: remove the folder first (the budget counts a fresh folder)")
    settings = FootageSettings(frames=frames, size=(size, size))
    photos = usable_photos(list_photos(photos_root, "train"), settings.size)
    if not photos:
        raise ValueError(f"no train photo in {photos_root} is at least {2 * size}px on its shorter side: "
                         "install them with `make photos` or give a smaller --size")
    out.mkdir(parents=True, exist_ok=True)
    written, records, total = 0, [], 0
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        for first in range(0, clips, per_shard):
            jobs = [(photos, i, seed, settings) for i in range(first, min(first + per_shard, clips))]
            rendered = list(pool.map(_render_job, jobs))
            data, count = _fitting_shard([b.numpy() for b, _, _ in rendered], [s.numpy() for _, s, _ in rendered],
                                         max_bytes - total)
            if count:
                with atomic_path(out / f"shard_{first // per_shard:05d}.npz") as tmp:
                    Path(tmp).write_bytes(data)
                written, total = written + count, total + len(data)
                records += [r for _, _, r in rendered[:count]]
            print(f"footage shards: {written} clips, {total / 2**20:.1f} of {max_bytes / 2**20:.1f} MiB",
                  file=sys.stderr, flush=True)
            if count < len(jobs):
                break
    if not written:
        raise ValueError(f"not one clip fits in {max_bytes} bytes: give a larger --max-mb or a smaller --size")
    manifest = {"clips": written, "bytes": total, "seed": seed, "photos": len(photos), "split": "train",
                "settings": dataclasses.asdict(settings), "records": records}
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1))
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vsarvo.training.shards footage", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", default="data/photos", help="the installed photos (`make photos`)")
    p.add_argument("--out", required=True, help="folder the shards are written to (must hold none yet)")
    p.add_argument("--max-mb", type=float, default=22.0, help="size budget of the shard files, MiB")
    p.add_argument("--clips", type=int, default=1000, help="most clips to render")
    p.add_argument("--size", type=int, default=128, help="frame edge in pixels (at least the training crop)")
    p.add_argument("--frames", type=int, default=5, help="frames per clip (at least the model's window)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="rendering processes")
    p.add_argument("--per-shard", type=int, default=16, help="clips per shard file")
    args = p.parse_args(argv)
    try:
        manifest = write_footage_shards(args.photos, args.out, max_bytes=int(args.max_mb * 2**20), clips=args.clips,
                                        size=args.size, frames=args.frames, seed=args.seed, workers=args.workers,
                                        per_shard=args.per_shard)
    except (ValueError, FileNotFoundError) as exc:
        print(f"footage shards: {exc}", file=sys.stderr)
        return 2
    print(f"footage shards: {manifest['clips']} clips from {manifest['photos']} train photos, "
          f"{manifest['bytes'] / 2**20:.2f} MiB in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
