"""onnxruntime backend: the exported stage graph, one session per frame size, CPU or CUDA provider."""
from __future__ import annotations

import threading

import numpy as np
import torch

from vsarvo.weights import load_model

from .base import BackendError, RunnerOptions, StageRunner
from .torch_backend import resolve_precision

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


def _resolve_device(device: str | None, available: list[str]) -> torch.device:
    """"cpu", "cuda[:N]" or None (CUDA when onnxruntime's CUDA provider and a GPU are both there)."""
    has_cuda = "CUDAExecutionProvider" in available and torch.cuda.is_available()
    if device is None:
        return torch.device("cuda", 0) if has_cuda else torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise BackendError(f"device {device!r} is not a device name; use 'cpu' or 'cuda:N'") from exc
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise BackendError(f"device {device!r} is not supported by the ort backend; use 'cpu' or 'cuda:N'")
    if not has_cuda:
        raise BackendError(
            f"device {device!r} needs onnxruntime's CUDA provider and a GPU (providers here: {available}); "
            "pip install onnxruntime-gpu, or use device='cpu'"
        )
    return torch.device("cuda", dev.index or 0)


class OrtRunner(StageRunner):
    """Runs the stage graph with onnxruntime.

    On the first frame of a size it exports (or takes from the cache) the stage ONNX for that size and
    precision, with the options' tiling baked in, and opens a session; later frames of that size reuse
    it. Half-precision graphs keep the aggregation's scores in fp32 (see vsarvo.export). onnxruntime's
    CPU provider has no bfloat16 kernels for this graph's convolutions, so bf16 needs the CUDA provider.
    """

    name = "ort"

    def __init__(self, options: RunnerOptions) -> None:
        self.options = options
        self._ort = _import_onnxruntime()
        available = self._ort.get_available_providers()
        dev = _resolve_device(options.device, available)
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
        self.model = load_model(options.weights)
        self.config = self.model.config
        self.stages = self.config.stages
        self._sessions: dict[tuple[int, int], object] = {}
        self._lock = threading.Lock()

    def _session(self, height: int, width: int):  # noqa: ANN202 - onnxruntime.InferenceSession
        key = (height, width)
        with self._lock:
            if key not in self._sessions:
                from vsarvo.export.onnx_export import cached_onnx

                path = cached_onnx(
                    self.model, "stage", height=height, width=width, precision=self.precision,
                    tile=self.options.tile, tile_overlap=self.options.tile_overlap,
                )
                so = self._ort.SessionOptions()
                so.log_severity_level = _WARNING
                self._sessions[key] = self._ort.InferenceSession(str(path), so, providers=self._providers)
            return self._sessions[key]

    def run(self, prev: torch.Tensor, ref: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        height, width = ref.shape[-2:]
        session = self._session(int(height), int(width))
        feeds = {
            name: np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
            for name, x in zip(("prev", "ref", "next"), (prev, ref, nxt))
        }
        # InferenceSession.run is thread-safe and releases the GIL while it computes.
        (out,) = session.run(["restored"], feeds)
        return torch.from_numpy(out).clamp_(0, 1)
