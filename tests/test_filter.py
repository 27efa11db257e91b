"""The VapourSynth filter vsarvo.Deblur: wiring, stage reuse, formats, bad input, real vspipe | ffmpeg."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import vapoursynth as vs

import vsarvo.filter as vsfilter
from vsarvo.backends import Backend, BackendOptions, StageRunner, create_runner
from vsarvo.model import ARVo, ARVoConfig, restore_clip
from vsarvo.weights import save_model

core = vs.core
REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
torch.set_num_threads(2)


# --- helpers ---------------------------------------------------------------------------------------

def small_config(**overrides) -> ARVoConfig:
    """Smaller than the tiny preset so that a 7-frame clip runs in about a second."""
    base = dict(channels=8, encoder_width=4, recon_width=8, recon_blocks=1, flow_width=0.1, disc_width=4)
    base.update(overrides)
    return ARVoConfig.tiny(**base)


def make_model(seed: int = 0) -> ARVo:
    """A random model whose output depends clearly on its neighbours.

    Freshly initialised, the residual is about 1e-3 and a neighbour moves it by about 1e-5, too
    little for a wiring test with a 1e-5 tolerance to notice a wrong neighbour. Without the volume
    (levels = 0) the neighbours' features reach the reconstruction directly, and a 30x gain on the
    last conv makes the residual about 0.03 and a neighbour's share about 3e-3.
    """
    torch.manual_seed(seed)
    model = ARVo(small_config(levels=0)).eval()
    last = model.stage.reconstruction.decode_full[-1]
    with torch.no_grad():
        last.weight.mul_(30)
        last.bias.mul_(30)
    return model


def identity_model() -> ARVo:
    """A model whose stage returns its blurry reference: the residual's last conv is zero."""
    model = make_model()
    last = model.stage.reconstruction.decode_full[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    return model


def scene(seed: int, n: int, height: int, width: int) -> np.ndarray:
    """n frames [n, 3, H, W] in [0.1, 0.9] of smooth texture panning one pixel per frame.

    Smooth so chroma subsampling round-trips closely and consecutive frames differ far less than a cut.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width + n].astype(np.float32)
    planes = []
    for _ in range(3):
        value = np.zeros_like(x)
        for _ in range(4):
            fy, fx = rng.uniform(0.02, 0.12, 2)
            value += np.sin(fy * y + fx * x + rng.uniform(0, 2 * np.pi))
        planes.append(0.5 + 0.1 * value)
    texture = np.clip(np.stack(planes), 0.1, 0.9).astype(np.float32)
    return np.stack([texture[:, :, i:i + width] for i in range(n)])


def rgbs_clip(frames: np.ndarray) -> vs.VideoNode:
    """An RGBS clip whose frame n is frames[n] ([N, 3, H, W] float32)."""
    n, _, height, width = frames.shape
    blank = core.std.BlankClip(width=width, height=height, format=vs.RGBS, length=n)

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), frames[n, p])
        return out

    return core.std.ModifyFrame(blank, blank, fill)


def planes(clip: vs.VideoNode) -> list[list[np.ndarray]]:
    """Every frame's planes as float64 arrays (requested in parallel, as vspipe does)."""
    return [[np.asarray(f[p], dtype=np.float64) for p in range(f.format.num_planes)] for f in clip.frames()]


def stacked(clip: vs.VideoNode) -> np.ndarray:
    """An RGBS clip as [N, 3, H, W]."""
    return np.stack([np.stack(frame) for frame in planes(clip)])


def reference(model: ARVo, frames: np.ndarray, **kwargs) -> np.ndarray:
    with torch.inference_mode():
        return restore_clip(model, torch.from_numpy(frames), **kwargs).numpy()


def with_cut_props(a: vs.VideoNode, b: vs.VideoNode, *, prev: int = 1, nxt: int = 1) -> vs.VideoNode:
    """a + b with _SceneChangeNext on a's last frame and _SceneChangePrev on b's first."""
    a = a[:-1] + core.std.SetFrameProps(a[-1], _SceneChangeNext=nxt)
    b = core.std.SetFrameProps(b[0], _SceneChangePrev=prev) + b[1:]
    return a + b


class CountingRunner(StageRunner):
    """Wraps a real runner; counts calls and the most that ever ran at once."""

    def __init__(self, inner: StageRunner) -> None:
        self.inner = inner
        self.name, self.device, self.precision, self.stages = inner.name, inner.device, inner.precision, inner.stages
        self.calls = 0
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def run(self, prev, ref, nxt):
        with self._lock:
            self.calls += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            return self.inner.run(prev, ref, nxt)
        finally:
            with self._lock:
                self.active -= 1


@pytest.fixture(autouse=True)
def fresh_runners():
    """Each test gets its own runners (and monkeypatched factories never leak into the next)."""
    vsarvo_threads = torch.get_num_threads()
    vsfilter.release_runners()
    yield
    vsfilter.release_runners()
    torch.set_num_threads(vsarvo_threads)


@pytest.fixture
def counting(monkeypatch) -> list[CountingRunner]:
    """The runners the filter creates, wrapped in CountingRunner."""
    made: list[CountingRunner] = []

    def factory(backend: BackendOptions, **model: object) -> StageRunner:
        made.append(CountingRunner(create_runner(backend, **model)))
        return made[-1]

    monkeypatch.setattr(vsfilter, "create_runner", factory)
    return made


@pytest.fixture(scope="module")
def model() -> ARVo:
    return make_model()


@pytest.fixture(scope="module")
def weights(model, tmp_path_factory) -> Path:
    return save_model(model, tmp_path_factory.mktemp("weights") / "random.safetensors")


@pytest.fixture(scope="module")
def identity_weights(tmp_path_factory) -> Path:
    return save_model(identity_model(), tmp_path_factory.mktemp("weights") / "identity.safetensors")


@pytest.fixture(scope="module")
def cut_frames() -> np.ndarray:
    """Seven 64x96 frames: four of one shot, then three of another."""
    return np.concatenate([scene(1, 4, 64, 96), scene(2, 3, 64, 96)])


# --- wiring ----------------------------------------------------------------------------------------

def test_every_frame_equals_per_stage_clamped_reference_across_a_flagged_cut(model, weights, cut_frames):
    clip = with_cut_props(rgbs_clip(cut_frames[:4]), rgbs_clip(cut_frames[4:]))
    out = stacked(vsfilter.Deblur(clip, weights=weights))
    expected = reference(model, cut_frames, cuts={4})
    assert out.shape == expected.shape == (7, 3, 64, 96)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)


