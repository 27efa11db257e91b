"""The model card is rendered from measured files only; validation scores from one set only; its
Reproduce table has one row per recorded segment; the committed card is a fresh render."""
from __future__ import annotations

import json
from pathlib import Path

from vsarvo.training.model_card import SHIPPED_RUN, render, render_run
from vsarvo.training.segments import append_segment, read_segments
from vsarvo.training.segments_from_log import segments_from_log

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def _segment(name: str, start: int, end: int, device: str = "cpu", **extra) -> dict:
    return {"name": name, "kind": "train", "start": start, "end": end, "device": device, "command": None,
            "config": None, "best_val": None, "val_set": None, "source": "test", **extra}


def _card(tmp_path: Path, flow: dict | None = None, segments: list[dict] | None = None, **train_config) -> str:
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
    records = tmp_path / "segments.jsonl"
    records.unlink(missing_ok=True)
    for record in segments or [_segment("a", 0, 3000), _segment("b", 3000, 6000, device="cuda (NVIDIA H200)")]:
        append_segment(records, record)
    return render(weights_json=weights, train_config=cfg, history=history, report=report, segments=records,
                  ablation=None, commands={"eval": "arvo eval", "card": "card"},
                  validation=("set B", 3700), flow=_write(tmp_path / "f.json", flow) if flow else None)


def test_card_reports_the_measured_figures_and_one_validation_set(tmp_path: Path) -> None:
    text = _card(tmp_path)
    assert "(set B, scored since step 3700): 29.10 dB at step 3800, best 29.40 dB at step 3900" in text
    assert "40.00" not in text  # the score on the earlier validation set is not comparable
    assert "**+1.00 dB**" in text and "do not meet it yet" in text
    assert "SHA-256 `f00`" in text
    assert "up to step 0, then the two progressive stages" in text and "the flow net stays frozen" in text
    assert "+ 0.01 x adversarial loss" in text


def test_card_says_where_each_part_of_the_training_ran(tmp_path: Path) -> None:
    text = _card(tmp_path)
    assert "in 2 segments joined by `--resume`: steps 0-3000 on cpu, 3000-6000 on cuda (NVIDIA H200)" in text
    assert "on a CPU" not in text


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


def test_reproduce_table_has_one_row_per_segment_with_its_change_and_command(tmp_path: Path) -> None:
    segments = [
        _segment("first", 0, 4000, command="arvo train --lr 1e-4 --steps 4000", best_val=[3900, 29.4]),
        _segment("second", 4000, 5000, command="arvo train --lr 5e-5 --steps 6000 --resume a.pt"),
        _segment("trial", 4000, 4200, kind="side", command="arvo train --lr 1e-3"),
        _segment("third", 5000, 6000, device="cuda (NVIDIA H200)", command="arvo train --lr 5e-5 --batch-size 64"),
    ]
    text = _card(tmp_path, segments=segments)
    table = text.split("<table>")[1].split("</table>")[0]
    rows = table.split("<tr><td>")[1:]
    assert [row.split("</td>")[0] for row in rows] == ["first", "second (shipped weights: step 5000)", "trial", "third"]
    assert "<td>29.40 dB at step 3900</td>" in rows[0] and "<td>first segment</td>" in rows[0]
    assert "<td>--lr 5e-5</td>" in rows[1] and "arvo train --lr 5e-5 --steps 6000 --resume a.pt" in rows[1]
    assert "side run, not in the shipped weights; --lr 1e-3" in rows[2]
    assert "<td>on cuda (NVIDIA H200)</td>" in rows[3]


def test_the_log_converter_reads_steps_best_validation_device_and_command() -> None:
    log = "\n".join([
        "=== runs/first.log",
        "step 10/100 stages 1 loss 0.1 l1 0.1 adv 0.000 lr 1.00e-04 1.0 it/s ETA 1 min",
        "step 10: validation PSNR 28.50 dB",
        "step 20: validation PSNR 28.40 dB",
        "# segments below ran on one NVIDIA H200 (fp32), batch 64",
        "# segment: steps 20-40 (run H, best validation 99.99 dB): arvo train --resume x.pt --lr 2e-4 (effective 1e-4)",
        "resumed at step 20",
        "step 30: validation PSNR 29.00 dB",
        "step 40: validation PSNR 28.90 dB",
    ])
    first, second = segments_from_log(log)
    assert (first["name"], first["start"], first["end"], first["best_val"], first["device"], first["command"]) == \
        ("first", 0, 20, [10, 28.5], "cpu", None)
    assert (second["name"], second["start"], second["end"], second["best_val"], second["device"]) == \
        ("run H", 20, 40, [30, 29.0], "one NVIDIA H200")
    assert second["command"] == "arvo train --resume x.pt --lr 2e-4"  # the note's own figures are not taken


def test_committed_segments_list_every_segment_of_the_shipped_run() -> None:
    records = read_segments(ROOT / SHIPPED_RUN / "segments.jsonl")
    log = (ROOT / SHIPPED_RUN / "train_log.txt").read_text()
    assert records == segments_from_log(log)
    lineage = [r for r in records if r["kind"] != "side"]
    assert lineage[0]["start"] == 0 and all(a["end"] >= b["start"] for a, b in zip(lineage, lineage[1:]))
    card = (ROOT / "vsarvo/weights/MODEL_CARD.md").read_text()
    assert card.count("<tr><td>") == len(records)
    assert lineage[-1]["device"] != "cpu" and "on a CPU" not in card


def test_committed_model_card_is_a_fresh_render_of_the_committed_files() -> None:
    fresh = render_run(ROOT / SHIPPED_RUN, weights_json=ROOT / "vsarvo/weights/arvo_tiny.json",
                       checkpoint=ROOT / SHIPPED_RUN / "rolling.pt")
    committed = (ROOT / "vsarvo/weights/MODEL_CARD.md").read_text()
    assert committed == fresh, "regenerate it: python -m vsarvo.training.model_card"
    assert max(len(line) for line in committed.splitlines()) < 400
