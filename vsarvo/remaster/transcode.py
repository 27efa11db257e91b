"""Deblur one video file: source filter → ``core.arvo.Deblur`` → ``vspipe`` → ffmpeg, written to a
temporary name in the output folder and renamed only once complete and checked.

The process chain for one file::

    vspipe -c y4m remaster.vpy -  ──y4m──►  relay (this process)  ──Matroska──►  ffmpeg ─► partial file
                                           counts frames,                     + audio, subtitles,
                                           stamps each one                      chapters, metadata
                                                                                from the source

The relay counts frames (progress) and re-wraps them with a timestamp each (see vsarvo.remaster.framepipe):
the source's own times for a variable frame rate, the exact rate's grid otherwise. The .vpy is a fixed script written to a temporary folder; the
source path and the filter's options reach it as ``vspipe -a`` values, never pasted into code, and
every process gets an argument list, never a shell string.

This module runs inside Ray workers too, so it takes and returns plain dataclasses and never
prints: what it has to say is in the returned FileResult and the log file.
"""
from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Callable

from vsarvo.remaster.encoder import Encoder, ffmpeg_command
from vsarvo.remaster.framepipe import MatroskaWriter, TIMESTAMP_SCALE_NS, Y4MError, Y4MHeader, read_frame, read_header
from vsarvo.remaster.probe import ProbeError, probe

__all__ = [
    "DeblurOptions", "FileTask", "FileResult", "Cancellation", "transcode_file", "partial_path",
    "PARTIAL_MARK", "find_tool",
]

# Partial outputs are hidden files named ".<name>.<random>.arvo-partial.<ext>" beside the final file:
# a re-run recognises (and removes) them by this mark, and their extension still names the muxer.
PARTIAL_MARK = ".arvo-partial"

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


@dataclass(frozen=True, kw_only=True)
class DeblurOptions:
    """The arguments for ``core.arvo.Deblur`` (see vsarvo.filter.Deblur); None leaves the filter's default."""

    weights: str | None = None
    backend: str = "auto"
    device: str | None = None
    precision: str | None = None
    tile: int | None = None
    tile_overlap: int | None = None
    stages: int | None = None
    scene_change: bool = True
    sc_threshold: float | None = None
    streams: int = 1

    def filter_kwargs(self, *, device: str | None = None) -> dict[str, object]:
        """Keyword arguments for Deblur; ``device`` (a worker's GPU) replaces the options' device."""
        values = asdict(self)
        if device is not None:
            values["device"] = device
        return {key: value for key, value in values.items() if value is not None}

    def settings(self, weights_digest: str) -> dict[str, object]:
        """What changes the deblurred pixels, for the job's settings hash: the weights by content,
        not path. Device, tiling (exact by construction) and streams only change speed, so a job
        re-run on other hardware does not redo finished files."""
        return {
            "weights_sha256": weights_digest,
            "backend": self.backend,
            "precision": self.precision,
            "stages": self.stages,
            "scene_change": self.scene_change,
            "sc_threshold": self.sc_threshold,
        }


@dataclass(frozen=True, kw_only=True)
class FileTask:
    """One file to deblur: ``source`` → ``output`` (absolute paths); ``key`` names it in the job;
    ``log``, if set, receives the tools' messages when the file fails."""

    key: str
    source: str
    output: str
    deblur: DeblurOptions
    encoder: Encoder
    log: str | None = None