def test_flagged_cut_changes_the_frames_beside_it(model, weights, cut_frames):
    """The cut reference differs clearly from the uncut one next to the cut (so the test above bites)."""
    with_cut = reference(model, cut_frames, cuts={4})
    without = reference(model, cut_frames)
    change = np.abs(with_cut - without).reshape(7, -1).max(axis=1)
    assert change[[0, 1, 6]].tolist() == [0, 0, 0]
    assert change[3] > 1e-3 and change[4] > 1e-3


def test_cuts_are_detected_when_frames_carry_no_scene_change_properties(model, weights, cut_frames):
    out = stacked(vsfilter.Deblur(rgbs_clip(cut_frames), weights=weights))
    np.testing.assert_allclose(out, reference(model, cut_frames, cuts={4}), rtol=0, atol=1e-5)


def test_scene_change_properties_override_detection(model, weights, cut_frames):
    clip = with_cut_props(rgbs_clip(cut_frames[:4]), rgbs_clip(cut_frames[4:]), prev=0, nxt=0)
    out = stacked(vsfilter.Deblur(clip, weights=weights))
    np.testing.assert_allclose(out, reference(model, cut_frames), rtol=0, atol=1e-5)


def test_scene_change_off_lets_neighbours_cross_cuts(model, weights, cut_frames):
    clip = with_cut_props(rgbs_clip(cut_frames[:4]), rgbs_clip(cut_frames[4:]))
    out = stacked(vsfilter.Deblur(clip, weights=weights, scene_change=0))
    np.testing.assert_allclose(out, reference(model, cut_frames), rtol=0, atol=1e-5)


