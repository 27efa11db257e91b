"""Lossy video compression of frames through ffmpeg, decoded back the way a user gets them.

Frames are converted to YUV 4:2:0 (BT.709, limited range: the chroma planes at half resolution, as
in nearly all delivered video), encoded with libx264 or libx265 at a constant rate factor, and
decoded back to 8-bit RGB with the same matrix, as a player or VapourSynth source would. Width and
height must be even, as 4:2:0 requires.

Chroma is sited left (MPEG-2 and H.264's default, what cameras write) at both ends and the stream is
tagged so: the decoded frames then match a bestsource clip converted by the filter's
``resize.Bicubic`` (which assumes left siting for untagged clips) to within rounding. swscale's own
default siting differs from it by a quarter chroma sample, which costs colourful detail up to a few dB.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["CODECS", "compress_frames"]

CODECS = ("libx264", "libx265")
# Left chroma siting in swscale's units (1/256 of a luma pixel): h_chr_pos 0 puts a chroma sample on the
# left luma sample, v_chr_pos 128 halfway between two rows.
_TO_YUV = ("scale=out_color_matrix=bt709:out_range=tv:out_h_chr_pos=0:out_v_chr_pos=128:"
           "flags=bicubic+accurate_rnd,format=yuv420p")
_TO_RGB = ("scale=in_color_matrix=bt709:in_range=tv:in_h_chr_pos=0:in_v_chr_pos=128:"
           "flags=bicubic+accurate_rnd+full_chroma_int,format=rgb24")


def _ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise RuntimeError("compressing frames needs ffmpeg on PATH (Debian/Ubuntu: apt-get install ffmpeg, or 'make ffmpeg')")
    return path


def _run(command: list[str], data: bytes | None = None) -> bytes:
    result = subprocess.run(command, input=data, capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({' '.join(command[:6])} ...): {result.stderr.decode(errors='replace')[-500:]}")
    return result.stdout


def compress_frames(frames: np.ndarray, *, codec: str, crf: int, preset: str = "medium") -> np.ndarray:
    """``frames`` uint8 [T, H, W, 3] after a 4:2:0 ``codec`` encode at ``crf`` and an RGB decode."""
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    count, height, width, _ = frames.shape
    if height % 2 or width % 2:
        raise ValueError(f"4:2:0 needs even width and height, got {width}x{height}")
    ffmpeg = _ffmpeg()
    quiet = ["-x265-params", "log-level=error"] if codec == "libx265" else []
    with tempfile.TemporaryDirectory(prefix="vsarvo-compress-") as folder:
        video = Path(folder) / "clip.mkv"
        _run([ffmpeg, "-nostdin", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
              "-r", "30", "-i", "-", "-vf", _TO_YUV, "-c:v", codec, "-preset", preset, "-crf", str(int(crf)), *quiet,
              "-colorspace", "bt709", "-color_range", "tv", "-chroma_sample_location", "left", "-threads", "1", str(video)], np.ascontiguousarray(frames).tobytes())
        raw = _run([ffmpeg, "-nostdin", "-loglevel", "error", "-i", str(video), "-vf", _TO_RGB, "-f", "rawvideo",
                    "-pix_fmt", "rgb24", "-"])
    decoded = np.frombuffer(raw, dtype=np.uint8)
    if decoded.size != frames.size:
        raise RuntimeError(f"ffmpeg decoded {decoded.size // (height * width * 3)} frames of {count}")
    return decoded.reshape(frames.shape).copy()
