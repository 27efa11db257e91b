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
