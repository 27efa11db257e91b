"""ARVo in pure PyTorch (no VapourSynth here): one module per component of the paper."""
from .arvo import ARVo, ARVoStage, restore_clip
from .config import PRESETS, ARVoConfig, config_fields, paper, tiny
from .discriminator import TemporalDiscriminator
from .flow import PWCNet, warp
from .volume import aggregate, aggregate_naive

__all__ = ["ARVo", "ARVoStage", "restore_clip", "ARVoConfig", "PRESETS", "paper", "tiny", "config_fields",
           "TemporalDiscriminator", "PWCNet", "warp", "aggregate", "aggregate_naive"]