def test_single_stage_equals_one_clamped_pass(model, weights):
    frames = scene(3, 5, 64, 64)
    out = stacked(vsfilter.Deblur(rgbs_clip(frames), weights=weights, stages=1))
    np.testing.assert_allclose(out, reference(model, frames, stages=1), rtol=0, atol=1e-5)


@pytest.mark.parametrize("length", [1, 2, 3])
def test_clips_shorter_than_the_window_repeat_their_edge_frames(model, weights, length):
    frames = scene(4, length, 64, 64)
    out = stacked(vsfilter.Deblur(rgbs_clip(frames), weights=weights))
    np.testing.assert_allclose(out, reference(model, frames), rtol=0, atol=1e-5)


def test_tiled_equals_whole_frame(weights):
    clip = rgbs_clip(scene(5, 3, 96, 160))
    whole = stacked(vsfilter.Deblur(clip, weights=weights))
    tiled = stacked(vsfilter.Deblur(clip, weights=weights, tile=64))
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-5)


# --- model calls, sharing, threads -----------------------------------------------------------------

def test_each_stage_one_frame_is_computed_once(weights, counting):
    n = 9
    clip = vsfilter.Deblur(rgbs_clip(scene(6, n, 64, 64)), weights=weights)
    planes(clip)
    assert len(counting) == 1
    assert 2 * n <= counting[0].calls <= 2 * n + 2  # 4n if stage 2 recomputed its neighbours


def test_one_runner_serves_every_call_with_the_same_options(weights, counting):
    clip = rgbs_clip(scene(7, 2, 64, 64))
    vsfilter.Deblur(clip, weights=weights)
    vsfilter.Deblur(clip, weights=str(weights), stages=1)
    assert len(counting) == 1
    vsfilter.Deblur(clip, weights=weights, tile=64)
    assert len(counting) == 2


def test_streams_caps_concurrent_model_calls(weights, counting):
    core.num_threads = max(core.num_threads, 2)
    planes(vsfilter.Deblur(rgbs_clip(scene(8, 6, 64, 64)), weights=weights, streams=1))
    assert counting[0].max_active == 1


