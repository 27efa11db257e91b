"""What ffprobe says about a source file that the remastered file must keep: where its video starts
relative to the file's other streams, and the video's colour properties.

Nothing here decodes video: ffprobe reads the container and stream headers only.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SourceInfo", "ProbeError", "probe", "COLOUR_FIELDS"]

# ffprobe's stream field -> the ffmpeg output option that sets the same property on the encoder.
# ffprobe prints the same names that these options accept (bt709, tv, left, ...).
COLOUR_FIELDS = {
    "color_space": "-colorspace",
    "color_primaries": "-color_primaries",
    "color_transfer": "-color_trc",
    "color_range": "-color_range",
    "chroma_location": "-chroma_sample_location",
}

# ffprobe prints libavutil's names; the encoder options accept the same names except these.
_OPTION_VALUES = {("color_space", "gbr"): "rgb"}

# Values that mean "not stated": passing them on would state nothing, so they are left out.
_UNSTATED = {"", "unknown", "unspecified", "reserved", "N/A"}


class ProbeError(RuntimeError):
    """ffprobe could not read the file, or it has no video stream."""


@dataclass(frozen=True, kw_only=True)
class SourceInfo:
    """The facts of one source file that the output must keep.

    Attributes:
        video_offset: seconds from the file's first timestamp (over all streams) to its first video
            frame. ffmpeg starts each input at its own first timestamp, so the deblurred video (an
            input of its own) must be delayed by this much to stay in sync with the source's audio.
        colour: the colour fields of the first video stream that the source states (keys of
            COLOUR_FIELDS), each as a value the matching ffmpeg option accepts.
        duration: the container's duration in seconds, None where it does not say.
        streams: how many streams of each type the file has ({"video": 1, "audio": 2, ...}).
        width, height: the video's frame size; None where ffprobe does not say.
        pix_fmt: the video's pixel format in ffmpeg's words (yuv420p, gbrp, ...); None where unknown.
    """

    video_offset: float
    colour: dict[str, str] = field(default_factory=dict)
    duration: float | None = None
    streams: dict[str, int] = field(default_factory=dict)
    width: int | None = None
    height: int | None = None
    pix_fmt: str | None = None


def _seconds(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def probe(path: str | Path, *, ffprobe: str | None = None, timeout: float = 60.0) -> SourceInfo:
    """Read a source file's stream layout, video start and colour properties with ffprobe.

    Raises:
        ProbeError: ffprobe is missing, fails on the file (its message is kept), or finds no video.
    """
    exe = ffprobe or shutil.which("ffprobe")
    if exe is None:
        raise ProbeError("ffprobe not found on PATH; install ffmpeg")
    command = [
        exe, "-v", "error", "-print_format", "json",
        "-show_entries", "format=start_time,duration:stream=codec_type,start_time,width,height,pix_fmt,"
        + ",".join(COLOUR_FIELDS) + ":stream_disposition=attached_pic",
        "--", str(path),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ProbeError(f"ffprobe took more than {timeout:.0f} s on {path}") from exc
    if done.returncode != 0:
        message = done.stderr.strip().splitlines()
        raise ProbeError(f"ffprobe cannot read it: {message[-1] if message else f'exit code {done.returncode}'}")
    data = json.loads(done.stdout or "{}")
    streams = data.get("streams", [])
    counts: dict[str, int] = {}
    for stream in streams:
        kind = stream.get("codec_type", "unknown")
        counts[kind] = counts.get(kind, 0) + 1
    # A cover picture is a one-frame "video" stream; the source filter skips it, and so does this.
    video = next(
        (s for s in streams
         if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")),
        None,
    )
    if video is None:
        raise ProbeError("no video stream")
    fmt = data.get("format", {})
    file_start = _seconds(fmt.get("start_time")) or 0.0
    video_start = _seconds(video.get("start_time"))
    offset = max(0.0, video_start - file_start) if video_start is not None else 0.0
    colour = {
        key: _OPTION_VALUES.get((key, str(video[key])), str(video[key]))
        for key in COLOUR_FIELDS if str(video.get(key, "")) not in _UNSTATED
    }
    return SourceInfo(
        video_offset=offset, colour=colour, duration=_seconds(fmt.get("duration")), streams=counts,
        width=video.get("width"), height=video.get("height"), pix_fmt=video.get("pix_fmt"),
    )
