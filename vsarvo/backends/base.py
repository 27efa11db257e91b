"""The one interface every backend implements (run one ARVo stage, 3 frames -> 1), and the device and
precision choice every backend makes the same way."""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from vsarvo.model import ARVo
from vsarvo.weights import load_model

from .errors import BackendError, CacheError
from .options import PRECISIONS
from .tiling_limits import check_tiling

__all__ = ["BackendError", "CacheError", "StageRunner", "DTYPES", "resolve_device", "resolve_precision"]

DTYPES = dict(zip(PRECISIONS, (torch.float32, torch.float16, torch.bfloat16)))


def resolve_device(device: str | None, *, cuda_usable: bool | None = None, cuda_missing: str = "") -> torch.device:
    """"cpu", "cuda", "cuda:N" or None (the first GPU when the backend can use one, else the CPU).

    ``cuda_usable``: whether this backend can run on a GPU here (default: torch sees one);
    ``cuda_missing``: why not, when it is False although torch sees one (said in the error). A device
    that is not there, or not a device name, raises BackendError.
    """
    cuda_ok = torch.cuda.is_available() if cuda_usable is None else cuda_usable
    if device is None:
        return torch.device("cuda", 0) if cuda_ok else torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise BackendError(f"device {device!r} is not a device name; use 'cpu' or 'cuda:N'") from exc
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise BackendError(f"device {device!r} is not supported; use 'cpu' or 'cuda:N'")
    if not cuda_ok:
        reason = cuda_missing or "CUDA is not available here"
        raise BackendError(f"device {device!r} requested but {reason}; use device='cpu'")
    index = dev.index or 0
    if index >= torch.cuda.device_count():
        raise BackendError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s) found")
    return torch.device("cuda", index)


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """``precision``, or for None the default: fp16 on a GPU (for every clip, so a half-float clip runs
    in fp16 there), fp32 on the CPU (half precision is slow or missing in CPU kernels)."""
    if precision is None:
        return "fp16" if device.type == "cuda" else "fp32"
    if precision not in DTYPES:
        raise BackendError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


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

    def _load_weights(self, weights: str | None, tile: int | None, tile_overlap: int | None) -> ARVo:
        """The model of ``weights`` (None: the shipped ones) on the CPU; tiling below its limits is refused,
        and the runner takes the model's config and stage count."""
        model = load_model(weights)
        check_tiling(model.stage, tile, tile_overlap)
        self.config = model.config
        self.stages = model.config.stages
        return model

    @abstractmethod
    def run(self, prev: torch.Tensor, ref: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        ...
