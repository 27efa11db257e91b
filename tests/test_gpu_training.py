"""The GPU training segment's pieces, run on the CPU: uint8 shards round-trip, the shard bank cuts true
crops, bf16 autocast runs, and the one-call segment resumes, trains and leaves files the device tool
can bring back (at most 8, each under 16 MiB) that join into a checkpoint continuing the step count."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vsarvo.model import ARVoConfig
from vsarvo.training import footage_shards, gpu_segment
from vsarvo.training.checkpoint import read_checkpoint
from vsarvo.training.config import TrainConfig
from vsarvo.training.data.degrade import FootageSettings
from vsarvo.training.data.footage import render_clip
from vsarvo.training.data.rendered import TRAIN_BLUR, _render
from vsarvo.training.loop import Trainer, autocast_dtype
from vsarvo.training.shards import (MixedShardBank, ShardBank, encode_shard, read_shard, to_uint8, write_shard,
                                    write_shards)

MODEL = ARVoConfig.tiny(channels=8, encoder_width=4, recon_width=8, recon_blocks=1, flow_width=0.1, disc_width=4)


def test_shards_round_trip_the_rendered_clips_exactly(tmp_path):
    paths = write_shards(tmp_path, clips=3, frames=5, size=64, seed=7, workers=1, per_shard=2)
    assert [p.name for p in paths] == ["shard_00000.npz", "shard_00001.npz"]
    blur = np.concatenate([read_shard(p)[0] for p in paths])
    sharp = np.concatenate([read_shard(p)[1] for p in paths])
    rendered = list(_render(3, 5, 64, TRAIN_BLUR, "train", 7, 1))
    assert blur.dtype == np.uint8 and blur.shape == (3, 5, 3, 64, 64)
    np.testing.assert_array_equal(blur, to_uint8(torch.stack([b for b, _ in rendered])))
    np.testing.assert_array_equal(sharp, to_uint8(torch.stack([s for _, s in rendered])))


def _dihedral(x: np.ndarray) -> list[np.ndarray]:
    """The 8 flips/rotations of [..., H, W]."""
    turns = [np.rot90(x, k, axes=(-2, -1)) for k in range(4)]
    return turns + [t[..., ::-1] for t in turns]


def test_shard_bank_batches_are_crops_of_the_shards_under_one_of_8_flips(tmp_path):
    rng = np.random.default_rng(0)
    blur = rng.integers(0, 256, (2, 3, 3, 8, 8), dtype=np.uint8)
    write_shard(tmp_path / "shard_00000.npz", blur, 255 - blur)
    bank = ShardBank(tmp_path, window=2, crop=4)
    b, s = bank.sample_batch(6, seed=11)
    assert b.shape == (6, 2, 3, 4, 4) and b.dtype == torch.float32
    torch.testing.assert_close(s, 1 - b, atol=1e-6, rtol=0)  # sharp is cut where blur is
    again, _ = bank.sample_batch(6, seed=11)
    assert torch.equal(again, b)
    for sample in (b * 255).round().byte().numpy():
        candidates = [t for c in range(2) for f in range(2) for y in range(5) for x in range(5)
                      for t in _dihedral(blur[c, f:f + 2, :, y:y + 4, x:x + 4])]
        assert any(np.array_equal(sample, t) for t in candidates)


def test_shard_bank_takes_in_shards_written_later_and_refuses_an_empty_folder(tmp_path):
    with pytest.raises(ValueError, match="no shards"):
        ShardBank(tmp_path, window=2, crop=4)
    clip = np.zeros((1, 3, 3, 8, 8), np.uint8)
    write_shard(tmp_path / "shard_00000.npz", clip, clip)
    bank = ShardBank(tmp_path, window=2, crop=4)
    write_shard(tmp_path / "shard_00001.npz", clip, clip)
    assert bank.refresh() == 1 and bank.clips == 2


def test_precision_picks_the_autocast_dtype():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype(TrainConfig(model=MODEL), cpu) is None  # auto: fp32 on the CPU
    assert autocast_dtype(TrainConfig(model=MODEL), cuda) is torch.bfloat16
    assert autocast_dtype(TrainConfig(model=MODEL, precision="bf16"), cpu) is torch.bfloat16
    assert autocast_dtype(TrainConfig(model=MODEL, precision="bf16", amp=False), cuda) is None
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        autocast_dtype(TrainConfig(model=MODEL, precision="fp16"), cpu)


def _photo_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Two textured 96 px photos that the footage shards take as the train split (asked for by name)."""
    rng = np.random.default_rng(3)
    photos = []
    for i in range(2):
        texture = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
        photos.append(tmp_path / f"photo_{i}.png")
        Image.fromarray(texture).save(photos[-1])
    asked = []
    monkeypatch.setattr(footage_shards, "list_photos", lambda root, split: asked.append(split) or photos)
    return photos


