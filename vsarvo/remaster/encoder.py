"""ffmpeg command lines for remastering: encoder presets, and the argument list that encodes the
deblurred video from a pipe and takes every other stream from the source file.

Everything here builds argument lists; nothing runs ffmpeg and nothing goes through a shell.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from vsarvo.remaster.probe import COLOUR_FIELDS, SourceInfo

__all__ = ["Encoder", "ENCODERS", "CONTAINERS", "ffmpeg_command"]

ENCODERS = ("ffv1", "x264", "x265", "prores")
# Output container -> ffmpeg muxer. Matroska holds every stream type a source may bring (subtitles
# of any kind, fonts as attachments); MP4/MOV take text subtitles only, converted to mov_text.
CONTAINERS = {"mkv": "matroska", "mp4": "mp4", "mov": "mov"}

# Default quality: CRF 16 (x264) and 18 (x265) are visually transparent for most sources, which is
# what a remaster that replaces the original wants; speed "medium" is each encoder's own default.
_DEFAULT_CRF = {"x264": 16.0, "x265": 18.0}
_SPEEDS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
# Codecs that a container's muxer refuses (checked before a job starts, not after its first file).
_UNSUPPORTED = {("ffv1", "mp4"), ("ffv1", "mov"), ("prores", "mp4")}


@dataclass(frozen=True, kw_only=True)
class Encoder:
    """How the deblurred video is encoded, and into which container.

    Attributes:
        name: one of ENCODERS: "ffv1" (lossless), "x264" / "x265" (CRF), "prores" (ProRes 422 HQ,
            10 bit). Ignored for the video codec when ``ffmpeg_args`` is set.
        crf: x264/x265 constant rate factor; None: 16 for x264, 18 for x265.
        speed: x264/x265 ``-preset`` (ultrafast … placebo); None: medium.
        ffmpeg_args: raw ffmpeg output arguments that replace the preset's video arguments
            (e.g. ``("-c:v", "libsvtav1", "-crf", "30")``).
        container: one of CONTAINERS.
        audio_codec: ffmpeg audio codec for the source's audio streams; "copy" keeps them as they are.
    """

    name: str = "x264"
    crf: float | None = None
    speed: str | None = None
    ffmpeg_args: tuple[str, ...] = ()
    container: str = "mkv"
    audio_codec: str = "copy"

    def __post_init__(self) -> None:
        if self.name not in ENCODERS:
            raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, got {self.name!r}")
        if self.container not in CONTAINERS:
            raise ValueError(f"container must be one of {', '.join(CONTAINERS)}, got {self.container!r}")
        if self.crf is not None and not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be in [0, 51], got {self.crf!r}")
        if self.speed is not None and self.speed not in _SPEEDS:
            raise ValueError(f"speed must be one of {', '.join(_SPEEDS)}, got {self.speed!r}")
        if not self.ffmpeg_args and (self.name, self.container) in _UNSUPPORTED:
            raise ValueError(f"{self.name} cannot be stored in {self.container}; use --container mkv")
        if not self.audio_codec:
            raise ValueError("audio_codec must not be empty; use 'copy' to keep the source's audio")

    @classmethod
    def from_command_line(cls, *, ffmpeg_args: str | None = None, **options: object) -> "Encoder":
        """Build from CLI values; ``ffmpeg_args`` is one string, split as a POSIX shell would split it
        (quotes group words) but never run by one."""
        args = tuple(shlex.split(ffmpeg_args)) if ffmpeg_args else ()
        return cls(ffmpeg_args=args, **options)  # type: ignore[arg-type]

    @property
    def extension(self) -> str:
        """The output file extension, with its dot."""
        return "." + self.container

    def video_args(self) -> list[str]:
        """ffmpeg output arguments for the video stream."""
        if self.ffmpeg_args:
            return list(self.ffmpeg_args)
        if self.name == "ffv1":
            # Version 3 with per-slice CRCs: lossless, and damage is detectable. Every frame a key
            # frame (-g 1): an archive master should cut anywhere.
            return ["-c:v", "ffv1", "-level", "3", "-g", "1", "-slicecrc", "1"]
        if self.name == "prores":
            # ProRes has no 4:2:0; HQ (profile 3) at 4:2:2 10 bit is the usual mastering format.
            return ["-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le"]
        crf = _DEFAULT_CRF[self.name] if self.crf is None else self.crf
        codec = {"x264": "libx264", "x265": "libx265"}[self.name]
        args = ["-c:v", codec, "-preset", self.speed or "medium", "-crf", f"{crf:g}"]
        if self.name == "x265":
            args += ["-x265-params", "log-level=error"]
        return args

    def settings(self) -> dict[str, object]:
        """Everything that changes the encoded output, for the job's settings hash."""
        return {
            "video": self.video_args(),
            "container": self.container,
            "audio_codec": self.audio_codec,
        }


def ffmpeg_command(
    *,
    source: str | Path,
    output: str | Path,
    encoder: Encoder,
    info: SourceInfo,
    frame_rate: Fraction | None,
    ffmpeg: str = "ffmpeg",
) -> list[str]:
    """The ffmpeg argument list that reads the deblurred video on stdin and writes ``output``.

    Input 0 is the pipe: Matroska whose frames carry their own timestamps in microseconds (see
    vsarvo.remaster.framepipe); input 1 is the source file, from which audio, subtitles, attachments
    (Matroska only), chapters and global metadata are copied. The video keeps the pipe's timestamps
    exactly (no frame dropped or duplicated, no rounding onto a frame grid) and is delayed by
    ``info.video_offset`` so it stays in sync with the source's audio; the source's stated colour
    properties are set on the encoder. ``frame_rate`` (None for a variable rate) is declared on the
    output stream.
    """
    command = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y"]
    if info.video_offset:
        command += ["-itsoffset", f"{info.video_offset:.6f}"]
    command += ["-f", "matroska", "-i", "pipe:0", "-i", str(source)]
    command += ["-map", "0:v:0", "-map", "1:a?", "-map", "1:s?"]
    if encoder.container == "mkv":
        command += ["-map", "1:t?"]
    command += ["-map_chapters", "1", "-map_metadata", "1"]
    command += encoder.video_args()
    for key, value in info.colour.items():
        command += [COLOUR_FIELDS[key], value]
    # Every frame keeps its own timestamp: the encoder's time base is the pipe's (1 µs). One of
    # 1/frame rate would round a sub-frame offset to the audio (common: encoder delay) onto the
    # frame grid, and variable durations with it.
    command += ["-fps_mode", "passthrough", "-enc_time_base:v", "-1"]
    if frame_rate is not None:
        command += ["-r", f"{frame_rate.numerator}/{frame_rate.denominator}"]
    command += ["-c:a", encoder.audio_codec]
    if encoder.container == "mkv":
        command += ["-c:s", "copy", "-c:t", "copy"]
    else:
        command += ["-c:s", "mov_text", "-movflags", "+faststart"]
    command += ["-f", CONTAINERS[encoder.container], str(output)]
    return command