@dataclass(kw_only=True)
class FileResult:
    """What became of one FileTask.

    Attributes:
        status: "done" (the output is complete under its final name), "failed" or "interrupted".
        frames: frames written (done) or relayed before the failure.
        seconds: wall time spent on the file.
        reason: why it failed, one line; the log has the rest.
        vfr: the output carries per-frame timestamps (variable frame rate).
    """

    key: str
    status: str
    frames: int = 0
    seconds: float = 0.0
    reason: str | None = None
    log: str | None = None
    vfr: bool = False
    attempts: int = 1

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class Cancellation:
    """Lets another thread stop running files: ``cancel()`` kills every process registered here,
    which ends the relay; those files come back "interrupted".

    ``cancel()`` may run in a signal handler, interrupting the same thread inside ``register()``:
    the lock is re-entrant so that cannot deadlock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._processes: set[subprocess.Popen[bytes]] = set()
        self.cancelled = False

    def register(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._processes.add(process)
            cancelled = self.cancelled
        if cancelled:
            _kill(process)

    def unregister(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._processes.discard(process)

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            processes = list(self._processes)
        for process in processes:
            _kill(process)


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


def partial_path(output: Path) -> Path:
    """An unused temporary name beside ``output`` that ends in ``output``'s extension.

    Only the name is made: ffmpeg creates the file, so it gets the usual permissions (umask), which
    the final file keeps after the rename.
    """
    while True:
        candidate = output.with_name(f".{output.stem}.{secrets.token_hex(4)}{PARTIAL_MARK}{output.suffix}")
        if not candidate.exists():
            return candidate


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        try:
            process.kill()
        except ProcessLookupError:
            pass


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
    """The processes and files of one transcode, for cleanup whatever happens."""

    tmp: Path
    partial: Path | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)


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


def _relay(
    vspipe_out: BinaryIO, ffmpeg_in: BinaryIO, header: Y4MHeader, *, timestamp: Callable[[int], int],
    rgb: bool, progress: Callable[[int, int | None], None] | None,
) -> int:
    """Move frames from vspipe's y4m to ffmpeg's Matroska until vspipe's stream ends, frame i at
    ``timestamp(i)`` (TIMESTAMP_SCALE_NS units); returns the frames moved."""
    view = memoryview(bytearray(header.frame_size))
    writer = MatroskaWriter(
        ffmpeg_in, width=header.width, height=header.height, fourcc=header.fourcc(rgb=rgb),
        frame_size=header.frame_size,
    )
    frames = 0
    while read_frame(vspipe_out, header, view) is not None:
        writer.write(timestamp(frames), view)
        frames += 1
        if progress is not None:
            progress(frames, header.frames)
    return frames


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
    output = Path(task.output)
    run = _Run(tmp=Path(tempfile.mkdtemp(prefix="arvo-remaster-")))
    frames = 0
    vfr = False
    logs = {"vspipe": run.tmp / "vspipe.log", "ffmpeg": run.tmp / "ffmpeg.log"}

    def finish(status: str, reason: str | None = None) -> FileResult:
        log = _keep_log(task, logs, reason) if status != "done" else None
        return FileResult(
            key=task.key, status=status, frames=frames, seconds=time.monotonic() - started,
            reason=reason, log=log, vfr=vfr,
        )

    try:
        info = probe(task.source)
        output.parent.mkdir(parents=True, exist_ok=True)
        run.partial = partial_path(output)
        script = run.tmp / "remaster.vpy"
        script.write_text(REMASTER_VPY)
        timecodes = run.tmp / "timecodes.txt"
        pipe_info = run.tmp / "pipe.json"
        vspipe_cmd = [
            find_tool("vspipe"), "-c", "y4m",
            "-a", f"source={task.source}",
            "-a", f"deblur={json.dumps(task.deblur.filter_kwargs(device=device))}",
            "-a", f"timecodes={timecodes}",
            "-a", f"pipe_info={pipe_info}",
            str(script), "-",
        ]
        with open(logs["vspipe"], "wb") as vspipe_log, open(logs["ffmpeg"], "wb") as ffmpeg_log:
            vspipe = _start(run, cancel, vspipe_cmd, stdout=subprocess.PIPE, stderr=vspipe_log)
            try:
                header = read_header(vspipe.stdout)
            except Y4MError as exc:
                raise _Failed(f"vspipe: {exc}") from None
            if header is None:
                vspipe.wait()
                raise _Failed(_tail_reason(logs["vspipe"], "vspipe"))
            rgb = json.loads(pipe_info.read_text()).get("rgb", False) if pipe_info.exists() else False
            times_ms = read_timecodes(timecodes) if timecodes.exists() else []
            vfr = is_variable_rate(times_ms, header.fps)
            timestamp = _source_times(times_ms) if vfr else _grid_times(header.fps)
            command = ffmpeg_command(
                source=task.source, output=run.partial, encoder=task.encoder, info=info,
                frame_rate=None if vfr else header.fps, ffmpeg=find_tool("ffmpeg"),
            )
            ffmpeg = _start(run, cancel, command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=ffmpeg_log)
            relay_error = None
            try:
                frames = _relay(
                    vspipe.stdout, ffmpeg.stdin, header, timestamp=timestamp, rgb=rgb,
                    progress=progress,
                )
            except (Y4MError, _Failed, ValueError) as exc:
                relay_error = f"relay: {exc}"
            except BrokenPipeError:
                relay_error = _FFMPEG_STOPPED
            finally:
                try:
                    ffmpeg.stdin.close()
                except BrokenPipeError:
                    pass
            if relay_error is not None:
                _kill(vspipe)
            ffmpeg_code = ffmpeg.wait()
            vspipe_code = vspipe.wait()
        if cancel is not None and cancel.cancelled:
            return finish("interrupted", "interrupted")
        # Whichever process failed first says why: vspipe is killed when ffmpeg stops reading, and
        # ffmpeg fails on a stream that vspipe ended early.
        if relay_error == _FFMPEG_STOPPED or (ffmpeg_code != 0 and vspipe_code == 0):
            raise _Failed(_tail_reason(logs["ffmpeg"], "ffmpeg"))
        if vspipe_code != 0:
            raise _Failed(_tail_reason(logs["vspipe"], "vspipe"))
        if relay_error is not None:
            raise _Failed(relay_error)
        if header.frames is not None and frames != header.frames:
            raise _Failed(f"vspipe sent {frames} of {header.frames} frames")
        written = _count_video_packets(run.partial, find_tool("ffprobe"))
        if written != frames:
            raise _Failed(f"ffmpeg wrote {written} of {frames} frames")
        _durable_rename(run.partial, output)
        run.partial = None
        return finish("done")
    except ProbeError as exc:
        return finish("failed", str(exc))
    except _Failed as exc:
        if cancel is not None and cancel.cancelled:
            return finish("interrupted", "interrupted")
        return finish("failed", str(exc))
    except (OSError, ValueError) as exc:
        return finish("failed", f"{type(exc).__name__}: {exc}")
    finally:
        for process in run.processes:
            _kill(process)
            process.wait()
            if cancel is not None:
                cancel.unregister(process)
        if run.partial is not None:
            run.partial.unlink(missing_ok=True)
        shutil.rmtree(run.tmp, ignore_errors=True)


def _start(run: _Run, cancel: Cancellation | None, command: list[str], **pipes) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, stdin=pipes.pop("stdin", subprocess.DEVNULL), **pipes)
    run.processes.append(process)
    if cancel is not None:
        cancel.register(process)
    return process


def _durable_rename(partial: Path, output: Path) -> None:
    """Rename the finished file into place, its data on disk first, so a crash right after the
    rename cannot leave a final name over missing data."""
    with open(partial, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(partial, output)
    try:
        directory = os.open(output.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory)
    except OSError:
        pass
    finally:
        os.close(directory)


def _keep_log(task: FileTask, logs: dict[str, Path], reason: str | None) -> str | None:
    """Copy the tools' messages to the task's log file; returns its path, or None without one."""
    if task.log is None:
        return None
    target = Path(task.log)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "w") as out:
            out.write(f"source: {task.source}\noutput: {task.output}\nreason: {reason}\n")
            for tool, path in logs.items():
                text = path.read_text(errors="replace") if path.exists() else ""
                out.write(f"\n--- {tool} ---\n{text}")
    except OSError:
        return None
    return str(target)
