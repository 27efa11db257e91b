"""The ablation command: one table, every variant trained at the same budget, flow variants sharing one
pretrained flow net."""
from __future__ import annotations

import json

import pytest

from vsarvo.training.ablate import main

SMALL = ["--channels", "8", "--encoder-width", "4", "--recon-width", "8", "--recon-blocks", "1", "--flow-width", "0.1"]


def test_ablation_table_lists_each_variant_and_the_shared_flow_pretraining(tmp_path):
    out = tmp_path / "ablation"
    status = main([*SMALL, "--out", str(out), "--variants", "full", "no-flow", "--steps", "1", "--batch-size", "1",
                   "--crop", "64", "--clips", "1", "--frames", "5", "--size", "64", "--test-clips", "1",
                   "--test-frames", "5", "--test-size", "64", "--flow-pretrain-steps", "1", "--threads", "1"])
    assert status == 0
    results = json.loads((out / "ablation.json").read_text())
    assert list(results["variants"]) == ["full", "no-flow"]
    assert results["variants"]["no-flow"]["config"]["use_flow"] is False
    budget = results["budget"]
    assert budget["flow_pretrain_steps"] == 1 and budget["flow_epe"] > 0 and budget["zero_flow_epe"] > 0
    table = (out / "ablation.md").read_text()
    assert "| full |" in table and "| no-flow |" in table
    assert "pretrained for 1 steps" in table


def _tiny_realistic_set(path):
    """Three 5-frame clips at 64 px (none, mild, strong), 8-bit values, saved as the device call carries it."""
    from vsarvo.training.eval import Video, procedural_test_set
    from vsarvo.training.realistic_eval import RealisticSet, save_realistic_set

    clips = procedural_test_set(clips=3, frames=5, size=64, seed=7)
    videos = [Video(f"p/clip_{k}_{cls}", (v.blur * 255).round() / 255, (v.sharp * 255).round() / 255)
              for k, (v, cls) in enumerate(zip(clips, ("none", "mild", "strong")))]
    records = {v.name: {"blur_class": v.name.rsplit("_", 1)[1]} for v in videos}
    return save_realistic_set(path, videos, records, RealisticSet(photos=1, clips_per_photo=3, frames=5, size=64))


def test_tiny_realistic_ablation_trains_from_shards_and_scores_every_variant_on_the_same_frames(tmp_path):
    from vsarvo.training.shards import write_shards

    footage = tmp_path / "footage"
    write_shards(footage, clips=2, frames=5, size=64, seed=3)
    saved = _tiny_realistic_set(tmp_path / "realistic_set.npz")
    out = tmp_path / "out"
    status = main([*SMALL, "--out", str(out), "--work", str(tmp_path / "work"), "--variants", "full", "stages-1",
                   "single-frame", "--steps", "2", "--budget", "600", "--score-reserve", "5", "--batch-size", "2",
                   "--crop", "64", "--footage-shards", str(footage), "--footage-share", "0.5", "--clips", "2",
                   "--frames", "5", "--size", "64", "--realistic-set", str(saved), "--test-clips", "1",
                   "--test-frames", "5", "--test-size", "64", "--threads", "1"])
    assert status == 0
    results = json.loads((out / "ablation.json").read_text())
    budget = results["budget"]
    assert budget["footage_clips"] == 2 and budget["footage_share"] == 0.5 and budget["device"] == "cpu"
    assert budget["seconds_per_variant"] > 0 and "--realistic-set" in budget["command"]
    assert budget["realistic_set"] == "3 clips of 5 frames at 64 px (realistic_set.npz)"
    variants = results["variants"]
    assert list(variants) == ["full", "stages-1", "single-frame"] and results["skipped"] == []
    # Interior frames of a 2-stage model: frame 2 of each 5-frame clip; the 1-stage variants score the same one.
    assert [v["realistic"]["frames"] for v in variants.values()] == [3, 3, 3]
    for v in variants.values():
        assert v["steps"] == 2 and v["samples_per_s"] > 0 and v["params"] > 0
        assert set(v["realistic"]["clip_psnr"]) == {"p/clip_0_none", "p/clip_1_mild", "p/clip_2_strong"}
        assert v["realistic"]["mild_gain_db"] == v["realistic"]["class_gain_db"]["mild"]
    parts = {p["part"]: p for p in results["parts"]}
    assert set(parts) == {"second progressive stage", "neighbouring frames (one stage)", "ARVo as a whole against one frame"}
    assert parts["second progressive stage"]["clips"] == 3
    table = (out / "ablation.md").read_text()
    assert "| variant | params | steps | samples/s | realistic gain (dB) | frames worse | mild gain (dB) |" in table
    assert "Does each part help on the realistic set at this budget?" in table
    assert (tmp_path / "work" / "full" / "arvo.safetensors").is_file() and not (out / "full").exists()
    assert not (tmp_path / "work" / "full" / "curves.png").exists()  # no plotting library needed on the device


