"""The attention probe reports what the correlation volume does, from weights and from checkpoints."""
from __future__ import annotations

import json

import pytest
import torch

from vsarvo.model import ARVoConfig
from vsarvo.model.arvo import ARVo
from vsarvo.training.attention import attention_report, main
from vsarvo.training.data.rendered import RenderedClips
from vsarvo.training.config import TrainConfig
from vsarvo.training.loop import Trainer

SMALL = dict(channels=8, encoder_width=4, recon_width=8, recon_blocks=1, flow_width=0.1, disc_width=4)


def test_raw_scores_on_fresh_features_are_uniform_and_cosine_scores_are_not():
    reports = {}
    for cosine in (False, True):
        torch.manual_seed(0)
        reports[cosine] = attention_report(ARVo(ARVoConfig.tiny(**SMALL, cosine_correlation=cosine)).eval(), size=96)
    for row in reports[False]["levels"]:
        assert row["entropy"] > 0.99 * row["uniform_entropy"] and row["spatial_std_ratio"] < 0.05
        assert row["temperature"] is None
    for row in reports[True]["levels"]:
        assert row["entropy"] < 0.95 * row["uniform_entropy"] and row["spatial_std_ratio"] > 0.1
        assert row["temperature"] == pytest.approx(10.0)
    assert [r["level"] for r in reports[True]["levels"]] == [1, 2, 3]


def test_a_model_without_a_volume_is_refused():
    with pytest.raises(ValueError, match="no correlation volume"):
        attention_report(ARVo(ARVoConfig.tiny(**SMALL, levels=0)).eval(), size=96)


def test_cli_reads_a_checkpoint_and_writes_json(tmp_path, capsys):
    clips = RenderedClips(clips=1, frames=5, size=72, window=5, crop=64, seed=3, cache=tmp_path / "clips.pt")
    trainer = Trainer(TrainConfig(model=ARVoConfig.tiny(**SMALL), out_dir=str(tmp_path / "run"), batch_size=1,
                                  steps=1), dataset=clips, val_dataset=None)
    checkpoint = trainer.save_checkpoint()
    assert main(["--checkpoint", str(checkpoint), "--size", "96", "--json", str(tmp_path / "a.json")]) == 0
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["cosine"] and len(report["levels"]) == 3
    assert "| 1 |" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(tmp_path / "missing.pt")])
