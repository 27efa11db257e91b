"""The stage's compiled artefacts per frame size, shared by the backends that run exported graphs (ort,
trt): the stage ONNX for a size (exported once into the on-disk cache, see vsarvo.artifacts), and what
the backend makes from it (an onnxruntime session, a TensorRT engine runner), made once per size.

A cached graph that the backend cannot load (a damaged file) is exported again once, atomically; only
when the rebuilt one fails too is it an error (CacheError).
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Callable, Generic, Iterator, TypeVar

from vsarvo.artifacts import cache_root
from vsarvo.model import ARVo

from .errors import CACHE_FIX, BackendError, CacheError

__all__ = ["StageArtifacts"]

log = logging.getLogger("vsarvo.export")

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
        self.root = cache_root(cache_dir)  # CacheError when no folder can be written
        self._make = make
        self._made: dict[tuple[int, int], T] = {}
        self._lock = threading.Lock()

    def onnx(self, height: int, width: int, *, rebuild: bool = False) -> Path:
        """The stage ONNX for ``height`` x ``width`` frames, exported first if it is not in the cache
        (``rebuild``: exported again over the cached one)."""
        from vsarvo.export.onnx_export import cached_onnx

        return cached_onnx(
            self.model, "stage", height=height, width=width, precision=self.precision, tile=self.tile,
            tile_overlap=self.tile_overlap, folder=self.root, rebuild=rebuild,
        )

    def _onnx_path(self, height: int, width: int) -> Path:
        from vsarvo.export.onnx_export import cached_onnx_path

        return cached_onnx_path(
            self.model, "stage", height=height, width=width, precision=self.precision, tile=self.tile,
            tile_overlap=self.tile_overlap, folder=self.root,
        )

    def _make_once_rebuilt(self, height: int, width: int) -> T:
        """``make`` on the cached graph; a cached graph that fails to load is exported again, once."""
        # The path costs a digest of every weight: work it out once when the graph is cached.
        path = self._onnx_path(height, width)
        was_cached = path.is_file()
        if not was_cached:
            path = self.onnx(height, width)
        try:
            return self._make(path, height, width)
        except (CacheError, BackendError, ImportError):
            raise
        except Exception as exc:  # the runtime's own load errors (onnxruntime, TensorRT)
            if not was_cached:
                raise
            log.warning("the cached graph %s could not be loaded (%s: %s); exporting it again",
                        path, type(exc).__name__, exc)
        path = self.onnx(height, width, rebuild=True)
        try:
            return self._make(path, height, width)
        except (CacheError, BackendError, ImportError):
            raise
        except Exception as exc:
            raise CacheError(
                f"the cached graph {path} could not be loaded, nor after it was exported again "
                f"({type(exc).__name__}: {exc}); clear it with 'arvo cache clear --cache {self.root}', or "
                f"{CACHE_FIX}"
            ) from exc

    def get(self, height: int, width: int) -> T:
        key = (height, width)
        with self._lock:
            if key not in self._made:
                self._made[key] = self._make_once_rebuilt(height, width)
            return self._made[key]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        """The frame sizes made so far, as (height, width)."""
        with self._lock:
            return iter(list(self._made))