def test_a_gpu_is_named_with_its_index_as_the_trainer_selects_it():
    import argparse

    import torch

    from vsarvo.training.ablate import _device

    assert _device(argparse.Namespace(device="cuda")) == torch.device("cuda", 0)
    assert _device(argparse.Namespace(device="cuda:1")) == torch.device("cuda", 1)
    assert _device(argparse.Namespace(device="cpu")) == torch.device("cpu")


def test_a_budget_too_small_for_the_variants_is_refused_with_the_fix(tmp_path, capsys):
    status = main([*SMALL, "--out", str(tmp_path / "out"), "--variants", "full", "--steps", "1", "--batch-size", "1",
                   "--crop", "64", "--clips", "1", "--frames", "5", "--size", "64", "--test-clips", "1",
                   "--test-frames", "5", "--test-size", "64", "--budget", "3", "--score-reserve", "5", "--threads", "1"])
    assert status == 2
    assert "give a larger budget" in capsys.readouterr().err
    assert not (tmp_path / "out" / "ablation.json").exists()


def test_the_single_frame_variant_sees_only_the_reference_frame_in_training_and_scoring(tmp_path):
    import torch

    from vsarvo.model import ARVo, ARVoConfig
    from vsarvo.training.ablate import ReferenceOnly, SingleFrameBank
    from vsarvo.training.shards import ShardBank, write_shards

    write_shards(tmp_path, clips=1, frames=5, size=64, seed=1)
    blur, sharp = SingleFrameBank(ShardBank(tmp_path, window=5, crop=64)).sample_batch(2, seed=4)
    assert torch.equal(blur, blur[:, 2:3].expand_as(blur)) and not torch.equal(sharp, sharp[:, 2:3].expand_as(sharp))
    torch.manual_seed(0)
    model = ARVo(ARVoConfig(channels=8, encoder_width=4, recon_width=8, recon_blocks=1, flow_width=0.1, stages=1)).eval()
    ref, noise = torch.rand(1, 3, 64, 64), torch.rand(2, 1, 3, 64, 64)
    with torch.no_grad():
        alone = ReferenceOnly(model).stage(noise[0], ref, noise[1])
        assert torch.equal(alone, model.stage(ref, ref, ref))
        assert not torch.allclose(alone, model.stage(noise[0], ref, noise[1]))


def test_a_part_helped_only_when_its_clip_differences_exceed_twice_their_standard_error():
    from vsarvo.training.ablation_table import markdown, part_verdicts

    def variant(psnrs):
        return {"realistic": {"clip_psnr": {f"c{k}": p for k, p in enumerate(psnrs)}}}

    verdicts = {v["part"]: v for v in part_verdicts({
        "full": variant([30.0, 31.0, 32.0, 33.0]), "no-flow": variant([29.5, 30.4, 31.6, 32.5]),
        "levels-0": variant([29.7, 31.2, 31.8, 33.1]), "stages-1": variant([30.6, 31.4, 32.7, 33.5])})}
    assert set(verdicts) == {"flow alignment", "correlation volume", "second progressive stage"}
    assert verdicts["flow alignment"]["verdict"] == "helped"
    assert abs(verdicts["flow alignment"]["difference_db"] - 0.5) < 1e-9
    assert verdicts["correlation volume"]["verdict"] == "no clear difference"
    assert verdicts["second progressive stage"]["verdict"] == "harmed"
    rows = {name: {"psnr": 28.0, "input_psnr": 27.5} for name in ("full",)}
    text = markdown({"budget": {"steps": 9, "batch_size": 2, "crop": 64, "clips": 3}, "variants": rows,
                     "parts": list(verdicts.values()), "skipped": ["no-flow"]})
    assert "- flow alignment (full against no-flow): +0.50 dB per clip" in text and ": helped." in text
    assert "Not run (the call's time ran out first): no-flow." in text and "| full | 0 | - | - | - |" in text


