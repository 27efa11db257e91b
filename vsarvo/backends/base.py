"""The one interface every backend implements: run one ARVo stage (3 frames -> 1)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

__all__ = ["BackendError", "StageRunner", "RunnerOptions"]


class BackendError(RuntimeError):
    """A backend cannot run here (missing package, device, engine); the message says what to do."""


@dataclass(frozen=True, kw_only=True)
class RunnerOptions:
    """What every backend is asked for: weights, device, precision and the memory knobs.

    ``weights``: a .safetensors path or None for the shipped default. ``device``: "cpu" or "cuda:N"
    (None = the best available). ``precision``: "fp32", "fp16" or "bf16" (None = fp16 on CUDA, fp32 on
    CPU). ``tile``/``tile_overlap``: exact tiled execution of the full-resolution convolutions.
    ``compile``: torch.compile (torch backend only). ``channels_last``: NHWC weights and activations
    (torch backend only; faster convolutions on CPU oneDNN and CUDA tensor cores, same results to
    rounding).
    """

    weights: str | None = None
    device: str | None = None
    precision: str | None = None
    tile: int | None = None
    tile_overlap: int | None = None
    compile: bool = False
    channels_last: bool = True


class StageRunner(ABC):
    """Runs one ARVo stage. ``run`` is the unit the filter calls (about 2N times for N frames).

    ``run(prev, ref, nxt)`` takes three CPU float32 RGB tensors [1, 3, H, W] in [0, 1] and returns the
    restored reference as a CPU float32 tensor [1, 3, H, W] clamped to [0, 1]. It may be called from
    several threads at once; implementations serialise or parallelise as their runtime allows, and
    release the GIL during heavy work where they can.
    """

    name: str = ""
    device: str = "cpu"
    precision: str = "fp32"
    stages: int = 2

    @abstractmethod
    def run(self, prev: torch.Tensor, ref: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        ...
