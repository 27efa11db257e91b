"""CUDA paths: half precision against fp32 (4K included) and the filter on a GPU. Skipped without CUDA."""
from __future__ import annotations

import math

import pytest
import torch

from vsarvo.backends import Backend, create_runner

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run `make test-all` on one)"),
]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a.double() - b.double()) ** 2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def frames(height: int, width: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    base = torch.nn.functional.interpolate(torch.rand(1, 3, height // 8, width // 8, generator=g),
                                           size=(height, width), mode="bicubic").clamp(0, 1)
    return [torch.roll(base, shifts=(0, s), dims=(2, 3)) for s in (-3, 0, 3)]


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("size", [(540, 960), (2160, 3840)])
def test_half_precision_stage_is_within_45_db_of_fp32(precision, size):
    x = frames(*size)
    ref = create_runner(Backend.Torch(device="cuda:0", precision="fp32"), tile=1024).run(*x)
    out = create_runner(Backend.Torch(device="cuda:0", precision=precision), tile=1024).run(*x)
    assert psnr(out, ref) >= 45.0


def test_cuda_stage_matches_the_cpu_stage():
    x = frames(256, 320)
    cpu = create_runner(Backend.Torch(device="cpu", precision="fp32")).run(*x)
    gpu = create_runner(Backend.Torch(device="cuda:0", precision="fp32")).run(*x)
    assert (cpu - gpu).abs().max().item() < 1e-3


def test_filter_runs_on_cuda_and_agrees_with_the_cpu():
    import numpy as np
    import vapoursynth as vs

    import vsarvo

    core = vs.core
    clip = core.std.BlankClip(format=vs.RGBS, width=128, height=96, length=5, color=[0.2, 0.5, 0.7])
    clip = core.std.Expr(clip, ["X N 0.01 * + x 0.003 * +", "", ""])
    cpu = vsarvo.Deblur(clip, device="cpu", precision="fp32")
    gpu = vsarvo.Deblur(clip, device="cuda:0", precision="fp32")
    for n in range(clip.num_frames):
        a, b = cpu.get_frame(n), gpu.get_frame(n)
        diff = max(float(np.abs(np.asarray(a[p]) - np.asarray(b[p])).max()) for p in range(3))
        assert diff < 1e-3


def test_training_steps_run_under_amp_and_resume_a_cpu_checkpoint(tmp_path):
    # The shipped weights' rolling checkpoint comes from CPU runs (empty GradScaler state); a GPU run
    # with AMP must resume it and keep the loss finite.
    from vsarvo.model import ARVoConfig
    from vsarvo.training.data.rendered import RenderedClips
    from vsarvo.training.config import TrainConfig
    from vsarvo.training.loop import Trainer

    model = ARVoConfig.tiny(channels=8, encoder_width=4, recon_width=8, recon_blocks=1, flow_width=0.1, disc_width=4)
    clips = RenderedClips(clips=2, frames=5, size=72, window=5, crop=64, seed=3)
    cpu = Trainer(TrainConfig(model=model, out_dir=str(tmp_path / "cpu"), batch_size=2, device="cpu"), dataset=clips)
    cpu.step()
    checkpoint = cpu.save_checkpoint()
    gpu = Trainer(TrainConfig(model=model, out_dir=str(tmp_path / "gpu"), batch_size=2, device="cuda:0"), dataset=clips)
    assert gpu.use_amp
    gpu.load_checkpoint(checkpoint)
    losses = [gpu.step()["loss"] for _ in range(3)]
    assert all(math.isfinite(v) for v in losses)


# --- half precision in the model: SDPA's flash / memory-efficient kernels, parity with fp32 ------------

def _stage_on_cuda(config_or_weights, dtype: torch.dtype) -> torch.nn.Module:
    """The shipped weights' stage (None) or a seeded fresh stage of a config, on CUDA, channels-last."""
    from vsarvo.model import ARVo
    from vsarvo.weights import load_model

    if config_or_weights is None:
        model = load_model(None)
    else:
        torch.manual_seed(0)
        model = ARVo(config_or_weights)
    return model.stage.to(device="cuda:0", dtype=dtype).eval().to(memory_format=torch.channels_last)


def _recorded_sdpa(monkeypatch) -> list[torch.dtype]:
    """The dtype of every Q that reaches F.scaled_dot_product_attention from now on."""
    dtypes: list[torch.dtype] = []
    real = torch.nn.functional.scaled_dot_product_attention

    def recording(q, k, v, *args, **kwargs):
        dtypes.append(q.dtype)
        return real(q, k, v, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording)
    return dtypes


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("preset, size", [(None, (1080, 1920)), (None, (2160, 3840)), ("paper", (1080, 1920))])
def test_half_stage_runs_flash_or_memory_efficient_attention_within_45_db_of_fp32(precision, preset, size,
                                                                                 monkeypatch):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from vsarvo.model import ARVoConfig

    config = None if preset is None else ARVoConfig.paper()
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    x = [f.to("cuda:0").contiguous(memory_format=torch.channels_last) for f in frames(*size)]
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.inference_mode():
            reference = _stage_on_cuda(config, torch.float32)(*x).float().cpu()
            torch.cuda.empty_cache()
            dtypes = _recorded_sdpa(monkeypatch)
            # Raises if neither half-precision attention kernel can take the aggregation's tensors.
            with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
                out = _stage_on_cuda(config, dtype)(*(f.to(dtype) for f in x)).float().cpu()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
        torch.cuda.empty_cache()
    assert dtypes and set(dtypes) == {dtype}
    assert psnr(out.clamp(0, 1), reference.clamp(0, 1)) >= 45.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels", [5, 16, 64])
def test_half_aggregation_runs_on_the_flash_kernel(dtype, channels):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from vsarvo.model.volume import aggregate

    g = torch.Generator(device="cuda:0").manual_seed(0)
    q = torch.randn(1, channels, 135, 240, device="cuda:0", generator=g)
    k = torch.randn(1, channels, 68, 120, device="cuda:0", generator=g)
    v = torch.rand(1, channels, 68, 120, device="cuda:0", generator=g)
    q, k = torch.nn.functional.normalize(q, dim=1) * 10, torch.nn.functional.normalize(k, dim=1)
    expected = aggregate(q, k, v)
    with torch.inference_mode(), sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        out = aggregate(q.to(dtype), k.to(dtype), v.to(dtype))
    assert out.dtype == dtype and out.shape == expected.shape
    assert (out.float() - expected).abs().max().item() < (0.02 if dtype == torch.bfloat16 else 0.003)


def test_half_aggregation_is_at_least_3x_faster_than_fp32_at_1080p_level_1():
    """The paper's widest aggregation (C = 64, 1080p: 129,600 queries x 32,400 keys): the half path
    runs on the tensor cores, the fp32 one cannot."""
    from vsarvo.model.volume import aggregate

    g = torch.Generator(device="cuda:0").manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(1, 64, 270, 480, device="cuda:0", generator=g), dim=1) * 10
    k = torch.nn.functional.normalize(torch.randn(1, 64, 135, 240, device="cuda:0", generator=g), dim=1)
    v = torch.rand(1, 64, 135, 240, device="cuda:0", generator=g)
    tensors = {torch.float32: (q, k, v), torch.bfloat16: tuple(t.bfloat16() for t in (q, k, v))}
    seconds = {}
    with torch.inference_mode():
        for dtype, args in tensors.items():
            aggregate(*args)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(3):
                aggregate(*args)
            end.record()
            end.synchronize()
            seconds[dtype] = start.elapsed_time(end) / 3
    assert seconds[torch.bfloat16] * 3 <= seconds[torch.float32], seconds


def test_concurrent_calls_on_their_own_streams_give_each_frame_its_own_result():
    # Four threads share one runner: each has its own CUDA stream and pinned buffers, so a result must
    # never carry another call's input (a missing stream synchronisation or a shared buffer would).
    from concurrent.futures import ThreadPoolExecutor

    runner = create_runner(Backend.Torch(device="cuda:0", precision="fp32"))
    windows = [[torch.roll(f, shifts=(0, 5 * k), dims=(2, 3)) for f in frames(256, 320)] for k in range(8)]
    alone = [runner.run(*w) for w in windows]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda w: runner.run(*w), windows * 3))
    for k, out in enumerate(together):
        assert torch.equal(out, alone[k % len(windows)])