def test_torch_threads_times_concurrent_calls_fit_the_cores(weights):
    cores = len(os.sched_getaffinity(0))
    core.num_threads = 2
    vsfilter.Deblur(rgbs_clip(scene(9, 2, 64, 64)), weights=weights, streams=2)
    assert torch.get_num_threads() == max(1, cores // 2)
    vsfilter.Deblur(rgbs_clip(scene(9, 2, 64, 64)), weights=weights, streams=1)
    assert torch.get_num_threads() == cores


# --- formats ---------------------------------------------------------------------------------------

# Largest difference, in code values (float formats: in units of 1), between a clip and the
# identity model's output: conversion to RGBS and back, chroma resampled twice for 4:2:0.
ROUND_TRIPS = {
    vs.YUV420P8: 1,
    vs.YUV420P10: 2,
    vs.RGB24: 0,
    vs.RGBS: 1e-6,
    vs.GRAY16: 1,
}


@pytest.mark.parametrize("fmt", list(ROUND_TRIPS), ids=lambda f: core.get_video_format(f).name)
def test_identity_model_round_trips_each_format(identity_weights, fmt):
    source = rgbs_clip(scene(10, 3, 64, 80))
    clip = core.resize.Bicubic(source, format=fmt, matrix_s="709" if fmt != vs.RGB24 and fmt != vs.RGBS else None)
    clip = core.std.SetFrameProps(clip, Custom=7)
    out = vsfilter.Deblur(clip, weights=identity_weights)
    assert (out.format.id, out.width, out.height, out.num_frames) == (fmt, 80, 64, 3)
    worst = max(np.abs(a - b).max() for fa, fb in zip(planes(out), planes(clip)) for a, b in zip(fa, fb))
    assert worst <= ROUND_TRIPS[fmt]


def test_frame_properties_pass_through(identity_weights):
    clip = core.resize.Bicubic(rgbs_clip(scene(11, 2, 64, 64)), format=vs.YUV420P8, matrix_s="709")
    clip = core.std.SetFrameProps(clip, Custom=7, _SceneChangePrev=0, _Transfer=1)
    out = vsfilter.Deblur(clip, weights=identity_weights)
    for fo, fi in zip(out.frames(), clip.frames()):
        assert dict(fo.props) == dict(fi.props)


def test_yuv_is_converted_with_the_frames_matrix(model, weights):
    """A BT.709-flagged frame becomes the R'G'B' that BT.709 gives, whatever the size default."""
    frames = scene(12, 3, 64, 64)
    yuv = core.resize.Bicubic(rgbs_clip(frames), format=vs.YUV444PS, matrix_s="709")
    out = vsfilter.Deblur(yuv, weights=weights, scene_change=False)
    back = core.resize.Bicubic(out, format=vs.RGBS, matrix_in_s="709")
    np.testing.assert_allclose(stacked(back), reference(model, frames), rtol=0, atol=1e-4)


def test_unflagged_sd_yuv_is_read_as_bt601(model, weights):
    frames = scene(13, 3, 64, 64)
    yuv = core.resize.Bicubic(rgbs_clip(frames), format=vs.YUV444PS, matrix_s="170m")
    yuv = core.std.RemoveFrameProps(yuv, "_Matrix")
    out = vsfilter.Deblur(yuv, weights=weights, scene_change=False)
    back = core.resize.Bicubic(out, format=vs.RGBS, matrix_in_s="170m")
    np.testing.assert_allclose(stacked(back), reference(model, frames), rtol=0, atol=1e-4)


# --- bad input -------------------------------------------------------------------------------------

def test_variable_format_is_rejected(weights):
    a = core.std.BlankClip(width=64, height=64, format=vs.YUV420P8, length=2)
    b = core.std.BlankClip(width=64, height=64, format=vs.RGB24, length=2)
    with pytest.raises(vs.Error, match=r"arvo\.Deblur: the clip has a variable format; convert"):
        vsfilter.Deblur(core.std.Splice([a, b], mismatch=True), weights=weights)


def test_variable_size_is_rejected(weights):
    a = core.std.BlankClip(width=64, height=64, format=vs.YUV420P8, length=2)
    b = core.std.BlankClip(width=96, height=80, format=vs.YUV420P8, length=2)
    with pytest.raises(vs.Error, match=r"arvo\.Deblur: the clip has a variable frame size; resize"):
        vsfilter.Deblur(core.std.Splice([a, b], mismatch=True), weights=weights)


@pytest.mark.parametrize("bits", [32, 20])
def test_integer_samples_above_16_bit_are_rejected(weights, bits):
    fmt = core.query_video_format(vs.GRAY, vs.INTEGER, bits, 0, 0)
    clip = core.std.BlankClip(width=64, height=64, format=fmt.id, length=2)
    with pytest.raises(vs.Error, match=rf"arvo\.Deblur: Gray{bits} is not supported: use 8-16 bit integer"):
        vsfilter.Deblur(clip, weights=weights)


def test_frames_smaller_than_64_are_rejected(weights):
    clip = core.std.BlankClip(width=48, height=64, format=vs.RGBS, length=2)
    with pytest.raises(vs.Error, match=r"at least 64x64, got 48x64; pad"):
        vsfilter.Deblur(clip, weights=weights)


def test_interlaced_frames_are_rejected_with_deinterlace_advice(weights):
    clip = core.std.SetFrameProps(rgbs_clip(scene(14, 2, 64, 64)), _FieldBased=2)
    out = vsfilter.Deblur(clip, weights=weights)
    # Output frame 0 reads input frames 0-2, all interlaced here; VapourSynth's threads decide which of
    # them fails first, so any may be named.
    with pytest.raises(vs.Error, match=r"arvo\.Deblur: frame [012] is interlaced \(_FieldBased=2, top field first\); deinterlace first"):
        out.get_frame(0)


def test_an_interlaced_neighbour_is_named_when_a_progressive_frame_needs_it(weights):
    progressive = rgbs_clip(scene(14, 4, 64, 64))
    clip = progressive[:2] + core.std.SetFrameProps(progressive[2], _FieldBased=1) + progressive[3:]
    out = vsfilter.Deblur(clip, weights=weights)
    with pytest.raises(vs.Error, match=r"arvo\.Deblur: frame 2 is interlaced \(_FieldBased=1, bottom field first\)"):
        out.get_frame(0)


def test_missing_weights_file_is_named(tmp_path):
    clip = rgbs_clip(scene(15, 2, 64, 64))
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(vs.Error, match=rf"arvo\.Deblur: weights not found: {missing}; pass weights="):
        vsfilter.Deblur(clip, weights=missing)


def test_missing_shipped_weights_say_to_reinstall(tmp_path, monkeypatch):
    monkeypatch.setattr(vsfilter, "default_weights_path", lambda: tmp_path / "arvo_tiny.safetensors")
    with pytest.raises(vs.Error, match=r"arvo\.Deblur: the shipped weights are missing .*reinstall vsarvo"):
        vsfilter.Deblur(rgbs_clip(scene(15, 2, 64, 64)))


def test_corrupt_weights_are_rejected(weights, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(weights.read_bytes()[:100])
    shutil.copy(weights.with_suffix(".json"), bad.with_suffix(".json"))
    with pytest.raises(vs.Error, match=r"arvo\.Deblur: .*bad\.safetensors is not a readable safetensors file"):
        vsfilter.Deblur(rgbs_clip(scene(15, 2, 64, 64)), weights=bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_absent_device_is_rejected(weights):
    with pytest.raises(vs.Error, match=r"arvo\.Deblur: device 'cuda:7' requested but CUDA is not available here; use device='cpu'"):
        vsfilter.Deblur(rgbs_clip(scene(15, 2, 64, 64)), weights=weights, device="cuda:7")


def test_unknown_backend_is_rejected(weights):
    with pytest.raises(vs.Error, match=r"arvo\.Deblur: backend must be one of auto, torch, ort, trt, got 'tensorflow'"):
        vsfilter.Deblur(rgbs_clip(scene(15, 2, 64, 64)), weights=weights, backend="tensorflow")


def test_a_flat_option_of_another_backend_is_rejected(weights):
    with pytest.raises(vs.Error, match=r"arvo\.Deblur: compile is not an option of the ort backend; it needs backend='torch'"):
        vsfilter.Deblur(rgbs_clip(scene(15, 2, 64, 64)), weights=weights, backend="ort", compile=True)


def test_flat_backend_options_beside_a_backend_object_are_rejected(weights):
    with pytest.raises(vs.Error, match=r"arvo\.Deblur: device, threads given beside backend=Backend\.ORT\(\.\.\.\); "
                                       r"set them in the Backend\.ORT\(\.\.\.\) object instead"):
        vsfilter.Deblur(rgbs_clip(scene(15, 2, 64, 64)), weights=weights, backend=Backend.ORT(), device="cpu", threads=2)


def test_a_bad_backend_option_value_is_rejected(weights):
    with pytest.raises(vs.Error, match=r"arvo\.Deblur: optimization_level must be an integer in 0\.\.5, got 9"):
        vsfilter.Deblur(rgbs_clip(scene(15, 2, 64, 64)), weights=weights, backend="trt", optimization_level=9)


def test_a_backend_object_and_its_flat_spelling_share_one_runner(weights, counting):
    clip = rgbs_clip(scene(15, 2, 64, 64))
    vsfilter.Deblur(clip, weights=weights, backend=Backend.Torch(device="cpu", channels_last=False))
    vsfilter.Deblur(clip, weights=weights, backend="torch", device="cpu", channels_last=0)
    assert len(counting) == 1 and counting[0].inner.options == Backend.Torch(device="cpu", channels_last=False)


def test_more_stages_than_the_model_are_rejected(weights):
    with pytest.raises(vs.Error, match=r"arvo\.Deblur: stages must be an integer in 1\.\.2 \(this model's stages\), got 3"):
        vsfilter.Deblur(rgbs_clip(scene(15, 2, 64, 64)), weights=weights, stages=3)


def test_tile_overlap_without_tile_is_rejected(weights):
    with pytest.raises(vs.Error, match=r"arvo\.Deblur: tile_overlap needs tile"):
        vsfilter.Deblur(rgbs_clip(scene(15, 2, 64, 64)), weights=weights, tile_overlap=8)


# --- real vspipe | ffmpeg --------------------------------------------------------------------------

SOURCE_FRAMES, SOURCE_W, SOURCE_H = 8, 96, 64
# What ffprobe must find after decoding every frame of the result.
EXPECTED_STREAM = {"width": str(SOURCE_W), "height": str(SOURCE_H), "pix_fmt": "yuv420p",
                   "nb_read_frames": str(SOURCE_FRAMES)}


def have_arvo_namespace() -> bool:
    return any(p.namespace == "arvo" for p in core.plugins())


@pytest.fixture(scope="module")
def source_video(tmp_path_factory) -> Path:
    """An 8-frame 96x64 H.264 clip with an AAC audio track, made by ffmpeg."""
    path = tmp_path_factory.mktemp("video") / "testsrc.mkv"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc=size={SOURCE_W}x{SOURCE_H}:rate=10",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-frames:v", str(SOURCE_FRAMES), "-t", "0.8", "-c:v", "libx264", "-pix_fmt", "yuv420p",
         "-c:a", "aac", str(path)],
        check=True, capture_output=True,
    )
    return path


def tool_env() -> dict[str, str]:
    """The environment with this venv's vspipe first on PATH."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def pipe_through_ffmpeg(script: Path, args: list[str], out: Path) -> None:
    """vspipe -c y4m SCRIPT - | ffmpeg -f yuv4mpegpipe -i - (raw video in a NUT file) OUT.

    Both must succeed and ffmpeg must report nothing: stray bytes on vspipe's stdout would corrupt
    the stream and make ffmpeg complain or lose frames.
    """
    vspipe = subprocess.Popen(
        [str(BIN / "vspipe"), "-c", "y4m", *args, str(script), "-"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=tool_env(),
    )
    ffmpeg = subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "yuv4mpegpipe", "-i", "-", "-c:v", "rawvideo", "-f", "nut", str(out)],
        stdin=vspipe.stdout, capture_output=True,
    )
    vspipe.stdout.close()
    vspipe_err = vspipe.stderr.read().decode()
    assert vspipe.wait(timeout=300) == 0, vspipe_err
    assert ffmpeg.returncode == 0 and ffmpeg.stderr == b"", ffmpeg.stderr.decode()


def probe(path: Path) -> dict[str, str]:
    """ffprobe's view of the first video stream, every frame decoded and counted."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=width,height,pix_fmt,nb_read_frames", "-of", "default=nw=1", str(path)],
        check=True, capture_output=True, text=True,
    )
    return dict(line.split("=", 1) for line in result.stdout.split())


