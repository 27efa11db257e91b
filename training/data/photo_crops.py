"""A compact set of JPEG crops of the training photos, small enough to carry to a GPU machine.

A GPU call carries a bounded amount of files, far less than the full photos; square crops (each a
random region downscaled by 1-2.5x, which also removes the originals' own JPEG artefacts) taken in
turn from every photo until the size budget is spent keep every source represented. ``crops.json``
beside them records which photo and region each crop came from.
"""
from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from vsarvo.atomic import write_bytes_atomic, write_text_atomic

__all__ = ["write_crops", "CROPS_MANIFEST"]

CROPS_MANIFEST = "crops.json"
_MAX_DOWNSCALE = 2.5


def _encode_crop(image: Image.Image, rng: np.random.Generator, size: int, quality: int) -> tuple[bytes, list[int]]:
    short = min(image.size)
    top_scale = min(_MAX_DOWNSCALE, short / size)
    side = int(round(size * math.exp(rng.uniform(0.0, math.log(top_scale)))))
    left = int(rng.integers(0, image.width - side + 1))
    top = int(rng.integers(0, image.height - side + 1))
    box = [left, top, left + side, top + side]
    crop = image.crop(box).resize((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    crop.save(buffer, format="JPEG", quality=quality, subsampling=0)
    return buffer.getvalue(), box


def write_crops(photos: Sequence[str | Path], out: str | Path, *, max_bytes: int, size: int = 640,
                quality: int = 92, seed: int = 0) -> list[Path]:
    """Write ``size``-pixel JPEG crops of ``photos`` into ``out`` until ``max_bytes`` would be exceeded.

    Crops are taken round-robin, one per photo per round, so each photo contributes about equally;
    photos smaller than ``size`` are skipped. The same inputs and seed give the same files.
    """
    if not photos:
        raise ValueError("no photos to crop: install them first ('make photos')")
    if size < 16 or not 1 <= quality <= 100 or max_bytes <= 0:
        raise ValueError(f"size must be >= 16, quality in 1..100 and max_bytes > 0; got {size}, {quality}, {max_bytes}")
    rng = np.random.default_rng(seed)
    images = [Image.open(p).convert("RGB") for p in photos]
    usable = [(Path(p), im) for p, im in zip(photos, images) if min(im.size) >= size]
    if not usable:
        raise ValueError(f"every photo is smaller than the crop size {size}")
    out = Path(out)
    written: list[Path] = []
    records: list[dict] = []
    total = 0
    while True:
        for path, image in usable:
            data, box = _encode_crop(image, rng, size, quality)
            if total + len(data) > max_bytes:
                write_text_atomic(out / CROPS_MANIFEST, json.dumps({"crops": records}, indent=1) + "\n")
                return written
            name = f"{len(written):05d}.jpg"
            written.append(write_bytes_atomic(out / name, data))
            records.append({"file": name, "source": str(path), "box": box, "bytes": len(data)})
            total += len(data)
