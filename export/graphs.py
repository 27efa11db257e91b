"""The exportable graphs: each part of an ARVo stage, a whole stage, and the vs-mlrt full model.

Every graph takes and returns float32 tensors whatever its precision: an fp16 / bf16 graph casts its
inputs to that type, runs the half-precision weights, and casts its outputs back (what TensorRT's
strongly typed builder and vs-mlrt's float clips both want; the casts cost one pass over the I/O).
Inside, the model itself keeps the precision-critical parts in fp32 (the aggregation's scores,
max-subtraction, exp and sums; the warp's sampling grid).

All graphs have fixed shapes: the aggregation is unrolled into explicit query chunks whose count
depends on the frame size, so a graph is exported per resolution. Part graphs work at the stage's
internal size, the frame size rounded up to a multiple of 4 (the stage pads by edge replication).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from vsarvo.backends.base import DTYPES
from vsarvo.backends.options import PRECISIONS
from vsarvo.model import ARVo
from vsarvo.model.arvo import MIN_SIZE
from vsarvo.model.tiling import ALIGN

__all__ = ["PARTS", "PRECISIONS", "GraphSpec", "graph_spec", "build_graph"]


@dataclass(frozen=True, kw_only=True)
class GraphSpec:
    """Names and shapes of one graph's inputs and outputs at one frame size."""

    inputs: dict[str, tuple[int, ...]]
    outputs: dict[str, tuple[int, ...]]


class _Flow(nn.Module):
    """PWC-Net flow for both directions of a stage at once: (image, neighbour) [2, 3, H, W] -> [2, 2, H, W]."""

    def __init__(self, model: ARVo) -> None:
        super().__init__()
        self.flow = model.stage.flow

    def forward(self, image: torch.Tensor, neighbour: torch.Tensor) -> torch.Tensor:
        return self.flow(image, neighbour)


class _Encoder(nn.Module):
    """The shared encoder on the three aligned frames: [3, 3, H, W] -> [3, C, H/4, W/4]."""

    def __init__(self, model: ARVo) -> None:
        super().__init__()
        self.encoder = model.stage.encoder

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.encoder(frames)


