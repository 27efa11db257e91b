"""The training loop: it learns, it resumes bit-exactly, its pieces follow the paper's recipe."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from vsarvo.model import ARVoConfig
from vsarvo.training.eval import Video, evaluate
from vsarvo.training.data.rendered import RenderedClips
from vsarvo.training.config import TrainConfig
from vsarvo.training.loop import Trainer
from vsarvo.training.losses import restoration_losses, restored_sequence, sharp_sequence

MODEL = ARVoConfig.tiny(channels=8, encoder_width=4, recon_width=8, recon_blocks=1, flow_width=0.1, disc_width=4)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    cache = tmp_path_factory.mktemp("clips") / "clips.pt"
    return RenderedClips(clips=2, frames=6, size=72, window=5, crop=64, seed=3, cache=cache)


def make_trainer(tmp_path, clips, **overrides) -> Trainer:
    cfg = TrainConfig(model=MODEL, out_dir=str(tmp_path), batch_size=2, steps=4, lr=1e-3, checkpoint_every=2,
                      validate_every=1000, log_every=1000, seed=5, **overrides)
    return Trainer(cfg, dataset=clips, val_dataset=None)


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(tmp_path, clips):
    trainer = make_trainer(tmp_path, clips, adv_weight=0.0)
    trainer.dataset = torch.utils.data.Subset(clips, [0])  # one window: the batch is the same every step
    for group in trainer.opt.param_groups:
        group["lr"] = 3e-3
    trainer.cfg.lr = 3e-3
    losses = [trainer.step()["pixel"] for _ in range(10)]
    assert min(losses[-3:]) < 0.95 * losses[0]  # measured: 0.0665 -> 0.0617 in 10 steps


def test_resume_continues_bit_exactly(tmp_path, clips):
    straight = make_trainer(tmp_path / "a", clips)
    for _ in range(4):
        straight.step()

    first = make_trainer(tmp_path / "b", clips)
    for _ in range(2):
        first.step()
    checkpoint = first.save_checkpoint()
    resumed = make_trainer(tmp_path / "c", clips)
    resumed.load_checkpoint(checkpoint)
    assert resumed.step_index == 2
    for _ in range(2):
        resumed.step()
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert straight.history["loss"] == resumed.history["loss"]


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path, clips):
    trainer = make_trainer(tmp_path / "a", clips)
    path = trainer.save_checkpoint()
    other = Trainer(TrainConfig(model=MODEL.__class__.tiny(channels=12, flow_width=0.1), out_dir=str(tmp_path / "b")),
                    dataset=clips, val_dataset=None)
    with pytest.raises(ValueError, match="model config"):
        other.load_checkpoint(path)


def test_single_stage_curriculum_runs_one_pass_then_two(tmp_path, clips):
    trainer = make_trainer(tmp_path, clips, stage1_steps=1)
    assert [trainer.stages_at(0), trainer.stages_at(1)] == [1, 2]


def test_learning_rate_halves_every_n_epochs(tmp_path, clips):
    trainer = make_trainer(tmp_path, clips, lr_halve_epochs=2)
    per_epoch = trainer.steps_per_epoch()
    assert trainer.lr_at(0) == pytest.approx(1e-3)
    assert trainer.lr_at(2 * per_epoch) == pytest.approx(5e-4)
    assert trainer.lr_at(4 * per_epoch) == pytest.approx(2.5e-4)


def test_discriminator_sees_stage1_neighbours_around_the_stage2_centre():
    stage1 = torch.arange(3.0).view(1, 3, 1, 1, 1).expand(1, 3, 3, 2, 2)
    stage2 = torch.full((1, 1, 3, 2, 2), 9.0)
    seq = restored_sequence([stage1, stage2])
    assert seq[0, :, 0, 0, 0].tolist() == [0.0, 9.0, 2.0]
    sharp = torch.arange(5.0).view(1, 5, 1, 1, 1)
    assert sharp_sequence(sharp)[0, :, 0, 0, 0].tolist() == [1.0, 2.0, 3.0]


def test_outputs_are_safetensors_curves_and_history(tmp_path, clips):
    trainer = make_trainer(tmp_path, clips)
    trainer.fit()
    assert (tmp_path / "arvo.safetensors").is_file() and (tmp_path / "curves.png").stat().st_size > 1000
    meta = json.loads((tmp_path / "arvo.json").read_text())
    assert meta["train_steps"] == 4 and meta["config"] == MODEL.to_dict()


def test_evaluation_scores_identity_as_the_input(tmp_path, clips):
    trainer = make_trainer(tmp_path, clips)
    with torch.no_grad():
        trainer.model.stage.reconstruction.decode_full[-1].weight.zero_()  # output = blurry reference
    blur, sharp = clips.blur[0], clips.sharp[0]
    report = evaluate(trainer.model, [Video("v", blur, sharp)], crop=4)
    assert report["gain_db"] == pytest.approx(0.0, abs=1e-6)
    assert report["frames_worse"] == 0.0
    assert report["model"]["frames"] == blur.shape[0]


def test_pixel_loss_switches_between_l1_and_squared_error():
    torch.manual_seed(0)

    class Shift(torch.nn.Module):  # a stand-in "model": the middle frame plus 0.1, for every stage pass
        def forward(self, frames, *, all_stages, stages):
            return [frames[:, 1:-1] + 0.1] if stages == 1 else None

    blur, sharp = torch.rand(2, 3, 3, 8, 8), torch.rand(2, 3, 3, 8, 8)
    target = sharp[:, 1:2]
    l1, _ = restoration_losses(Shift(), blur, sharp, 1, "l1")
    mse, _ = restoration_losses(Shift(), blur, sharp, 1, "mse")
    assert l1.item() == pytest.approx(torch.nn.functional.l1_loss(blur[:, 1:2] + 0.1, target).item())
    assert mse.item() == pytest.approx(torch.nn.functional.mse_loss(blur[:, 1:2] + 0.1, target).item())
    with pytest.raises(ValueError, match="pixel_loss must be one of"):
        TrainConfig(model=ARVoConfig.tiny(), pixel_loss="ssim")


def test_best_weights_compare_scores_of_one_validation_set_only(tmp_path, clips):
    first = make_trainer(tmp_path / "a", clips, val_clips=4)
    first.step_index = 2
    first.history["val_psnr"] = [[1, 40.0], [2, 41.0]]  # scores on a 4-clip validation set
    checkpoint = first.save_checkpoint()

    same = make_trainer(tmp_path / "b", clips, val_clips=4)
    same.load_checkpoint(checkpoint)
    assert same.val_since == 0  # same set: the step-2 score of 41 dB is still the one to beat

    bigger = make_trainer(tmp_path / "c", clips, val_clips=8)
    bigger.cfg.validate_every, bigger.cfg.steps = 1, 3
    bigger.val_dataset = torch.utils.data.Subset(clips, [0])
    bigger.load_checkpoint(checkpoint)
    assert bigger.val_since == 2
    bigger.fit()  # one step, validated: the first score on the new set is the best, however low
    assert bigger.history["val_psnr"][-1][1] < 41.0
    assert (tmp_path / "c" / "best.safetensors").is_file()


def test_checkpoints_with_the_old_l1_history_key_load_under_pixel(tmp_path, clips):
    trainer = make_trainer(tmp_path / "a", clips)
    trainer.step()
    state = trainer.state()
    state["history"]["l1"] = state["history"].pop("pixel")
    torch.save(state, tmp_path / "old.pt")
    resumed = make_trainer(tmp_path / "b", clips)
    resumed.load_checkpoint(tmp_path / "old.pt")
    assert "l1" not in resumed.history and len(resumed.history["pixel"]) == 1


def test_every_model_switch_is_reachable_from_the_command_line():
    import argparse
    import dataclasses

    from vsarvo.training.train import add_model_arguments, model_config_from_args

    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    for field in dataclasses.fields(ARVoConfig):
        assert any(a.dest == field.name for a in parser._actions), f"no flag for ARVoConfig.{field.name}"
    args = parser.parse_args(["--preset", "tiny", "--no-frame-features", "--no-aligned-skip"])
    config = model_config_from_args(args)
    assert not config.frame_features and not config.aligned_skip
    assert model_config_from_args(parser.parse_args(["--preset", "tiny"])) == ARVoConfig.tiny()


def test_a_checkpoint_without_amp_resumes_under_amp(tmp_path, clips):
    # A CPU (or --no-amp) run saves an empty GradScaler state; a CUDA run with AMP must still resume it.
    # GradScaler("cpu") stands in for the enabled CUDA scaler, which cannot be built without a GPU.
    checkpoint = make_trainer(tmp_path / "a", clips).save_checkpoint()
    assert torch.load(checkpoint, weights_only=True)["scaler"] == {}
    resumed = make_trainer(tmp_path / "b", clips)
    resumed.scaler = torch.amp.GradScaler("cpu", enabled=True)
    resumed.load_checkpoint(checkpoint)
    assert resumed.scaler.is_enabled() and resumed.step_index == 0


def test_time_limit_stops_with_a_checkpoint_and_outputs(tmp_path, clips):
    trainer = make_trainer(tmp_path, clips, time_limit=1e-6)
    trainer.cfg.steps = trainer.cfg.checkpoint_every = 1000
    trainer.fit()
    assert trainer.step_index == 1  # the first step is already past the limit
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert saved["step"] == 1
    assert (tmp_path / "arvo.safetensors").is_file() and (tmp_path / "curves.png").is_file()


def test_without_a_time_limit_the_run_goes_to_its_last_step(tmp_path, clips):
    trainer = make_trainer(tmp_path, clips, time_limit=0.0)
    trainer.cfg.steps = 3
    trainer.fit()
    assert trainer.step_index == 3


def test_per_clip_seeds_render_the_same_clips_in_any_number_of_processes():
    kwargs = dict(clips=3, frames=5, size=40, window=5, crop=None, seed=7)
    in_process = RenderedClips(workers=1, **kwargs)
    pooled = RenderedClips(workers=2, **kwargs)  # two spawned processes
    assert torch.equal(in_process.blur, pooled.blur) and torch.equal(in_process.sharp, pooled.sharp)
    assert not torch.equal(in_process.sharp[0], in_process.sharp[1])
    # workers=0 keeps the single-generator stream the shipped weights were trained on: another set.
    assert not torch.equal(RenderedClips(workers=0, **kwargs).sharp, in_process.sharp)


def test_a_crop_below_the_model_minimum_is_refused_before_rendering():
    with pytest.raises(ValueError, match="crop must be at least 64"):
        TrainConfig(model=MODEL, crop=48)


def test_torchrun_trains_two_processes_and_both_stop_at_the_time_limit(tmp_path):
    # DistributedDataParallel over gloo on the CPU: the same code path as torchrun on several GPUs (nccl).
    out = tmp_path / "run"
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "vsarvo.training.train", "--channels", "8", "--encoder-width", "4", "--recon-width", "8",
            "--recon-blocks", "1", "--flow-width", "0.1", "--disc-width", "4", "--out-dir", str(out),
            "--procedural-clips", "2", "--procedural-frames", "5", "--procedural-size", "72", "--crop", "64",
            "--batch-size", "1", "--steps", "50", "--val-clips", "1", "--validate-every", "100",
            "--checkpoint-every", "100", "--threads", "1", "--time-limit", "0.001"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "time limit of 0 s reached at step 1" in done.stderr
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 1


def test_a_checkpoints_model_exports_to_the_weights_the_trainer_holds(tmp_path, clips):
    from vsarvo.training.checkpoint import main as checkpoint_main
    from vsarvo.weights import load_model, read_metadata

    trainer = make_trainer(tmp_path, clips)
    trainer.step()
    trainer.step()
    saved = trainer.save_checkpoint()
    out = tmp_path / "exported.safetensors"
    assert checkpoint_main(["weights", str(saved), str(out)]) == 0
    loaded = load_model(out).eval()
    trainer.model.eval()
    frames = torch.rand(1, 5, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        # The trainer runs channels-last: the same weights, another convolution order (float rounding only).
        assert torch.allclose(loaded(frames), trainer.model(frames), atol=1e-5)
    assert read_metadata(out)["train_steps"] == 2
    with pytest.raises(SystemExit):
        checkpoint_main(["weights", str(tmp_path / "missing.pt"), str(out)])
