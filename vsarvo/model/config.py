"""ARVoConfig, every size and switch of the model, and its presets ``paper()`` and ``tiny()``."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

__all__ = ["ARVoConfig", "paper", "tiny", "PRESETS", "ConfigField", "config_fields", "LEGACY_DEFAULTS"]


def _field(default: Any, help: str) -> Any:
    """A dataclass field whose one-line ``help`` travels with it (``config_fields`` reads it)."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclass(frozen=True, kw_only=True)
class ARVoConfig:
    """Sizes and switches of ARVo; the defaults are the paper's configuration (``paper()``).

    The paper fixes the encoder's layout, the pyramid depth L = 3, two progressive stages and flow
    alignment; it leaves the widths to a supplement we do not have, so every width is our choice
    (DESIGN.md, "Assumptions"). ``levels = 0`` is the paper's "no volume" ablation: the three frames'
    encoder features go to the reconstruction net directly.

    Three switches are our assumptions, on by default; off is the literal reading of Sec. 3.3:

    - ``frame_features``: with Eq. 2's raw scale-1 scores the aggregated maps can come out spatially
      constant, which leaves the encoder and the flow net without a gradient; the frames' own features
      keep that path open.
    - ``aligned_skip``: the aligned neighbours' detail reaches the output at full resolution, not only
      through H/4.
    - ``cosine_correlation``: raw features are small at initialisation, so raw scores start every
      attention row uniform; zero-mean cosine scores times a learned temperature span [-T, T] whatever
      the features' size, so the attention matches features from the first step.

    ``from_dict`` reads saved configurations, including those written before the switches existed.
    """

    channels: int = _field(64, "feature width C of the encoder's output at H/4")
    levels: int = _field(3, "correlation pyramid levels L (0: no correlation volume)")
    use_flow: bool = _field(True, "align the neighbours onto the reference with PWC-Net flow")
    stages: int = _field(2, "progressive stages (1-3); an output frame sees 2 * stages + 1 frames")
    flow_width: float = _field(1.0, "multiplier on PWC-Net's published channel widths")
    encoder_width: int = _field(32, "encoder width at full resolution (twice that, capped at C, at half)")
    recon_width: int = _field(32, "reconstruction width at full resolution, doubling per scale")
    recon_blocks: int = _field(3, "reconstruction residual blocks per scale (SRN uses 3)")
    disc_width: int = _field(32, "temporal discriminator's first Conv3d width, doubling per layer")
    frame_features: bool = _field(True, "the three frames' encoder features reach the reconstruction beside "
                                        "the aggregated ones")
    aligned_skip: bool = _field(True, "the reconstruction's full-resolution skip sees the aligned neighbours too")
    cosine_correlation: bool = _field(True, "the volume scores zero-mean cosine similarity times a learned temperature")

    def __post_init__(self) -> None:
        if not isinstance(self.levels, int) or not 0 <= self.levels <= 4:
            raise ValueError(f"levels must be an integer in 0..4 (paper: 3), got {self.levels!r}")
        if not isinstance(self.stages, int) or not 1 <= self.stages <= 3:
            raise ValueError(f"stages must be an integer in 1..3 (paper: 2), got {self.stages!r}")
        for name in ("channels", "encoder_width", "recon_width", "disc_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 4:
                raise ValueError(f"{name} must be an integer >= 4, got {value!r}")
        if not isinstance(self.recon_blocks, int) or self.recon_blocks < 1:
            raise ValueError(f"recon_blocks must be an integer >= 1, got {self.recon_blocks!r}")
        if not isinstance(self.flow_width, (int, float)) or not 0.05 <= self.flow_width <= 4.0:
            raise ValueError(f"flow_width must be a number in [0.05, 4], got {self.flow_width!r}")
        for name in ("use_flow", "frame_features", "aligned_skip", "cosine_correlation"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")

    @property
    def window(self) -> int:
        """Frames one output frame sees: 2 * stages + 1 (5 for the paper's two stages)."""
        return 2 * self.stages + 1

    @classmethod
    def paper(cls, **overrides: Any) -> "ARVoConfig":
        """``paper(**overrides)``, reachable through the class."""
        return paper(**overrides)

    @classmethod
    def tiny(cls, **overrides: Any) -> "ARVoConfig":
        """``tiny(**overrides)``, reachable through the class."""
        return tiny(**overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ARVoConfig":
        """A saved configuration; a field it lacks takes the value it meant when it was saved
        (``LEGACY_DEFAULTS``), not today's default."""
        unknown = set(data) - set(LEGACY_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown ARVoConfig fields: {sorted(unknown)}")
        return cls(**{**LEGACY_DEFAULTS, **data})

    def digest(self) -> str:
        """Short stable hash of the configuration (used in cache names and beside shipped weights)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


# What a saved configuration means by a field it lacks: ARVoConfig's defaults before they became the
# paper's configuration, with the switches off (weights saved before a switch existed were trained
# without it). Every field needs an entry here, so a field added later states what older files meant.
LEGACY_DEFAULTS: dict[str, Any] = dict(
    channels=64, levels=3, use_flow=True, stages=2, flow_width=1.0, encoder_width=32, recon_width=32,
    recon_blocks=3, disc_width=32, frame_features=False, aligned_skip=False, cosine_correlation=False,
)


def paper(**overrides: Any) -> ARVoConfig:
    """The paper's configuration (L = 3, two stages, flow on, full-width PWC-Net), widths as we chose
    them; ``overrides`` replace single fields."""
    return ARVoConfig(**overrides)


def tiny(**overrides: Any) -> ARVoConfig:
    """The shipped weights' configuration: the paper's structure with narrow layers, small enough to
    train on a CPU; ``overrides`` replace single fields."""
    narrow: dict[str, Any] = dict(channels=16, flow_width=0.25, encoder_width=8, recon_width=16, recon_blocks=8,
                                  disc_width=16)
    return ARVoConfig(**{**narrow, **overrides})


#: The presets by name, as ``arvo train --preset`` and the benchmarks offer them.
PRESETS: dict[str, Callable[..., ARVoConfig]] = {"tiny": tiny, "paper": paper}


class ConfigField(NamedTuple):
    """One ARVoConfig field, as a command line that sets it needs it."""

    name: str
    type: type
    default: Any
    help: str


def config_fields() -> tuple[ConfigField, ...]:
    """Every ARVoConfig field in declaration order: name, type (int, float or bool), default (the
    paper's value) and one-line help."""
    hints = typing.get_type_hints(ARVoConfig)
    return tuple(ConfigField(f.name, hints[f.name], f.default, f.metadata["help"])
                 for f in dataclasses.fields(ARVoConfig))
