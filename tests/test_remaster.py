"""`arvo remaster` and `arvo deblur` with real vspipe and ffmpeg processes on small generated videos.

Every source is made here with ffmpeg (lavfi testsrc2 + a sine tone, 96x64, 10-24 frames) and
deblurred with one tiny random model (session fixture), so a file takes seconds on a CPU. Most
checks read one finished folder job (module fixture: an mkv, an mp4 in a subfolder and a corrupt
file, run with --jobs 2); the rest each run the job they are about.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest

from vsarvo.remaster.cli import parse_devices
from vsarvo.remaster.encoder import Encoder, ffmpeg_command
from vsarvo.remaster.framepipe import MatroskaWriter, read_header
from vsarvo.remaster.job import PARTIAL_MARK
from vsarvo.remaster.lock import LOCK_NAME, JobLock, JobLockedError
from vsarvo.remaster.manifest import Manifest, format_table, settings_hash
from vsarvo.remaster.probe import SourceInfo
from vsarvo.remaster.sources import find_sources
from vsarvo.remaster.transcode import is_variable_rate

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

CLI = [sys.executable, "-m", "vsarvo.cli"]
ROOT = Path(__file__).resolve().parents[1]


# --- helpers ---------------------------------------------------------------------------------------


# Fixed bytes, not os.urandom: some random 4 kB blocks probe as an audio stream, which turns
# ffprobe's "Invalid data" into our "no video stream" (seen once in CI).
NOT_A_VIDEO = b"this is not a video\n" * 200

# Frames of a clip whose run a test stops (signal, SIGKILL) once its partial output appears. ffmpeg
# creates that file only after it has read the first frames of vspipe's stream: a 24-frame clip's
# partial existed for 0.4 s at the end of a 9 s run (loaded 2-core machine), so the job could finish
# before the test's signal reached it. 120 frames leave seconds of encoding after the partial appears.
STOPPED_FRAMES = 120


def make_video(path: Path, *, frames: int, rate: int = 24, audio: bool = True, codec: str = "libx264",
               pix_fmt: str = "yuv420p", video_filter: str | None = None) -> Path:
    """A 96x64 testsrc2 clip of ``frames`` frames with a sine tone as long as the video."""
    path.parent.mkdir(parents=True, exist_ok=True)
    command = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=96x64:rate={rate}"]
    if audio:
        command += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", f"{frames / rate:.4f}",
                    "-c:a", "aac"]
    if video_filter:
        command += ["-vf", video_filter, "-fps_mode", "passthrough"]
    command += ["-frames:v", str(frames), "-c:v", codec, "-pix_fmt", pix_fmt, str(path)]
    subprocess.run(command, check=True, timeout=60)
    return path


def ffprobe(path: Path, *args: str) -> dict:
    done = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *args, str(path)],
                          capture_output=True, text=True, check=True, timeout=60)
    return json.loads(done.stdout)


def frame_count(path: Path) -> int:
    data = ffprobe(path, "-select_streams", "v:0", "-count_frames", "-show_entries", "stream=nb_read_frames")
    return int(data["streams"][0]["nb_read_frames"])


def stream_types(path: Path) -> list[str]:
    return [s["codec_type"] for s in ffprobe(path, "-show_entries", "stream=codec_type")["streams"]]


def video_codec(path: Path) -> str:
    return ffprobe(path, "-select_streams", "v:0", "-show_entries", "stream=codec_name")["streams"][0]["codec_name"]


def duration(path: Path) -> float:
    return float(ffprobe(path, "-show_entries", "format=duration")["format"]["duration"])


def video_times(path: Path) -> list[float]:
    """Presentation times of the video frames, in seconds, in display order."""
    packets = ffprobe(path, "-select_streams", "v:0", "-show_entries", "packet=pts_time")["packets"]
    return sorted(float(p["pts_time"]) for p in packets)


def rgb_frames(path: Path) -> "np.ndarray":
    """Every frame decoded to 8-bit RGB, shape (frames, height, width, 3)."""
    import numpy as np

    done = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                          capture_output=True, check=True, timeout=60)
    return np.frombuffer(done.stdout, np.uint8).reshape(-1, 64, 96, 3)


def first_audio_time(path: Path) -> float:
    packets = ffprobe(path, "-select_streams", "a:0", "-show_entries", "packet=pts_time")["packets"]
    return min(float(p["pts_time"]) for p in packets)


def arvo(*args: str | Path, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, **kwargs)


def partials(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(f"*{PARTIAL_MARK}*")]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> Path:
    """One tiny random model for the whole session (a narrower tiny preset: about a second per clip)."""
    import torch

    from vsarvo.model import ARVo, ARVoConfig
    from vsarvo.weights import save_model

    torch.manual_seed(0)
    config = ARVoConfig.tiny(channels=8, encoder_width=4, recon_width=8, recon_blocks=1, flow_width=0.1, disc_width=4)
    return save_model(ARVo(config), tmp_path_factory.mktemp("weights") / "tiny.safetensors")


@pytest.fixture(scope="session")
def common(weights) -> list[str]:
    """Options every job here uses: the tiny model on the CPU, lossless FFV1 (fast to encode)."""
    return ["--weights", str(weights), "--device", "cpu", "--encoder", "ffv1"]


@pytest.fixture(scope="module")
def folder_job(tmp_path_factory, common):
    """A folder (an mkv, an mp4 in a subfolder, a corrupt mkv) remastered with --jobs 2."""
    root = tmp_path_factory.mktemp("folder_job")
    src = root / "in"
    make_video(src / "one.mkv", frames=10, rate=24)
    make_video(src / "sub" / "two.mp4", frames=12, rate=25)
    (src / "broken.mkv").write_bytes(NOT_A_VIDEO)
    (src / "notes.txt").write_text("not a video")
    out = root / "out"
    done = arvo("remaster", src, "--out", out, "--jobs", "2", *common)
    return src, out, done


# --- one folder job end to end ------------------------------------------------------------------


def test_folder_job_writes_every_good_file_with_its_frame_count(folder_job):
    src, out, _ = folder_job
    assert frame_count(out / "one.mkv") == frame_count(src / "one.mkv") == 10
    assert frame_count(out / "sub" / "two.mkv") == frame_count(src / "sub" / "two.mp4") == 12


def test_folder_job_keeps_audio_and_duration_within_a_frame(folder_job):
    src, out, _ = folder_job
    for source, output, rate in ((src / "one.mkv", out / "one.mkv", 24), (src / "sub" / "two.mp4", out / "sub" / "two.mkv", 25)):
        assert sorted(stream_types(output)) == ["audio", "video"]
        assert abs(duration(output) - duration(source)) <= 1 / rate


def test_folder_job_keeps_frame_times_relative_to_the_audio(folder_job):
    # Relative to the first audio packet: a container that cannot start below zero (Matroska) shifts
    # every stream by the AAC priming delay, which moves both together.
    src, out, _ = folder_job
    for source, output in ((src / "one.mkv", out / "one.mkv"), (src / "sub" / "two.mp4", out / "sub" / "two.mkv")):
        expected = [t - first_audio_time(source) for t in video_times(source)]
        assert [t - first_audio_time(output) for t in video_times(output)] == pytest.approx(expected, abs=0.0015)


def test_corrupt_file_is_recorded_failed_with_its_reason(folder_job):
    _, out, _ = folder_job
    entry = read_json(out / "arvo-job.json")["files"]["broken.mkv"]
    assert entry["status"] == "failed"
    assert "Invalid data" in entry["reason"]
    assert Path(entry["log"]).is_file()
    assert not (out / "broken.mkv").exists()


def test_job_with_a_failed_file_finishes_the_others_and_exits_1(folder_job):
    _, out, done = folder_job
    assert done.returncode == 1, done.stderr
    statuses = {key: entry["status"] for key, entry in read_json(out / "arvo-job.json")["files"].items()}
    assert statuses == {"one.mkv": "done", "sub/two.mkv": "done", "broken.mkv": "failed"}


def test_summary_json_and_table_list_done_and_failed(folder_job):
    _, out, done = folder_job
    summary = read_json(out / "arvo-summary.json")
    assert summary["counts"] == {"done": 2, "skipped": 0, "failed": 1, "interrupted": 0}
    assert [row["key"] for row in summary["files"]] == ["broken.mkv", "one.mkv", "sub/two.mkv"]
    assert "2 done, 0 skipped, 1 failed" in done.stderr


def test_jobs_2_runs_two_files_at_once(folder_job):
    _, _, done = folder_job
    lines = done.stderr.splitlines()
    started = [i for i, line in enumerate(lines) if "one.mkv: started" in line or "two.mkv: started" in line]
    first_done = min(i for i, line in enumerate(lines) if ": done," in line)
    assert len(started) == 2 and max(started) < first_done


def test_progress_reports_frames_fps_and_eta(folder_job):
    _, _, done = folder_job
    assert "frames in" in done.stderr and "fps" in done.stderr
    assert "overall" in done.stderr and "ETA" in done.stderr


def test_folder_job_leaves_no_partial_files(folder_job):
    _, out, _ = folder_job
    assert partials(out) == []


def test_rerun_skips_finished_files(folder_job, tmp_path, common):
    src, out, _ = folder_job
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    before = {p: p.stat().st_mtime_ns for p in (copy / "one.mkv", copy / "sub" / "two.mkv")}
    done = arvo("remaster", src, "--out", copy, "--jobs", "2", *common)
    counts = read_json(copy / "arvo-summary.json")["counts"]
    assert counts == {"done": 0, "skipped": 2, "failed": 1, "interrupted": 0}, done.stderr
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_changed_settings_reprocess_the_file(folder_job, tmp_path, common):
    src, out, _ = folder_job
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    old_hash = read_json(copy / "arvo-job.json")["files"]["one.mkv"]["settings_hash"]
    settings = [*common[:-1], "x264", "--crf", "30"]
    done = arvo("remaster", src / "one.mkv", "--out", copy, *settings)
    assert done.returncode == 0, done.stderr
    entry = read_json(copy / "arvo-job.json")["files"]["one.mkv"]
    assert read_json(copy / "arvo-summary.json")["counts"]["done"] == 1
    assert entry["settings_hash"] != old_hash
    assert video_codec(copy / "one.mkv") == "h264"
    assert frame_count(copy / "one.mkv") == 10


def test_example_job_script_resumes_a_finished_folder(folder_job, tmp_path, weights):
    src, out, _ = folder_job
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "ENCODER": "ffv1", "WEIGHTS": str(weights), "DEVICES": "cpu"}
    done = subprocess.run(["bash", str(ROOT / "examples" / "remaster_job.sh"), str(src), str(copy)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "some files failed" in done.stderr
    assert read_json(copy / "arvo-summary.json")["counts"] == {"done": 0, "skipped": 2, "failed": 1, "interrupted": 0}
    assert read_json(copy / "arvo-job.json")["files"]["broken.mkv"]["attempts"] == 2  # RETRIES=1


# --- failures of the job itself ---------------------------------------------------------------------


def test_unwritable_output_folder_is_a_clear_error(tmp_path, common):
    source = make_video(tmp_path / "in" / "clip.mkv", frames=10, audio=False)
    out = tmp_path / "readonly"
    out.mkdir()
    out.chmod(0o555)
    command = [*CLI, "remaster", str(source), "--out", str(out), *common]
    if os.geteuid() == 0:
        # root ignores permission bits unless it gives up CAP_DAC_OVERRIDE, which setpriv does.
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv")
        command = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert f"cannot write to the output folder {out}" in done.stderr
    assert "Permission denied" in done.stderr
    assert list(out.iterdir()) == []


def test_missing_source_is_a_clear_error(tmp_path, common):
    done = arvo("remaster", tmp_path / "nothing-here", "--out", tmp_path / "out", *common)
    assert done.returncode == 2
    assert "nothing-here does not exist" in done.stderr


# --- the job lock ------------------------------------------------------------------------------------


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_job_with_a_failed_file_removes_its_lock(folder_job):
    _, out, done = folder_job
    assert done.returncode == 1
    assert not (out / LOCK_NAME).exists()


def test_job_that_cannot_start_after_locking_removes_its_lock(tmp_path, common):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("not a video")
    out = tmp_path / "out"
    done = arvo("remaster", tmp_path / "in", "--out", out, *common)
    assert done.returncode == 2
    assert "no video files" in done.stderr
    assert list(out.iterdir()) == []


def test_stale_lock_of_a_killed_job_is_taken_over_and_removed(tmp_path, common):
    source = make_video(tmp_path / "in" / "clip.mkv", frames=10, audio=False)
    out = tmp_path / "out"
    out.mkdir()
    pid = dead_pid()
    (out / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "earlier"}))
    done = arvo("remaster", source, "--out", out, *common)
    assert done.returncode == 0, done.stderr
    assert f"(pid {pid} on {socket.gethostname()}, started earlier) ended without removing its lock" in done.stderr
    assert frame_count(out / "clip.mkv") == 10
    assert not (out / LOCK_NAME).exists()


def test_lock_of_a_running_job_refuses_a_second_job(tmp_path, common):
    source = make_video(tmp_path / "in" / "clip.mkv", frames=10, audio=False)
    out = tmp_path / "out"
    out.mkdir()
    with JobLock(out):
        done = arvo("remaster", source, "--out", out, *common)
        assert (out / LOCK_NAME).exists()
    assert done.returncode == 2
    assert f"another arvo job (pid {os.getpid()} on {socket.gethostname()}, started " in done.stderr
    assert not (out / "clip.mkv").exists()
    assert not (out / LOCK_NAME).exists()


# --- interruption ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_killed_job_resumes_without_partial_files(tmp_path, common):
    src = tmp_path / "in"
    make_video(src / "a.mkv", frames=10)
    make_video(src / "b.mkv", frames=STOPPED_FRAMES)
    out = tmp_path / "out"
    with open(tmp_path / "job.log", "w") as log:
        job = subprocess.Popen([*CLI, "remaster", str(src), "--out", str(out), "--jobs", "1", *common],
                               stdout=log, stderr=log, start_new_session=True)
        try:
            wait_for(lambda: (out / "a.mkv").exists() and partials(out), 240, "the second file's partial output")
        finally:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    assert not (out / "b.mkv").exists()
    assert frame_count(out / "a.mkv") == 10

    done = arvo("remaster", src, "--out", out, "--jobs", "1", *common)
    assert done.returncode == 0, done.stderr
    assert partials(out) == []
    assert {row["key"]: row["status"] for row in read_json(out / "arvo-summary.json")["files"]} == {
        "a.mkv": "skipped", "b.mkv": "done"}
    assert frame_count(out / "b.mkv") == STOPPED_FRAMES


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_job_with_128_plus_it_and_removes_partial_and_lock(tmp_path, common, signum):
    source = make_video(tmp_path / "in" / "long.mkv", frames=STOPPED_FRAMES)
    out = tmp_path / "out"
    with open(tmp_path / "job.log", "w") as log:
        job = subprocess.Popen([*CLI, "remaster", str(source), "--out", str(out), *common],
                               stdout=log, stderr=log, start_new_session=True)
        try:
            wait_for(lambda: partials(out), 240, "a partial output")
            assert (out / LOCK_NAME).exists()
            job.send_signal(signum)
            assert job.wait(timeout=60) == 128 + signum
        finally:
            if job.poll() is None:
                os.killpg(job.pid, signal.SIGKILL)
    assert not (out / LOCK_NAME).exists()
    assert partials(out) == []
    assert not (out / "long.mkv").exists()
    assert read_json(out / "arvo-summary.json")["interrupted"] is True
    assert read_json(out / "arvo-job.json")["files"]["long.mkv"]["status"] == "interrupted"
    with pytest.raises(ProcessLookupError):  # vspipe and ffmpeg went with it
        os.killpg(job.pid, 0)


# --- frame rate and containers ------------------------------------------------------------------------


def test_variable_frame_rate_source_keeps_its_frame_times(tmp_path, common):
    # Six frames at 30 fps, then six at 15 fps.
    source = make_video(tmp_path / "vfr.mkv", frames=12, rate=30, audio=False,
                        video_filter="setpts='if(lt(N,6),N/30,6/30+(N-6)/15)/TB'")
    times = video_times(source)
    assert times[7] - times[6] == pytest.approx(1 / 15, abs=0.002)
    out = tmp_path / "out"
    done = arvo("remaster", source, "--out", out, *common)
    assert done.returncode == 0, done.stderr
    assert video_times(out / "vfr.mkv") == pytest.approx(times, abs=0.0015)
    assert read_json(out / "arvo-job.json")["files"]["vfr.mkv"]["vfr"] is True


def test_deblur_writes_one_mp4_with_x264_and_audio(tmp_path, weights):
    source = make_video(tmp_path / "clip.mp4", frames=10, rate=25)
    output = tmp_path / "clip-deblurred.mp4"
    done = arvo("deblur", source, output, "--weights", weights, "--device", "cpu", "--encoder", "x264", "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert video_codec(output) == "h264"
    assert frame_count(output) == 10
    assert sorted(stream_types(output)) == ["audio", "video"]


def make_audio_only(path: Path) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                    "-c:a", "flac", str(path)], check=True)
    return path


@pytest.mark.parametrize("kind, reason", [("text", "Invalid data"), ("audio only", "no video stream")])
def test_deblur_of_a_file_without_video_exits_1_with_the_reason(tmp_path, weights, kind, reason):
    source = tmp_path / "broken.mkv"
    if kind == "text":
        source.write_bytes(NOT_A_VIDEO)
    else:
        make_audio_only(source)
    done = arvo("deblur", source, tmp_path / "out.mkv", "--weights", weights, "--quiet")
    assert done.returncode == 1
    assert reason in done.stderr
    assert not (tmp_path / "out.mkv").exists()


def test_rgb_source_comes_out_rgb_with_its_planes_in_place(tmp_path, weights):
    source = make_video(tmp_path / "rgb.mkv", frames=10, audio=False, codec="ffv1", pix_fmt="gbrp")
    output = tmp_path / "out.mkv"
    done = arvo("deblur", source, output, "--weights", weights, "--device", "cpu", "--encoder", "ffv1", "--quiet")
    assert done.returncode == 0, done.stderr
    stream = ffprobe(output, "-show_entries", "stream=pix_fmt,color_space")["streams"][0]
    assert stream == {"pix_fmt": "bgr0", "color_space": "gbr"}  # how FFV1 stores 8-bit RGB
    # The random tiny model changes pixels by about 1e-3: a plane in the wrong place would differ by ~100.
    difference = abs(rgb_frames(output).astype(int) - rgb_frames(source).astype(int))
    assert difference.shape[0] == 10 and difference.mean() < 2


def test_ffmpeg_error_is_the_files_reason(tmp_path, weights):
    source = make_video(tmp_path / "clip.mkv", frames=10, audio=False)
    done = arvo("deblur", source, tmp_path / "out.mkv", "--weights", weights, "--device", "cpu",
                "--ffmpeg-args", "-c:v no_such_encoder", "--quiet")
    assert done.returncode == 1
    assert "ffmpeg: Unknown encoder 'no_such_encoder'" in done.stderr
    log = tmp_path / "out.mkv.arvo.log"
    assert f"(log: {log})" in done.stderr and "no_such_encoder" in log.read_text()
    assert sorted(p.name for p in tmp_path.glob("*out*")) == ["out.mkv.arvo.log"]


# --- the filter's options reach the filter ------------------------------------------------------------


@pytest.fixture(scope="session")
def visible_weights(tmp_path_factory) -> Path:
    """The narrow tiny model with its residual head re-initialised: it changes frames by tens of
    levels, so the output pixels tell which weights, stages and options made them."""
    import torch

    from vsarvo.model import ARVo, ARVoConfig
    from vsarvo.weights import save_model

    torch.manual_seed(1)
    model = ARVo(ARVoConfig.tiny(channels=8, encoder_width=4, recon_width=8, recon_blocks=1, flow_width=0.1,
                                 disc_width=4))
    model.stage.reconstruction.decode_full[-1].reset_parameters()
    return save_model(model, tmp_path_factory.mktemp("visible") / "visible.safetensors")


def cut_clip(path: Path) -> Path:
    """96x64, 6 frames, lossless 4:2:0, with a scene cut after frame 2 (the picture is negated)."""
    return make_video(path, frames=6, audio=False, codec="ffv1", video_filter="negate=enable='gte(n,3)'")


def planes(clip) -> "np.ndarray":
    """Every frame's planes of a YUV420P8 clip, Y then U and V flattened, shape (frames, samples)."""
    import numpy as np

    rows = []
    for frame in clip.frames():
        rows.append(np.concatenate([np.asarray(frame[i]).ravel() for i in range(clip.format.num_planes)]))
    return np.stack(rows).astype(np.int16)