def test_footage_shards_round_trip_the_rendered_clips_exactly_into_the_bank(tmp_path, monkeypatch):
    photos = _photo_root(tmp_path, monkeypatch)
    manifest = footage_shards.write_footage_shards(tmp_path, tmp_path / "out", max_bytes=2**24, clips=3, size=32,
                                                   frames=3, seed=5, per_shard=2)
    assert manifest["clips"] == 3 and manifest["split"] == "train" and len(manifest["records"]) == 3
    settings = FootageSettings(frames=3, size=(32, 32))
    clips = [render_clip(photos, i, 5, settings) for i in range(3)]
    bank = ShardBank(tmp_path / "out", window=3, crop=32)
    assert bank.loaded == ["shard_00000.npz", "shard_00001.npz"]
    np.testing.assert_array_equal(bank.blur.numpy(), np.stack([b.numpy() for b, _, _ in clips]))
    np.testing.assert_array_equal(bank.sharp.numpy(), np.stack([s.numpy() for _, s, _ in clips]))
    assert not np.array_equal(bank.blur.numpy(), bank.sharp.numpy())
    on_disk = sum(p.stat().st_size for p in (tmp_path / "out").glob("shard_*.npz"))
    assert on_disk == manifest["bytes"]


def test_footage_shards_stop_at_the_size_budget(tmp_path, monkeypatch):
    photos = _photo_root(tmp_path, monkeypatch)
    settings = FootageSettings(frames=3, size=(32, 32))
    clips = [render_clip(photos, i, 0, settings) for i in range(2)]
    two = len(encode_shard(*(np.stack([c[k].numpy() for c in clips]) for k in (0, 1)), compress=True))
    manifest = footage_shards.write_footage_shards(tmp_path, tmp_path / "out", max_bytes=two - 1, clips=4, size=32,
                                                   frames=3, per_shard=4)
    on_disk = sum(p.stat().st_size for p in (tmp_path / "out").glob("shard_*.npz"))
    assert manifest["clips"] == 1 and on_disk == manifest["bytes"] <= two - 1
    with pytest.raises(ValueError, match="already holds shards"):
        footage_shards.write_footage_shards(tmp_path, tmp_path / "out", max_bytes=two, clips=1, size=32, frames=3)
    with pytest.raises(ValueError, match="not one clip fits"):
        footage_shards.write_footage_shards(tmp_path, tmp_path / "tiny", max_bytes=100, clips=1, size=32, frames=3)


def _constant_bank(folder: Path, value: int, clips: int = 2) -> ShardBank:
    frames = np.full((clips, 3, 3, 8, 8), value, np.uint8)
    write_shard(folder / "shard_00000.npz", frames, frames, compress=True)
    return ShardBank(folder, window=2, crop=4)


