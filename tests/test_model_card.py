"""The model card is rendered from measured files only; validation scores from one set only; its
Reproduce table has one row per recorded segment; the committed card is a fresh render."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from vsarvo.training.model_card import (BLUR_CLASS_ROWS, SHIPPED_RUN, comparison_table, help_harm_sentence, render,
                                        render_run)
from vsarvo.training.segments import append_segment, read_segments
from vsarvo.training.segments_from_log import segments_from_log

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def _segment(name: str, start: int, end: int, device: str = "cpu", **extra) -> dict:
    return {"name": name, "kind": "train", "start": start, "end": end, "device": device, "command": None,
            "config": None, "best_val": None, "val_set": None, "source": "test", **extra}


def _card(tmp_path: Path, flow: dict | None = None, segments: list[dict] | None = None, realistic: Path | None = None,
          card_dir: Path | None = None, report_dir: Path | None = None, **train_config) -> str:
    weights = _write(tmp_path / "w.json", {"config": {"channels": 16}, "config_digest": "abc", "sha256": "f00",
                                           "train_steps": 5000})
    cfg = _write(tmp_path / "cfg.json", {"procedural_clips": 96, "procedural_frames": 9, "procedural_size": 160,
                                         "stage1_steps": 0, "freeze_flow_steps": 12000, "steps": 12000, "adv_weight": 0.01, "lr": 3e-4,
                                         "lr_halve_epochs": 200, "batch_size": 8, "crop": 96, "clip_grad": 1.0,
                                         "seed": 0, "model": {"stages": 2}, **train_config})
    history = _write(tmp_path / "h.json", {"val_psnr": [[100, 40.0], [3800, 29.1], [3900, 29.4], [4000, 29.2]]})
    scores = {"frames": 120, "mean_psnr": 28.0, "mean_ssim": 0.9, "mean_flicker": 1.5}
    report = _write((report_dir or tmp_path) / "r.json", {"model": scores, "input": {**scores, "mean_psnr": 27.0},
                                          "crop": 4, "gain_db": 1.0, "frames_worse": 0.01, "static_psnr": 36.0})
    records = tmp_path / "segments.jsonl"
    records.unlink(missing_ok=True)
    for record in segments or [_segment("a", 0, 3000), _segment("b", 3000, 6000, device="cuda (NVIDIA H200)")]:
        append_segment(records, record)
    return render(weights_json=weights, train_config=cfg, history=history, report=report, segments=records,
                  ablation=None, commands={"eval": "arvo eval", "card": "card", "realistic_eval": "arvo eval --set realistic"},
                  validation=("set B", 3700), flow=_write(tmp_path / "f.json", flow) if flow else None,
                  realistic=realistic, card_dir=card_dir)


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
    assert [row.split("</td>")[0] for row in rows] == ["first", "second (shipped weights: step 5000)", "trial",
                                                        "third (after the shipped weights: the rolling checkpoint only)"]
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
    meta = json.loads((ROOT / "vsarvo/weights/arvo_tiny.json").read_text())
    from vsarvo.training.model_card import after_shipped

    shipped_lineage = [r for r in lineage if not after_shipped(r, meta)]
    assert shipped_lineage[-1]["device"] != "cpu" and "on a CPU" not in card


def test_committed_model_card_is_a_fresh_render_of_the_committed_files() -> None:
    fresh = render_run(ROOT / SHIPPED_RUN, weights_json=ROOT / "vsarvo/weights/arvo_tiny.json",
                       checkpoint=ROOT / SHIPPED_RUN / "rolling.pt")
    committed = (ROOT / "vsarvo/weights/MODEL_CARD.md").read_text()
    assert committed == fresh, "regenerate it: python -m vsarvo.training.model_card"
    assert max(len(line) for line in committed.splitlines()) < 400


def _realistic(gains: dict[str, float]) -> dict:
    """An eval_realistic.json-shaped report whose blur classes have the given mean gains."""
    by_class = {name: {"frames": 6, "input_psnr": 30.0 + k, "model_psnr": 30.0 + k + gain, "input_ssim": 0.8,
                       "model_ssim": 0.81, "gain_db": gain, "frames_worse": 0.5 if gain < 0 else 0.0}
                for k, (name, gain) in enumerate(gains.items())}
    record = {"blur_class": "none", "duty": 0.5, "crf": 23, "codec": "libx264"}
    return {"set": {"photos": 2, "clips_per_photo": 3, "frames": 7, "size": 96, "seed": 1}, "crop": 4,
            "scored_frames": "interior", "videos": {f"p/{i}": {"record": record} for i in range(6)}, "frames": 18,
            "input_psnr": 31.25, "model_psnr": 31.5, "input_ssim": 0.8, "model_ssim": 0.81, "gain_db": 0.25,
            "frames_worse": 0.4, "by_class": by_class}


def test_realistic_table_holds_the_committed_reports_figures() -> None:
    real = json.loads((ROOT / SHIPPED_RUN / "eval_realistic.json").read_text())
    rep = json.loads((ROOT / SHIPPED_RUN / "report.json").read_text())
    rows = {line.split(" | ")[0].strip("| "): line.strip("|").split(" | ")[1:] for line in comparison_table(rep, real)[2:]}
    expected = {"realistic, all": real, **{f"realistic, {BLUR_CLASS_ROWS[n]}": c for n, c in real["by_class"].items()}}
    for name, figures in expected.items():
        frames, inp, out, gain, inp_ssim, out_ssim, worse = (cell.strip() for cell in rows[name])
        assert int(frames) == figures["frames"]
        assert float(inp) == round(figures["input_psnr"], 2) and float(out) == round(figures["model_psnr"], 2)
        assert abs(float(gain) - figures["gain_db"]) <= 0.01
        assert float(inp_ssim) == round(figures["input_ssim"], 4) and float(out_ssim) == round(figures["model_ssim"], 4)
        assert float(worse.rstrip(" %")) == round(100 * figures["frames_worse"], 1)
    assert rows["procedural"][1].strip() == f"{rep['input']['mean_psnr']:.2f}"
    card = (ROOT / "vsarvo/weights/MODEL_CARD.md").read_text()
    assert all(line in card for line in comparison_table(rep, real))


def test_help_harm_sentence_follows_the_sign_of_each_gain() -> None:
    harm = help_harm_sentence(_realistic({"none": -0.66, "mild": -0.04, "strong": 0.49})["by_class"])
    assert "lower PSNR on sharp (none) and mild-blur clips (-0.66 dB, -0.04 dB)" in harm
    assert "raise PSNR on strong-blur clips (+0.49 dB)" in harm
    helps = help_harm_sentence(_realistic({"none": 0.0, "mild": 0.3, "strong": 0.49})["by_class"])
    assert "raise PSNR on mild-blur and strong-blur clips (+0.30 dB, +0.49 dB)" in helps
    assert "leave PSNR unchanged on sharp (none) clips" in helps and "lower" not in helps


def test_card_judges_the_realistic_set_and_links_its_images(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    _write(run / "report.json", {})
    for image in ("before_after.png", "before_after_realistic.png"):
        (run / image).write_bytes(b"png")
    realistic = _write(run / "eval_realistic.json", _realistic({"none": -0.5, "mild": -0.1, "strong": 1.0}))
    text = _card(tmp_path, realistic=realistic, card_dir=tmp_path / "vsarvo/weights", report_dir=run)
    assert "| realistic, mild blur | 6 | 31.00 | 30.90 | -0.10 | 0.8000 | 0.8100 | 50.0 % |" in text
    assert "![realistic before/after](../../run/before_after_realistic.png)" in text
    assert "the mean gain is +0.25 dB, below the +2.0 dB target" in text
    assert "40.0 % of frames are made worse" in text and "mild-blur subset's mean PSNR drops by 0.10 dB" in text
    good = _write(run / "eval_realistic.json", {**_realistic({"mild": 0.5}), "gain_db": 2.5, "frames_worse": 0.0})
    assert "the shipped weights meet the bar" in _card(tmp_path, realistic=good, report_dir=run)


def test_card_says_the_weights_saw_no_footage_unless_a_segment_used_it(tmp_path: Path) -> None:
    assert "trained on procedural data only" in _card(tmp_path)
    footage = [_segment("a", 0, 3000), _segment("b", 3000, 6000, command="arvo train --data-kind footage --photos p")]
    text = _card(tmp_path, segments=footage)
    assert "procedural data only" not in text and "footage: b" in text


def test_photo_sources_come_from_the_catalogue_with_or_without_installed_photos(tmp_path: Path) -> None:
    from vsarvo.training.data.photo_catalogue import CATALOGUE
    from vsarvo.training.model_card import main

    run = tmp_path / "run"
    shutil.copytree(ROOT / SHIPPED_RUN, run, ignore=shutil.ignore_patterns("rolling.pt", "*.png"))
    versions = json.loads((run / "photo_versions.json").read_text())["versions"]
    manifest = tmp_path / "photos" / "manifest.json"
    manifest.parent.mkdir()
    _write(manifest, {"photos": [{"package": p, "version": v} for p, v in versions.items()]})
    cards = []
    for photos in (tmp_path / "photos", tmp_path / "not-installed"):
        out = tmp_path / f"card-{photos.name}.md"
        main(["--run", str(run), "--weights-json", str(ROOT / "vsarvo/weights/arvo_tiny.json"), "--checkpoint",
              str(tmp_path / "none.pt"), "--photos", str(photos), "--out", str(out)])
        cards.append(out.read_text())
    assert cards[0] == cards[1]
    assert f"| all | | | | {len(CATALOGUE)} |" in cards[0] and "| `mate-backgrounds` | Debian | " in cards[0]
    assert all(f"<li>{p.name}: " in cards[0] for p in CATALOGUE)


def test_every_image_the_committed_card_links_exists() -> None:
    card_dir = ROOT / "vsarvo/weights"
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (card_dir / "MODEL_CARD.md").read_text())
    assert {Path(link).name for link in links} == {"before_after.png", "before_after_realistic.png", "real_clip.png"}
    assert all((card_dir / link).resolve().is_file() for link in links)


def _ablation_variant(gain: float, clip_psnr: list[float], steps: int, rate: float) -> dict:
    return {"psnr": 28.0 + gain, "ssim": 0.9, "input_psnr": 28.0, "params": 250_000, "steps": steps, "samples_per_s": rate,
            "realistic": {"frames": 6, "gain_db": gain, "frames_worse": 0.5, "mild_gain_db": gain / 2,
                          "clip_psnr": {f"c{k}": p for k, p in enumerate(clip_psnr)}}}


def _shipped_run_copy(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(ROOT / SHIPPED_RUN, run, ignore=shutil.ignore_patterns("rolling.pt", "*.png"))
    (run / "ablation_realistic.json").unlink(missing_ok=True)
    return run


def test_card_says_the_realistic_ablation_has_not_run_and_gives_the_device_call(tmp_path: Path) -> None:
    from vsarvo.training.model_card import REALISTIC_ABLATION_CALL

    text = render_run(_shipped_run_copy(tmp_path), weights_json=ROOT / "vsarvo/weights/arvo_tiny.json", checkpoint=None)
    section = text[text.index("## Ablation (reduced budget)"):]
    assert f"The realistic ablation has not yet been run on a GPU. The device call is `{REALISTIC_ABLATION_CALL}`" in section
    assert "### Procedural clips (variants retrained on the CPU)" in section and "| full | 28.75 | 0.9114 | 28.33 |" in section
    assert "helped" not in section


def test_card_renders_the_realistic_ablation_and_judges_each_part(tmp_path: Path) -> None:
    run = _shipped_run_copy(tmp_path)
    budget = {"steps": 10**6, "seconds_per_variant": 71.6, "batch_size": 32, "crop": 96, "clips": 128,
              "footage_clips": 44, "footage_share": 0.6, "device": "cuda (NVIDIA H200)", "date": "2026-12-05 10:00 UTC",
              "command": "python -m vsarvo.training.ablate --budget 470 " + " ".join(["--test-clips 8"] * 30),
              "flow_from": "vsarvo/weights/arvo_tiny.safetensors", "flow_epe": 1.5, "zero_flow_epe": 5.3,
              "realistic_set": "18 clips of 7 frames at 160 px (realistic_set.npz)", "base_config": {"channels": 16, "levels": 3}}
    variants = {"full": _ablation_variant(1.0, [30.0, 31.0, 32.0, 33.0], 900, 410.0),
                "no-flow": _ablation_variant(0.5, [29.5, 30.4, 31.6, 32.5], 1400, 650.0),
                "levels-0": _ablation_variant(1.05, [29.7, 31.2, 31.8, 33.1], 1100, 500.0)}
    _write(run / "ablation_realistic.json", {"budget": budget, "variants": variants, "skipped": ["single-frame"]})
    text = render_run(run, weights_json=ROOT / "vsarvo/weights/arvo_tiny.json", checkpoint=None)
    section = text[text.index("## Ablation (reduced budget)"):]
    assert "scored on the realistic held-out clips; the full model: channels 16, levels 3." in section
    assert "72 s of training per variant, so a cheaper variant takes more steps, batch 32, 96px crops" in section
    assert "44 footage clips (60 % of each batch) and 128 procedural clips on cuda (NVIDIA H200), 2026-12-05 10:00 UTC" in section
    assert "| no-flow | 250,000 | 1400 | 650.0 | +0.50 | 50.0 % | +0.25 | 28.50 | +0.50 |" in section
    assert "- Flow alignment helped at this budget (full against no-flow: +0.50 dB per realistic clip" in section
    assert ("- Correlation volume made no clear difference at this budget (full against levels-0: +0.05 dB per realistic "
            "clip") in section and "It stays switchable: `--levels 0`." in section
    assert "switchable: `--no-use-flow`" not in section and "second progressive stage" not in section.lower()
    assert "Not run (the call's time ran out first): single-frame." in section
    assert "```sh\npython -m vsarvo.training.ablate --budget 470 --test-clips 8" in section
    assert max(len(line) for line in text.splitlines()) < 400
    assert "| full | 28.75 | 0.9114 | 28.33 |" in section


def test_card_says_when_the_shipped_files_flow_net_no_longer_aligns() -> None:
    from vsarvo.training.model_card import limits_section, shipped_flow_lines

    meta = {"sha256": "f00"}
    pretrained = {"epe_after": 1.82}
    drifted = {"sha256": "f00", "pairs": 32, "epe": 31.2, "zero_flow_epe": 5.32}
    lines = shipped_flow_lines(drifted, meta, "measure", pretrained)
    assert "end-point error 31.20 px on 32 held-out pairs, against 5.32 px" in lines[0]
    assert "it does not align the neighbours" in lines[0] and "it was at 1.82 px" in lines[0]
    aligned = {**drifted, "epe": 1.9}
    assert "does not align" not in shipped_flow_lines(aligned, meta, "measure", pretrained)[0]
    stale = shipped_flow_lines({**drifted, "sha256": "beef"}, meta, "measure")
    assert "of another weights file" in stale[0] and "31.20" not in stale[0]
    assert shipped_flow_lines(None, meta, "measure") == []
    cfg = {"procedural_clips": 1}
    limits = "\n".join(limits_section(meta, cfg, [], None, drifted))
    assert "does not align the neighbours" in limits
    assert "does not align" not in "\n".join(limits_section(meta, cfg, [], None, aligned))
    assert "does not align" not in "\n".join(limits_section(meta, cfg, [], None, {**drifted, "sha256": "beef"}))


def test_segments_after_the_shipped_file_are_listed_but_not_described_as_its_training(tmp_path: Path) -> None:
    from vsarvo.training.model_card import shipped_validation

    procedural, footage = "procedural set", "footage set"
    segments = [_segment("a", 0, 3000, val_set=None), _segment("b", 3000, 6000, val_set=procedural),
                _segment("later", 6000, 7000, val_set=footage,
                         command="arvo train --data-kind footage --resume rolling.pt")]
    text = _card(tmp_path, segments=segments)  # the shipped file is at step 5000
    assert "in 2 segments joined by `--resume`: steps 0-6000 on cpu." in text
    assert "later (after the shipped weights: the rolling checkpoint only)" in text
    assert "footage: later" not in text
    assert shipped_validation(segments[:2]) == (procedural, 3000)
    assert shipped_validation(segments) == (footage, 6000)
    assert shipped_validation([segments[0]]) is None
