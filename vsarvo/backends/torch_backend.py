"""PyTorch backend: eager or torch.compile, CPU or CUDA, fp32 / fp16 / bf16."""
from __future__ import annotations

import torch

from .base import DTYPES, StageRunner, resolve_device, resolve_precision
from .options import Backend

__all__ = ["TorchRunner"]


class TorchRunner(StageRunner):
    """Runs the stage with PyTorch. Half precision keeps the aggregation's scores, exp and sums in fp32."""

    name = "torch"

    def __init__(self, options: Backend.Torch, *, weights: str | None = None, tile: int | None = None,
                 tile_overlap: int | None = None) -> None:
        self.options = options
        self.tile, self.tile_overlap = tile, tile_overlap
        dev = resolve_device(options.device)
        self.device = str(dev)
        self.precision = resolve_precision(options.precision, dev)
        self.dtype = DTYPES[self.precision]
        model = self._load_weights(weights, tile, tile_overlap)
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
        out = self._forward(*args, tile=self.tile, tile_overlap=self.tile_overlap)
        return out.clamp_(0, 1).float().cpu().contiguous()
