"""Deblur one video file: source filter → ``core.arvo.Deblur`` → ``vspipe`` → ffmpeg, written to a
temporary name in the output folder and renamed only once complete and checked.

The process chain for one file::

    vspipe -c y4m remaster.vpy -  ──y4m──►  relay (this process)  ──Matroska──►  ffmpeg ─► partial file
                                           counts frames,                     + audio, subtitles,
                                           stamps each one                      chapters, metadata
                                                                                from the source

The relay counts frames (progress) and re-wraps them with a timestamp each (see
vsarvo.remaster.framepipe): the source's own times for a variable frame rate, the exact rate's grid
otherwise. The .vpy is a fixed script written to a temporary folder; the source path and the
filter's options reach it as ``vspipe -a`` values, never pasted into code, and every process gets an
argument list, never a shell string. The finished file is checked (every frame there) and committed
to its final name through vsarvo.atomic.

A frame size never changes on the way: a source whose size its chroma subsampling cannot carry
(97x65 in 4:2:0, which the source filter would deliver as 96x64) fails with the fix, and so does
any source whose frames reach the filter at another size than ffprobe reports. A failure on a full
disk is reported as one, naming the folder. The temporary folder and the partial file carry this
process's pid (vsarvo.remaster.leftovers), so a run that was killed outright is cleaned up by the next.

This module runs inside Ray workers too, so it takes and returns plain dataclasses and never
prints: what it has to say is in the returned FileResult and the log file.
"""
from __future__ import annotations

import errno
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Callable

from vsarvo.atomic import commit, write_text_atomic
from vsarvo.remaster.disk import DISK_FULL_TEXT, describe_os_error, is_full
from vsarvo.remaster.encoder import ffmpeg_command
from vsarvo.remaster.framepipe import MatroskaWriter, TIMESTAMP_SCALE_NS, Y4MError, Y4MHeader, read_frame, read_header
from vsarvo.remaster.job import Cancellation, DeblurOptions, FileResult, FileTask, kill_process
from vsarvo.remaster.leftovers import make_work_dir, partial_path, remove_stale_work_dirs
from vsarvo.remaster.probe import ProbeError, SourceInfo, probe

__all__ = ["transcode_file", "vspipe_command", "find_tool", "read_timecodes", "is_variable_rate", "subsampling"]

_FFMPEG_STOPPED = "ffmpeg stopped reading"

# A variable frame rate is declared when a frame's timestamp is this far (ms) from where the clip's
# nominal rate puts it: container time bases round timestamps by up to 0.5 ms, and source filters
# print timecodes to 0.01 ms, so a constant-rate source never deviates by 1 ms.
_VFR_TOLERANCE_MS = 1.0

# The script vspipe runs for every file. Its globals `source`, `deblur`, `timecodes` and `pipe_info`
# come from `vspipe -a key=value`.
REMASTER_VPY = '''\
"""vsarvo remaster script (generated): source -> core.arvo.Deblur -> y4m on stdout."""
import importlib.util
import json
import os

import vapoursynth as vs

core = vs.core
try:
    clip = core.bs.VideoSource(source, timecodes=timecodes)
except vs.Error:
    # Without valid timestamps (raw elementary streams) there are no timecodes; the clip then
    # plays at its nominal rate. A file that cannot be opened fails again here, with its reason.
    if os.path.exists(timecodes):
        os.remove(timecodes)
    clip = core.bs.VideoSource(source)
clip = core.arvo.Deblur(clip, **json.loads(deblur))
rgb = clip.format.color_family == vs.RGB
if rgb:
    # y4m has no RGB: the planes travel in ffmpeg's gbrp order (G, B, R) under a 4:4:4 label.
    clip = core.std.ShufflePlanes(clip, [1, 2, 0], vs.YUV)
with open(pipe_info + ".tmp", "w") as fh:
    json.dump({"rgb": rgb}, fh)
os.replace(pipe_info + ".tmp", pipe_info)
clip.set_output()
'''


class _Failed(Exception):
    """A step failed; the message is the file's reason."""


def find_tool(name: str) -> str:
    """The path of vspipe/ffmpeg/ffprobe.

    vspipe: the binary inside the vapoursynth package this interpreter imports (it must match it),
    not the pip console script beside the interpreter, which runs that binary as a child process:
    killing the script would leave the real vspipe running. Then this interpreter's folder, then PATH.

    Raises:
        FileNotFoundError: not installed.
    """
    candidates = []
    if name == "vspipe":
        spec = importlib.util.find_spec("vapoursynth")
        if spec is not None and spec.origin:
            candidates.append(Path(spec.origin).with_name("vspipe"))
    candidates.append(Path(sys.executable).with_name(name))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        hint = "pip install vapoursynth" if name == "vspipe" else "install ffmpeg"
        raise FileNotFoundError(f"{name} not found next to {sys.executable} or on PATH; {hint}")
    return found


