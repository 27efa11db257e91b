"""The job's record in its output folder: the manifest (per-file settings hash and status, so a
re-run skips finished files and redoes changed ones) and the final summary (with its table for a
terminal). The lock that keeps two jobs from writing one folder is vsarvo.remaster.lock.

Only the job's driver process writes these files, from one thread at a time; workers (threads or
Ray tasks) report results to the driver. Every write goes to a temporary name and is renamed over
the old file, so a crash at any moment leaves the previous complete version.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from vsarvo.atomic import write_text_atomic
from vsarvo.remaster.progress import format_duration

__all__ = [
    "MANIFEST_NAME", "SUMMARY_NAME", "LOG_DIR", "Manifest", "settings_hash",
    "write_summary", "format_table", "STATUSES",
]

MANIFEST_NAME = "arvo-job.json"
SUMMARY_NAME = "arvo-summary.json"
LOG_DIR = "arvo-logs"
_VERSION = 1
# What a file can end as in a summary: done now, done before with the same settings (skipped),
# failed, or stopped by a signal (interrupted).
STATUSES = ("done", "skipped", "failed", "interrupted")


def settings_hash(settings: dict[str, Any]) -> str:
    """A stable digest of a file's settings (JSON with sorted keys)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n", fsync=True)


class Manifest:
    """``arvo-job.json`` in the output folder: one entry per output file, keyed by its path
    relative to the folder.

    An entry holds the source, the settings and their hash, the status ("running", "done",
    "failed", "interrupted"), the reason of a failure, frames, seconds, attempts and when it was
    last updated. A file counts as finished only if its entry says "done" with the same settings
    hash *and* the output file exists.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / MANIFEST_NAME
        self._lock = threading.Lock()
        self.files: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
            files = data["files"]
            if not isinstance(files, dict):
                raise TypeError("'files' is not an object")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"{self.path} is not a vsarvo job manifest ({exc}); move it away to start the job afresh"
            ) from exc
        self.files = files

    def is_finished(self, key: str, digest: str, output: Path) -> bool:
        """Whether ``key`` was done with settings ``digest`` and its output is still there."""
        entry = self.files.get(key)
        return (
            entry is not None and entry.get("status") == "done" and entry.get("settings_hash") == digest
            and output.is_file()
        )

    def record(self, key: str, **fields: Any) -> None:
        """Update one entry (fields merged into it) and save the manifest."""
        with self._lock:
            entry = self.files.setdefault(key, {})
            entry.update(fields)
            entry["updated"] = _now()
            _write_json(self.path, {"version": _VERSION, "files": self.files})


def write_summary(folder: Path, rows: list[dict[str, Any]], *, interrupted: bool) -> Path:
    """Write ``arvo-summary.json``: the job's files with their status, and the counts per status.

    Each row has at least ``key`` and ``status`` (one of STATUSES).
    """
    counts = {status: sum(1 for row in rows if row["status"] == status) for status in STATUSES}
    path = folder / SUMMARY_NAME
    _write_json(path, {"finished": _now(), "interrupted": interrupted, "counts": counts, "files": rows})
    return path


def format_table(rows: list[dict[str, Any]]) -> str:
    """A readable table of the summary's rows and a line of counts, for a terminal."""
    header = ("status", "frames", "time", "fps", "file", "reason")
    lines = [header]
    for row in rows:
        frames = row.get("frames") or 0
        seconds = row.get("seconds")
        fps = f"{frames / seconds:.1f}" if row["status"] == "done" and seconds else "-"
        lines.append((
            row["status"], str(frames) if frames else "-", format_duration(seconds) if row["status"] != "skipped" else "-",
            fps, row["key"], row.get("reason") or "",
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    text = [
        "  ".join(cell.ljust(width) for cell, width in zip(line[:-1], widths)) + ("  " + line[-1] if line[-1] else "")
        for line in lines
    ]
    counts = {status: sum(1 for row in rows if row["status"] == status) for status in STATUSES}
    text.append(", ".join(f"{count} {status}" for status, count in counts.items() if count or status != "interrupted"))
    return "\n".join(line.rstrip() for line in text)