def file_planes(path: Path) -> "np.ndarray":
    import vapoursynth as vs

    return planes(vs.core.bs.VideoSource(str(path)))


def filter_planes(source: Path, **options) -> "np.ndarray":
    """What vsarvo.Deblur makes of ``source`` in this process, with ``options``."""
    import vapoursynth as vs

    import vsarvo

    clip = vs.core.bs.VideoSource(str(source))
    return planes(vsarvo.Deblur(clip, device="cpu", backend="torch", **options))


# The halo is at least the model's receptive radius (77 pixels here): the filter refuses smaller ones.
PIXEL_FLAGS = ["--stages", "1", "--no-scene-change", "--precision", "bf16", "--tile", "48", "--tile-overlap", "80"]
PIXEL_OPTIONS = {"stages": 1, "scene_change": False, "precision": "bf16", "tile": 48, "tile_overlap": 80}


@pytest.fixture(scope="module")
def options_job(tmp_path_factory, visible_weights):
    """One clip deblurred by `arvo deblur` with non-default options, and vsarvo.Deblur's frames for it."""
    root = tmp_path_factory.mktemp("options_job")
    source = cut_clip(root / "cut.mkv")
    output = root / "out.mkv"
    done = arvo("deblur", source, output, "--weights", visible_weights, "--device", "cpu", "--backend", "torch",
                "--encoder", "ffv1", *PIXEL_FLAGS, "--quiet")
    assert done.returncode == 0, done.stderr
    expected = filter_planes(source, weights=str(visible_weights), **PIXEL_OPTIONS)
    return source, file_planes(output), expected


