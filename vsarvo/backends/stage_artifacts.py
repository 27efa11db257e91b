"""The stage's compiled artefacts per frame size, shared by the backends that run exported graphs (ort,
trt): the stage ONNX for a size (exported once into the on-disk cache, see vsarvo.artifacts), and what
the backend makes from it (an onnxruntime session, a TensorRT engine runner), made once per size.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable, Generic, Iterator, TypeVar

from vsarvo.artifacts import cache_root
from vsarvo.model import ARVo

__all__ = ["StageArtifacts"]

T = TypeVar("T")


class StageArtifacts(Generic[T]):
    """``get(height, width)``: the backend's object for frames of that size, made on first use by
    ``make(onnx_path, height, width)`` from the stage graph at ``precision`` with the tiling baked in.

    The cache folder is resolved once, here (``cache_dir``, else $VSARVO_CACHE, else the user cache
    folder, else a temporary one). Thread-safe: concurrent first frames of a size make it once.
    """

    def __init__(
        self,
        model: ARVo,
        *,
        precision: str,
        tile: int | None,
        tile_overlap: int | None,
        cache_dir: str | os.PathLike[str] | None,
        make: Callable[[Path, int, int], T],
    ) -> None:
        self.model = model
        self.precision = precision
        self.tile = tile
        self.tile_overlap = tile_overlap
        self.root = cache_root(cache_dir)
        self._make = make
        self._made: dict[tuple[int, int], T] = {}
        self._lock = threading.Lock()

    def onnx(self, height: int, width: int) -> Path:
        """The stage ONNX for ``height`` x ``width`` frames, exported first if it is not in the cache."""
        from vsarvo.export.onnx_export import cached_onnx

        return cached_onnx(
            self.model, "stage", height=height, width=width, precision=self.precision, tile=self.tile,
            tile_overlap=self.tile_overlap, folder=self.root,
        )

    def get(self, height: int, width: int) -> T:
        key = (height, width)
        with self._lock:
            if key not in self._made:
                self._made[key] = self._make(self.onnx(height, width), height, width)
            return self._made[key]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        """The frame sizes made so far, as (height, width)."""
        with self._lock:
            return iter(list(self._made))
