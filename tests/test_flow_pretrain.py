"""Retraining a checkpoint's flow net: the metric, what the rewritten checkpoint keeps, and resuming."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from vsarvo.model import ARVoConfig
from vsarvo.training.flow_pretrain import end_point_error, fit_flow, main, refine_checkpoint, render_pairs
from vsarvo.training.data.procedural import FLOW_PAIR_SETTINGS
from vsarvo.training.data.rendered import RenderedClips
from vsarvo.training.config import TrainConfig
from vsarvo.training.loop import Trainer

MODEL = ARVoConfig.tiny(channels=8, encoder_width=4, recon_width=8, recon_blocks=1, flow_width=0.1, disc_width=4)


class Oracle(nn.Module):
    """A 'flow net' that returns a fixed answer, to check the metric against known errors."""

    def __init__(self, answer: torch.Tensor) -> None:
        super().__init__()
        self.answer = answer
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, im1: torch.Tensor, im2: torch.Tensor) -> torch.Tensor:
        return self.answer[: im1.shape[0]]


@pytest.fixture(scope="module")
def pairs():
    return render_pairs(np.random.default_rng(4), 4, 64)


def test_end_point_error_is_zero_for_the_true_flow_and_the_mean_speed_for_none(pairs):
    im1, im2, flow, valid = pairs
    assert end_point_error(Oracle(flow), pairs, batch=4) == pytest.approx(0.0, abs=1e-6)
    speed = flow.norm(dim=1)[valid].mean().item()
    assert speed > 0.5  # the pairs do move
    assert end_point_error(None, pairs) == pytest.approx(speed, rel=1e-5)
    shifted = flow + torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)
    assert end_point_error(Oracle(shifted), pairs, batch=4) == pytest.approx(5.0, rel=1e-5)


def test_pairs_come_stacked_with_a_validity_mask():
    sharp = render_pairs(np.random.default_rng(0), 2, 64, mix=(FLOW_PAIR_SETTINGS,))
    assert [t.shape for t in sharp[:3]] == [(2, 3, 64, 64), (2, 3, 64, 64), (2, 2, 64, 64)]
    assert sharp[3].dtype == torch.bool and sharp[3].shape == (2, 64, 64)


def test_fit_flow_lowers_the_error_on_a_repeated_batch(pairs):
    from vsarvo.model.flow import PWCNet

    torch.manual_seed(0)
    net = PWCNet(width=0.1)
    history = fit_flow(net, 40, lr=1e-3, batch=4, size=64, log_every=1000, batches=lambda i: pairs)
    first, last = np.mean([e for _, e in history[:5]]), np.mean([e for _, e in history[-5:]])
    assert last < 0.9 * first


@pytest.fixture
def checkpoint(tmp_path):
    clips = RenderedClips(clips=1, frames=5, size=72, window=5, crop=64, seed=3, cache=tmp_path / "clips.pt")
    trainer = Trainer(TrainConfig(model=MODEL, out_dir=str(tmp_path / "run"), batch_size=1, steps=3,
                                  freeze_flow_steps=0), dataset=clips, val_dataset=None)
    trainer.step()
    return trainer.save_checkpoint(), clips


def test_refined_checkpoint_changes_only_the_flow_net_and_resumes(tmp_path, checkpoint):
    path, clips = checkpoint
    out = tmp_path / "refined.pt"
    report = refine_checkpoint(path, out, steps=2, lr=1e-3, batch=2, size=64, log_every=1000,
                               held_out=4)
    assert set(report) == {"zero_flow_epe", "epe_before", "epe_after"}
    before = torch.load(path, weights_only=True)
    after = torch.load(out, weights_only=True)
    changed = {k for k in before["model"] if not torch.equal(before["model"][k], after["model"][k])}
    assert changed and all(k.startswith("stage.flow.") for k in changed)
    assert after["step"] == before["step"]
    assert after["opt_d"]["state"].keys() == before["opt_d"]["state"].keys()
    assert len(after["history"]["flow_epe"]) == len(before["history"]["flow_epe"]) + 2
    # The flow net's Adam moments described its old weights: gone; every other parameter keeps its own.
    flow_count = sum(1 for k in before["model"] if k.startswith("stage.flow.") and k.endswith(("weight", "bias")))
    assert len(after["opt"]["state"]) == len(before["opt"]["state"]) - flow_count

    resumed = Trainer(TrainConfig(model=MODEL, out_dir=str(tmp_path / "resumed"), batch_size=1, steps=3),
                      dataset=clips, val_dataset=None)
    resumed.load_checkpoint(out)
    assert resumed.step_index == 1
    resumed.step()  # the optimiser accepts the pruned state


def test_command_refuses_a_missing_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "x.pt")])
    assert "no checkpoint" in capsys.readouterr().err


# --- the flow net of a weights file, and the trainer's watch on it ----------------------------------


def test_measure_scores_a_weights_files_flow_net_and_names_its_file(tmp_path):
    import json

    from vsarvo.digest import file_sha256
    from vsarvo.model import ARVo
    from vsarvo.training.flow_pretrain import held_out_pairs
    from vsarvo.weights import save_model

    torch.manual_seed(0)
    model = ARVo(MODEL)
    weights = save_model(model, tmp_path / "w.safetensors")
    report = tmp_path / "flow.json"
    assert main(["--measure", str(weights), "--report", str(report), "--threads", "1"]) == 0
    measured = json.loads(report.read_text())
    pairs = held_out_pairs(32)
    assert measured["sha256"] == file_sha256(weights)
    assert measured["zero_flow_epe"] == pytest.approx(end_point_error(None, pairs))
    assert measured["epe"] == pytest.approx(end_point_error(model.stage.flow, pairs), rel=1e-5)
    assert measured["epe"] != pytest.approx(measured["zero_flow_epe"])


def test_measure_refuses_a_model_without_flow_and_a_missing_file(tmp_path, capsys):
    import dataclasses

    from vsarvo.model import ARVo
    from vsarvo.weights import save_model

    weights = save_model(ARVo(dataclasses.replace(MODEL, use_flow=False)), tmp_path / "noflow.safetensors")
    with pytest.raises(SystemExit):
        main(["--measure", str(weights)])
    assert "has no flow net" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--measure", str(tmp_path / "missing.safetensors")])
    assert "no such weights file" in capsys.readouterr().err


def test_validation_watches_the_flow_net_and_says_when_it_no_longer_aligns(tmp_path, capsys):
    clips = RenderedClips(clips=1, frames=5, size=72, window=5, crop=64, seed=3, cache=tmp_path / "clips.pt")
    trainer = Trainer(TrainConfig(model=MODEL, out_dir=str(tmp_path), crop=64, batch_size=2, steps=1),
                      dataset=clips, val_dataset=clips)
    trainer._validate_and_keep_best()
    first = capsys.readouterr().err
    (step, epe), = trainer.history["val_flow_epe"]
    assert step == 0 and f"flow net end-point error {epe:.2f} px" in first
    # A flow net that predicts a large constant motion is worse than predicting none.
    with torch.no_grad():
        last = [m for m in trainer.model.stage.flow.modules() if isinstance(m, nn.Conv2d)][-1]
        last.weight.zero_()
        last.bias.fill_(3.0)
    trainer._validate_and_keep_best()
    second = capsys.readouterr().err
    assert trainer.history["val_flow_epe"][-1][1] > trainer._zero_flow_epe
    assert "it no longer aligns the neighbours" in second and "flow_pretrain --fresh" in second
