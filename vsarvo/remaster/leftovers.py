"""What a file's run leaves while it works, named so that a later run can tell whose it is.

Each file gets a temporary folder in the system's temp directory (``arvo-remaster-<pid>-<random>``)
and writes its output to a hidden partial file beside the final one
(``.<stem>.<random>.<pid>@<host>.arvo-partial.<ext>``). A run that ends in Python removes both; a run
killed outright (SIGKILL, a power cut) cannot, so every run starts by removing the leftovers of runs
whose process is gone: folders and partials that name a pid on this host that no longer exists.
Leftovers of processes that are still alive, or of another host (a shared folder under Ray), are
never touched; neither is anything without the marks.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import tempfile
from pathlib import Path

from vsarvo.atomic import temporary_glob
from vsarvo.remaster.job import PARTIAL_MARK

__all__ = [
    "WORK_DIR_PREFIX", "pid_alive", "make_work_dir", "partial_path", "remove_stale_work_dirs", "remove_stale_partials",
    "remove_job_temporaries",
]

WORK_DIR_PREFIX = "arvo-remaster-"

_WORK_DIR = re.compile(re.escape(WORK_DIR_PREFIX) + r"(\d+)-[0-9a-z_]+$")
_PARTIAL = re.compile(r"\.(\d+)@([^/]+)" + re.escape(PARTIAL_MARK) + r"[^/]*$")


def _host() -> str:
    """This machine's name as it appears in partial names (no path separators or '@')."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "localhost"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (one owned by another user counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def make_work_dir() -> Path:
    """A new temporary folder for one file's scripts and logs, named after this process."""
    return Path(tempfile.mkdtemp(prefix=f"{WORK_DIR_PREFIX}{os.getpid()}-"))


def partial_path(output: Path) -> Path:
    """An unused hidden name beside ``output`` for its partial file, ending in ``output``'s extension
    (ffmpeg picks the muxer from it) and naming this process and host.

    Only the name is made: ffmpeg creates the file, so it gets the usual permissions (umask), which
    the final file keeps after the rename.
    """
    owner = f"{os.getpid()}@{_host()}"
    while True:
        name = f".{output.stem}.{secrets.token_hex(4)}.{owner}{PARTIAL_MARK}{output.suffix}"
        candidate = output.with_name(name)
        if not candidate.exists():
            return candidate


def remove_stale_work_dirs(temp_dir: Path | None = None) -> list[Path]:
    """Remove the temporary folders of dead arvo processes from ``temp_dir`` (default: the system's);
    returns those removed. Failures to remove are ignored: the next run tries again."""
    folder = Path(temp_dir or tempfile.gettempdir())
    removed = []
    try:
        entries = list(folder.glob(WORK_DIR_PREFIX + "*"))
    except OSError:
        return removed
    for entry in entries:
        match = _WORK_DIR.match(entry.name)
        if match and entry.is_dir() and not entry.is_symlink() and not pid_alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def remove_stale_partials(folder: Path, *, recursive: bool = False, every: bool = False) -> list[Path]:
    """Remove hidden partial files left in ``folder`` by dead arvo processes on this host; returns
    those removed.

    ``every``: remove every partial, whoever wrote it (for the holder of a job's folder lock, which
    no other run of that job can be writing to). Failures to remove are ignored.
    """
    pattern = f".*{PARTIAL_MARK}*"
    removed = []
    try:
        candidates = list(folder.rglob(pattern) if recursive else folder.glob(pattern))
    except OSError:
        return removed
    host = _host()
    for candidate in candidates:
        match = _PARTIAL.search(candidate.name)
        stale = every or (match is not None and match.group(2) == host and not pid_alive(int(match.group(1))))
        if stale and candidate.is_file():
            try:
                candidate.unlink()
            except OSError:
                continue
            removed.append(candidate)
    return removed


def remove_job_temporaries(out: Path, names: tuple[str, ...], log_dir: str) -> list[Path]:
    """Remove the temporary files (vsarvo.atomic's ``.<stem>.<random>.tmp<suffix>``) of a job's own
    records in its folder ``out``: the files ``names`` and the logs under ``log_dir``. Only the
    holder of the folder's lock may call this: no other writer of those files can be running."""
    patterns = [temporary_glob(name) for name in names]
    removed = []
    try:
        found = [p for pattern in patterns for p in out.glob(pattern)]
        if (out / log_dir).is_dir():
            found += list((out / log_dir).rglob(temporary_glob("*.log")))
    except OSError:
        return removed
    for path in found:
        try:
            path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed
