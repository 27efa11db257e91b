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


# --- running out of GPU memory -------------------------------------------------------------------------
# CUDA's out-of-memory error cannot happen on this CPU, so these tests wrap the real stage in one that
# raises it above a tile edge, as a GPU with too little memory would (tests/test_gpu.py does it for real).

class _MemoryLimitedStage:
    """The real stage, out of memory when a call is untiled or its tiles are larger than ``fits``."""

    def __init__(self, stage, fits: int) -> None:  # noqa: ANN001 - ARVoStage
        self.stage, self.fits, self.tiles = stage, fits, []

    def __call__(self, *frames: torch.Tensor, tile: int | None, tile_overlap: int | None) -> torch.Tensor:
        self.tiles.append(tile)
        if tile is None or tile > self.fits:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.stage(*frames, tile=tile, tile_overlap=tile_overlap)


def test_tile_ladder_cuts_the_frame_largest_first() -> None:
    from vsarvo.backends.torch_backend import tile_ladder

    assert tile_ladder(2160, 3840) == [2048, 1024, 512, 256, 128, 64]
    assert tile_ladder(540, 960) == [512, 256, 128, 64]
    assert tile_ladder(64, 64) == []


def test_a_frame_that_runs_out_of_memory_is_run_in_the_largest_exact_tiles_that_fit(weights: Path, capfd) -> None:
    frames = _frames(H, W, 4)
    runner = create_runner(Backend.Torch(device="cpu"), weights=str(weights))
    whole = runner.run(*frames)
    runner._forward = limited = _MemoryLimitedStage(runner.stage, fits=64)
    out = runner.run(*frames)
    assert limited.tiles == [None, 64]  # the ladder below 95 px: 64
    assert runner.auto_tiles == {(H, W): 64}
    assert "95x67 does not fit in the memory of cpu untiled; running it in exact 64-pixel tiles" in capfd.readouterr().err
    assert (out - whole).abs().max().item() <= 1e-5 and (out - frames[1]).abs().max().item() > 0.05
    runner.run(*frames)
    assert limited.tiles[2:] == [64]  # the size's tile is kept: no second untiled try
    assert capfd.readouterr().err == ""


def test_running_out_of_memory_in_the_smallest_tile_or_a_chosen_tile_is_a_named_error(weights: Path) -> None:
    frames = _frames(H, W, 4)
    runner = create_runner(Backend.Torch(device="cpu"), weights=str(weights))
    runner._forward = _MemoryLimitedStage(runner.stage, fits=32)
    with pytest.raises(BackendError, match=r"out of GPU memory at 95x67 even in 64-pixel tiles: free GPU memory"):
        runner.run(*frames)
    chosen = create_runner(Backend.Torch(device="cpu"), weights=str(weights), tile=64)
    chosen._forward = limited = _MemoryLimitedStage(chosen.stage, fits=32)
    with pytest.raises(BackendError, match=r"out of GPU memory at 95x67 with tile=64: use a smaller tile"):
        chosen.run(*frames)
    assert limited.tiles == [64]  # a tile the user chose is never changed
