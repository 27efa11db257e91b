"""ARVoConfig: every size and ablation switch of the model, with the paper's and a small CPU preset."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["ARVoConfig"]


@dataclass(frozen=True, kw_only=True)
class ARVoConfig:
    """Sizes and ablation switches of ARVo.

    The paper fixes the encoder's layout (two stride-2 convs, 5+5+5 residual blocks), the pyramid depth
    ``levels`` (L = 3), two progressive ``stages`` and flow alignment. It leaves the widths to a
    supplement we do not have; every width below is therefore our choice (DESIGN.md, "Assumptions"):

    - ``channels`` (C): encoder output width at H/4 x W/4. Paper preset: 64.
    - ``encoder_width``: encoder width at full resolution; half resolution uses twice that (capped at C).
    - ``recon_width``: width of the SRN-style reconstruction net at full resolution; it doubles per
      scale down to H/4. ``recon_blocks`` residual blocks per scale (SRN uses 3).
    - ``flow_width``: multiplier on PWC-Net's published feature/decoder widths (1.0 = PWC-Net).
    - ``disc_width``: first Conv3d width of the temporal discriminator; it doubles per layer.

    ``levels = 0`` removes the correlation volume altogether: the three frames' encoder features go to
    the reconstruction net directly (the paper's "no volume" ablation).

    Two switches widen what reaches the reconstruction net (our assumptions, on in both presets; off
    is the literal reading of Sec. 3.3 and the layout of weights trained before they existed):

    - ``frame_features``: the three frames' encoder features join the aggregated ones at H/4. With the
      paper's scale-1 correlation, small features make every softmax row uniform, the aggregated maps
      spatially constant, and the encoder and flow net receive no useful gradient at all: measured on
      the step-8800 tiny weights trained without it (every attention row at the uniform entropy,
      aggregated maps with a spatial std of 1e-5; zeroing them cost 0.02 dB).
    - ``aligned_skip``: the full-resolution skip branch sees the flow-aligned neighbours beside the
      blurry reference, so their detail reaches the output at full resolution, not only through H/4.

    ``cosine_correlation`` (our assumption, on in both presets) changes what the volume correlates: the
    reference and neighbour features lose their spatial mean, are L2-normalised over channels, and their
    dot product is scaled by a learned temperature per level (zero-mean normalised cross-correlation;
    ``CorrelativeAggregation.INITIAL_TEMPERATURE`` at initialisation). Off, Eq. 2 multiplies raw
    features; at initialisation their norms are about 0.5 in both presets, so every attention row starts
    at the uniform entropy, and in the tiny weights trained that way the norms shrank further (0.26,
    then 0.13): the volume never left the uniform start. Normalised, the scores span [-T, T] whatever
    the features' size, so the attention matches features from the first step.
    """

    channels: int = 64
    levels: int = 3
    use_flow: bool = True
    stages: int = 2
    flow_width: float = 1.0
    encoder_width: int = 32
    recon_width: int = 32
    recon_blocks: int = 3
    disc_width: int = 32
    # Defaults False so that configs saved before these switches existed load as what they were.
    frame_features: bool = False
    aligned_skip: bool = False
    cosine_correlation: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.levels <= 4:
            raise ValueError(f"levels must be in 0..4 (paper: 3), got {self.levels}")
        if not 1 <= self.stages <= 3:
            raise ValueError(f"stages must be in 1..3 (paper: 2), got {self.stages}")
        for name in ("channels", "encoder_width", "recon_width", "disc_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 4:
                raise ValueError(f"{name} must be an integer >= 4, got {value!r}")
        if not isinstance(self.recon_blocks, int) or self.recon_blocks < 1:
            raise ValueError(f"recon_blocks must be an integer >= 1, got {self.recon_blocks!r}")
        if not 0.05 <= self.flow_width <= 4.0:
            raise ValueError(f"flow_width must be in [0.05, 4], got {self.flow_width}")

    @property
    def window(self) -> int:
        """Frames one output frame sees: 2 * stages + 1 (5 for the paper's two stages)."""
        return 2 * self.stages + 1

    @classmethod
    def paper(cls, **overrides: Any) -> "ARVoConfig":
        """The paper's configuration (L = 3, two stages, flow on, full PWC-Net), widths as we chose them."""
        base: dict[str, Any] = dict(frame_features=True, aligned_skip=True, cosine_correlation=True)
        base.update(overrides)
        return cls(**base)

    @classmethod
    def tiny(cls, **overrides: Any) -> "ARVoConfig":
        """A small configuration that trains on a CPU: same structure, narrow layers."""
        base: dict[str, Any] = dict(
            channels=16, levels=3, use_flow=True, stages=2, flow_width=0.25,
            encoder_width=8, recon_width=16, recon_blocks=8, disc_width=16,
            frame_features=True, aligned_skip=True, cosine_correlation=True,
        )
        base.update(overrides)
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ARVoConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown ARVoConfig fields: {sorted(unknown)}")
        return cls(**data)

    def digest(self) -> str:
        """Short stable hash of the configuration (used in cache names and beside shipped weights)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]
