"""Disk faults in words a user can act on: an output folder that cannot be written (read-only,
no permission, full) is found before a job starts, and a tool that failed because the disk filled up
is reported as a full disk, naming the folder."""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

__all__ = ["check_writable", "describe_os_error", "is_full", "DISK_FULL_TEXT"]

# What ffmpeg (strerror) prints when a write fails for want of space.
DISK_FULL_TEXT = "No space left on device"

# Bytes a start-up check writes: one page, which a full tmpfs or disk refuses.
_PROBE_BYTES = 4096
# Free bytes below which a folder's file system counts as full after a write failed.
_FULL_BELOW = 1 << 20


def describe_os_error(exc: OSError, folder: Path, *, what: str = "", fix: str = "write elsewhere") -> str:
    """One line for an OSError met while writing to ``folder`` (``what`` names it, e.g. "the output
    folder "), with what to do about it (``fix``, e.g. "choose another --out")."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        detail, fix = f"its disk is full ({reason}, ENOSPC)", f"free some space or {fix}"
    elif exc.errno == errno.EROFS:
        detail = f"it is on a read-only file system ({reason}, EROFS)"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        detail, fix = reason, f"fix its permissions or {fix}"
    else:
        detail = reason
    return f"cannot write to {what}{folder}: {detail}; {fix}"


def check_writable(folder: Path) -> None:
    """Create ``folder`` if needed and write (then remove) a small hidden file in it.

    Raises:
        OSError: the folder cannot be created or written, or its disk is full; ``filename`` is the folder.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix=".arvo-write-check.")
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(folder)) from exc
    try:
        os.write(fd, bytes(_PROBE_BYTES))
        os.fsync(fd)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(folder)) from exc
    finally:
        os.close(fd)
        try:
            os.unlink(name)
        except OSError:
            pass


def is_full(folder: Path) -> bool:
    """Whether the file system holding ``folder`` has (almost) no space left for this user."""
    try:
        stat = os.statvfs(folder)
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize < _FULL_BELOW
