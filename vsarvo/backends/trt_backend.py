"""TensorRT backend: the stage ONNX built into a strongly typed engine per frame size, run on CUDA tensors."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from .base import BackendError, StageRunner, resolve_device, resolve_precision
from .options import Backend
from .stage_artifacts import StageArtifacts

__all__ = ["TrtRunner"]

log = logging.getLogger("vsarvo.export")


class TrtRunner(StageRunner):
    """Runs the stage as a TensorRT engine on an NVIDIA GPU.

    On the first frame of a size it exports (or takes from the cache) the stage ONNX at the chosen
    precision, builds (or takes from the cache) its engine for exactly that size with the options'
    workspace limit and optimisation level, and keeps a runner for it; later frames of that size
    reuse them. Engine building takes a while once per size, GPU and TensorRT version; the engine
    cache makes every later run start at once.
    """

    name = "trt"

    def __init__(self, options: Backend.TRT, *, weights: str | None = None, tile: int | None = None,
                 tile_overlap: int | None = None) -> None:
        from vsarvo.export.tensorrt_engine import TensorRTUnavailable, import_tensorrt

        self.options = options
        try:
            import_tensorrt()
        except TensorRTUnavailable as exc:
            raise BackendError(str(exc)) from exc
        dev = resolve_device(options.device if options.device is not None else "cuda")
        if dev.type != "cuda":
            raise BackendError(f"the trt backend runs on NVIDIA GPUs only, got device {options.device!r}")
        self._dev = dev
        self.device = str(dev)
        self.precision = resolve_precision(options.precision, dev)
        self.model = self._load_weights(weights, tile, tile_overlap)
        self._runners = StageArtifacts(
            self.model, precision=self.precision, tile=tile, tile_overlap=tile_overlap,
            cache_dir=options.cache_dir, make=self._engine_runner,
        )

    def _engine_runner(self, onnx_path: Path, height: int, width: int):  # noqa: ANN202 - EngineRunner
        """The engine runner for this graph; a cached engine that TensorRT cannot load is built again, once.

        A graph TensorRT cannot parse raises GraphParseError, for StageArtifacts to export it again once;
        an engine that fails to build, or to load once rebuilt, is a BackendError at once (exporting the
        same graph again would only build it again).
        """
        from vsarvo.export.graphs import graph_spec
        from vsarvo.export.tensorrt_engine import (
            EngineBuildError, GraphParseError, ShapeRange, TensorRTUnavailable, cached_engine,
        )
        from vsarvo.export.tensorrt_runner import EngineRunner

        spec = graph_spec(self.model, "stage", height=height, width=width)

        def engine() -> Path:
            return cached_engine(
                onnx_path, shapes={n: ShapeRange.fixed(s) for n, s in spec.inputs.items()},
                precision=self.precision, device=self._dev.index or 0,
                workspace=self.options.workspace_bytes, optimization_level=self.options.optimization_level,
                folder=self._runners.root,
            )

        try:
            with torch.cuda.device(self._dev):
                path = engine()
                try:
                    return EngineRunner(path, device=self._dev)
                except EngineBuildError as exc:
                    log.warning("the cached engine %s could not be loaded (%s); building it again", path, exc)
                    path.unlink(missing_ok=True)
                    return EngineRunner(engine(), device=self._dev)
        except TensorRTUnavailable as exc:
            raise BackendError(str(exc)) from exc
        except GraphParseError:
            raise
        except EngineBuildError as exc:
            raise BackendError(
                f"TensorRT could not build a working engine for {width}x{height} frames: {exc}; try a larger "
                "workspace=, another optimization_level=, or backend='torch'"
            ) from exc

    def run(self, prev: torch.Tensor, ref: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        height, width = ref.shape[-2:]
        runner = self._runners.get(int(height), int(width))
        with torch.cuda.device(self._dev):
            (out,) = runner(prev, ref, nxt, to_host=True)
        return out.clamp_(0, 1)