def _tail_reason(log: Path, tool: str) -> str:
    """The line of a tool's stderr that says why it failed."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    for line in lines:
        # vspipe reports a script's exception on this line; the traceback after it is noise here.
        if line.startswith("Python exception:"):
            return f"{tool}: {line.removeprefix('Python exception:').strip()}"
    meaningful = [line for line in lines if not line.startswith(("Information:", "Output ", "Script evaluation"))]
    return f"{tool}: {meaningful[-1] if meaningful else 'exited without a message'}"


def read_timecodes(path: Path) -> list[float]:
    """Frame start times in milliseconds from a timecode format v2 file."""
    times = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            times.append(float(line))
    return times


def is_variable_rate(times_ms: list[float], fps: Fraction) -> bool:
    """Whether the frames' times stray from the constant-rate grid that ``fps`` gives."""
    if len(times_ms) < 2:
        return False
    step = 1000 / float(fps)
    start = times_ms[0]
    return any(abs(t - start - i * step) > _VFR_TOLERANCE_MS for i, t in enumerate(times_ms))


# ffmpeg pixel format families -> chroma subsampling (horizontal, vertical factor).
_SUBSAMPLING = {"420": (2, 2), "422": (2, 1), "440": (1, 2), "411": (4, 1), "410": (4, 4), "444": (1, 1)}
_SEMIPLANAR = {"nv12": "420", "nv21": "420", "p010": "420", "p016": "420", "nv16": "422", "p210": "422",
               "nv24": "444", "nv42": "444"}


def subsampling(pix_fmt: str | None) -> tuple[str, int, int] | None:
    """``("420", 2, 2)`` for yuv420p and its kin: the chroma subsampling an ffmpeg pixel format
    implies, as (name, horizontal factor, vertical factor); None for RGB, grey or an unknown format."""
    if not pix_fmt:
        return None
    match = re.match(r"yuvj?a?(4[0-4][0-4])", pix_fmt)
    family = match.group(1) if match else _SEMIPLANAR.get(pix_fmt[:4])
    if family not in _SUBSAMPLING:
        return None
    return (family, *_SUBSAMPLING[family])


