"""SIGINT and SIGTERM during a job: the job ends with exit code 128 + the signal's number, its lock
and partial files removed, instead of dying wherever the signal caught it.

While files run, a signal is deferred: it only sets a flag and cancels the running files (their
processes are killed), and the driver's loop then records them as interrupted and writes the
summary. Outside that (planning, hashing the weights) a signal raises JobInterrupted, which unwinds
the job through its ``with`` blocks.
"""
from __future__ import annotations

import contextlib
import signal
from typing import Any, Callable, Iterator

__all__ = ["Interrupts", "JobInterrupted"]


class JobInterrupted(BaseException):
    """SIGINT or SIGTERM arrived while the job was not running files.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` on the way swallows it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum


class Interrupts:
    """Handles SIGINT/SIGTERM inside ``with Interrupts() as interrupts:``; the previous handlers
    come back on exit. Must be entered in the main thread (Python delivers signals there)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._on_signal: Callable[[], None] | None = None
        self._deferring = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if not self._deferring:
            self.received = self.received or signum
            raise JobInterrupted(signum)
        if self.received is None:
            self.received = signum
            if self._on_signal is not None:
                self._on_signal()

    @contextlib.contextmanager
    def deferred(self, on_signal: Callable[[], None] | None = None) -> Iterator["Interrupts"]:
        """Inside this block a signal sets ``received`` and calls ``on_signal`` (once) instead of raising."""
        self._on_signal, self._deferring = on_signal, True
        try:
            yield self
        finally:
            self._on_signal, self._deferring = None, False

    def __enter__(self) -> "Interrupts":
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