def test_mixed_bank_draws_both_kinds_at_the_requested_share(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    mixed = MixedShardBank(_constant_bank(tmp_path / "a", 0), _constant_bank(tmp_path / "b", 255), share=0.6)
    first = 0
    for seed in range(20):
        blur, sharp = mixed.sample_batch(50, seed)
        assert blur.shape == (50, 2, 3, 4, 4) and torch.equal(blur, sharp)
        first += int((blur.flatten(1).amax(1) == 0).sum())
    assert mixed.drawn == [first, 1000 - first]
    assert 0.55 < first / 1000 < 0.65
    again = MixedShardBank(mixed.first, mixed.second, share=0.6)
    assert torch.equal(again.sample_batch(50, 3)[0], mixed.sample_batch(50, 3)[0])
    assert MixedShardBank(mixed.first, mixed.second, share=0.0).sample_batch(20, 1)[0].min() == 1
    with pytest.raises(ValueError, match="different windows"):
        MixedShardBank(mixed.first, ShardBank(tmp_path / "b", window=3, crop=4), share=0.5)


def _tiny_checkpoint(tmp_path: Path) -> Path:
    cfg = TrainConfig(model=MODEL, out_dir=str(tmp_path / "run"), batch_size=1, crop=64, procedural_clips=1,
                      procedural_size=64, procedural_frames=5, val_clips=1, validate_every=1, log_every=1,
                      adv_weight=0.0, steps=1)
    shards = tmp_path / "seed_shards"
    write_shards(shards, clips=1, frames=5, size=64, workers=1)
    trainer = Trainer(dataclasses.replace(cfg, shards=str(shards)))
    trainer.step()
    return trainer.save_checkpoint()


@pytest.mark.slow
def test_gpu_segment_resumes_trains_in_bf16_and_its_files_join_into_the_next_checkpoint(tmp_path):
    ckpt = _tiny_checkpoint(tmp_path)
    out = tmp_path / "OUT"
    code = gpu_segment.main(["run", "--resume", str(ckpt), "--out", str(out), "--budget", "1", "--reserve", "0",
                             "--batch-size", "2", "--crop", "64", "--precision", "bf16", "--no-compile",
                             "--device", "cpu", "--clips", "2", "--render-workers", "1", "--per-shard", "1",
                             "--work", str(tmp_path)])
    assert code == 0
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert 3 <= len(files) <= 8 and all(p.stat().st_size < 16 * 2**20 for p in files)
    record = json.loads((out / "segment.json").read_text())
    assert record["start"] == 1 and record["end"] > 1
    assert record["precision"] == "bfloat16" and record["samples_per_s"] > 0
    assert record["bf16_matmul_tflops"] > 0 and 0 < record["matmul_fraction"] < 1
    assert record["train_tflops_per_sample"] > 0 and record["gpu"] == "cpu"
    assert not list(tmp_path.glob("arvo-gpu-segment-*"))  # its scratch folder is gone
    run = tmp_path / "installed"
    run.mkdir()
    gpu_segment.join(out, tmp_path / "joined", run)
    assert read_checkpoint(run / "rolling.pt")["step"] == record["end"]
    assert (tmp_path / "joined" / "arvo.safetensors").is_file()
    assert json.loads((run / "segments.jsonl").read_text())["end"] == record["end"]


@pytest.mark.slow
def test_gpu_segment_with_carried_footage_shards_records_both_counts(tmp_path):
    ckpt = _tiny_checkpoint(tmp_path)
    carried = tmp_path / "carry"
    carried.mkdir()
    clips = np.random.default_rng(1).integers(0, 256, (3, 5, 3, 64, 64), dtype=np.uint8)
    write_shard(carried / "shard_00000.npz", clips, clips, compress=True)
    out = tmp_path / "OUT"
    code = gpu_segment.main(["run", "--resume", str(ckpt), "--out", str(out), "--budget", "1", "--reserve", "0",
                             "--batch-size", "8", "--crop", "64", "--precision", "bf16", "--no-compile",
                             "--device", "cpu", "--clips", "2", "--render-workers", "1", "--per-shard", "1",
                             "--work", str(tmp_path), "--carried-shards", str(carried), "--footage-share", "0.5"])
    assert code == 0
    record = json.loads((out / "segment.json").read_text())
    assert record["footage_clips"] == 3 and record["footage_share"] == 0.5
    assert record["footage_samples"] > 0 and record["procedural_samples"] > 0
    assert record["footage_samples"] + record["procedural_samples"] == 8 * (record["end"] - record["start"])
    assert "--carried-shards" in record["command"]


def test_join_refuses_parts_that_do_not_match_the_record(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "history.json").write_text("{}")
    out = tmp_path / "out"
    out.mkdir()
    record = gpu_segment.bundle(tmp_path / "run", out, part_bytes=1000)
    assert len(record["bundle_parts"]) >= 2
    (out / "segment.json").write_text(json.dumps(record))
    gpu_segment.join(out, tmp_path / "ok")
    assert (tmp_path / "ok" / "history.json").read_text() == "{}"
    (out / record["bundle_parts"][0]).write_bytes(b"x" * 1000)
    with pytest.raises(ValueError, match="SHA-256 differs"):
        gpu_segment.join(out, tmp_path / "bad")


@pytest.mark.slow
def test_a_checkpoint_trained_on_footage_resumes_on_a_device_without_photos_or_ffmpeg(tmp_path, monkeypatch):
    """The rolling checkpoint may come from a CPU segment on rendered footage (photos + ffmpeg); the device
    call trains it from shards, so neither is looked for."""
    from vsarvo.training.checkpoint import write_checkpoint

    ckpt = _tiny_checkpoint(tmp_path)
    state = read_checkpoint(ckpt)
    saved = json.loads(state["config"])
    saved.update(data_kind="footage", photos=str(tmp_path / "no_photos"), footage_clips=4)
    write_checkpoint(dict(state, config=json.dumps(saved)), ckpt)
    monkeypatch.setenv("PATH", str(tmp_path / "no_bin"))  # no ffmpeg either
    out = tmp_path / "OUT"
    code = gpu_segment.main(["run", "--resume", str(ckpt), "--out", str(out), "--budget", "1", "--reserve", "0",
                             "--batch-size", "2", "--crop", "64", "--no-compile", "--device", "cpu", "--clips", "2",
                             "--render-workers", "1", "--per-shard", "1", "--work", str(tmp_path)])
    assert code == 0
    record = json.loads((out / "segment.json").read_text())
    assert record["end"] > record["start"] == 1
    assert record["config"]["data_kind"] == "procedural"
