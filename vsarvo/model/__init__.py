"""ARVo in pure PyTorch (no VapourSynth here): one module per component of the paper."""
from .arvo import ARVo, ARVoStage, restore_clip
from .config import ARVoConfig
from .discriminator import TemporalDiscriminator
from .flow import PWCNet, warp
from .volume import aggregate, aggregate_naive

__all__ = ["ARVo", "ARVoStage", "restore_clip", "ARVoConfig", "TemporalDiscriminator", "PWCNet", "warp", "aggregate", "aggregate_naive"]