def _script(tmp_path, footage, realistic, *extra, **env):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    environ = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable, "GPU_ABLATION_FOOTAGE": str(footage),
               "GPU_ABLATION_REALISTIC": str(realistic), **env}
    return subprocess.run(["bash", "training/gpu_ablation.sh", *extra], cwd=root, env=environ, capture_output=True,
                          text=True, timeout=600)


TINY_CALL = [*SMALL, "--flow-pretrain-steps", "1", "--variants", "full", "single-frame", "--steps", "2", "--batch-size",
             "2", "--crop", "64", "--clips", "2", "--frames", "5", "--size", "64", "--render-workers", "1",
             "--test-clips", "1", "--test-frames", "5", "--test-size", "64", "--score-reserve", "5", "--threads", "1"]


@pytest.mark.slow
def test_the_device_script_runs_the_tiny_ablation_on_the_cpu_and_leaves_three_files(tmp_path):
    from vsarvo.training.shards import write_shards

    write_shards(tmp_path / "footage", clips=2, frames=5, size=64, seed=3)
    saved = _tiny_realistic_set(tmp_path / "realistic_set.npz")
    done = _script(tmp_path, tmp_path / "footage", saved, *TINY_CALL, GPU_ABLATION_BUDGET="200")
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["ablation.json", "ablation.md", "ablation_log.txt"]
    results = json.loads((out / "ablation.json").read_text())
    assert list(results["variants"]) == ["full", "single-frame"]
    assert results["budget"]["flow_pretrain_steps"] == 1 and results["budget"]["budget_s"] == 200
    assert [v["realistic"]["frames"] for v in results["variants"].values()] == [3, 3]
    log = (out / "ablation_log.txt").read_text()
    assert "gpu_ablation.sh: tree " in log and "realistic set " in log and "gpu_ablation.sh: exit 0 after" in log


def test_the_device_script_refuses_what_would_not_travel_or_is_missing(tmp_path):
    saved = _tiny_realistic_set(tmp_path / "realistic_set.npz")
    (tmp_path / "footage").mkdir()
    over = _script(tmp_path, tmp_path / "footage", saved, GPU_ABLATION_MAX_MIB="1")
    assert over.returncode == 2 and "is over 1 MiB: render" in over.stderr
    missing = _script(tmp_path, tmp_path / "nothing", saved)
    assert missing.returncode == 2 and "nothing is missing: render it here" in missing.stderr
    assert not (tmp_path / "out" / "ablation.json").exists()


def test_the_device_call_in_the_script_is_the_one_the_model_card_names():
    from pathlib import Path

    from vsarvo.training.model_card import REALISTIC_ABLATION_CALL

    header = (Path(__file__).resolve().parents[1] / "training/gpu_ablation.sh").read_text()
    assert f"#   {REALISTIC_ABLATION_CALL}\n" in header


@pytest.mark.slow
def test_flow_pairs_rendered_in_worker_processes_train_the_same_flow_net():
    import torch

    from vsarvo.training.ablate import pretrained_flow_net

    nets = [pretrained_flow_net(2, lr=4e-4, seed=5, width=0.1, device=torch.device("cpu"), workers=w) for w in (1, 2)]
    one, two = (net.state_dict() for net in nets)
    assert all(torch.equal(one[k], two[k]) for k in one)
    other = pretrained_flow_net(2, lr=4e-4, seed=6, width=0.1, device=torch.device("cpu")).state_dict()
    assert any(not torch.equal(one[k], other[k]) for k in one)
