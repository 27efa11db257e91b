"""The lock that keeps two jobs from writing one output folder at once.

The lock is a hidden file, ``.arvo-job.lock``, in the output folder, held with ``flock`` for the
job's lifetime and removed when the job ends, however it ends in Python (done, failed, an
exception, SIGINT/SIGTERM). It records who holds it (pid, host, start time), which a refused job
prints. A job killed outright (SIGKILL, a power cut) leaves the file behind, but the operating
system drops its flock with the process, so the next job finds the file unlocked, recognises it as
stale and takes it over; a job that is still running keeps its flock and the next one is refused.
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

__all__ = ["JobLock", "JobLockedError", "LOCK_NAME", "describe_holder"]

LOCK_NAME = ".arvo-job.lock"


class JobLockedError(RuntimeError):
    """Another job holds the output folder."""


def describe_holder(holder: dict[str, Any]) -> str:
    """``pid 123 on host, started 2025-01-01T10:00:00+00:00`` from a lock's record (what it has of it)."""
    parts = []
    if "pid" in holder:
        parts.append(f"pid {holder['pid']}" + (f" on {holder['host']}" if "host" in holder else ""))
    if "started" in holder:
        parts.append(f"started {holder['started']}")
    return ", ".join(parts)


def _read_record(fd: int) -> dict[str, Any]:
    """The holder a lock file records; {} for an empty or unreadable one (a job of an older vsarvo)."""
    try:
        data = os.pread(fd, 4096, 0)
        record = json.loads(data) if data else {}
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


class JobLock:
    """An exclusive lock on an output folder for the lifetime of a job (``with JobLock(out): ...``).

    Attributes (after enter):
        stale: what the lock file said about the job that left it (``pid``, ``host``, ``started``)
            when this job took over a lock that a killed job never removed; None otherwise.

    Raises (on enter):
        JobLockedError: another running job holds the folder.
        OSError: the folder cannot be written.
    """

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.stale: dict[str, Any] | None = None
        self._fd: int | None = None

    def __enter__(self) -> "JobLock":
        while self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = describe_holder(_read_record(fd))
                os.close(fd)
                raise JobLockedError(
                    f"another arvo job{f' ({holder})' if holder else ''} is writing to {self.path.parent}; "
                    "wait for it to end"
                ) from None
            if not self._is_current(fd):
                # The job that held it removed the file between our open and our flock: lock the new one.
                os.close(fd)
                continue
            record = _read_record(fd)
            self.stale = record or (None if os.fstat(fd).st_size == 0 else {})
            try:
                self._write_record(fd)
            except OSError:
                # A full disk: no job runs here, so the lock (ours, and locked) goes too.
                try:
                    self.path.unlink(missing_ok=True)
                except OSError:
                    pass  # never over the error that brought us here
                os.close(fd)
                raise
            self._fd = fd
        return self

    def _is_current(self, fd: int) -> bool:
        """Whether ``fd`` is still the file at the lock's path."""
        try:
            named = os.stat(self.path)
        except FileNotFoundError:
            return False
        opened = os.fstat(fd)
        return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)

    @staticmethod
    def _write_record(fd: int) -> None:
        record = {
            "pid": os.getpid(), "host": socket.gethostname(),
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)

    def __exit__(self, *exc: object) -> None:
        if self._fd is None:
            return
        # Removed while still locked: a job that opens the path after this creates a new file, and
        # one that opened it before sees on flock that it is no longer the file at the path.
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None
