"""Progress of a remaster job on stderr: a line when a file starts or ends, and a status line with
frames, fps and ETA per running file and for the whole job.

On a terminal the status line is redrawn in place twice a second; in a log (not a terminal) it is
printed as a plain line every few seconds. Quiet mode prints nothing. Never stdout.
"""
from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

__all__ = ["JobProgress", "format_duration"]


def format_duration(seconds: float | None) -> str:
    """``m:ss`` or ``h:mm:ss``; "?" when unknown (an ETA before any progress)."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class _Running:
    number: int
    started: float
    frames: int = 0
    total: int | None = None
    first_frame_at: float | None = None

    def fps(self, now: float) -> float:
        """Frames per second since the first frame: the seconds before it (loading the model,
        indexing the source) are no measure of the rate to come."""
        if self.first_frame_at is None or self.frames < 2 or now <= self.first_frame_at:
            return 0.0
        return (self.frames - 1) / (now - self.first_frame_at)

    def fraction(self) -> float:
        return min(1.0, self.frames / self.total) if self.total else 0.0


@dataclass
class JobProgress:
    """Tracks a job's files and draws its progress.

    Args:
        files: how many files the job will process (skipped files excluded).
        stream: where to draw (stderr).
        quiet: draw nothing.
        interval: seconds between status lines; None: 0.5 on a terminal, 5 otherwise.
    """

    files: int
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    quiet: bool = False
    interval: float | None = None
    _running: dict[str, _Running] = field(default_factory=dict, init=False)
    _finished: int = field(default=0, init=False)
    _frames_finished: int = field(default=0, init=False)
    _started_files: int = field(default=0, init=False)
    _start: float = field(default_factory=lambda: time.monotonic(), init=False)
    _last_draw: float = field(default=0.0, init=False)
    _status_shown: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        if self.interval is None:
            self.interval = 0.5 if self._tty else 5.0

    # --- events ------------------------------------------------------------------------------

    def started(self, key: str, where: str | None = None) -> None:
        """A file began (``where``: its worker's device or node, if worth saying)."""
        if key in self._running:
            return
        self._started_files += 1
        self._running[key] = _Running(number=self._started_files, started=time.monotonic())
        self._event(f"[{self._started_files}/{self.files}] {key}: started" + (f" on {where}" if where else ""))

    def advanced(self, key: str, frames: int, total: int | None) -> None:
        """A file has ``frames`` of ``total`` frames done."""
        running = self._running.get(key)
        if running is None:
            self.started(key)
            running = self._running[key]
        if running.first_frame_at is None and frames > 0:
            running.first_frame_at = time.monotonic()
        running.frames, running.total = frames, total
        self.draw()

    def finished(self, key: str, status: str, *, frames: int = 0, seconds: float = 0.0, reason: str | None = None,
                 log: str | None = None, retry: bool = False) -> None:
        """A file ended (``log``: where its tools' messages are); ``retry``: it failed and goes back
        to the queue (counts as not finished)."""
        running = self._running.pop(key, None)
        number = f"[{running.number}/{self.files}] " if running else ""
        if retry:
            self._started_files -= 1
            self._event(f"{number}{key}: failed, retrying: {reason}")
            return
        self._finished += 1
        self._frames_finished += frames
        if status == "done":
            fps = frames / seconds if seconds else 0.0
            self._event(f"{number}{key}: done, {frames} frames in {format_duration(seconds)} ({fps:.1f} fps)")
        else:
            self._event(f"{number}{key}: {status}: {reason}" + (f" (log: {log})" if log else ""))

    # --- drawing -----------------------------------------------------------------------------

    def status_line(self) -> str:
        """Per running file: frames, fps, ETA; then the job: files, percent, fps, ETA."""
        now = time.monotonic()
        parts = []
        frames_running = 0
        for key, running in sorted(self._running.items(), key=lambda item: item[1].number):
            frames_running += running.frames
            if running.total is None:
                parts.append(f"{key} loading")  # vspipe is evaluating the script (model, source index)
                continue
            fps = running.fps(now)
            eta = (running.total - running.frames) / fps if fps else None
            parts.append(f"{key} {running.frames}/{running.total} frames {fps:.1f} fps ETA {format_duration(eta)}")
        done_fraction = self._finished + sum(r.fraction() for r in self._running.values())
        fraction = done_fraction / self.files if self.files else 1.0
        elapsed = now - self._start
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else None
        fps = (self._frames_finished + frames_running) / elapsed if elapsed > 0 else 0.0
        parts.append(
            f"overall {self._finished}/{self.files} files {100 * fraction:.0f}% {fps:.1f} fps ETA {format_duration(eta)}"
        )
        return " | ".join(parts)

    def draw(self, *, force: bool = False) -> None:
        """Show the status line, at most once per interval unless ``force``."""
        now = time.monotonic()
        if self.quiet or (not force and now - self._last_draw < self.interval):
            return
        self._last_draw = now
        line = "arvo: " + self.status_line()
        if self._tty:
            # One screen line, or the carriage return would redraw only its last part.
            line = line[: shutil.get_terminal_size().columns - 1]
            self.stream.write("\r\x1b[K" + line)
            self._status_shown = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the status line (a terminal's cursor goes to a fresh line)."""
        if self._tty and self._status_shown and not self.quiet:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._status_shown = False

    def _event(self, text: str) -> None:
        if self.quiet:
            return
        prefix = "\r\x1b[K" if self._tty and self._status_shown else ""
        self.stream.write(f"{prefix}arvo: {text}\n")
        self._status_shown = False
        self.stream.flush()
