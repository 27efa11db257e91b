"""TrainConfig: one training run's settings, with the model it trains built from a named preset."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from vsarvo.backends.options import PRECISIONS as RUNTIME_PRECISIONS
from vsarvo.model import PRESETS, ARVoConfig
from vsarvo.model.arvo import MIN_SIZE

from .losses import PIXEL_LOSSES

__all__ = ["TrainConfig", "model_presets", "model_config", "setting_problems", "PRECISIONS"]

# Arithmetic a training step may run in: "auto" = bf16 autocast on a GPU, fp32 on the CPU; "bf16"/"fp16"
# autocast on any device (fp16 with a loss scale, on CUDA only); "fp32" none.
PRECISIONS = ("auto", *RUNTIME_PRECISIONS)


def model_presets() -> dict[str, Callable[[], ARVoConfig]]:
    """Preset name -> builder of its ARVoConfig (the model package's one table)."""
    return dict(PRESETS)


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
    amp: bool = True  # --no-amp: fp32 whatever --precision says (the switch older commands use)
    # Arithmetic of a training step, one of PRECISIONS; "auto" = bf16 autocast on a GPU, fp32 on the CPU.
    precision: str = "auto"
    # torch.compile the restorer for the training step (minutes of warm-up; pays on a GPU segment).
    compile: bool = False
    # Folder of uint8 training shards (`python -m vsarvo.training.shards`), held on the training device;
    # None = the procedural clips or --data. Validation stays the procedural (or --data) set.
    shards: str | None = None
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
    # "footage": clips rendered from the train split of the real photos in `photos` with the footage
    # degradation (training.data.footage), a `footage_share` of the items, the rest from the procedural
    # clips (or --data); "procedural": those alone.
    data_kind: str = "procedural"
    photos: str = "data/photos"  # installed by `make photos`
    footage_clips: int = 64
    footage_share: float = 0.7
    # Sensor noise and an x264/x265 yuv420p round trip on the blurry frames of --data and the procedural clips.
    degrade: bool = False

    def __post_init__(self) -> None:
        # Checked here, when the command starts, not at the first step after minutes of rendering.
        problems = setting_problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model"] = self.model.to_dict()
        return d


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# (setting, smallest allowed value, whether the bound itself is allowed, what the value means)
_LOWER_BOUNDS = (
    ("steps", 1, True, "the step the run trains to (a resumed run continues to it)"),
    ("batch_size", 1, True, "clips per step"),
    ("procedural_clips", 1, True, "procedural training clips"),
    ("procedural_size", MIN_SIZE, True, "the procedural frame edge in pixels"),
    ("checkpoint_every", 1, True, "steps between checkpoints"),
    ("validate_every", 1, True, "steps between validations"),
    ("log_every", 1, True, "steps between log lines"),
    ("lr_halve_epochs", 1, True, "epochs between learning-rate halvings"),
    ("val_clips", 0, True, "validation clips"),
    ("stage1_steps", 0, True, "single-stage curriculum steps"),
    ("flow_pretrain_steps", 0, True, "flow pretraining steps"),
    ("freeze_flow_steps", 0, True, "steps the flow net stays frozen"),
    ("render_workers", 0, True, "rendering processes"),
    ("time_limit", 0, True, "seconds of wall-clock budget (0 = none)"),
    ("adv_weight", 0, True, "the adversarial loss weight (0 = off)"),
    ("lr", 0, False, "Adam's learning rate"),
    ("flow_lr", 0, False, "the flow pretraining learning rate"),
    ("clip_grad", 0, False, "the gradient-norm clip"),
)


def setting_problems(cfg: "TrainConfig") -> list[str]:
    """What is wrong with ``cfg``, one sentence per setting naming the value and the fix (empty: valid)."""
    problems = []
    for name, bound, inclusive, meaning in _LOWER_BOUNDS:
        value = getattr(cfg, name)
        # "not (value >= bound)" also refuses NaN.
        if not (value >= bound if inclusive else value > bound):
            relation = f"at least {bound}" if inclusive else f"greater than {bound}"
            problems.append(f"{_flag(name)} {value} is out of range: {meaning} must be {relation}")
    if cfg.crop < MIN_SIZE:
        problems.append(f"--crop {cfg.crop} is too small: crop must be at least {MIN_SIZE} (the model's smallest frame)")
    if cfg.procedural_frames < cfg.model.window:
        problems.append(f"--procedural-frames {cfg.procedural_frames} is too few: a clip must hold the model's "
                        f"window of {cfg.model.window} frames")
    if cfg.threads is not None and cfg.threads < 1:
        problems.append(f"--threads {cfg.threads} is out of range: give at least 1 (or leave it out)")
    problems += _data_problems(cfg)
    if cfg.pixel_loss not in PIXEL_LOSSES:
        problems.append(f"pixel_loss must be one of {sorted(PIXEL_LOSSES)}, got {cfg.pixel_loss!r}")
    if cfg.shards is not None and cfg.data is not None:
        problems.append(f"--shards {cfg.shards} and --data {cfg.data} both give the training set: pass one of them")
    if cfg.precision not in PRECISIONS:
        problems.append(f"--precision {cfg.precision!r} is unknown: choose one of {', '.join(PRECISIONS)}")
    return problems


DATA_KINDS = ("procedural", "footage")


def _data_problems(cfg: "TrainConfig") -> list[str]:
    """What is wrong with the training-data settings (empty: valid)."""
    problems = []
    if cfg.data_kind not in DATA_KINDS:
        problems.append(f"--data-kind {cfg.data_kind!r} is unknown: choose one of {', '.join(DATA_KINDS)}")
    if not 0 <= cfg.footage_share <= 1:
        problems.append(f"--footage-share {cfg.footage_share} is out of range: the share of footage items must lie in [0, 1]")
    if cfg.footage_clips < 1:
        problems.append(f"--footage-clips {cfg.footage_clips} is out of range: give at least 1")
    if cfg.data_kind == "footage" and cfg.procedural_size % 2:
        problems.append(f"--procedural-size {cfg.procedural_size} is odd: footage clips (4:2:0 video) need an even frame edge")
    return problems