def backend_available(name: str) -> bool:
    return importlib.util.find_spec(f"vsarvo.backends.{name}_backend") is not None


@pytest.mark.parametrize("backend", [
    "torch",
    pytest.param("ort", marks=pytest.mark.skipif(not backend_available("ort"), reason="the ort backend is not in the tree yet")),
])
def test_vspipe_ffmpeg_pipeline_with_the_python_filter(source_video, weights, tmp_path, backend):
    script = tmp_path / "direct.vpy"
    script.write_text(
        "import vapoursynth as vs\n"
        "import vsarvo\n"
        "clip = vs.core.bs.VideoSource(src, cachemode=0, showprogress=0)\n"
        "vsarvo.Deblur(clip, weights=weights, backend=backend, device='cpu').set_output()\n"
    )
    out = tmp_path / "out.nut"
    args = ["-a", f"src={source_video}", "-a", f"weights={weights}", "-a", f"backend={backend}"]
    pipe_through_ffmpeg(script, args, out)
    assert probe(out) == EXPECTED_STREAM


@pytest.mark.skipif(not have_arvo_namespace(), reason="core.arvo is not installed yet (the native shim: pip install -e .)")
def test_example_script_runs_in_vspipe_ffmpeg(source_video, weights, tmp_path):
    out = tmp_path / "out.nut"
    pipe_through_ffmpeg(REPO / "examples" / "deblur.vpy", ["-a", f"src={source_video}", "-a", f"weights={weights}"], out)
    assert probe(out) == EXPECTED_STREAM


