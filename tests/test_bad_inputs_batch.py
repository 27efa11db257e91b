"""Bad inputs and faults against `arvo deblur` and `arvo remaster`, one table.

Each row plants one fault and names the exit code and the words the message must contain. Every row
also checks what a user must be able to rely on: no Python traceback on stderr, no temporary folder
(``arvo-remaster-*``) left in the temp dir, no hidden partial file left beside the output, and no
file that existed before changed. Faults on a read-only or full file system use a small tmpfs, which
needs root (``mount``); elsewhere those rows are skipped.

Each subprocess gets its own TMPDIR, so the temp-dir check sees only that run's folders.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from test_remaster import CLI, STOPPED_FRAMES, common, make_video, partials, read_json, wait_for, weights  # noqa: F401

pytestmark = pytest.mark.skipif(subprocess.run(["which", "ffmpeg"], capture_output=True).returncode != 0,
                                reason="needs ffmpeg")

_NOT_ROOT = "mounting a tmpfs (read-only or full file system) needs root"


@contextlib.contextmanager
def tmpfs(folder: Path, *, size: str = "2m", read_only: bool = False):
    """A tmpfs of ``size`` mounted on ``folder`` for the block; skips the test where it cannot be mounted."""
    if os.geteuid() != 0:
        pytest.skip(_NOT_ROOT)
    folder.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, *, leave: int) -> None:
    """Fill ``folder``'s file system until about ``leave`` bytes are free."""
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    with open(folder / "ballast", "wb") as fh:
        fh.write(bytes(max(0, free - leave)))


@dataclass
class Case:
    """One row's planted fault: the command's arguments, where its output goes, and files that must not change."""

    args: list[str]
    out: Path
    protected: list[Path] = field(default_factory=list)


def snapshot(paths: list[Path]) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in paths}


# --- the faults --------------------------------------------------------------------------------------
# Each takes (tmp folder, the options every run uses, a context stack for mounts) and returns its Case.


def odd_size_420(tmp: Path, opts: list[str], stack: contextlib.ExitStack) -> Case:
    source = make_video(tmp / "odd.mkv", frames=6, audio=False, codec="ffv1",
                        video_filter="scale=97:65,format=yuv420p")
    return Case(["deblur", str(source), str(tmp / "out" / "odd.mkv"), *opts], tmp / "out")


def odd_size_420_in_a_job(tmp: Path, opts: list[str], stack: contextlib.ExitStack) -> Case:
    make_video(tmp / "in" / "odd.mkv", frames=6, audio=False, codec="ffv1", video_filter="scale=97:65,format=yuv420p")
    return Case(["remaster", str(tmp / "in"), "--out", str(tmp / "out"), *opts], tmp / "out")


def existing_output(tmp: Path, opts: list[str], stack: contextlib.ExitStack) -> Case:
    source = make_video(tmp / "clip.mkv", frames=6, audio=False)
    output = tmp / "out" / "clip.mkv"
    output.parent.mkdir()
    output.write_bytes(b"the user's earlier file")
    return Case(["deblur", str(source), str(output), *opts], tmp / "out", [output])


def read_only_folder(tmp: Path, opts: list[str], stack: contextlib.ExitStack) -> Case:
    source = make_video(tmp / "clip.mkv", frames=6, audio=False)
    out = stack.enter_context(tmpfs(tmp / "ro", read_only=True))
    return Case(["deblur", str(source), str(out / "clip.mkv"), *opts], out)


def full_disk_at_start_deblur(tmp: Path, opts: list[str], stack: contextlib.ExitStack) -> Case:
    source = make_video(tmp / "clip.mkv", frames=6, audio=False)
    out = stack.enter_context(tmpfs(tmp / "full"))
    fill(out, leave=0)
    return Case(["deblur", str(source), str(out / "clip.mkv"), *opts], out, [out / "ballast"])


def full_disk_at_start_job(tmp: Path, opts: list[str], stack: contextlib.ExitStack) -> Case:
    make_video(tmp / "in" / "clip.mkv", frames=6, audio=False)
    out = stack.enter_context(tmpfs(tmp / "full"))
    fill(out, leave=0)
    return Case(["remaster", str(tmp / "in"), "--out", str(out), *opts], out, [out / "ballast"])


def disk_fills_during_encode(tmp: Path, opts: list[str], stack: contextlib.ExitStack) -> Case:
    make_video(tmp / "in" / "clip.mkv", frames=48, audio=False)
    out = stack.enter_context(tmpfs(tmp / "small", size="4m"))
    # Room for the start-up check, the lock, the manifest and the log, not for 48 lossless frames.
    fill(out, leave=64 * 1024)
    return Case(["remaster", str(tmp / "in"), "--out", str(out), *opts], out, [out / "ballast"])


def missing_weights(tmp: Path, opts: list[str], stack: contextlib.ExitStack) -> Case:
    source = make_video(tmp / "clip.mkv", frames=6, audio=False)
    return Case(["deblur", str(source), str(tmp / "out" / "clip.mkv"), *opts, "--weights", str(tmp / "no.safetensors")],
                tmp / "out")


