"""TrainConfig: one training run's settings, with the model it trains built from a named preset."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from vsarvo.model import ARVoConfig
from vsarvo.model.arvo import MIN_SIZE

from .losses import PIXEL_LOSSES

__all__ = ["TrainConfig", "model_presets", "model_config"]


def model_presets() -> dict[str, Callable[[], ARVoConfig]]:
    """Preset name -> builder of its ARVoConfig: ``vsarvo.model.PRESETS`` where the model package has
    that table, else its two preset constructors."""
    import vsarvo.model as model

    table = getattr(model, "PRESETS", None)
    if table is not None:
        return dict(table)
    return {"tiny": ARVoConfig.tiny, "paper": ARVoConfig.paper}


def model_config(preset: str, **overrides: Any) -> ARVoConfig:
    """The ``preset``'s ARVoConfig with ``overrides`` (ARVoConfig field -> value) applied."""
    presets = model_presets()
    if preset not in presets:
        raise ValueError(f"unknown model preset {preset!r}: choose one of {sorted(presets)}")
    return dataclasses.replace(presets[preset](), **overrides)


@dataclass(kw_only=True)
class TrainConfig:
    """One training run. Paper recipe: Adam lr 1e-4 halved every 200 epochs, 256x256 crops, alpha = 0.1."""

    model: ARVoConfig = field(default_factory=lambda: model_config("tiny"))
    out_dir: str = "runs/arvo"
    data: str | None = None  # dataset root (DVD / GoPro / HFR-DVD / paired); None = procedural synthetic clips
    procedural_clips: int = 64  # clips pre-rendered when data is None
    procedural_size: int = 160  # their frame edge
    procedural_frames: int = 9
    # 0: the training clips are rendered in turn from one generator (how the shipped weights' 96 clips were
    # made); N >= 1: clip i from its own seed, in N processes (the same clips for any N; use on GPU hosts).
    render_workers: int = 0
    crop: int = 256
    batch_size: int = 8
    steps: int = 100_000
    stage1_steps: int = 0  # progressive curriculum: train a single stage on triples first (3x cheaper)
    flow_pretrain_steps: int = 0  # PWC-Net on synthetic pairs with known flow before joint training
    flow_lr: float = 4e-4  # Adam's starting rate for that pretraining (cosine decay; 1e-3 did not converge)
    freeze_flow_steps: int = 0  # keep the (pretrained) flow net fixed this long, then train it jointly
    lr: float = 1e-4
    lr_halve_epochs: int = 200
    adv_weight: float = 0.1  # 0 switches the adversarial loss off
    clip_grad: float = 1.0
    seed: int = 0
    amp: bool = True  # CUDA only
    checkpoint_every: int = 200
    validate_every: int = 200
    val_clips: int = 4
    log_every: int = 10
    # Wall-clock budget in seconds (0 = none): the run validates, checkpoints and stops at the first step
    # past it, so a leased GPU or a batch slot is used to its end and nothing is lost.
    time_limit: float = 0.0
    device: str | None = None
    threads: int | None = None
    # NHWC weights and activations: oneDNN's convolutions run ~1.3x faster that way on a CPU at the tiny
    # widths (measured: 0.71 -> 0.55 s per single-stage step, batch 8 of 96^2, 2 threads).
    channels_last: bool = True
    # "l1" is the paper's loss; "mse" optimises PSNR directly (squared error weights the large errors at
    # edges, where deblurring gains, over the irrecoverable fine texture that dominates L1's gradient).
    pixel_loss: str = "l1"

    def __post_init__(self) -> None:
        if self.pixel_loss not in PIXEL_LOSSES:
            raise ValueError(f"pixel_loss must be one of {sorted(PIXEL_LOSSES)}, got {self.pixel_loss!r}")
        if self.crop < MIN_SIZE:
            # Found here, not at the first step after minutes of rendering.
            raise ValueError(f"crop must be at least {MIN_SIZE} (the model's smallest frame), got {self.crop}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model"] = self.model.to_dict()
        return d
