"""The ARVo model: shapes, warping, aggregation, ablations, weight sharing, determinism."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vsarvo.model import (PRESETS, ARVo, ARVoConfig, TemporalDiscriminator, aggregate, aggregate_naive, config_fields,
                          paper, restore_clip, tiny, warp)
from vsarvo.model.config import LEGACY_DEFAULTS
from vsarvo.model.flow import PWCNet, local_correlation
from vsarvo.model.reconstruct import Reconstruction
from vsarvo.model.tiling import run_tiled
from vsarvo.model.volume import CorrelativeAggregation, auto_chunk
from vsarvo.training.attention import attention_figures

torch.set_num_threads(2)


def procedural_frames(count: int, size: int) -> torch.Tensor:
    """``count`` consecutive blurry frames [count, 3, size, size] of a procedural clip (real texture)."""
    from vsarvo.training.data.procedural import ClipSettings, make_clip

    blur, _, _ = make_clip(np.random.default_rng(5), count, (size, size), ClipSettings(), split="test")
    return blur


def small(**overrides) -> ARVoConfig:
    """A configuration smaller still than tiny, so the tests run in seconds."""
    base = dict(channels=8, encoder_width=4, recon_width=8, recon_blocks=1, flow_width=0.1, disc_width=4)
    base.update(overrides)
    return tiny(**base)


# --- configuration ---------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [dict(levels=5), dict(levels=-1), dict(stages=0), dict(stages=4),
                                 dict(channels=2), dict(flow_width=0.0), dict(recon_blocks=0)])
def test_invalid_config_raises_value_error_naming_the_value(bad):
    with pytest.raises(ValueError, match=str(list(bad.values())[0])):
        ARVoConfig(**bad)


def test_presets_follow_the_paper_structure():
    paper_config = paper()
    assert (paper_config.levels, paper_config.stages, paper_config.use_flow, paper_config.flow_width,
            paper_config.window) == (3, 2, True, 1.0, 5)
    tiny_config = tiny()
    assert (tiny_config.levels, tiny_config.stages, tiny_config.window) == (3, 2, 5)
    assert ARVoConfig.from_dict(tiny_config.to_dict()) == tiny_config
    assert tiny_config.digest() != paper_config.digest()
    assert paper_config.frame_features and paper_config.aligned_skip and tiny_config.frame_features
    assert tiny_config.aligned_skip and paper_config.cosine_correlation and tiny_config.cosine_correlation


def test_default_config_is_the_paper_preset():
    assert ARVoConfig() == paper() == PRESETS["paper"]()
    assert ARVoConfig().digest() == "e85a93c0e2fe"  # the paper preset's digest before its defaults moved here


def test_preset_table_holds_the_builders_and_overrides_replace_single_fields():
    assert set(PRESETS) == {"tiny", "paper"}
    assert PRESETS["tiny"]() == tiny() == ARVoConfig.tiny()
    assert tiny(recon_blocks=2).recon_blocks == 2 and tiny(recon_blocks=2).channels == tiny().channels
    assert paper(levels=0) == ARVoConfig(levels=0)


def test_configs_saved_before_the_reconstruction_switches_load_with_them_off():
    switches = ("frame_features", "aligned_skip", "cosine_correlation")
    saved = {k: v for k, v in tiny().to_dict().items() if k not in switches}
    old = ARVoConfig.from_dict(saved)
    assert not any(getattr(old, name) for name in switches)
    assert ARVo(old).stage.aggregation.temperature is None
    recon = ARVo(old).stage.reconstruction
    assert (recon.fuse[0].in_channels, recon.skip_full[0].in_channels) == (3 * old.levels * old.channels, 3)


def test_a_saved_config_missing_fields_means_the_defaults_of_its_time():
    # ARVoConfig's defaults before they became the paper's configuration.
    assert ARVoConfig.from_dict({}) == ARVoConfig(
        channels=64, levels=3, use_flow=True, stages=2, flow_width=1.0, encoder_width=32, recon_width=32,
        recon_blocks=3, disc_width=32, frame_features=False, aligned_skip=False, cosine_correlation=False)
    assert set(LEGACY_DEFAULTS) == {f.name for f in config_fields()}  # every field says what old files meant
    with pytest.raises(ValueError, match="width_multiplier"):
        ARVoConfig.from_dict({"width_multiplier": 2})


def test_the_shipped_weights_sidecar_is_the_tiny_preset():
    from vsarvo.weights import default_weights_path, read_metadata

    meta = read_metadata(default_weights_path())
    assert ARVoConfig.from_dict(meta["config"]) == tiny()
    assert tiny().digest() == meta["config_digest"]


def test_config_fields_describe_every_field_with_its_type_default_and_help():
    fields = config_fields()
    defaults = ARVoConfig()
    assert [f.name for f in fields] == list(defaults.to_dict())
    by_name = {f.name: f for f in fields}
    assert (by_name["channels"].type, by_name["flow_width"].type, by_name["aligned_skip"].type) == (int, float, bool)
    for name, kind, default, text in fields:
        assert default == getattr(defaults, name) and isinstance(default, kind)
        assert text and "\n" not in text


def test_invalid_switch_value_raises_value_error_naming_it():
    with pytest.raises(ValueError, match="aligned_skip must be True or False, got 'yes'"):
        ARVoConfig(aligned_skip="yes")


def test_reconstruction_switches_widen_its_inputs():
    cfg = small()
    recon = ARVo(cfg).stage.reconstruction
    assert recon.fuse[0].in_channels == 3 * (cfg.levels + 1) * cfg.channels  # aggregated + three frames' features
    assert recon.skip_full[0].in_channels == 9  # reference, aligned previous, aligned next


# --- aggregation -----------------------------------------------------------------------------------

def test_chunked_aggregation_matches_the_literal_equations():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 16, 13, 11, generator=g) * 0.5
    k = torch.randn(2, 16, 7, 6, generator=g) * 0.5
    v = torch.randn(2, 16, 7, 6, generator=g)
    ref = aggregate_naive(q, k, v)
    for chunk in (None, 1, 5, 64, 10_000):
        assert (aggregate(q, k, v, chunk=chunk) - ref).abs().max().item() <= 1e-5


def test_aggregation_is_a_convex_combination_of_values():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(1, 4, 5, 5, generator=g), torch.randn(1, 4, 3, 3, generator=g)
    v = torch.ones(1, 4, 3, 3) * 3.0
    torch.testing.assert_close(aggregate(q, k, v), torch.full((1, 4, 5, 5), 3.0))


def test_aggregate_stays_finite_where_the_literal_form_overflows():
    g = torch.Generator().manual_seed(2)
    q = torch.randn(1, 32, 8, 8, generator=g) * 10  # dot products in the hundreds: exp overflows fp32
    k = torch.randn(1, 32, 4, 4, generator=g) * 10
    v = torch.randn(1, 32, 4, 4, generator=g)
    assert not torch.isfinite(aggregate_naive(q, k, v)).all()
    for chunk in (None, 3):
        out = aggregate(q, k, v, chunk=chunk)
        assert torch.isfinite(out).all()
        # Reference: the same equations in float64, where exp(max - max) is computed without overflow.
        scores = torch.einsum("bchw,bcn->bhwn", q.double(), k.flatten(2).double())
        expected = torch.einsum("hwn,cn->chw", scores[0].softmax(-1), v.flatten(2)[0].double())
        torch.testing.assert_close(out[0].double(), expected, atol=1e-4, rtol=0)


def test_half_precision_aggregation_keeps_fp32_scores():
    g = torch.Generator().manual_seed(3)
    q = torch.randn(1, 64, 6, 6, generator=g) * 4  # |q.k| ~ 100 > what fp16 exp can hold
    k = torch.randn(1, 64, 3, 3, generator=g) * 4
    v = torch.randn(1, 64, 3, 3, generator=g)
    ref = aggregate(q, k, v)
    out = aggregate(q.half(), k.half(), v.half(), chunk=4)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    assert (out.float() - ref).abs().max().item() < 0.05


def test_auto_chunk_never_covers_a_whole_large_volume():
    keys = 32_400  # 1080p level 1
    assert auto_chunk(keys) * keys <= 1 << 24
    assert auto_chunk(keys) < 129_600


def test_aggregation_pools_only_the_neighbour():
    agg = CorrelativeAggregation(channels=4, levels=3)
    ref = torch.randn(1, 4, 16, 12)
    out = agg(ref, [torch.randn(1, 4, 16, 12)] * 3)
    assert out.shape == (1, 3 * 3 * 4, 16, 12)  # reference resolution kept at every level


def _level1_attention(preset: str, cosine: bool) -> dict:
    """Level 1 of the attention probe on three procedural frames, fresh weights of ``preset``."""
    torch.manual_seed(0)
    model = ARVo(PRESETS[preset](cosine_correlation=cosine)).eval()
    return attention_figures(model, procedural_frames(3, 128))["levels"][0]


@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_cosine_correlation_attends_where_raw_scores_start_uniform(preset):
    """At initialisation the encoder's features are small, so raw scores make every attention row
    uniform (the aggregation is a global mean); cosine scores at the initial temperature do not."""
    raw, cosine = _level1_attention(preset, False), _level1_attention(preset, True)
    assert raw["entropy"] > 0.99 * raw["uniform_entropy"]
    assert cosine["entropy"] < 0.9 * cosine["uniform_entropy"]


def test_cosine_correlation_at_temperature_zero_is_the_mean_of_the_values():
    agg = CorrelativeAggregation(channels=4, levels=2, cosine=True)
    with torch.no_grad():
        agg.temperature.zero_()
    ref, nbr = torch.randn(1, 4, 16, 12), torch.randn(1, 4, 16, 12)
    out = agg(ref, [nbr])
    for k in (1, 2):
        values = agg.phi[k - 1](F.max_pool2d(nbr, 2 ** k, 2 ** k, ceil_mode=True))
        expected = values.mean(dim=(2, 3), keepdim=True).expand(-1, -1, 16, 12)
        torch.testing.assert_close(out[:, 4 * (k - 1):4 * k], expected, atol=1e-5, rtol=0)


def test_cosine_correlation_aggregates_local_matches_not_a_global_mean():
    """The aggregated map's spatial variation over that of V (level 1, ref<-prev, fresh tiny weights):
    raw scores give a spatially constant map (the global mean of V), cosine scores a varying one."""
    assert _level1_attention("tiny", False)["spatial_std_ratio"] < 0.01
    assert _level1_attention("tiny", True)["spatial_std_ratio"] > 0.3


# --- flow and warping ------------------------------------------------------------------------------

def test_warping_by_a_constant_flow_reproduces_a_known_shift():
    img = torch.rand(1, 3, 20, 24)
    flow = torch.zeros(1, 2, 20, 24)
    flow[:, 0] = 3.0  # sample 3 px to the right
    flow[:, 1] = -2.0  # and 2 px up
    out, valid = warp(img, flow)
    torch.testing.assert_close(out[..., 2:, :-3], img[..., :-2, 3:])
    assert valid[..., 2:, :-3].min() == 1 and valid[..., :, -3:].max() == 0 and valid[..., :2, :].max() == 0


def test_warping_by_a_half_pixel_flow_interpolates_bilinearly():
    img = torch.arange(10.0).view(1, 1, 1, 10).expand(1, 1, 4, 10).contiguous()
    flow = torch.zeros(1, 2, 4, 10)
    flow[:, 0] = 0.5
    out, _ = warp(img, flow)
    torch.testing.assert_close(out[0, 0, 0, :9], torch.arange(9.0) + 0.5)


def test_local_correlation_peaks_at_the_true_displacement():
    f = torch.randn(1, 8, 12, 12)
    shifted = torch.roll(f, shifts=(1, -2), dims=(2, 3))  # f2(x + d) = f(x) for d = (dy=1, dx=-2)
    cost = local_correlation(f, shifted, 4)
    best = cost[0, :, 4:8, 4:8].mean(dim=(1, 2)).argmax().item()
    assert divmod(best, 9) == (4 + 1, 4 - 2)
    # Cosine costs: exactly 1 where the features match, whatever their scale.
    torch.testing.assert_close(cost[0, best, 4:8, 4:8], torch.ones(4, 4))
    torch.testing.assert_close(local_correlation(3 * f, shifted, 4), cost)


@pytest.mark.parametrize("size", [(64, 64), (67, 95), (130, 71)])
def test_flow_net_returns_full_resolution_pixels_for_any_size(size):
    net = PWCNet(width=0.1).eval()
    with torch.no_grad():
        flow = net(torch.rand(1, 3, *size), torch.rand(1, 3, *size))
    assert flow.shape == (1, 2, *size)


# --- the whole model -------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(64, 64), (67, 95)])
def test_model_restores_the_middle_frame_for_odd_sizes(size):
    model = ARVo(small()).eval()
    frames = torch.rand(1, 5, 3, *size)
    with torch.no_grad():
        out = model(frames)
        stages = model.forward_stages(frames)
    assert out.shape == (1, 3, *size)
    assert [s.shape[1] for s in stages] == [3, 1]
    torch.testing.assert_close(stages[-1][:, 0], out)


def test_model_rejects_wrong_window_and_tiny_frames():
    model = ARVo(small())
    with pytest.raises(ValueError, match="need 5 frames, got 3"):
        model(torch.rand(1, 3, 3, 64, 64))
    with pytest.raises(ValueError, match="at least 64x64"):
        model.stage(*(torch.rand(1, 3, 32, 80),) * 3)


def test_every_parameter_receives_a_gradient():
    torch.manual_seed(0)
    model = ARVo(small())
    frames = torch.rand(1, 5, 3, 64, 64)
    stages = model.forward_stages(frames)
    loss = stages[-1].abs().mean() + stages[0].abs().mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


def test_stages_share_one_parameter_set():
    one = sum(p.numel() for p in ARVo(small(stages=1)).parameters())
    two = sum(p.numel() for p in ARVo(small(stages=2)).parameters())
    three = sum(p.numel() for p in ARVo(small(stages=3)).parameters())
    assert one == two == three


def test_two_stage_output_is_the_stage_applied_to_stage_outputs():
    model = ARVo(small()).eval()
    x = torch.rand(1, 5, 3, 64, 64)
    with torch.no_grad():
        r1 = [model.stage(x[:, j - 1], x[:, j], x[:, j + 1]) for j in (1, 2, 3)]
        expected = model.stage(*r1)
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("switch", [dict(levels=0), dict(levels=1), dict(use_flow=False),
                                    dict(frame_features=False), dict(aligned_skip=False),
                                    dict(cosine_correlation=False)])
def test_ablation_switches_change_the_computation(switch):
    torch.manual_seed(0)
    base = ARVo(small())
    torch.manual_seed(0)
    other = ARVo(small(**switch))
    # Copy every shared parameter so only the switch differs.
    other.load_state_dict({k: v for k, v in base.state_dict().items() if k in other.state_dict()
                           and other.state_dict()[k].shape == v.shape}, strict=False)
    x = torch.rand(1, 5, 3, 64, 64)
    with torch.no_grad():
        # The residual head starts near zero (reconstruct.py), so differences are small but far from zero.
        assert (base(x) - other(x)).abs().max() > 1e-6
    if "use_flow" in switch:
        assert other.stage.flow is None
    if switch.get("levels") == 0:
        assert other.stage.aggregation is None


def test_eval_mode_is_deterministic():
    model = ARVo(small()).eval()
    x = torch.rand(1, 5, 3, 64, 72)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_tiled_stage_equals_whole_frame_stage():
    model = ARVo(small()).eval()
    frames = [torch.rand(1, 3, 90, 150) for _ in range(3)]
    with torch.no_grad():
        whole = model.stage(*frames)
        tiled = model.stage(*frames, tile=32)
    assert (whole - tiled).abs().max().item() < 1e-5


def test_too_small_tile_overlap_changes_the_result():
    # The guard that the exactness test above is meaningful: a halo below the receptive field is not exact.
    model = ARVo(small()).eval()
    frames = [torch.rand(1, 3, 96, 96) for _ in range(3)]
    with torch.no_grad():
        whole = model.stage(*frames)
        cut = model.stage(*frames, tile=32, tile_overlap=0)
    assert (whole - cut).abs().max().item() > 1e-4


def test_run_tiled_without_a_tile_calls_the_function_once_on_the_whole_frame():
    calls = []
    x = torch.rand(1, 2, 12, 16)
    out = run_tiled(lambda t: calls.append(t.shape) or t * 2, [(x, 1)], height=12, width=16, out_divisor=1,
                    tile=None, overlap=0)
    assert calls == [x.shape] and torch.equal(out, x * 2)


def test_declared_receptive_radii_bound_what_one_input_pixel_reaches():
    """Change one input pixel: outputs farther than the declared radius stay the same."""
    torch.manual_seed(0)
    stage = ARVo(small()).stage.eval()
    recon = stage.reconstruction
    size, centre = 224, 112  # wide enough that the encoder's reach stays inside the frame
    frames = torch.rand(1, 9, size, size)
    half = torch.rand(1, 2 * small().recon_width, size // 2, size // 2)
    poked = frames.clone()
    poked[..., centre, centre] += 1
    parts = [(lambda f: stage.encoder(f[:, :3]), stage.encoder.receptive_radius, 4),
             (recon.skip, recon.skip_radius, 2), (lambda f: recon.tail(half, f), recon.tail_radius, 1)]
    for fn, radius, divisor in parts:
        with torch.no_grad():
            changed = (fn(poked) - fn(frames)).abs().amax(dim=(0, 1)) > 0
        ys, xs = changed.nonzero(as_tuple=True)
        reach = max((ys * divisor - centre).abs().max().item(), (xs * divisor - centre).abs().max().item())
        assert 0 < reach <= radius


def test_reconstruction_rejects_a_skip_input_it_cannot_build():
    with pytest.raises(ValueError, match="skip_frames must be 1 or 3, got 2"):
        Reconstruction(in_channels=8, width=8, blocks=1, skip_frames=2)


def test_discriminator_gives_one_logit_per_sequence_and_separates_inputs():
    disc = TemporalDiscriminator(width=4)
    seq = torch.rand(2, 3, 3, 64, 64)
    out = disc(seq)
    assert out.shape == (2,)
    assert (disc(seq) - disc(torch.zeros_like(seq))).abs().max() > 0


def test_restore_clip_clamps_edges_per_stage_and_respects_cuts():
    model = ARVo(small()).eval()
    clip = torch.rand(5, 3, 64, 64)
    with torch.no_grad():
        out = restore_clip(model, clip, cuts={3})
        st = lambda a, b, c: model.stage(clip[a:a + 1], clip[b:b + 1], clip[c:c + 1]).clamp(0, 1)  # noqa: E731
        r1 = [st(0, 0, 1), st(0, 1, 2), st(1, 2, 2), st(3, 3, 4), st(3, 4, 4)]  # frame 3 starts a scene
        expected_0 = model.stage(r1[0], r1[0], r1[1]).clamp(0, 1)
        expected_2 = model.stage(r1[1], r1[2], r1[2]).clamp(0, 1)
    torch.testing.assert_close(out[0:1], expected_0, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[2:3], expected_2, atol=1e-5, rtol=0)