def _peak_bytes(runner, x) -> int:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats(0)
    runner.run(*x)
    return torch.cuda.max_memory_allocated(0)


def test_a_frame_that_does_not_fit_untiled_runs_in_exact_tiles(capfd):
    # Measure what 4K needs untiled and in 512-pixel tiles, then cap this process's GPU memory halfway
    # between: the untiled call must run out of memory and the runner must fall back to tiles by itself.
    x = frames(2160, 3840)
    untiled = create_runner(Backend.Torch(device="cuda:0", precision="fp32"))
    reference = untiled.run(*x)
    full = _peak_bytes(untiled, x)
    tiled = _peak_bytes(create_runner(Backend.Torch(device="cuda:0", precision="fp32"), tile=512), x)
    if tiled >= 0.9 * full:
        pytest.skip(f"512-pixel tiles need {tiled} bytes against {full} untiled: no room for the test")
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction((full + tiled) / 2 / total, 0)
    try:
        runner = create_runner(Backend.Torch(device="cuda:0", precision="fp32"))
        out = runner.run(*x)
        again = runner.run(*x)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
    edge = runner.auto_tiles.get((2160, 3840))
    assert edge is not None and edge >= 512
    assert capfd.readouterr().err.count("running it in exact") >= 1
    assert psnr(out, reference) >= 60.0 and torch.equal(out, again)
