"""Growing a trained model wider keeps what it computes, and training resumes from the grown checkpoint."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from vsarvo.model import ARVoConfig
from vsarvo.model.arvo import ARVo
from vsarvo.training.grow import grow_checkpoint, grow_config, grow_model, widen_into
from vsarvo.training.data.procedural import ClipSettings, make_clip
from vsarvo.weights import load_model
from vsarvo.training.data.rendered import RenderedClips
from vsarvo.training.config import TrainConfig
from vsarvo.training.loop import Trainer

MODEL = ARVoConfig.tiny(channels=8, encoder_width=4, recon_width=8, recon_blocks=1, flow_width=0.1, disc_width=4)


def trained_looking(config: ARVoConfig) -> ARVo:
    """A model whose every weight is non-trivial (fresh init zeroes biases and damps the output head)."""
    torch.manual_seed(1)
    model = ARVo(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def test_grown_model_computes_the_same_output():
    old = trained_looking(MODEL)
    new = ARVo(grow_config(MODEL, recon_width=16, encoder_width=6)).eval()
    widen_into(old, new)
    frames = torch.rand(1, 5, 3, 64, 64)
    with torch.no_grad():
        before, after = old(frames), new(frames)
    assert (before - after).abs().max() < 1e-5
    assert sum(p.numel() for p in new.parameters()) > sum(p.numel() for p in old.parameters())


def test_new_channels_get_a_gradient():
    old = trained_looking(MODEL)
    new = ARVo(grow_config(MODEL, recon_width=16))
    widen_into(old, new)
    new(torch.rand(1, 5, 3, 64, 64)).abs().mean().backward()
    head = new.stage.reconstruction.decode_full[-1].weight
    assert head.grad[:, 8:].abs().sum() > 0  # the zeroed weights from the new channels will move


def test_switching_on_the_reconstruction_inputs_computes_the_same_output():
    plain = dataclasses.replace(MODEL, frame_features=False, aligned_skip=False)
    old = trained_looking(plain)
    new = ARVo(grow_config(plain, frame_features=True, aligned_skip=True)).eval()
    widen_into(old, new)
    frames = torch.rand(1, 5, 3, 64, 64)
    with torch.no_grad():
        assert (old(frames) - new(frames)).abs().max() < 1e-5
    new.train()
    new(frames).abs().mean().backward()
    # The zeroed weights on the new inputs (the frames' features, the aligned neighbours) will move.
    assert new.stage.reconstruction.fuse[0].weight.grad[:, 3 * MODEL.levels * MODEL.channels:].abs().sum() > 0
    assert new.stage.reconstruction.skip_full[0].weight.grad[:, 3:].abs().sum() > 0


def pre_cosine_with_tiny_features() -> ARVo:
    """Raw-score weights as the shipped model had before the cosine correlation: the shipped weights with
    the switch off and the encoder's features scaled by 1e-3 (first conv's weight and every bias scaled:
    the encoder's convolutions and (leaky) ReLUs are positively homogeneous, so its output scales exactly),
    the tiny features that made the raw attention rows uniform."""
    shipped = load_model()
    old = ARVo(dataclasses.replace(shipped.config, cosine_correlation=False)).eval()
    state = {k: v for k, v in shipped.state_dict().items() if "temperature" not in k}
    old.load_state_dict(state)
    convs = [m for m in old.stage.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        convs[0].weight.mul_(1e-3)
        for conv in convs:
            conv.bias.mul_(1e-3)
    return old


def test_switching_on_cosine_correlation_keeps_what_raw_score_weights_compute():
    """Weights trained with raw scores have uniform attention rows (their features are tiny), so the cosine
    volume switched on at temperature 0 leaves their output all but unchanged."""
    import numpy as np

    old = pre_cosine_with_tiny_features()
    new = ARVo(grow_config(old.config, cosine_correlation=True)).eval()
    grow_model(old, new)
    assert new.stage.aggregation.temperature.abs().max() == 0
    blur, _, _ = make_clip(np.random.default_rng(2), 5, (64, 64), ClipSettings(), split="test")
    with torch.no_grad():
        assert (old(blur[None]) - new(blur[None])).abs().max() < 1e-5  # 1.3e-4 with the features unscaled
    new.train()
    new(blur[None]).abs().mean().backward()
    assert new.stage.aggregation.temperature.grad.abs().min() > 0  # and the temperatures will move


def test_switches_cannot_be_turned_off():
    with pytest.raises(ValueError, match="only be turned on"):
        grow_config(MODEL, aligned_skip=False)


def test_only_widths_outside_the_correlations_can_grow():
    with pytest.raises(ValueError, match="only recon_width, encoder_width"):
        grow_config(MODEL, channels=16)
    with pytest.raises(ValueError, match="can only grow"):
        grow_config(MODEL, recon_width=4)


def test_training_resumes_from_a_grown_checkpoint(tmp_path):
    clips = RenderedClips(clips=1, frames=5, size=72, window=5, crop=64, seed=3, cache=tmp_path / "clips.pt")
    small = Trainer(TrainConfig(model=MODEL, out_dir=str(tmp_path / "small"), batch_size=1, steps=2),
                    dataset=clips, val_dataset=None)
    small.step()
    small.history["val_psnr"].append([1, 25.0])
    grown_config = grow_checkpoint(small.save_checkpoint(), tmp_path / "grown.pt", recon_width=12)
    assert grown_config == dataclasses.replace(MODEL, recon_width=12)

    wide = Trainer(TrainConfig(model=grown_config, out_dir=str(tmp_path / "wide"), batch_size=1, steps=2),
                   dataset=clips, val_dataset=None)
    wide.load_checkpoint(tmp_path / "grown.pt")
    assert wide.step_index == 1 and wide.history["val_psnr"] == [[1, 25.0]]
    wide.step()
    assert wide.step_index == 2


def test_a_grown_checkpoint_keeps_the_optimiser_moments_of_unchanged_parameters(tmp_path):
    clips = RenderedClips(clips=1, frames=5, size=72, window=5, crop=64, seed=3, cache=tmp_path / "clips.pt")
    plain = dataclasses.replace(MODEL, cosine_correlation=False)
    small = Trainer(TrainConfig(model=plain, out_dir=str(tmp_path / "small"), batch_size=1, steps=2),
                    dataset=clips, val_dataset=None)
    small.step()
    before = small.opt.state[small.model.stage.encoder.full[0].weight]["exp_avg"].clone()
    grown_config = grow_checkpoint(small.save_checkpoint(), tmp_path / "grown.pt",
                                   cosine_correlation=True, recon_width=12)
    grown = Trainer(TrainConfig(model=grown_config, out_dir=str(tmp_path / "grown"), batch_size=1, steps=2),
                    dataset=clips, val_dataset=None)
    grown.load_checkpoint(tmp_path / "grown.pt")
    stage = grown.model.stage
    torch.testing.assert_close(grown.opt.state[stage.encoder.full[0].weight]["exp_avg"], before)
    assert stage.aggregation.temperature not in grown.opt.state  # new: starts afresh
    assert stage.reconstruction.decode_full[-1].weight not in grown.opt.state  # reshaped: afresh
    grown.step()
    assert grown.step_index == 2 and stage.aggregation.temperature in grown.opt.state


def test_cosine_correlation_switched_on_sharp_rezeroes_the_reads_of_the_aggregated_maps():
    plain = dataclasses.replace(MODEL, cosine_correlation=False)
    old = trained_looking(plain)
    new = ARVo(grow_config(plain, cosine_correlation=True))
    grow_model(old, new, cosine_temperature=10.0)
    aggregated = 3 * MODEL.levels * MODEL.channels
    fuse = new.stage.reconstruction.fuse[0].weight
    assert new.stage.aggregation.temperature.min() == 10.0
    assert fuse[:, :aggregated].abs().max() == 0 and fuse[:, aggregated:].abs().max() > 0
    new(torch.rand(1, 5, 3, 64, 64)).abs().mean().backward()
    assert fuse.grad[:, :aggregated].abs().sum() > 0  # they learn to read the now informative maps
    with pytest.raises(ValueError, match="cosine_temperature"):
        grow_model(old, new, cosine_temperature=-1.0)


def test_a_deeper_reconstruction_computes_the_same_output_and_learns():
    """New residual blocks start as the identity; the moved output convolution keeps its weights."""
    old = trained_looking(MODEL)
    new = ARVo(grow_config(MODEL, recon_blocks=3, recon_width=12)).eval()
    grow_model(old, new)
    frames = torch.rand(1, 5, 3, 64, 64)
    with torch.no_grad():
        assert (new(frames) - old(frames)).abs().max() < 1e-5
    new(frames).abs().mean().backward()
    recon = new.stage.reconstruction
    for blocks in (recon.quarter_blocks, recon.half_blocks, recon.decode_full[:-1]):
        assert len(blocks) == 3 and blocks[-1].body[-1].weight.grad.abs().sum() > 0


def test_a_deeper_checkpoint_carries_the_moved_output_convolution_moments(tmp_path):
    clips = RenderedClips(clips=1, frames=5, size=72, window=5, crop=64, seed=3, cache=tmp_path / "clips.pt")
    small = Trainer(TrainConfig(model=MODEL, out_dir=str(tmp_path / "small"), batch_size=1, steps=2),
                    dataset=clips, val_dataset=None)
    small.step()
    before = small.opt.state[small.model.stage.reconstruction.decode_full[-1].weight]["exp_avg"].clone()
    grown_config = grow_checkpoint(small.save_checkpoint(), tmp_path / "deep.pt", recon_blocks=2)
    deep = Trainer(TrainConfig(model=grown_config, out_dir=str(tmp_path / "deep"), batch_size=1, steps=2),
                   dataset=clips, val_dataset=None)
    deep.load_checkpoint(tmp_path / "deep.pt")
    moved = deep.model.stage.reconstruction.decode_full[-1].weight
    torch.testing.assert_close(deep.opt.state[moved]["exp_avg"], before)
    deep.step()
    assert deep.step_index == 2
