"""The frame stream between vspipe and ffmpeg: reading vspipe's y4m, and re-wrapping its frames as
Matroska with one timestamp per frame.

y4m carries one frame rate for the whole stream and ffmpeg gives its frames timestamps in units of
1/rate: a variable-frame-rate source would come out at a constant rate, and a video that starts a
fraction of a frame after the audio (encoder delay) would be shifted onto the frame grid. ffmpeg
reads no timecode files, and mkvmerge (which does) is not a dependency. So the frames go to ffmpeg
as uncompressed video (``V_UNCOMPRESSED``, its pixel format named by a FourCC) in a minimal
Matroska stream written here, each frame in a cluster of its own that carries its timestamp in
microseconds. ffmpeg's Matroska demuxer reads that directly from a pipe.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO

__all__ = ["Y4MHeader", "Y4MError", "read_header", "read_frame", "MatroskaWriter", "TIMESTAMP_SCALE_NS"]

# Matroska timestamps are integers in units of TimestampScale nanoseconds; 1 µs is finer than any
# source's time base needs and keeps cluster timestamps within 8 bytes for centuries of video.
TIMESTAMP_SCALE_NS = 1000


class Y4MError(ValueError):
    """The stream is not the y4m that vspipe writes."""


# y4m colour-space tag -> (horizontal, vertical chroma subsampling as log2, planes)
_CHROMA = {
    "420": (1, 1, 3), "422": (1, 0, 3), "444": (0, 0, 3), "411": (2, 0, 3), "410": (2, 1, 3),
    "440": (0, 1, 3), "mono": (0, 0, 1),
}
_C_TAG = re.compile(r"^(420|422|444|411|410|440|mono)(?:jpeg|mpeg2|paldv)?(?:p?(\d+))?$")

# FourCCs ffmpeg's raw video decoder knows, for the formats vspipe can send (8 bit: the classic
# names; 9-16 bit: 'Y3'/'Y1'/'G3' + subsampling code + bit depth, little-endian samples).
_FOURCC_8BIT = {"420": b"I420", "422": b"Y42B", "444": b"444P", "411": b"Y41B", "410": b"YUV9", "mono": b"Y800"}
_HIGH_DEPTH_PREFIX = {"420": b"Y3\x0b", "422": b"Y3\x0a", "444": b"Y3\x00", "mono": b"Y1\x00"}


@dataclass(frozen=True, kw_only=True)
class Y4MHeader:
    """A y4m stream header as vspipe writes it.

    Attributes:
        width, height: frame size in pixels.
        fps: frames per second, exact.
        chroma: "420", "422", "444", "411", "410", "440" or "mono".
        bits: bits per sample (8-16); above 8, samples take two bytes.
        frames: the stream's length from vspipe's XLENGTH field, None when absent.
        line: the header line as read, newline included (to forward it unchanged).
    """

    width: int
    height: int
    fps: Fraction
    chroma: str
    bits: int
    frames: int | None
    line: bytes

    @property
    def frame_size(self) -> int:
        """Bytes of picture data in one frame."""
        sub_w, sub_h, planes = _CHROMA[self.chroma]
        luma = self.width * self.height
        chroma = 0 if planes == 1 else 2 * (-(-self.width >> sub_w) * -(-self.height >> sub_h))
        return (luma + chroma) * (2 if self.bits > 8 else 1)

    def fourcc(self, *, rgb: bool = False) -> bytes:
        """The Matroska ColourSpace FourCC for these frames; ``rgb``: the three planes are G, B, R.

        Raises:
            Y4MError: ffmpeg has no raw FourCC for this layout.
        """
        if rgb:
            if self.chroma != "444":
                raise Y4MError(f"RGB frames must have three full planes, got chroma {self.chroma}")
            return b"G3\x00" + bytes([self.bits])
        if self.bits == 8 and self.chroma in _FOURCC_8BIT:
            return _FOURCC_8BIT[self.chroma]
        if self.bits > 8 and self.chroma in _HIGH_DEPTH_PREFIX:
            return _HIGH_DEPTH_PREFIX[self.chroma] + bytes([self.bits])
        raise Y4MError(f"no raw video FourCC for {self.chroma} at {self.bits} bit")


def read_header(stream: BinaryIO) -> Y4MHeader | None:
    """Read and parse the stream header line; None if the stream ended before any byte of it.

    Raises:
        Y4MError: a header that is not y4m, or a layout this module does not know.
    """
    line = stream.readline(4096)
    if not line:
        return None
    if not line.startswith(b"YUV4MPEG2 ") or not line.endswith(b"\n"):
        raise Y4MError(f"not a y4m stream header: {line[:80]!r}")
    fields = {}
    extras = {}
    for token in line[10:].decode("ascii", "replace").split():
        if token.startswith("X") and "=" in token:
            key, value = token[1:].split("=", 1)
            extras[key] = value
        else:
            fields[token[0]] = token[1:]
    try:
        width, height = int(fields["W"]), int(fields["H"])
        num, den = (int(part) for part in fields["F"].split(":"))
        fps = Fraction(num, den)
    except (KeyError, ValueError, ZeroDivisionError) as exc:
        raise Y4MError(f"y4m header without a valid size or frame rate: {line.strip()!r}") from exc
    match = _C_TAG.match(fields.get("C", "420"))
    if match is None:
        raise Y4MError(f"unsupported y4m colour space C{fields.get('C')}")
    bits = int(match.group(2) or 8)
    if not 8 <= bits <= 16:
        raise Y4MError(f"unsupported y4m bit depth {bits}")
    frames = int(extras["LENGTH"]) if extras.get("LENGTH", "").isdigit() else None
    return Y4MHeader(
        width=width, height=height, fps=fps, chroma=match.group(1), bits=bits, frames=frames, line=line
    )


def read_frame(stream: BinaryIO, header: Y4MHeader, buffer: memoryview) -> bytes | None:
    """Read one frame into ``buffer`` (``header.frame_size`` bytes); returns the frame's header line,
    or None at the end of the stream.

    Raises:
        Y4MError: a frame header that is not one, or a stream that ends inside a frame.
    """
    line = stream.readline(4096)
    if not line:
        return None
    if not line.startswith(b"FRAME"):
        raise Y4MError(f"expected a y4m FRAME header, got {line[:40]!r}")
    filled = 0
    while filled < len(buffer):
        count = stream.readinto(buffer[filled:])
        if not count:
            raise Y4MError(f"the stream ended inside a frame ({filled} of {len(buffer)} bytes)")
        filled += count
    return line


# --- Matroska -----------------------------------------------------------------------------------


def _size(n: int) -> bytes:
    """An EBML element size as the shortest variable-length integer (all-ones is reserved)."""
    for length in range(1, 9):
        if n < (1 << (7 * length)) - 1:
            return (n | (1 << (7 * length))).to_bytes(length, "big")
    raise ValueError(f"EBML element too large: {n} bytes")


def _element(element_id: bytes, payload: bytes) -> bytes:
    return element_id + _size(len(payload)) + payload


def _uint(element_id: bytes, value: int) -> bytes:
    return _element(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def _string(element_id: bytes, value: str) -> bytes:
    return _element(element_id, value.encode("utf-8"))


_UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"
_CLUSTER = b"\x1f\x43\xb6\x75"
_SIMPLE_BLOCK = b"\xa3"


class MatroskaWriter:
    """Writes uncompressed frames with their own timestamps as a Matroska stream, for ffmpeg's stdin.

    The segment has unknown size (a pipe cannot be rewound) and no cues or seek head; every frame is
    a key frame in its own cluster, so a cluster timestamp is the frame timestamp.
    """

    def __init__(self, out: BinaryIO, *, width: int, height: int, fourcc: bytes, frame_size: int) -> None:
        if len(fourcc) != 4:
            raise ValueError(f"fourcc must be 4 bytes, got {fourcc!r}")
        self._out = out
        self._frame_size = frame_size
        self._last: int | None = None
        ebml = _element(b"\x1a\x45\xdf\xa3", b"".join([
            _uint(b"\x42\x86", 1), _uint(b"\x42\xf7", 1), _uint(b"\x42\xf2", 4), _uint(b"\x42\xf3", 8),
            _string(b"\x42\x82", "matroska"), _uint(b"\x42\x87", 4), _uint(b"\x42\x85", 2),
        ]))
        info = _element(b"\x15\x49\xa9\x66", b"".join([
            _uint(b"\x2a\xd7\xb1", TIMESTAMP_SCALE_NS), _string(b"\x4d\x80", "vsarvo"), _string(b"\x57\x41", "vsarvo"),
        ]))
        video = _element(b"\xe0", _uint(b"\xb0", width) + _uint(b"\xba", height) + _element(b"\x2e\xb5\x24", fourcc))
        track = _element(b"\xae", b"".join([
            _uint(b"\xd7", 1), _uint(b"\x73\xc5", 1), _uint(b"\x83", 1), _string(b"\x86", "V_UNCOMPRESSED"),
            _uint(b"\x9c", 0), video,
        ]))
        tracks = _element(b"\x16\x54\xae\x6b", track)
        out.write(ebml + b"\x18\x53\x80\x67" + _UNKNOWN_SIZE + info + tracks)

    def write(self, timestamp: int, frame: bytes | memoryview) -> None:
        """Write one frame shown at ``timestamp`` (TIMESTAMP_SCALE_NS units, increasing).

        Raises:
            ValueError: a frame of the wrong size, or a timestamp that does not increase.
        """
        if len(frame) != self._frame_size:
            raise ValueError(f"frame has {len(frame)} bytes, expected {self._frame_size}")
        if timestamp < 0 or (self._last is not None and timestamp <= self._last):
            raise ValueError(f"timestamps must increase from 0, got {timestamp} after {self._last}")
        self._last = timestamp
        # SimpleBlock: track 1, relative timestamp 0, flags 0x80 (key frame).
        block_head = b"\x81" + struct.pack(">hB", 0, 0x80)
        block_size = len(block_head) + len(frame)
        cluster_body_size = len(_uint(b"\xe7", timestamp)) + len(_SIMPLE_BLOCK) + len(_size(block_size)) + block_size
        self._out.write(
            _CLUSTER + _size(cluster_body_size) + _uint(b"\xe7", timestamp)
            + _SIMPLE_BLOCK + _size(block_size) + block_head
        )
        self._out.write(frame)
