"""Frame image files: listing a folder in frame order, reading RGB, writing safely.

Frame files are ordered by *natural* name order (``frame_9`` before
``frame_10``), which equals plain name order for the zero-padded names the
datasets use and copes with unpadded ones too.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from vsarvo.atomic import atomic_path

__all__ = ["IMAGE_SUFFIXES", "natural_key", "list_frames", "read_rgb", "write_png", "write_npy"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


def natural_key(name: str) -> tuple:
    """Sort key that orders digit runs by value: ``a9.png`` < ``a10.png``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def list_frames(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, in frame order (hidden files skipped)."""
    files = [p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    return sorted(files, key=lambda p: natural_key(p.name))


def read_rgb(path: Path) -> np.ndarray:
    """An image file as an RGB uint8 array [H, W, 3]."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _atomic_write(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place."""
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        write(file)


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an 8-bit RGB [H, W, 3] or grey [H, W] array as PNG (temp name, then rename)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"write_png takes uint8 arrays, got {image.dtype}")
    _atomic_write(path, lambda file: Image.fromarray(image).save(file, format="PNG", compress_level=1))


def write_npy(path: Path, array: np.ndarray) -> None:
    """Write an array as ``.npy`` (temp name, then rename)."""
    _atomic_write(path, lambda file: np.save(file, np.asarray(array), allow_pickle=False))
