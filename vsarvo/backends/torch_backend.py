"""PyTorch backend: eager or torch.compile, CPU or CUDA, fp32 / fp16 / bf16."""
from __future__ import annotations

import torch

from vsarvo.weights import load_model

from .base import BackendError, RunnerOptions, StageRunner

__all__ = ["TorchRunner", "resolve_device", "resolve_precision", "DTYPES"]

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str | None) -> torch.device:
    """"cpu", "cuda", "cuda:N" or None (CUDA when present, else CPU); a missing device raises BackendError."""
    if device is None:
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise BackendError(f"device {device!r} is not a device name; use 'cpu' or 'cuda:N'") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BackendError(f"device {device!r} requested but CUDA is not available here; use device='cpu'")
        index = dev.index or 0
        if index >= torch.cuda.device_count():
            raise BackendError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s) found")
        return torch.device("cuda", index)
    if dev.type != "cpu":
        raise BackendError(f"device {device!r} is not supported; use 'cpu' or 'cuda:N'")
    return dev


def resolve_precision(precision: str | None, device: torch.device) -> str:
    if precision is None:
        return "fp16" if device.type == "cuda" else "fp32"
    if precision not in DTYPES:
        raise BackendError(f"precision must be one of {sorted(DTYPES)}, got {precision!r}")
    return precision


class TorchRunner(StageRunner):
    """Runs the stage with PyTorch. Half precision keeps the aggregation's scores, exp and sums in fp32."""

    name = "torch"

    def __init__(self, options: RunnerOptions) -> None:
        self.options = options
        dev = resolve_device(options.device)
        self.device = str(dev)
        self.precision = resolve_precision(options.precision, dev)
        self.dtype = DTYPES[self.precision]
        model = load_model(options.weights)
        self.stages = model.config.stages
        self.config = model.config
        self.stage = model.stage.to(device=dev, dtype=self.dtype).eval()
        self._memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
        self.stage.to(memory_format=self._memory_format)
        self._dev = dev
        if dev.type == "cuda" and self.precision == "fp32":
            # cuDNN runs fp32 convolutions in TF32 by default (10-bit mantissa): on an H200 that put the
            # stage 2e-3 away from the CPU's. fp32 here means fp32; fp16/bf16 are the fast paths.
            torch.backends.cudnn.allow_tf32 = False
        self._forward = torch.compile(self.stage, dynamic=False) if options.compile else self.stage

    @torch.inference_mode()
    def run(self, prev: torch.Tensor, ref: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        args = [x.to(self._dev, self.dtype, non_blocking=True).contiguous(memory_format=self._memory_format)
                for x in (prev, ref, nxt)]
        out = self._forward(*args, tile=self.options.tile, tile_overlap=self.options.tile_overlap)
        return out.clamp_(0, 1).float().cpu().contiguous()
