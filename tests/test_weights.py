"""The weight file format and the shipped default weights."""
from __future__ import annotations

import json

import pytest
import torch

from vsarvo.model import ARVo, ARVoConfig
from vsarvo.weights import WeightsError, default_weights_path, file_sha256, load_model, read_metadata, save_model

SMALL = ARVoConfig.tiny(channels=8, encoder_width=4, recon_width=8, recon_blocks=1, flow_width=0.1, disc_width=4)


def test_save_and_load_round_trip_the_state_and_config(tmp_path):
    model = ARVo(SMALL)
    path = save_model(model, tmp_path / "w.safetensors", extra={"train_steps": 7})
    meta = read_metadata(path)
    assert meta["sha256"] == file_sha256(path) and meta["train_steps"] == 7
    loaded = load_model(path)
    assert loaded.config == SMALL and not loaded.training
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name


def test_missing_corrupt_or_mismatched_weights_raise_weights_error(tmp_path):
    with pytest.raises(WeightsError, match="weights not found"):
        load_model(tmp_path / "nope.safetensors")
    path = save_model(ARVo(SMALL), tmp_path / "w.safetensors")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load_model(path)
    other = save_model(ARVo(SMALL), tmp_path / "o.safetensors")
    meta = json.loads(other.with_suffix(".json").read_text())
    meta["config"]["channels"] = 12
    other.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="does not match its config"):
        load_model(other)


def test_shipped_weights_are_small_intact_and_load():
    path = default_weights_path()
    assert path.is_file(), "vsarvo/weights/arvo_tiny.safetensors must ship with the package"
    assert path.stat().st_size <= 25 * 2**20
    meta = read_metadata(path)
    assert meta["sha256"] == file_sha256(path)
    model = load_model()
    assert model.config.digest() == meta["config_digest"]


def test_shipped_weights_leave_a_sharp_static_clip_nearly_unchanged():
    from vsarvo.training.eval import evaluate, static_clip

    # The model card's acceptance check (>= 35 dB), on a smaller held-out sharp frame.
    report = evaluate(load_model(), [static_clip(frames=5, size=128)], crop=4)
    assert report["model"]["mean_psnr"] >= 35.0