@pytest.mark.skipif(not have_arvo_namespace(), reason="core.arvo is not installed yet (the native shim: pip install -e .)")
def test_example_pipe_sh_writes_video_with_the_source_audio(source_video, weights, tmp_path):
    out = tmp_path / "deblurred.mkv"
    subprocess.run(
        ["bash", str(REPO / "examples" / "pipe.sh"), str(source_video), str(out), f"weights={weights}"],
        check=True, capture_output=True, env=tool_env(),
    )
    assert probe(out) == EXPECTED_STREAM
    audio = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=codec_name",
         "-of", "default=nw=1:nk=1", str(out)],
        check=True, capture_output=True, text=True,
    )
    assert audio.stdout.strip() == "aac"


# --- overhead --------------------------------------------------------------------------------------

def filter_overhead(weights: Path, *, n: int = 12, size: int = 128, repeats: int = 5) -> float:
    """(filter time / bare loop of the same 2N runner calls) - 1, best of ``repeats`` each."""
    frames = scene(16, n, size, size)
    clip = rgbs_clip(frames)
    runner = create_runner(Backend.Torch(), weights=str(weights))
    tensors = [torch.from_numpy(f).unsqueeze(0) for f in frames]
    r1 = [runner.run(tensors[max(j - 1, 0)], tensors[j], tensors[min(j + 1, n - 1)]) for j in range(n)]
    # Load and warm the filter's shared runner the way r1 above warmed the bare loop's.
    vsfilter.Deblur(clip, weights=weights).get_frame(n // 2)
    bare, filtered = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        for j in range(n):
            runner.run(tensors[max(j - 1, 0)], tensors[j], tensors[min(j + 1, n - 1)])
        for j in range(n):
            runner.run(r1[max(j - 1, 0)], r1[j], r1[min(j + 1, n - 1)])
        bare.append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in vsfilter.Deblur(clip, weights=weights).frames():  # a new graph: nothing cached
            pass
        filtered.append(time.perf_counter() - start)
    return min(filtered) / min(bare) - 1


@pytest.mark.slow
def test_filter_overhead_over_bare_runner_calls_is_small(tmp_path):
    torch.manual_seed(0)
    weights = save_model(ARVo(ARVoConfig.tiny()), tmp_path / "tiny.safetensors")
    overhead = filter_overhead(weights)
    print(f"filter overhead over bare runner calls: {overhead:+.1%}", file=sys.stderr)
    assert overhead < 0.25
