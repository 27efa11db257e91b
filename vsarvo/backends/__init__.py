"""Stage runners: one interface (StageRunner), backends chosen by name ("torch", "ort", "trt") or "auto"."""
from __future__ import annotations

from .base import BackendError, RunnerOptions, StageRunner

__all__ = ["BackendError", "RunnerOptions", "StageRunner", "BACKENDS", "create_runner"]

BACKENDS = ("auto", "torch", "ort", "trt")


def create_runner(backend: str, options: RunnerOptions) -> StageRunner:
    """Instantiate a backend by name. "auto" picks the torch backend (CUDA fp16 when a GPU is present)."""
    if backend not in BACKENDS:
        raise BackendError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend in ("auto", "torch"):
        from .torch_backend import TorchRunner

        return TorchRunner(options)
    if backend == "ort":
        from .ort_backend import OrtRunner

        return OrtRunner(options)
    from .trt_backend import TrtRunner

    return TrtRunner(options)
