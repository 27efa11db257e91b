"""Stage runners: one interface (StageRunner), one options dataclass per backend (``Backend.Torch``,
``Backend.ORT``, ``Backend.TRT``), and ``create_runner`` to start the one a backend object names.

Importing this package imports neither torch nor VapourSynth: the runners (and ``StageRunner``) load
on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import BackendError, CacheError
from .options import BACKENDS, PRECISIONS, Backend, BackendOptions, choose_auto, from_flat

if TYPE_CHECKING:
    from .base import StageRunner

__all__ = [
    "BACKENDS", "PRECISIONS", "Backend", "BackendOptions", "BackendError", "CacheError", "StageRunner", "choose_auto",
    "from_flat", "create_runner",
]


def create_runner(
    backend: BackendOptions | str,
    *,
    weights: str | None = None,
    tile: int | None = None,
    tile_overlap: int | None = None,
) -> StageRunner:
    """Start the runner ``backend`` describes (a ``Backend.*`` object, or a name with default options:
    "auto" resolves as :func:`choose_auto` says).

    ``weights``: a .safetensors path or None for the shipped default. ``tile``/``tile_overlap``: exact
    tiled execution of the full-resolution convolutions (every backend).
    """
    if isinstance(backend, str):
        backend = from_flat(backend)
    model = {"weights": weights, "tile": tile, "tile_overlap": tile_overlap}
    if isinstance(backend, Backend.Torch):
        from .torch_backend import TorchRunner

        return TorchRunner(backend, **model)
    if isinstance(backend, Backend.ORT):
        from .ort_backend import OrtRunner

        return OrtRunner(backend, **model)
    if isinstance(backend, Backend.TRT):
        from .trt_backend import TrtRunner

        return TrtRunner(backend, **model)
    raise TypeError(f"backend must be a vsarvo.Backend.Torch, .ORT or .TRT object or a name, got {backend!r}")


def __getattr__(name: str) -> Any:
    # The torch-dependent names load torch only when asked for.
    if name == "StageRunner":
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module 'vsarvo.backends' has no attribute {name!r}")
