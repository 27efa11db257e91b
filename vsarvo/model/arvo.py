"""ARVo: one shared-weight stage (3 frames -> 1) applied progressively over a 2*stages+1 frame window."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import ARVoConfig
from .encoder import Encoder
from .flow import PWCNet, warp
from .reconstruct import Reconstruction
from .tiling import ALIGN, run_tiled
from .volume import CorrelativeAggregation

__all__ = ["ARVoStage", "ARVo", "MIN_SIZE", "restore_clip", "clamp_index"]

MIN_SIZE = 64  # smallest frame edge we support (the flow pyramid pads to 64 anyway)


def _pad_to_align(frame: torch.Tensor) -> torch.Tensor:
    """Edge-replicate ``frame`` [B, 3, H, W] on the bottom and right to a multiple of ``ALIGN``."""
    h, w = frame.shape[-2:]
    ph, pw = (-h) % ALIGN, (-w) % ALIGN
    return F.pad(frame, (0, pw, 0, ph), mode="replicate") if ph or pw else frame


def _run_local(
    fn: Callable[..., torch.Tensor],
    inputs: list[tuple[torch.Tensor, int]],
    *,
    out_divisor: int,
    radius: int,
    tile: int | None,
    tile_overlap: int | None,
) -> torch.Tensor:
    """A purely local part of the stage on the whole frame (``tile=None``) or in overlapping tiles whose
    halo is ``radius`` (exact) unless ``tile_overlap`` overrides it; see ``run_tiled``."""
    first, divisor = inputs[0]
    height, width = first.shape[-2] * divisor, first.shape[-1] * divisor
    overlap = radius if tile_overlap is None else tile_overlap
    return run_tiled(fn, inputs, height=height, width=width, out_divisor=out_divisor, tile=tile, overlap=overlap)


class ARVoStage(nn.Module):
    """One ARVo stage: restores the reference frame from (previous, reference, next).

    Takes three RGB frames [B, 3, H, W] in [0, 1] with H, W >= ``MIN_SIZE`` (odd sizes are fine: the
    frames are edge-padded to a multiple of ``ALIGN`` and the result cropped back) and returns the
    restored reference [B, 3, H, W], unclamped. PWC-Net flow aligns the neighbours onto the reference;
    the shared encoder maps the three aligned frames to H/4 features; the correlative aggregation relates
    the reference to each of them (paper Sec. 3.2-3.3); the reconstruction net turns the result into a
    residual on the blurry reference.

    ``tile`` runs the full-resolution convolutions (the encoder, the reconstruction's skip and tail) in
    overlapping tiles of that edge, which bounds memory at 4K; the result is exact because each halo
    covers its part's receptive radius (``tile_overlap`` overrides the halo). Flow and aggregation stay
    global.
    """

    def __init__(self, config: ARVoConfig) -> None:
        super().__init__()
        self.config = config
        self.flow = PWCNet(width=config.flow_width) if config.use_flow else None
        self.encoder = Encoder(width=config.encoder_width, channels=config.channels)
        frame_channels = 3 * config.channels  # the three frames' encoder features, stacked
        if config.levels > 0:
            self.aggregation = CorrelativeAggregation(channels=config.channels, levels=config.levels,
                                                      cosine=config.cosine_correlation)
            # One aggregated map per pair of the window: ref<-prev, ref<-ref, ref<-next.
            self.aggregated_channels = 3 * self.aggregation.pair_channels
            recon_in = self.aggregated_channels + (frame_channels if config.frame_features else 0)
        else:
            self.aggregation = None
            self.aggregated_channels = 0
            recon_in = frame_channels
        self.reconstruction = Reconstruction(
            in_channels=recon_in, width=config.recon_width, blocks=config.recon_blocks,
            skip_frames=3 if config.aligned_skip else 1,
        )

    def forward(
        self,
        prev: torch.Tensor,
        ref: torch.Tensor,
        nxt: torch.Tensor,
        *,
        tile: int | None = None,
        tile_overlap: int | None = None,
    ) -> torch.Tensor:
        h, w = ref.shape[-2:]
        if h < MIN_SIZE or w < MIN_SIZE:
            raise ValueError(f"frames must be at least {MIN_SIZE}x{MIN_SIZE}, got {w}x{h}")
        prev, ref, nxt = (_pad_to_align(x) for x in (prev, ref, nxt))
        prev, nxt = self.align(prev, ref, nxt)
        f_prev, f_ref, f_next = self.encode(prev, ref, nxt, tile=tile, tile_overlap=tile_overlap)
        features = self.aggregate(f_prev, f_ref, f_next)
        out = self.reconstruct(features, self.skip_frames(prev, ref, nxt), tile=tile, tile_overlap=tile_overlap)
        return out[..., :h, :w]

    def align(self, prev: torch.Tensor, ref: torch.Tensor, nxt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Warp prev and next onto ref with the estimated flow (identity when use_flow is off).

        Where a warp samples outside the frame the reference pixel stands in (the validity mask).
        """
        if self.flow is None:
            return prev, nxt
        neighbours = torch.cat((prev, nxt), dim=0)
        refs = torch.cat((ref, ref), dim=0)
        flow = self.flow(refs, neighbours)
        warped, valid = warp(neighbours, flow)
        aligned = valid * warped + (1 - valid) * refs
        return aligned.chunk(2, dim=0)

    def encode(
        self, prev: torch.Tensor, ref: torch.Tensor, nxt: torch.Tensor, *, tile: int | None, tile_overlap: int | None,
    ) -> tuple[torch.Tensor, ...]:
        """The shared encoder on the three aligned frames in one batch: three [B, C, H/4, W/4]."""
        frames = torch.cat((prev, ref, nxt), dim=0)
        feats = _run_local(self.encoder, [(frames, 1)], out_divisor=4, radius=self.encoder.receptive_radius,
                           tile=tile, tile_overlap=tile_overlap)
        return feats.split(ref.shape[0], dim=0)

    def aggregate(self, f_prev: torch.Tensor, f_ref: torch.Tensor, f_next: torch.Tensor) -> torch.Tensor:
        """The reconstruction's H/4 input: the aggregation over the pairs (ref<-prev, ref<-ref, ref<-next),
        followed by the three frames' features with ``frame_features``; the features alone with levels = 0."""
        if self.aggregation is None:
            return torch.cat((f_prev, f_ref, f_next), dim=1)
        aggregated = self.aggregation(f_ref, [f_prev, f_ref, f_next])
        if not self.config.frame_features:
            return aggregated
        return torch.cat((aggregated, f_prev, f_ref, f_next), dim=1)

    def skip_frames(self, prev: torch.Tensor, ref: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        """The reconstruction's full-resolution skip input: the blurry reference, followed by the aligned
        neighbours with ``aligned_skip``."""
        return torch.cat((ref, prev, nxt), dim=1) if self.config.aligned_skip else ref

    def reconstruct(
        self, features: torch.Tensor, frames: torch.Tensor, *, tile: int | None, tile_overlap: int | None,
    ) -> torch.Tensor:
        """The reconstruction net: H/4 features and stacked skip frames -> restored reference.

        On the whole frame the full-resolution skip features are computed once, for both the skip and
        the tail; in tiles every tile recomputes them, because keeping them would hold the
        full-resolution map that tiling exists to avoid.
        """
        recon = self.reconstruction
        if tile is None:
            return recon(features, frames)
        local = dict(tile=tile, tile_overlap=tile_overlap)
        skip_half = _run_local(recon.skip, [(frames, 1)], out_divisor=2, radius=recon.skip_radius, **local)
        half = recon.middle(features, skip_half)
        return _run_local(recon.tail, [(half, 2), (frames, 1)], out_divisor=1, radius=recon.tail_radius, **local)


class ARVo(nn.Module):
    """The ARVo video deblurring model: ``config.stages`` progressive passes of one shared-weight stage.

    ``model(frames)`` takes [B, 2*stages+1, 3, H, W] RGB in [0, 1] and returns the restored middle frame
    [B, 3, H, W]. Stage s maps each consecutive triple of its inputs to one frame, so a window of
    2*stages+1 frames shrinks to one: for two stages, stage 1 restores i-1, i, i+1 from five blurry
    frames and stage 2 restores i from those three.
    """

    def __init__(self, config: ARVoConfig) -> None:
        super().__init__()
        self.config = config
        self.stage = ARVoStage(config)

    def forward_stages(self, frames: torch.Tensor, stages: int | None = None) -> list[torch.Tensor]:
        """All stage outputs: element s is [B, 2*(stages-s)-1, 3, H, W]; the last one is [B, 1, 3, H, W].

        ``stages`` below the configured number runs fewer passes over a 2*stages+1 window (training's
        single-stage curriculum, the filter's stages= argument).
        """
        stages = self.config.stages if stages is None else stages
        if not 1 <= stages <= self.config.stages:
            raise ValueError(f"stages must be in 1..{self.config.stages}, got {stages}")
        if frames.dim() != 5 or frames.shape[2] != 3:
            raise ValueError(f"frames must be [B, T, 3, H, W], got {tuple(frames.shape)}")
        if frames.shape[1] != 2 * stages + 1:
            raise ValueError(f"{stages} stage(s) need {2 * stages + 1} frames, got {frames.shape[1]}")
        outputs = []
        x = frames
        for _ in range(stages):
            b, t = x.shape[:2]
            n = t - 2
            # All triples of this stage in one batch: shared weights, one call.
            prev = x[:, 0:n].reshape(b * n, *x.shape[2:])
            ref = x[:, 1:n + 1].reshape(b * n, *x.shape[2:])
            nxt = x[:, 2:n + 2].reshape(b * n, *x.shape[2:])
            x = self.stage(prev, ref, nxt).reshape(b, n, *x.shape[2:])
            outputs.append(x)
        return outputs

    def forward(
        self, frames: torch.Tensor, *, all_stages: bool = False, stages: int | None = None,
    ) -> torch.Tensor | list[torch.Tensor]:
        """The restored middle frame; with ``all_stages`` the list from ``forward_stages`` instead."""
        outputs = self.forward_stages(frames, stages)
        return outputs if all_stages else outputs[-1][:, 0]


def clamp_index(i: int, n: int) -> int:
    """``i`` clamped to a clip of ``n`` frames: before the first frame is the first, past the last the last."""
    return min(max(i, 0), n - 1)


@torch.no_grad()
def restore_clip(
    model: ARVo,
    frames: torch.Tensor,
    *,
    stages: int | None = None,
    cuts: set[int] | None = None,
) -> torch.Tensor:
    """Restore every frame of a clip [T, 3, H, W] the way the VapourSynth filter does; returns [T, 3, H, W].

    Per stage, frame j is restored from (j-1, j, j+1) with indices clamped to the clip, so the edges
    repeat the edge frame; each stage's outputs feed the next (R1_j, then out_i from R1). ``cuts`` holds
    the frame indices that start a new scene: a neighbour across a cut is replaced by the reference.
    Outputs are clamped to [0, 1] after every stage, as a deployed filter hands frames on.
    """
    stages = model.config.stages if stages is None else stages
    cuts = cuts or set()
    x = frames
    n = x.shape[0]
    for _ in range(stages):
        out = []
        for j in range(n):
            p, q = clamp_index(j - 1, n), clamp_index(j + 1, n)
            if j in cuts:  # j starts a scene: the previous frame belongs to another shot
                p = j
            if q in cuts and q != j:
                q = j
            out.append(model.stage(x[p:p + 1], x[j:j + 1], x[q:q + 1]).clamp(0, 1))
        x = torch.cat(out)
    return x