class _Aggregation(nn.Module):
    """Correlative aggregation, all levels, pairs (ref<-prev, ref<-ref, ref<-next) -> [1, 3LC, H/4, W/4]."""

    def __init__(self, model: ARVo) -> None:
        super().__init__()
        self.aggregation = model.stage.aggregation

    def forward(self, prev: torch.Tensor, ref: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        return self.aggregation(ref, [prev, ref, nxt])


class _Reconstruction(nn.Module):
    """Reconstruction-net features [1, F, H/4, W/4] (aggregated, plus the three frames' features with
    ``frame_features``) and the blurry skip input [1, 3 or 9, H, W] (the reference, or with
    ``aligned_skip`` the reference, the aligned previous frame and the aligned next frame stacked)
    -> restored frame."""

    def __init__(self, model: ARVo) -> None:
        super().__init__()
        self.reconstruction = model.stage.reconstruction

    def forward(self, features: torch.Tensor, blurry: torch.Tensor) -> torch.Tensor:
        return self.reconstruction(features, blurry)


class _Stage(nn.Module):
    """One whole stage, (prev, ref, next) [1, 3, H, W] -> restored ref [1, 3, H, W], unclamped.

    With ``tile`` the full-resolution convolutions run in overlapping tiles inside the graph, exactly
    as ``ARVoStage(..., tile=, tile_overlap=)`` does.
    """

    def __init__(self, model: ARVo, tile: int | None = None, tile_overlap: int | None = None) -> None:
        super().__init__()
        self.stage = model.stage
        self.tile = tile
        self.tile_overlap = tile_overlap

    def forward(self, prev: torch.Tensor, ref: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        return self.stage(prev, ref, nxt, tile=self.tile, tile_overlap=self.tile_overlap)


class _Mlrt(nn.Module):
    """The whole model for vs-mlrt: frames stacked as channels [1, 3*T, H, W] -> middle frame [1, 3, H, W].

    T = 2 * stages + 1 consecutive frames, oldest first, RGB each. Every stage's outputs are clamped to
    [0, 1] before the next stage, as the VapourSynth filter hands frames on (``restore_clip``).
    """

    def __init__(self, model: ARVo) -> None:
        super().__init__()
        self.stage = model.stage
        self.stages = model.config.stages

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        _, channels, h, w = frames.shape
        x = frames.reshape(channels // 3, 3, h, w)
        for _ in range(self.stages):
            n = x.shape[0] - 2
            # Every triple of this stage as one batch, as ARVo.forward_stages runs them.
            x = self.stage(x[0:n], x[1:n + 1], x[2:n + 2]).clamp(0, 1)
        return x


class _AtPrecision(nn.Module):
    """Runs ``inner`` in ``dtype`` between float32 graph inputs and float32 graph outputs."""

    def __init__(self, inner: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner = inner.to(dtype)
        self.dtype = dtype

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.inner(*(x.to(self.dtype) for x in inputs)).float()


_BUILDERS = {
    "flow": _Flow,
    "encoder": _Encoder,
    "aggregation": _Aggregation,
    "reconstruction": _Reconstruction,
    "stage": _Stage,
    "mlrt": _Mlrt,
}
PARTS = tuple(_BUILDERS)


def _check_part(model: ARVo, part: str) -> None:
    if part not in _BUILDERS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    if part == "flow" and not model.config.use_flow:
        raise ValueError("this model has use_flow=False: there is no flow net to export")
    if part == "aggregation" and model.config.levels == 0:
        raise ValueError("this model has levels=0: there is no correlation volume to export")


def graph_spec(model: ARVo, part: str, *, height: int, width: int) -> GraphSpec:
    """Input and output names and shapes of ``part`` for frames of ``height`` x ``width``."""
    _check_part(model, part)
    if height < MIN_SIZE or width < MIN_SIZE:
        raise ValueError(f"frames must be at least {MIN_SIZE}x{MIN_SIZE}, got {width}x{height}")
    cfg = model.config
    # Part graphs see the stage's padded size; the stage and vs-mlrt graphs take the frame as it is.
    ph, pw = -(-height // ALIGN) * ALIGN, -(-width // ALIGN) * ALIGN
    quarter = (ph // 4, pw // 4)
    recon = model.stage.reconstruction
    recon_features = recon.fuse[0].in_channels
    frame = (1, 3, height, width)
    if part == "flow":
        return GraphSpec(inputs={"image": (2, 3, height, width), "neighbour": (2, 3, height, width)},
                         outputs={"flow": (2, 2, height, width)})
    if part == "encoder":
        return GraphSpec(inputs={"frames": (3, 3, ph, pw)}, outputs={"features": (3, cfg.channels, *quarter)})
    if part == "aggregation":
        feats = (1, cfg.channels, *quarter)
        return GraphSpec(inputs={"prev_features": feats, "ref_features": feats, "next_features": feats},
                         outputs={"aggregated": (1, model.stage.aggregated_channels, *quarter)})
    if part == "reconstruction":
        return GraphSpec(inputs={"features": (1, recon_features, *quarter), "blurry": (1, 3 * recon.skip_frames, ph, pw)},
                         outputs={"restored": (1, 3, ph, pw)})
    if part == "stage":
        return GraphSpec(inputs={"prev": frame, "ref": frame, "next": frame}, outputs={"restored": frame})
    return GraphSpec(inputs={"frames": (1, 3 * cfg.window, height, width)}, outputs={"restored": frame})


def build_graph(
    model: ARVo, part: str, precision: str, *, tile: int | None = None, tile_overlap: int | None = None
) -> nn.Module:
    """The module to export for ``part`` at ``precision``: a copy of the model's weights in that dtype,
    with float32 inputs and outputs. ``model`` itself is left untouched (fp32, CPU).

    ``tile`` / ``tile_overlap`` (the stage graph only) bake tiled execution of the full-resolution
    convolutions into the graph.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    _check_part(model, part)
    if (tile is not None or tile_overlap is not None) and part != "stage":
        raise ValueError(f"tile and tile_overlap apply to the stage graph only, not to {part!r}")
    owned = copy.deepcopy(model).eval()
    inner = _Stage(owned, tile, tile_overlap) if part == "stage" else _BUILDERS[part](owned)
    return _AtPrecision(inner, DTYPES[precision]).eval()
