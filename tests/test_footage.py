"""Footage clips for training: train photos only, seeded per clip, and compression that changes the input."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vsarvo.training.config import TrainConfig
from vsarvo.training.data.capture import degrade_blurry_frames, even_size
from vsarvo.training.data.datasets import VideoWindowDataset, find_videos
from vsarvo.training.data.degrade import FootageSettings
from vsarvo.training.data.footage import FootageClips, MixedClips, render_clip, usable_photos
from vsarvo.training.data.photos import MANIFEST, split_of
from vsarvo.training.data.rendered import RenderedClips
from vsarvo.training.data.run_data import make_datasets

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

SMALL = FootageSettings(frames=5, size=(64, 64))


def _picture(seed: int, size: tuple[int, int] = (160, 200)) -> Image.Image:
    rng = np.random.default_rng(seed)
    blocks = rng.random((size[0] // 8, size[1] // 8, 3)).repeat(8, 0).repeat(8, 1)
    return Image.fromarray((blocks * 255).astype(np.uint8))


def _photo_root(root: Path, per_split: int = 3) -> dict[str, str]:
    """A photos folder as `make photos` writes it (manifest + files), ``per_split`` photos of each split."""
    names = [f"fake/photo_{i}.png" for i in range(200)]
    chosen = [n for n in names if split_of(n) == "held_out"][:per_split] + [n for n in names if split_of(n) == "train"][:per_split]
    for k, name in enumerate(chosen):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        _picture(k).save(root / name)
    (root / MANIFEST).write_text(json.dumps({"photos": [{"name": n, "file": n} for n in chosen]}))
    return {n: split_of(n) for n in chosen}


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def test_footage_training_uses_train_photos_only(tmp_path):
    splits = _photo_root(tmp_path / "photos")
    cfg = TrainConfig(data_kind="footage", photos=str(tmp_path / "photos"), out_dir=str(tmp_path / "run"),
                      procedural_clips=2, procedural_frames=5, procedural_size=64, crop=64, footage_clips=6,
                      val_clips=2, render_workers=1)
    train, val = make_datasets(cfg)
    assert isinstance(train, MixedClips) and isinstance(val, FootageClips)
    used = [r[key] for clips in (train.first, val) for r in clips.records for key in ("photo", "foreground")]
    assert used and {splits[name] for name in used} == {"train"}


def test_the_same_seed_gives_the_same_clip_for_any_worker_count(tmp_path):
    photos = [tmp_path / f"p{k}.png" for k in range(3)]
    for k, path in enumerate(photos):
        _picture(k).save(path)
    one = FootageClips(photos, clips=3, window=5, crop=None, settings=SMALL, seed=4, workers=0)
    two = FootageClips(photos, clips=3, window=5, crop=None, settings=SMALL, seed=4, workers=2)
    assert torch.equal(one.blur, two.blur) and torch.equal(one.sharp, two.sharp)
    blur, sharp, record = render_clip(photos, 2, 4, SMALL)
    assert torch.equal(blur, one.blur[2]) and record == one.records[2]
    other, _, _ = render_clip(photos, 2, 5, SMALL)
    assert not torch.equal(other, blur)


def test_photos_under_twice_the_frame_size_are_skipped(tmp_path):
    small, large = tmp_path / "small.png", tmp_path / "large.png"
    _picture(0, (120, 200)).save(small)
    _picture(1, (128, 200)).save(large)
    assert usable_photos([small, large], (64, 64)) == [large]
    with pytest.raises(ValueError, match="make photos"):
        FootageClips([small], clips=1, window=5, crop=None, settings=SMALL)


def test_compression_changes_the_blurry_frames_only_a_little():
    frames = torch.from_numpy(np.asarray(_picture(3, (64, 96)), dtype=np.float32) / 255).permute(2, 0, 1)
    clip = frames.expand(5, -1, -1, -1).contiguous()
    clean = replace(FootageSettings(), noise=False)
    out, record = degrade_blurry_frames(clip, np.random.default_rng(0), clean)
    assert record["codec"] in ("libx264", "libx265") and 18 <= record["crf"] <= 30
    assert 22 < _psnr(out, clip) < 45
    untouched, _ = degrade_blurry_frames(clip, np.random.default_rng(0), replace(clean, compress=False))
    assert torch.equal(untouched, clip)


def test_odd_frames_are_cut_to_an_even_size_first():
    with pytest.raises(ValueError, match="even_size"):
        degrade_blurry_frames(torch.rand(3, 3, 33, 32), np.random.default_rng(0))
    blur, sharp = even_size(torch.rand(3, 3, 33, 31), torch.rand(3, 3, 33, 31))
    assert blur.shape[-2:] == sharp.shape[-2:] == (32, 30)


def test_degraded_procedural_clips_keep_their_sharp_frames():
    plain = RenderedClips(clips=2, frames=5, size=64, window=5, crop=None, seed=3, workers=1)
    degraded = RenderedClips(clips=2, frames=5, size=64, window=5, crop=None, seed=3, workers=1,
                             degrade=FootageSettings())
    assert torch.equal(plain.sharp, degraded.sharp)
    assert 20 < _psnr(degraded.blur, plain.blur) < 45


def test_degraded_folder_windows_change_the_blurry_frames_only(tmp_path):
    video = tmp_path / "test" / "clip"
    for folder in ("blur", "sharp"):
        (video / folder).mkdir(parents=True)
        for t in range(5):
            _picture(t, (64, 64)).save(video / folder / f"{t:03d}.png")
    plain = VideoWindowDataset(find_videos(tmp_path, "test"), window=5, crop=None, augment=False)
    degraded = VideoWindowDataset(find_videos(tmp_path, "test"), window=5, crop=None, augment=False,
                                  degrade=FootageSettings())
    torch.manual_seed(0)
    blur, sharp = degraded[2]
    plain_blur, plain_sharp = plain[2]
    assert torch.equal(sharp, plain_sharp)
    assert 15 < _psnr(blur, plain_blur) < 45


def test_mixed_clips_draw_the_first_set_for_its_share():
    first = torch.utils.data.TensorDataset(torch.zeros(7))
    second = torch.utils.data.TensorDataset(torch.ones(5))
    mixed = MixedClips(first, second, 0.3)
    values = [float(mixed[k][0]) for k in range(len(mixed))]
    assert np.mean(values) == pytest.approx(0.7)


def test_an_unknown_data_kind_is_refused():
    with pytest.raises(ValueError, match="--data-kind"):
        TrainConfig(data_kind="photos")