def _size_fix(width: int, height: int, fx: int, fy: int) -> str:
    """How to make a frame size fit its subsampling, as a command a user can run."""
    down, up = (width - width % fx, height - height % fy), (-(-width // fx) * fx, -(-height // fy) * fy)
    return (f"crop or pad the source to a multiple of {fx}x{fy} first, e.g. ffmpeg -i IN "
            f"-vf crop={down[0]}:{down[1]}:0:0 (or pad={up[0]}:{up[1]}) -c:v ffv1 -c:a copy OUT.mkv, "
            "or std.Crop / std.AddBorders in your own script")


def _check_source_size(info: SourceInfo) -> None:
    """Refuse a source whose size its chroma subsampling cannot carry: the source filter would
    deliver smaller frames, and the output would silently lose a row or column."""
    sub = subsampling(info.pix_fmt)
    if sub is None or info.width is None or info.height is None:
        return
    family, fx, fy = sub
    if info.width % fx or info.height % fy:
        delivered = f"{info.width - info.width % fx}x{info.height - info.height % fy}"
        raise _Failed(
            f"the source is {info.width}x{info.height} {info.pix_fmt}, and its 4:{family[1]}:{family[2]} chroma "
            f"needs a width that is a multiple of {fx} and a height that is a multiple of {fy}: it would come out "
            f"{delivered}, and arvo does not change a frame size silently; "
            + _size_fix(info.width, info.height, fx, fy)
        )


def _check_delivered_size(info: SourceInfo, header: Y4MHeader) -> None:
    """Refuse frames whose size differs from the source's (whatever the cause)."""
    if info.width is None or info.height is None or (header.width, header.height) == (info.width, info.height):
        return
    raise _Failed(
        f"the source is {info.width}x{info.height} ({info.pix_fmt or 'unknown format'}) but its frames reach "
        f"the filter as {header.width}x{header.height}; arvo does not change a frame size silently: "
        "crop or pad the source to a size its format can carry first (ffmpeg -vf crop=W:H:0:0, or std.Crop)"
    )


def _count_video_packets(path: Path, ffprobe: str) -> int:
    """Video packets in an encoded file (one per frame for every encoder here); reads no pixels."""
    done = subprocess.run(
        [ffprobe, "-v", "error", "-select_streams", "v:0", "-count_packets",
         "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", "--", str(path)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    try:
        return int(done.stdout.strip().rstrip(","))
    except ValueError:
        raise _Failed(f"the encoded file cannot be read back: {done.stderr.strip() or done.stdout.strip()}") from None


@dataclass
class _Run:
    """One transcode: its task, its temporary folder and the processes and files to clean up
    whatever happens; ``frames`` and ``vfr`` are what the relay found."""

    task: FileTask
    tmp: Path
    cancel: Cancellation | None
    partial: Path | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    frames: int = 0
    vfr: bool = False

    @property
    def logs(self) -> dict[str, Path]:
        """Each tool's stderr, in the temporary folder."""
        return {"vspipe": self.tmp / "vspipe.log", "ffmpeg": self.tmp / "ffmpeg.log"}

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.cancelled


@dataclass(frozen=True)
class _Exits:
    """How the two processes of one file ended, and what the relay between them saw."""

    vspipe: int
    ffmpeg: int
    relay_error: str | None
    expected_frames: int | None


def _grid_times(fps: Fraction) -> Callable[[int], int]:
    """Frame i's time on a constant-rate grid, in TIMESTAMP_SCALE_NS units."""
    step = Fraction(10**9, TIMESTAMP_SCALE_NS) / fps
    return lambda i: round(i * step)


def _source_times(times_ms: list[float]) -> Callable[[int], int]:
    """Frame i's time from the source's timecodes (ms), from 0, in TIMESTAMP_SCALE_NS units."""
    scale = 1e6 / TIMESTAMP_SCALE_NS

    def timestamp(i: int) -> int:
        if i >= len(times_ms):
            raise _Failed(f"vspipe sent more frames than the source has timestamps ({len(times_ms)})")
        return round((times_ms[i] - times_ms[0]) * scale)

    return timestamp


def transcode_file(
    task: FileTask,
    *,
    device: str | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    cancel: Cancellation | None = None,
) -> FileResult:
    """Deblur and encode one file; the output appears under its final name only when complete.

    Args:
        task: what to do.
        device: the worker's device (e.g. "cuda:1"); None: the task's own device option.
        progress: called after every frame with (frames done, frames in total or None).
        cancel: lets another thread stop this file (its processes are killed; status "interrupted").

    Returns:
        The file's result. Failures are reported in it, never raised: a batch goes on.
        The partial file and the temporary folder are removed whatever happens, also when this
        raises (KeyboardInterrupt, a cancelled Ray task).
    """
    started = time.monotonic()
    remove_stale_work_dirs()
    run = _Run(task=task, tmp=make_work_dir(), cancel=cancel)
    try:
        status, reason = _transcode(run, device, progress)
        # The partial goes first: on a full disk that frees the room the log needs.
        _remove_partial(run)
        log = _keep_log(run, reason) if status != "done" else None
        return FileResult(
            key=task.key, status=status, frames=run.frames, seconds=time.monotonic() - started,
            reason=reason, log=log, vfr=run.vfr,
        )
    finally:
        _clean_up(run)


def _transcode(run: _Run, device: str | None, progress: Callable[[int, int | None], None] | None) -> tuple[str, str | None]:
    """Run the file's steps; returns its status ("done", "failed", "interrupted") and the reason."""
    output = Path(run.task.output)
    try:
        info = probe(run.task.source)
        _check_source_size(info)
        output.parent.mkdir(parents=True, exist_ok=True)
        run.partial = partial_path(output)
        exits = _pipe_frames(run, info, device, progress)
        if run.cancelled:
            return "interrupted", "interrupted"
        _raise_first_failure(run, exits)
        _verify_output(run, exits.expected_frames)
        commit(run.partial, output, fsync=True)
        run.partial = None
        return "done", None
    except ProbeError as exc:
        return "failed", str(exc)
    except _Failed as exc:
        return ("interrupted", "interrupted") if run.cancelled else ("failed", _disk_full_reason(run, str(exc)))
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            return "failed", describe_os_error(exc, output.parent)
        return "failed", f"{type(exc).__name__}: {exc}"
    except ValueError as exc:
        return "failed", f"{type(exc).__name__}: {exc}"


def _disk_full_reason(run: _Run, reason: str) -> str:
    """``reason``, led by a full-disk message naming the output folder when the encode ran out of space
    (ffmpeg said so, or the folder's disk has no room left while the partial file is still there)."""
    folder = Path(run.task.output).parent
    try:
        said = DISK_FULL_TEXT in run.logs["ffmpeg"].read_text(errors="replace")
    except OSError:
        said = False
    if run.partial is None or not (said or is_full(folder)):
        return reason
    full = describe_os_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), folder)
    return f"{full} ({reason})"


def _pipe_frames(
    run: _Run, info: SourceInfo, device: str | None, progress: Callable[[int, int | None], None] | None,
) -> _Exits:
    """Start vspipe, then ffmpeg once vspipe's stream says what it carries, relay every frame from
    one to the other, and wait for both to end."""
    with open(run.logs["vspipe"], "wb") as vspipe_log, open(run.logs["ffmpeg"], "wb") as ffmpeg_log:
        vspipe = _start_vspipe(run, device, vspipe_log)
        header = _read_vspipe_header(run, vspipe)
        _check_delivered_size(info, header)
        rgb, timestamp = _frame_stream(run, header)
        ffmpeg = _start_ffmpeg(run, info, header, ffmpeg_log)
        relay_error = _relay_frames(run, vspipe, ffmpeg, header, timestamp=timestamp, rgb=rgb, progress=progress)
        if relay_error is not None:
            kill_process(vspipe)
        ffmpeg_code = ffmpeg.wait()
        return _Exits(vspipe=vspipe.wait(), ffmpeg=ffmpeg_code, relay_error=relay_error,
                      expected_frames=header.frames)


def _start(run: _Run, command: list[str], **pipes: Any) -> subprocess.Popen[bytes]:
    """Start a process of this file's chain, registered for cleanup and cancellation."""
    process = subprocess.Popen(command, stdin=pipes.pop("stdin", subprocess.DEVNULL), **pipes)
    run.processes.append(process)
    if run.cancel is not None:
        run.cancel.register(process)
    return process


def vspipe_command(script: Path, tmp: Path, *, source: str, deblur: DeblurOptions, device: str | None) -> list[str]:
    """The vspipe command that runs the remaster ``script`` on ``source``: the filter's options go
    as JSON in a ``-a deblur=`` value (``device``, a worker's GPU, replacing the options' own), the
    timecode and pipe-info files in the temporary folder ``tmp``."""
    return [
        find_tool("vspipe"), "-c", "y4m",
        "-a", f"source={source}",
        "-a", f"deblur={json.dumps(deblur.filter_kwargs(device=device))}",
        "-a", f"timecodes={tmp / 'timecodes.txt'}",
        "-a", f"pipe_info={tmp / 'pipe.json'}",
        str(script), "-",
    ]


def _start_vspipe(run: _Run, device: str | None, log: BinaryIO) -> subprocess.Popen[bytes]:
    """vspipe running the remaster script on the source, y4m on its stdout."""
    script = run.tmp / "remaster.vpy"
    script.write_text(REMASTER_VPY)
    command = vspipe_command(script, run.tmp, source=run.task.source, deblur=run.task.deblur, device=device)
    return _start(run, command, stdout=subprocess.PIPE, stderr=log)


def _read_vspipe_header(run: _Run, vspipe: subprocess.Popen[bytes]) -> Y4MHeader:
    """The y4m header vspipe writes once its script has run; a script that failed writes none."""
    try:
        header = read_header(vspipe.stdout)
    except Y4MError as exc:
        raise _Failed(f"vspipe: {exc}") from None
    if header is None:
        vspipe.wait()
        raise _Failed(_tail_reason(run.logs["vspipe"], "vspipe"))
    return header


def _frame_stream(run: _Run, header: Y4MHeader) -> tuple[bool, Callable[[int], int]]:
    """Whether the frames are RGB, and each frame's timestamp: the source's own times when they
    are off a constant-rate grid (then ``run.vfr``), else the grid of the stream's rate."""
    pipe_info, timecodes = run.tmp / "pipe.json", run.tmp / "timecodes.txt"
    rgb = json.loads(pipe_info.read_text()).get("rgb", False) if pipe_info.exists() else False
    times_ms = read_timecodes(timecodes) if timecodes.exists() else []
    run.vfr = is_variable_rate(times_ms, header.fps)
    return rgb, _source_times(times_ms) if run.vfr else _grid_times(header.fps)


def _start_ffmpeg(run: _Run, info: SourceInfo, header: Y4MHeader, log: BinaryIO) -> subprocess.Popen[bytes]:
    """ffmpeg reading the relayed Matroska on its stdin and the source's other streams, writing the partial file."""
    command = ffmpeg_command(
        source=run.task.source, output=run.partial, encoder=run.task.encoder, info=info,
        frame_rate=None if run.vfr else header.fps, ffmpeg=find_tool("ffmpeg"),
    )
    return _start(run, command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)


def _relay_frames(
    run: _Run, vspipe: subprocess.Popen[bytes], ffmpeg: subprocess.Popen[bytes], header: Y4MHeader, *,
    timestamp: Callable[[int], int], rgb: bool, progress: Callable[[int, int | None], None] | None,
) -> str | None:
    """Move frames from vspipe's y4m to ffmpeg's Matroska until vspipe's stream ends, frame i at
    ``timestamp(i)`` (TIMESTAMP_SCALE_NS units), counting them in ``run.frames``; then close
    ffmpeg's input. Returns what went wrong in the relay, or None."""
    view = memoryview(bytearray(header.frame_size))
    try:
        writer = MatroskaWriter(
            ffmpeg.stdin, width=header.width, height=header.height, fourcc=header.fourcc(rgb=rgb),
            frame_size=header.frame_size,
        )
        while read_frame(vspipe.stdout, header, view) is not None:
            writer.write(timestamp(run.frames), view)
            run.frames += 1
            if progress is not None:
                progress(run.frames, header.frames)
    except (Y4MError, _Failed, ValueError) as exc:
        return f"relay: {exc}"
    except BrokenPipeError:
        return _FFMPEG_STOPPED
    finally:
        try:
            ffmpeg.stdin.close()
        except BrokenPipeError:
            pass
    return None


def _raise_first_failure(run: _Run, exits: _Exits) -> None:
    """Raise _Failed with the reason of whichever step failed first, if one did.

    vspipe is killed when ffmpeg stops reading, and ffmpeg fails on a stream that vspipe ended
    early: so ffmpeg is to blame when it stopped reading or failed alone, vspipe when it failed.
    """
    if exits.relay_error == _FFMPEG_STOPPED or (exits.ffmpeg != 0 and exits.vspipe == 0):
        raise _Failed(_tail_reason(run.logs["ffmpeg"], "ffmpeg"))
    if exits.vspipe != 0:
        raise _Failed(_tail_reason(run.logs["vspipe"], "vspipe"))
    if exits.relay_error is not None:
        raise _Failed(exits.relay_error)


def _verify_output(run: _Run, expected_frames: int | None) -> None:
    """Check that vspipe sent every frame it announced and the partial file holds every frame relayed."""
    if expected_frames is not None and run.frames != expected_frames:
        raise _Failed(f"vspipe sent {run.frames} of {expected_frames} frames")
    written = _count_video_packets(run.partial, find_tool("ffprobe"))
    if written != run.frames:
        raise _Failed(f"ffmpeg wrote {written} of {run.frames} frames")


def _remove_partial(run: _Run) -> None:
    """Remove the partial output, if there is one; never raises (it runs after the failure it cleans up)."""
    if run.partial is None:
        return
    try:
        run.partial.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only folder refuses even unlinking a missing name: nothing was written there
    run.partial = None


def _clean_up(run: _Run) -> None:
    """End the file's processes and remove its partial output and temporary folder. Never raises
    over the error it cleans up after: what cannot be removed now, the next run removes."""
    for process in run.processes:
        kill_process(process)
        process.wait()
        if run.cancel is not None:
            run.cancel.unregister(process)
    _remove_partial(run)
    shutil.rmtree(run.tmp, ignore_errors=True)


def _keep_log(run: _Run, reason: str | None) -> str | None:
    """Copy the tools' messages to the task's log file; returns its path, or None without one (or
    when it cannot be written: the reason still reaches the summary)."""
    task = run.task
    if task.log is None:
        return None
    parts = [f"source: {task.source}\noutput: {task.output}\nreason: {reason}\n"]
    for tool, path in run.logs.items():
        try:
            text = path.read_text(errors="replace")
        except OSError:
            text = ""
        parts.append(f"\n--- {tool} ---\n{text}")
    try:
        write_text_atomic(task.log, "".join(parts))
    except OSError:
        return None
    return task.log
