"""onnxruntime backend: the exported stage graph, one session per frame size, CPU or CUDA provider."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .base import BackendError, StageRunner, resolve_device, resolve_precision
from .options import Backend
from .stage_artifacts import StageArtifacts

__all__ = ["OrtRunner"]

# onnxruntime's own log levels: 0 verbose, 1 info, 2 warning, 3 error. It logs to stderr.
_WARNING = 2


def _import_onnxruntime():  # noqa: ANN202 - the module
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendError(f"the ort backend needs onnxruntime ({exc}); pip install onnxruntime") from exc
    onnxruntime.set_default_logger_severity(_WARNING)
    return onnxruntime


class OrtRunner(StageRunner):
    """Runs the stage graph with onnxruntime.

    On the first frame of a size it exports (or takes from the cache) the stage ONNX for that size and
    precision, with the tiling baked in, and opens a session; later frames of that size reuse it.
    Half-precision graphs keep the aggregation's scores in fp32 (see vsarvo.export). onnxruntime's
    CPU provider has no bfloat16 kernels for this graph's convolutions, so bf16 needs the CUDA provider.
    """

    name = "ort"

    def __init__(self, options: Backend.ORT, *, weights: str | None = None, tile: int | None = None,
                 tile_overlap: int | None = None) -> None:
        self.options = options
        self._ort = _import_onnxruntime()
        available = self._ort.get_available_providers()
        dev = resolve_device(
            options.device, cuda_usable="CUDAExecutionProvider" in available and torch.cuda.is_available(),
            cuda_missing=f"it needs onnxruntime's CUDA provider and a GPU (providers here: {available}; "
                         "pip install onnxruntime-gpu)",
        )
        self.device = str(dev)
        self.precision = resolve_precision(options.precision, dev)
        if self.precision == "bf16" and dev.type == "cpu":
            raise BackendError(
                "onnxruntime's CPU provider cannot run bf16 graphs (no bfloat16 Conv kernels); "
                "use precision='fp32' or 'fp16' on the CPU, or device='cuda'"
            )
        if dev.type == "cuda":
            self._providers: list = [("CUDAExecutionProvider", {"device_id": dev.index or 0}), "CPUExecutionProvider"]
        else:
            self._providers = ["CPUExecutionProvider"]
        self.model = self._load_weights(weights, tile, tile_overlap)
        self._sessions = StageArtifacts(
            self.model, precision=self.precision, tile=tile, tile_overlap=tile_overlap,
            cache_dir=options.cache_dir, make=self._open,
        )

    def _open(self, onnx_path: Path, height: int, width: int):  # noqa: ANN202 - onnxruntime.InferenceSession
        so = self._ort.SessionOptions()
        so.log_severity_level = _WARNING
        if self.options.threads is not None:
            so.intra_op_num_threads = self.options.threads
        return self._ort.InferenceSession(str(onnx_path), so, providers=self._providers)

    def run(self, prev: torch.Tensor, ref: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        height, width = ref.shape[-2:]
        session = self._sessions.get(int(height), int(width))
        feeds = {
            name: np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
            for name, x in zip(("prev", "ref", "next"), (prev, ref, nxt))
        }
        # InferenceSession.run is thread-safe and releases the GIL while it computes.
        (out,) = session.run(["restored"], feeds)
        return torch.from_numpy(out).clamp_(0, 1)
