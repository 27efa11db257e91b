"""ARVo: one shared-weight stage (3 frames -> 1) applied progressively over a 2*stages+1 frame window."""
from __future__ import annotations

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


class ARVoStage(nn.Module):
    """One ARVo stage: restores the reference frame from (previous, reference, next).

    Each input is RGB [B, 3, H, W] in [0, 1], H, W >= 64 (odd sizes fine: frames are edge-padded to a
    multiple of 4 and the result cropped back). Returns the restored reference [B, 3, H, W] (unclamped).

    1. Flow (PWC-Net) ref->prev and ref->next; neighbours are backward-warped onto the reference. Where a
       warp samples outside the frame the reference pixel is used instead (the validity mask).
    2. Encoder (shared weights) on the three aligned frames -> H/4 features.
    3. Correlative aggregation over the pairs (ref<-prev, ref<-ref, ref<-next) (raw or cosine scores,
       ``cosine_correlation``), with the three feature maps beside it (``frame_features``), or, with
       levels = 0, the three feature maps alone.
    4. Reconstruction -> residual on the blurry reference; its full-resolution skip sees the aligned
       neighbours too (``aligned_skip``).

    ``tile``: run the full-resolution convolutional parts (encoder, reconstruction skip and tail) in
    overlapping tiles of this edge; exact, bounds memory at 4K. Flow and aggregation stay global.
    """

    def __init__(self, config: ARVoConfig) -> None:
        super().__init__()
        self.config = config
        self.flow = PWCNet(width=config.flow_width) if config.use_flow else None
        self.encoder = Encoder(width=config.encoder_width, channels=config.channels)
        if config.levels > 0:
            self.aggregation = CorrelativeAggregation(channels=config.channels, levels=config.levels,
                                                      cosine=config.cosine_correlation)
            # One aggregated map per pair of the window: ref<-prev, ref<-ref, ref<-next.
            self.aggregated_channels = 3 * self.aggregation.pair_channels
            recon_in = self.aggregated_channels
            if config.frame_features:
                recon_in += 3 * config.channels
        else:
            self.aggregation = None
            self.aggregated_channels = 0
            recon_in = 3 * config.channels
        self.reconstruction = Reconstruction(
            in_channels=recon_in, width=config.recon_width, blocks=config.recon_blocks,
            skip_frames=3 if config.aligned_skip else 1,
        )

    # Receptive radii of the tiled functions, in full-resolution pixels (see run_tiled).
    def _encoder_radius(self) -> int:
        blocks = Encoder.BLOCKS_PER_SCALE
        return Encoder.FULL_RADIUS + 2 * (1 + 2 * blocks) + 4 * (1 + 2 * blocks)

    def _skip_radius(self) -> int:
        return self.reconstruction.SKIP_RADIUS + 2 * 3

    def _tail_radius(self) -> int:
        # up_full (transposed conv, half-res radius 1 -> 2 px) then skip_full and decode_full.
        return 2 + self.reconstruction.SKIP_RADIUS + self.reconstruction.DECODE_RADIUS

    def align(self, prev: torch.Tensor, ref: torch.Tensor, nxt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Warp prev and next onto ref with the estimated flow (identity when use_flow is off)."""
        if self.flow is None:
            return prev, nxt
        neighbours = torch.cat((prev, nxt), dim=0)
        refs = torch.cat((ref, ref), dim=0)
        flow = self.flow(refs, neighbours)
        warped, valid = warp(neighbours, flow)
        aligned = valid * warped + (1 - valid) * refs
        return aligned.chunk(2, dim=0)

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
        ph, pw = (-h) % ALIGN, (-w) % ALIGN
        if ph or pw:
            prev, ref, nxt = (F.pad(x, (0, pw, 0, ph), mode="replicate") for x in (prev, ref, nxt))
        H, W = h + ph, w + pw
        b = ref.shape[0]
        prev_a, nxt_a = self.align(prev, ref, nxt)
        frames = torch.cat((prev_a, ref, nxt_a), dim=0)
        skip_in = torch.cat((ref, prev_a, nxt_a), dim=1) if self.config.aligned_skip else ref

        recon = self.reconstruction
        if tile is None:
            feats = self.encoder(frames)
            skip_full = recon.skip_full(skip_in)
            skip_half = recon.skip_half(skip_full)
        else:
            def tiled(fn, inputs, out_divisor, radius):  # noqa: ANN001, ANN202 - local shorthand
                overlap = radius if tile_overlap is None else tile_overlap
                return run_tiled(fn, inputs, height=H, width=W, out_divisor=out_divisor, tile=tile, overlap=overlap)

            feats = tiled(self.encoder, [(frames, 1)], 4, self._encoder_radius())
            skip_half = tiled(lambda x: recon.skip_half(recon.skip_full(x)), [(skip_in, 1)], 2, self._skip_radius())

        f_prev, f_ref, f_next = feats.split(b, dim=0)
        if self.aggregation is not None:
            features = self.aggregation(f_ref, [f_prev, f_ref, f_next])
            if self.config.frame_features:
                features = torch.cat((features, f_prev, f_ref, f_next), dim=1)
        else:
            features = torch.cat((f_prev, f_ref, f_next), dim=1)

        half = recon.middle(features, skip_half)
        if tile is None:
            out = recon.tail(half, skip_in, skip_full)
        else:
            out = tiled(recon.tail, [(half, 2), (skip_in, 1)], 1, self._tail_radius())
        return out[..., :h, :w]


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

    def forward(self, frames: torch.Tensor, *, all_stages: bool = False, stages: int | None = None) -> torch.Tensor | list[torch.Tensor]:
        """The restored middle frame; with ``all_stages`` the list from ``forward_stages`` instead."""
        outputs = self.forward_stages(frames, stages)
        return outputs if all_stages else outputs[-1][:, 0]


def clamp_index(i: int, n: int) -> int:
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
