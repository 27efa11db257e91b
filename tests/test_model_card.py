"""The model card is rendered from measured files only; validation scores from one set only."""
from __future__ import annotations

import json
from pathlib import Path

from vsarvo.training.model_card import render


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def _card(tmp_path: Path, flow: dict | None = None, **train_config) -> str:
    weights = _write(tmp_path / "w.json", {"config": {"channels": 16}, "config_digest": "abc", "sha256": "f00",
                                           "train_steps": 5000})
    cfg = _write(tmp_path / "cfg.json", {"procedural_clips": 96, "procedural_frames": 9, "procedural_size": 160,
                                         "stage1_steps": 0, "freeze_flow_steps": 12000, "steps": 12000, "adv_weight": 0.01, "lr": 3e-4,
                                         "lr_halve_epochs": 200, "batch_size": 8, "crop": 96, "clip_grad": 1.0,
                                         "seed": 0, "model": {"stages": 2}, **train_config})
    history = _write(tmp_path / "h.json", {"val_psnr": [[100, 40.0], [3800, 29.1], [3900, 29.4], [4000, 29.2]]})
    scores = {"frames": 120, "mean_psnr": 28.0, "mean_ssim": 0.9, "mean_flicker": 1.5}
    report = _write(tmp_path / "r.json", {"model": scores, "input": {**scores, "mean_psnr": 27.0},
                                          "crop": 4, "gain_db": 1.0, "frames_worse": 0.01, "static_psnr": 36.0})
    return render(weights_json=weights, train_config=cfg, history=history, report=report, ablation=None,
                  commands={"train": "arvo train", "eval": "arvo eval", "card": "card"},
                  validation=("set B", 3700), flow=_write(tmp_path / "f.json", flow) if flow else None)


def test_card_reports_the_measured_figures_and_one_validation_set(tmp_path: Path) -> None:
    text = _card(tmp_path)
    assert "(set B, scored since step 3700): 29.10 dB at step 3800, best 29.40 dB at step 3900" in text
    assert "40.00" not in text  # the score on the earlier validation set is not comparable
    assert "**+1.00 dB**" in text and "do not meet it yet" in text
    assert "SHA-256 `f00`" in text
    assert "two-stage phase starts at step 0 and the flow net stays frozen" in text
    assert "+ 0.01 x adversarial loss" in text


def test_card_says_when_the_adversarial_term_is_off(tmp_path: Path) -> None:
    text = _card(tmp_path, adv_weight=0.0)
    assert "adversarial term (the paper: 0.1" in text and "switched off in the segment that produced the shipped file" in text
    assert "x adversarial loss" not in text


def test_card_reports_a_retrained_flow_net_against_zero_motion(tmp_path: Path) -> None:
    text = _card(tmp_path, flow={"zero_flow_epe": 5.32, "epe_before": 11.5, "epe_after": 1.82, "steps": 1200,
                                 "lr": 4e-4, "batch_size": 8, "size": 128, "fresh": True})
    assert "Flow net re-initialised and trained" in text and "for 1200 steps" in text
    assert "held-out pairs 1.82 px, against 5.32 px for predicting no motion" in text
    assert "Flow net: no supervised pretraining recorded" in _card(tmp_path)


def test_card_calls_a_halving_period_past_the_last_step_a_constant_rate(tmp_path: Path) -> None:
    # 96 clips x 5 windows / batch 8 = 60 steps per epoch: 200 epochs = 12000 steps, the run's last.
    assert "halved every 200 epochs" in _card(tmp_path, steps=12001)
    assert "lr 0.0003 (constant in that segment)" in _card(tmp_path, steps=12000)