def test_batch_output_pixels_are_the_filters_with_the_given_options(options_job):
    source, got, expected = options_job
    assert got.shape == expected.shape == (6, 96 * 64 * 3 // 2)
    assert abs(got - expected).max() <= 1
    # The model visibly changes the frames: an output that skipped the filter would not match.
    assert abs(file_planes(source) - expected).mean() > 2


@pytest.mark.parametrize("dropped, default", [
    ("weights", None), ("stages", None), ("scene_change", True), ("precision", "fp32"),
])
def test_each_option_changes_the_pixels_so_a_dropped_one_shows(options_job, visible_weights, dropped, default):
    """Controls for the test above: with any one option at its default the filter's frames differ from
    the batch output by more than its 1-level tolerance. (A dropped --tile shows differently: the
    filter refuses --tile-overlap without it, and the file fails.)"""
    source, got, _ = options_job
    options = {"weights": str(visible_weights), **PIXEL_OPTIONS, dropped: default}
    assert abs(filter_planes(source, **options) - got).max() > 1


def test_trt_options_reach_the_filter_from_the_batch_cli(tmp_path):
    """--workspace (a TensorRT option) travels to vspipe in the filter's keyword arguments."""
    from vsarvo.cli import build_parser
    from vsarvo.remaster.job import DeblurOptions
    from vsarvo.remaster.transcode import vspipe_command

    args = build_parser("remaster").parse_args(
        ["remaster", "in.mkv", "--out", "o", "--backend", "trt", "--workspace", "512", "--optimization-level", "5"])
    deblur = DeblurOptions.from_values(args)
    command = vspipe_command(tmp_path / "remaster.vpy", tmp_path, source="in.mkv", deblur=deblur, device="cuda:1")
    sent = json.loads(next(arg.removeprefix("deblur=") for arg in command if arg.startswith("deblur=")))
    assert sent == {"backend": "trt", "workspace": 512, "optimization_level": 5, "device": "cuda:1"}


def test_default_options_keep_the_settings_hash_of_earlier_jobs():
    from vsarvo.remaster.job import DeblurOptions

    settings = DeblurOptions.from_values({}).settings("0" * 64)
    assert settings == {"weights_sha256": "0" * 64, "backend": "auto", "precision": None, "stages": None,
                        "scene_change": True, "sc_threshold": None}
    assert DeblurOptions.from_values({"sc_threshold": 0.1, "device": "cuda:0", "tile": 256}).settings("0" * 64) == settings
    assert settings_hash(settings) == "e13e346a8ae0efada60c2ffce2ce8e0d50472856a824f005bfcdd067c417f6a0"


# --- Ray ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ray_local_runs_the_job_with_the_same_manifest(tmp_path, common):
    pytest.importorskip("ray")
    src = tmp_path / "in"
    make_video(src / "a.mkv", frames=10)
    make_video(src / "b.mp4", frames=10, rate=25)
    out = tmp_path / "out"
    done = arvo("remaster", src, "--out", out, "--ray", "local", "--jobs", "2", *common, timeout=400)
    assert done.returncode == 0, done.stderr
    files = read_json(out / "arvo-job.json")["files"]
    assert {key: entry["status"] for key, entry in files.items()} == {"a.mkv": "done", "b.mkv": "done"}
    assert frame_count(out / "a.mkv") == 10 and frame_count(out / "b.mkv") == 10
    assert read_json(out / "arvo-summary.json")["counts"]["done"] == 2


# --- the parts, without vspipe -------------------------------------------------------------------------


def test_matroska_pipe_gives_ffmpeg_each_frames_timestamp_and_format(tmp_path):
    path = tmp_path / "frames.mkv"
    times_us = [0, 40_000, 60_000, 160_000, 170_000]
    frame_size = 96 * 64 * 3  # 4:2:0 at 10 bit: 1.5 samples per pixel, 2 bytes each
    with open(path, "wb") as fh:
        writer = MatroskaWriter(fh, width=96, height=64, fourcc=b"Y3\x0b\x0a", frame_size=frame_size)
        for t in times_us:
            writer.write(t, bytes(frame_size))
    stream = ffprobe(path, "-show_entries", "stream=pix_fmt,width,height")["streams"][0]
    assert stream == {"pix_fmt": "yuv420p10le", "width": 96, "height": 64}
    assert video_times(path) == pytest.approx([t / 1e6 for t in times_us], abs=1e-6)


def test_matroska_writer_rejects_timestamps_that_do_not_increase(tmp_path):
    with open(tmp_path / "x.mkv", "wb") as fh:
        writer = MatroskaWriter(fh, width=2, height=2, fourcc=b"Y800", frame_size=4)
        writer.write(10, bytes(4))
        with pytest.raises(ValueError, match="increase"):
            writer.write(10, bytes(4))


def test_y4m_header_gives_size_rate_format_and_length():
    import io

    header = read_header(io.BytesIO(b"YUV4MPEG2 C420p10 W96 H64 F24000:1001 Ip A0:0 XLENGTH=18\n"))
    assert (header.width, header.height, header.fps, header.chroma, header.bits, header.frames) == (
        96, 64, Fraction(24000, 1001), "420", 10, 18)
    assert header.frame_size == 96 * 64 * 3
    assert header.fourcc() == b"Y3\x0b\x0a"
    mono = read_header(io.BytesIO(b"YUV4MPEG2 Cmono W5 H3 F25:1\n"))
    assert (mono.frame_size, mono.fourcc(), mono.frames) == (15, b"Y800", None)


def test_frame_times_off_the_nominal_grid_are_variable_rate():
    assert not is_variable_rate([21.0, 63.0, 104.0, 146.0], Fraction(24))  # ms-rounded 24 fps
    assert is_variable_rate([0.0, 33.33, 66.67, 133.33], Fraction(30))


def test_sources_from_folders_globs_and_lists(tmp_path):
    (tmp_path / "in" / "deep").mkdir(parents=True)
    for name in ("in/a.mkv", "in/deep/b.MP4", "in/readme.txt", "in/.hidden.mkv", "c.mov", "out/old.mkv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "list.txt").write_text("# clips\nc.mov\n\nin/a.mkv\n")
    found = find_sources([str(tmp_path / "in"), str(tmp_path / "*.mov"), str(tmp_path / "list.txt")],
                         exclude=tmp_path / "out")
    assert [(s.path.relative_to(tmp_path).as_posix(), s.relative.as_posix()) for s in found] == [
        ("in/a.mkv", "a.mkv"), ("in/deep/b.MP4", "deep/b.MP4"), ("c.mov", "c.mov")]


def test_sources_from_a_previous_jobs_manifest(tmp_path):
    clip = tmp_path / "clip.mkv"
    clip.write_bytes(b"")
    (tmp_path / "arvo-job.json").write_text(json.dumps({"version": 1, "files": {"clip.mkv": {"source": str(clip)}}}))
    assert [s.path for s in find_sources([str(tmp_path / "arvo-job.json")])] == [clip.resolve()]


def test_output_folder_inside_the_source_folder_is_not_a_source(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "a.mkv").write_bytes(b"")
    (tmp_path / "out" / "a.mkv").write_bytes(b"")
    assert [s.relative.as_posix() for s in find_sources([str(tmp_path)], exclude=tmp_path / "out")] == ["a.mkv"]


def test_missing_source_argument_raises_value_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        find_sources([str(tmp_path / "missing.mkv")])


def test_encoder_refuses_codecs_the_container_cannot_hold():
    with pytest.raises(ValueError, match="ffv1 cannot be stored in mp4"):
        Encoder(name="ffv1", container="mp4")
    with pytest.raises(ValueError, match="crf"):
        Encoder(name="x264", crf=60)


def test_raw_ffmpeg_args_replace_the_preset_and_are_split_like_argv():
    encoder = Encoder.from_command_line(ffmpeg_args="-c:v libx264 -x264-params 'keyint=1:bframes=0'")
    assert encoder.video_args() == ["-c:v", "libx264", "-x264-params", "keyint=1:bframes=0"]


def test_ffmpeg_command_takes_other_streams_from_the_source_and_keeps_colour():
    info = SourceInfo(video_offset=0.021, colour={"color_space": "bt709", "color_range": "tv"})
    command = ffmpeg_command(source="in.mkv", output="out.mkv", encoder=Encoder(name="ffv1"), info=info,
                             frame_rate=Fraction(24000, 1001))
    joined = " ".join(command)
    assert "-itsoffset 0.021000 -f matroska -i pipe:0 -i in.mkv" in joined
    assert "-map 0:v:0 -map 1:a? -map 1:s? -map 1:t? -map_chapters 1 -map_metadata 1" in joined
    assert "-colorspace bt709 -color_range tv" in joined
    assert "-fps_mode passthrough" in joined and "-r 24000/1001" in joined
    assert command[-1] == "out.mkv"


def test_devices_become_cuda_names():
    assert parse_devices("0,1") == ["cuda:0", "cuda:1"]
    assert parse_devices("cpu") == ["cpu"]
    with pytest.raises(ValueError):
        parse_devices("0,,1")


def test_backend_choices_match_the_backends():
    from vsarvo.backends import BACKENDS
    from vsarvo.cli import build_parser

    parser = build_parser("deblur")
    with pytest.raises(SystemExit):
        parser.parse_args(["deblur", "a.mkv", "b.mkv", "--backend", "nope"])
    for backend in BACKENDS:
        assert parser.parse_args(["deblur", "a.mkv", "b.mkv", "--backend", backend]).backend == backend


def test_manifest_counts_a_file_finished_only_with_same_settings_and_its_output(tmp_path):
    output = tmp_path / "a.mkv"
    manifest = Manifest(tmp_path)
    digest = settings_hash({"crf": 16})
    manifest.record("a.mkv", status="done", settings_hash=digest)
    assert not manifest.is_finished("a.mkv", digest, output)  # output missing
    output.write_bytes(b"x")
    reloaded = Manifest(tmp_path)
    assert reloaded.is_finished("a.mkv", digest, output)
    assert not reloaded.is_finished("a.mkv", settings_hash({"crf": 18}), output)


def test_second_job_on_the_same_folder_is_refused(tmp_path):
    with JobLock(tmp_path):
        with pytest.raises(JobLockedError, match="another arvo job"):
            JobLock(tmp_path).__enter__()


def test_status_line_gives_frames_fps_and_eta_per_file_and_overall(monkeypatch):
    import io

    import vsarvo.remaster.progress as progress_module

    clock = [100.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    progress = progress_module.JobProgress(files=2, stream=io.StringIO())
    progress.started("a.mkv")
    assert progress.status_line().startswith("a.mkv loading | overall 0/2 files 0%")
    clock[0] = 110.0
    progress.advanced("a.mkv", 1, 41)  # first frame after 10 s of loading
    clock[0] = 120.0
    progress.advanced("a.mkv", 21, 41)  # then 2 fps
    # Overall: (21/41) / 2 files = 26% in 20 s -> 58 s to go; 21 frames in 20 s = 1.05 fps.
    assert progress.status_line() == (
        "a.mkv 21/41 frames 2.0 fps ETA 0:10 | overall 0/2 files 26% 1.1 fps ETA 0:58")


def test_summary_table_lists_each_file_and_the_counts():
    table = format_table([
        {"key": "a.mkv", "status": "done", "frames": 240, "seconds": 12.0},
        {"key": "b.mkv", "status": "failed", "frames": 0, "seconds": 0.5, "reason": "ffprobe cannot read it"},
    ])
    lines = table.splitlines()
    assert lines[1].split()[:5] == ["done", "240", "0:12", "20.0", "a.mkv"]
    assert lines[2].endswith("b.mkv  ffprobe cannot read it")
    assert lines[-1] == "1 done, 0 skipped, 1 failed"