def trt_option_on_torch(tmp: Path, opts: list[str], stack: contextlib.ExitStack) -> Case:
    source = make_video(tmp / "clip.mkv", frames=6, audio=False)
    return Case(["deblur", str(source), str(tmp / "out" / "clip.mkv"), *opts, "--backend", "torch",
                 "--workspace", "256"], tmp / "out")


def overlap_without_tile(tmp: Path, opts: list[str], stack: contextlib.ExitStack) -> Case:
    make_video(tmp / "in" / "clip.mkv", frames=6, audio=False)
    return Case(["remaster", str(tmp / "in"), "--out", str(tmp / "out"), *opts, "--tile-overlap", "8"], tmp / "out")


def bad_extension(tmp: Path, opts: list[str], stack: contextlib.ExitStack) -> Case:
    source = make_video(tmp / "clip.mkv", frames=6, audio=False)
    return Case(["deblur", str(source), str(tmp / "out" / "clip.avi"), *opts], tmp / "out")


def corrupt_manifest(tmp: Path, opts: list[str], stack: contextlib.ExitStack) -> Case:
    make_video(tmp / "in" / "clip.mkv", frames=6, audio=False)
    (tmp / "out").mkdir()
    manifest = tmp / "out" / "arvo-job.json"
    manifest.write_text("{not json")
    return Case(["remaster", str(tmp / "in"), "--out", str(tmp / "out"), *opts], tmp / "out", [manifest])


def zero_jobs(tmp: Path, opts: list[str], stack: contextlib.ExitStack) -> Case:
    make_video(tmp / "in" / "clip.mkv", frames=6, audio=False)
    return Case(["remaster", str(tmp / "in"), "--out", str(tmp / "out"), *opts, "--jobs", "0"], tmp / "out")


ROWS: list[tuple[Callable[..., Case], int, tuple[str, ...]]] = [
    (odd_size_420, 1, ("97x65", "4:2:0", "96x64", "crop=96:64", "pad=98:66")),
    (odd_size_420_in_a_job, 1, ("97x65", "4:2:0", "does not change a frame size")),
    (existing_output, 2, ("exists", "--force", "-y")),
    (read_only_folder, 2, ("read-only", "EROFS")),
    (full_disk_at_start_deblur, 2, ("disk is full", "ENOSPC")),
    (full_disk_at_start_job, 2, ("the output folder", "disk is full", "ENOSPC")),
    (disk_fills_during_encode, 1, ("disk is full", "ENOSPC")),
    (missing_weights, 2, ("weights not found", "no.safetensors")),
    (trt_option_on_torch, 1, ("workspace is not an option of the torch backend",)),
    (overlap_without_tile, 1, ("tile_overlap needs tile",)),
    (bad_extension, 2, ("OUT must end in",)),
    (corrupt_manifest, 2, ("not a vsarvo job manifest", "move it away")),
    (zero_jobs, 2, ("--jobs must be at least 1",)),
]


@pytest.mark.parametrize("make_case, code, words", ROWS, ids=[row[0].__name__ for row in ROWS])
def test_bad_input_is_a_named_error_and_leaves_nothing(make_case, code, words, tmp_path, common):
    opts = [*common, "--quiet"]
    temp_dir = tmp_path / "tmpdir"
    temp_dir.mkdir()
    with contextlib.ExitStack() as stack:
        case = make_case(tmp_path, opts, stack)
        before = snapshot(case.protected)
        done = subprocess.run([*CLI, *case.args], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "TMPDIR": str(temp_dir)})
        message = done.stderr
        if case.out.is_dir():
            summary = case.out / "arvo-summary.json"
            if summary.exists():
                message += json.dumps(read_json(summary))
            logs = sorted((case.out / "arvo-logs").glob("*.log")) if (case.out / "arvo-logs").is_dir() else []
        assert done.returncode == code, done.stderr
        assert "Traceback" not in done.stderr
        for word in words:
            assert word in message, message
        assert snapshot(case.protected) == before
        assert list(temp_dir.iterdir()) == []
        if case.out.is_dir():
            assert partials(case.out) == []
            assert not (case.out / ".arvo-job.lock").exists()
            assert [p.name for p in case.out.iterdir() if p.name.startswith(".")] == []
            if code == 1 and make_case is disk_fills_during_encode:
                assert logs and "ENOSPC" in logs[0].read_text()  # the tool's log is kept


