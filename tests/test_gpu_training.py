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

from vsarvo.model import ARVoConfig
from vsarvo.training import gpu_segment
from vsarvo.training.checkpoint import read_checkpoint
from vsarvo.training.config import TrainConfig
from vsarvo.training.data.rendered import TRAIN_BLUR, _render
from vsarvo.training.loop import Trainer, autocast_dtype
from vsarvo.training.shards import ShardBank, read_shard, to_uint8, write_shard, write_shards

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
