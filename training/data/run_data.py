"""The data one training run draws: its training and validation datasets, and batches fully determined
by a seed (so a resumed run continues bit-exactly)."""
from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from ..config import TrainConfig

__all__ = ["VAL_SEED_OFFSET", "validation_set_name", "make_datasets", "step_seed", "fetch_batch"]

# Procedural validation clips are rendered with the training seed plus this, so they are clips of their own.
VAL_SEED_OFFSET = 10_000


def validation_set_name(cfg: TrainConfig) -> str:
    """Names the validation windows, so scores on different sets are never compared."""
    if cfg.data_kind == "footage":
        return (f"footage train-photos {cfg.val_clips}x{cfg.model.window}x{cfg.procedural_size} "
                f"seed {cfg.seed + VAL_SEED_OFFSET}")
    if cfg.data is None:
        return f"procedural train-split {cfg.val_clips}x{cfg.model.window}x{cfg.procedural_size} seed {cfg.seed + VAL_SEED_OFFSET}"
    return f"{cfg.data} test split"


def _procedural_validation(cfg: TrainConfig) -> Any:
    """Validation (which picks best.safetensors) renders clips of its own from the training sources:
    the held-out test split stays unseen until `arvo eval`, so model selection cannot fit it."""
    from .rendered import RenderedClips

    window = cfg.model.window
    return RenderedClips(
        clips=cfg.val_clips, frames=window, size=cfg.procedural_size, window=window, crop=None,
        split="train", seed=cfg.seed + VAL_SEED_OFFSET, augment=False,
        cache=Path(cfg.out_dir) / "cache" / f"val_train_{cfg.val_clips}x{window}x{cfg.procedural_size}_s{cfg.seed}.pt",
    )


def _procedural_datasets(cfg: TrainConfig) -> tuple[Any, Any]:
    from .rendered import RenderedClips

    per_clip = "_perclip" if cfg.render_workers > 0 else ""
    per_clip += "_degraded" if cfg.degrade else ""
    train = RenderedClips(
        clips=cfg.procedural_clips, frames=cfg.procedural_frames, size=cfg.procedural_size,
        window=cfg.model.window, crop=cfg.crop, split="train", seed=cfg.seed, workers=cfg.render_workers,
        degrade=_capture(cfg), cache=Path(cfg.out_dir) / "cache" / f"train_{cfg.procedural_clips}x{cfg.procedural_frames}x{cfg.procedural_size}_s{cfg.seed}{per_clip}.pt",
    )
    return train, _procedural_validation(cfg)


def _capture(cfg: TrainConfig) -> Any:
    """The sensor-noise and codec settings --degrade applies to --data and procedural clips, else None."""
    if not cfg.degrade:
        return None
    from .capture import CAPTURE

    return CAPTURE


def _footage_datasets(cfg: TrainConfig) -> tuple[Any, Any]:
    """Footage clips from the train split of the installed photos, and validation clips of their own."""
    from .degrade import FootageSettings
    from .footage import FootageClips
    from .photos import list_photos

    photos = list_photos(cfg.photos, "train")
    size, window, cache = (cfg.procedural_size, cfg.procedural_size), cfg.model.window, Path(cfg.out_dir) / "cache"
    train = FootageClips(
        photos, clips=cfg.footage_clips, window=window, crop=cfg.crop, seed=cfg.seed, workers=cfg.render_workers,
        settings=FootageSettings(frames=cfg.procedural_frames, size=size),
        cache=cache / f"footage_{cfg.footage_clips}x{cfg.procedural_frames}x{cfg.procedural_size}_s{cfg.seed}.pt",
    )
    val = FootageClips(
        photos, clips=max(cfg.val_clips, 1), window=window, crop=None, seed=cfg.seed + VAL_SEED_OFFSET,
        augment=False, settings=FootageSettings(frames=window, size=size), workers=cfg.render_workers,
        cache=cache / f"val_footage_{cfg.val_clips}x{window}x{cfg.procedural_size}_s{cfg.seed}.pt",
    )
    return train, val


def make_datasets(cfg: TrainConfig, device: torch.device | str = "cpu") -> tuple[Any, Any]:
    """Training and validation datasets of (blur [T,3,h,w], sharp [T,3,h,w]) windows, T = model window.
    With ``cfg.shards`` the training set is a :class:`ShardBank` on ``device``. With ``cfg.data_kind``
    "footage", a ``footage_share`` of the training items are footage clips (:func:`_footage_datasets`),
    the rest come from the set named above, and validation is on footage clips."""
    if cfg.data_kind == "footage":
        from .footage import MixedClips

        base, _ = make_datasets(dataclasses.replace(cfg, data_kind="procedural"), device)
        footage, footage_val = _footage_datasets(cfg)
        return MixedClips(footage, base, cfg.footage_share), footage_val
    if cfg.shards is not None and cfg.data is None:
        from ..shards import ShardBank

        bank = ShardBank(cfg.shards, window=cfg.model.window, crop=cfg.crop, device=device)
        return bank, _procedural_validation(cfg)
    if cfg.data is None:
        return _procedural_datasets(cfg)
    from .datasets import VideoWindowDataset, find_videos

    window = cfg.model.window
    train = VideoWindowDataset(find_videos(Path(cfg.data), "train"), window=window, crop=cfg.crop, augment=True,
                               degrade=_capture(cfg))
    try:
        val_videos = find_videos(Path(cfg.data), "test")
    except ValueError:
        return train, None
    val = VideoWindowDataset(val_videos, window=window, crop=cfg.crop, augment=False, degrade=_capture(cfg))
    # A fixed, evenly spread subset keeps validation cheap on datasets of thousands of frames.
    picks = np.linspace(0, len(val) - 1, num=min(cfg.val_clips, len(val))).round().astype(int).tolist()
    return train, torch.utils.data.Subset(val, picks)


def step_seed(seed: int, step: int, rank: int) -> int:
    """The seed of one rank's batch at one step."""
    return (seed * 1_000_003 + step * 7919 + rank) % (2**31)


def fetch_batch(dataset: Any, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch fully determined by ``seed`` (indices, crops, flips), so --resume continues bit-exactly.
    A dataset that cuts its own batches (``sample_batch``, as ShardBank) is asked for one."""
    if hasattr(dataset, "sample_batch"):
        return dataset.sample_batch(size, seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    idx = torch.randint(len(dataset), (size,)).tolist()
    items = [dataset[i] for i in idx]
    return torch.stack([b for b, _ in items]), torch.stack([s for _, s in items])