# --- leftovers of killed runs ---------------------------------------------------------------------------


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_next_deblur_removes_leftovers_of_dead_runs_only(tmp_path, common):
    source = make_video(tmp_path / "clip.mkv", frames=6, audio=False)
    out = tmp_path / "out"
    out.mkdir()
    temp_dir = tmp_path / "tmpdir"
    host = socket.gethostname()
    dead, alive = dead_pid(), os.getpid()
    stale_partial = out / f".old.1234abcd.{dead}@{host}.arvo-partial.mkv"
    live_partial = out / f".other.1234abcd.{alive}@{host}.arvo-partial.mkv"
    foreign_partial = out / f".far.1234abcd.{dead}@another-host.arvo-partial.mkv"
    stale_dir, live_dir = temp_dir / f"arvo-remaster-{dead}-abc", temp_dir / f"arvo-remaster-{alive}-abc"
    unrelated = temp_dir / "arvo-remaster-notes"
    for path in (stale_partial, live_partial, foreign_partial):
        path.write_bytes(b"x")
    for folder in (stale_dir, live_dir, unrelated):
        folder.mkdir(parents=True)
    done = subprocess.run([*CLI, "deblur", str(source), str(out / "clip.mkv"), *common, "--quiet"], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "TMPDIR": str(temp_dir)})
    assert done.returncode == 0, done.stderr
    assert not stale_partial.exists() and not stale_dir.exists()
    assert live_partial.exists() and foreign_partial.exists() and live_dir.exists() and unrelated.exists()


def test_next_job_removes_what_a_killed_job_left_in_its_folder(tmp_path, common):
    make_video(tmp_path / "in" / "clip.mkv", frames=6, audio=False)
    out = tmp_path / "out"
    (out / "arvo-logs").mkdir(parents=True)
    left = [out / ".arvo-job.k1ll3d00.tmp.json", out / ".arvo-summary.k1ll3d00.tmp.json",
            out / "arvo-logs" / ".clip.mkv.k1ll3d00.tmp.log", out / f".clip.1234abcd.{dead_pid()}@elsewhere.arvo-partial.mkv"]
    for path in left:
        path.write_bytes(b"x")
    kept = out / ".notes.tmp.json"  # not one of the job's own names
    kept.write_bytes(b"the user's")
    temp_dir = tmp_path / "tmpdir"
    temp_dir.mkdir()
    done = subprocess.run([*CLI, "remaster", str(tmp_path / "in"), "--out", str(out), *common, "--quiet"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "TMPDIR": str(temp_dir)})
    assert done.returncode == 0, done.stderr
    assert [path for path in left if path.exists()] == []
    assert kept.read_bytes() == b"the user's"


@pytest.mark.slow
def test_sigkilled_deblur_leaves_nothing_after_the_next_run(tmp_path, common):
    source = make_video(tmp_path / "clip.mkv", frames=STOPPED_FRAMES, audio=False)
    out, temp_dir = tmp_path / "out", tmp_path / "tmpdir"
    temp_dir.mkdir()
    env = {**os.environ, "TMPDIR": str(temp_dir)}
    job = subprocess.Popen([*CLI, "deblur", str(source), str(out / "clip.mkv"), *common, "--quiet"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: out.is_dir() and partials(out), 240, "a partial output")
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    assert partials(out) and list(temp_dir.iterdir())  # what a killed run leaves
    done = subprocess.run([*CLI, "deblur", str(source), str(out / "again.mkv"), *common, "--quiet"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert partials(out) == [] and list(temp_dir.iterdir()) == []
    assert sorted(p.name for p in out.iterdir()) == ["again.mkv"]


def test_cleanup_on_a_read_only_folder_does_not_hide_the_error(tmp_path, common):
    """transcode_file itself (behind the start-up check): the partial cannot even be unlinked (EROFS)."""
    from vsarvo.remaster.encoder import Encoder
    from vsarvo.remaster.job import DeblurOptions, FileTask
    from vsarvo.remaster.transcode import transcode_file

    source = make_video(tmp_path / "clip.mkv", frames=6, audio=False)
    with tmpfs(tmp_path / "ro", read_only=True) as out, pytest.MonkeyPatch.context() as mp:
        mp.setenv("TMPDIR", str(tmp_path))
        import tempfile

        mp.setattr(tempfile, "tempdir", None)
        task = FileTask(key="clip.mkv", source=str(source), output=str(out / "clip.mkv"),
                        deblur=DeblurOptions.from_values({"weights": common[1], "device": "cpu"}),
                        encoder=Encoder(name="ffv1"), log=str(out / "clip.mkv.arvo.log"))
        result = transcode_file(task)
    assert result.status == "failed"
    assert "Read-only file system" in result.reason
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("arvo-remaster-")] == []


# --- the top-level handler ---------------------------------------------------------------------------------


def test_user_errors_end_in_one_line_and_exit_2_unless_debug(monkeypatch, capsys):
    import errno

    import vsarvo.remaster.cli as remaster_cli
    from vsarvo.cli import main

    def disk_full(args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/mnt/out/clip.mkv")

    monkeypatch.setattr(remaster_cli, "run_deblur", disk_full)
    assert main(["deblur", "a.mkv", "b.mkv"]) == 2
    assert capsys.readouterr().err == (
        "arvo deblur: /mnt/out/clip.mkv: No space left on device (ENOSPC) (--debug shows the traceback)\n")
    with pytest.raises(OSError):
        main(["deblur", "a.mkv", "b.mkv", "--debug"])

    def bug(args):
        raise KeyError("a bug keeps its traceback")

    monkeypatch.setattr(remaster_cli, "run_deblur", bug)
    with pytest.raises(KeyError):
        main(["deblur", "a.mkv", "b.mkv"])
