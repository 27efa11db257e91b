"""Backends through create_runner: the onnxruntime backend against the torch fp32 reference, its
per-size session cache, and the errors for devices and precisions it cannot serve here."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vsarvo.backends import Backend, BackendError, create_runner
from vsarvo.model import ARVo, ARVoConfig
from vsarvo.weights import save_model

H, W = 67, 95


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = ARVo(ARVoConfig.tiny())
    # Re-initialise the residual head so the stage changes frames by far more than the tolerance.
    model.stage.reconstruction.decode_full[-1].reset_parameters()
    return save_model(model, tmp_path_factory.mktemp("weights") / "w.safetensors")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VSARVO_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def ort_runner(weights: Path, cache: Path):
    return create_runner(Backend.ORT(device="cpu", precision="fp32"), weights=str(weights))


def _frames(height: int, width: int, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(1, 3, height, width, generator=generator) for _ in range(3)]


def test_ort_backend_matches_the_torch_backend_at_an_odd_size(ort_runner, weights: Path) -> None:
    frames = _frames(H, W, 1)
    reference = create_runner(Backend.Torch(device="cpu", precision="fp32"), weights=str(weights))
    expected = reference.run(*frames)
    out = ort_runner.run(*frames)
    assert out.dtype == torch.float32 and out.device.type == "cpu" and out.shape == (1, 3, H, W)
    assert (expected - frames[1]).abs().max().item() > 0.05  # the stage really changes the frame
    assert (out - expected).abs().max().item() <= 1e-4


def test_ort_backend_clamps_to_the_unit_range(ort_runner) -> None:
    out = ort_runner.run(*_frames(H, W, 2))
    assert out.min().item() >= 0.0 and out.max().item() <= 1.0


def test_ort_backend_exports_and_opens_one_session_per_frame_size(ort_runner, cache: Path) -> None:
    ort_runner.run(*_frames(H, W, 3))
    ort_runner.run(*_frames(H, W, 4))
    graphs = sorted(p.name for p in (cache / "onnx").glob("arvo-stage-*.onnx"))
    assert len(graphs) == 1 and f"-{W}x{H}-fp32-" in graphs[0]
    assert list(ort_runner._sessions) == [(H, W)]


def test_ort_backend_reports_its_device_precision_and_stages(ort_runner) -> None:
    assert (ort_runner.name, ort_runner.device, ort_runner.precision, ort_runner.stages) == ("ort", "cpu", "fp32", 2)


def test_ort_backend_refuses_bf16_on_the_cpu(weights: Path) -> None:
    with pytest.raises(BackendError, match="no bfloat16 Conv"):
        create_runner(Backend.ORT(device="cpu", precision="bf16"), weights=str(weights))


def test_ort_backend_refuses_a_gpu_it_does_not_have(weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BackendError, match="needs onnxruntime's CUDA provider and a GPU"):
        create_runner(Backend.ORT(device="cuda:0"), weights=str(weights))


def test_trt_backend_refuses_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    fake = types.ModuleType("tensorrt")
    fake.__version__ = "11.4.0.106"
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    with pytest.raises(BackendError, match="NVIDIA GPUs only"):
        create_runner(Backend.TRT(device="cpu"))


def test_torch_backend_gives_the_same_frame_in_either_memory_layout(weights: Path) -> None:
    frames = _frames(H, W, 3)
    nchw = create_runner(Backend.Torch(device="cpu", channels_last=False), weights=str(weights)).run(*frames)
    nhwc_runner = create_runner(Backend.Torch(device="cpu", channels_last=True), weights=str(weights))
    assert any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
               for p in nhwc_runner.stage.parameters())
    nhwc = nhwc_runner.run(*frames)
    assert nhwc.is_contiguous() and nhwc.shape == (1, 3, H, W)
    assert (nhwc - frames[1]).abs().max().item() > 0.05
    assert (nhwc - nchw).abs().max().item() <= 1e-5


# --- the backends through the filter ---------------------------------------------------------------

def _clip(frames: int = 3):  # noqa: ANN202 - vs.VideoNode
    """An RGBS clip of random frames (H x W), so the stage has detail to change."""
    import numpy as np
    import vapoursynth as vs

    pixels = [f[0].numpy() for f in _frames(H, W, 5)][:frames]
    blank = vs.core.std.BlankClip(format=vs.RGBS, width=W, height=H, length=frames)

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), pixels[n][p])
        return out

    return vs.core.std.ModifyFrame(blank, blank, fill)


def _pixels(clip) -> torch.Tensor:  # noqa: ANN001 - vs.VideoNode
    import numpy as np

    return torch.stack([torch.from_numpy(np.stack([np.asarray(f[p]) for p in range(3)])) for f in clip.frames()])


def test_deblur_with_an_ort_backend_object_matches_the_torch_backend(weights: Path, cache: Path) -> None:
    import vsarvo

    clip = _clip()
    on_cpu = {"device": "cpu", "precision": "fp32"}
    torch_out = _pixels(vsarvo.Deblur(clip, weights=weights, backend=vsarvo.Backend.Torch(**on_cpu)))
    ort_out = _pixels(vsarvo.Deblur(clip, weights=weights, backend=vsarvo.Backend.ORT(**on_cpu)))
    assert (torch_out - _pixels(clip)).abs().max().item() > 0.05
    assert (ort_out - torch_out).abs().max().item() <= 1e-4


def test_core_arvo_deblur_with_backend_ort_matches_the_torch_backend(weights: Path, cache: Path) -> None:
    import vapoursynth as vs

    clip = _clip()
    core = vs.core
    torch_out = _pixels(core.arvo.Deblur(clip, weights=str(weights), backend="torch", device="cpu", precision="fp32"))
    ort_out = _pixels(core.arvo.Deblur(clip, weights=str(weights), backend="ort", device="cpu", precision="fp32",
                                       threads=1))
    assert (torch_out - _pixels(clip)).abs().max().item() > 0.05
    assert (ort_out - torch_out).abs().max().item() <= 1e-4


def test_ort_threads_reach_the_session(weights: Path, cache: Path) -> None:
    runner = create_runner(Backend.ORT(device="cpu", precision="fp32", threads=1), weights=str(weights))
    runner.run(*_frames(H, W, 6))
    session = runner._sessions.get(H, W)
    assert session.get_session_options().intra_op_num_threads == 1
