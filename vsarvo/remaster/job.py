"""What the parts of a remaster job hand each other: the filter's options, one file's task and its
result, the cancellation that stops running files, and the names the job gives its temporary files.

The planner makes FileTasks, the pools carry them to workers, the worker (vsarvo.remaster.transcode)
turns each into a FileResult, and the driver records the results; all of them import this module,
none of them imports another's. Everything here is plain data (Ray pickles tasks and results).
"""
from __future__ import annotations

import argparse
import subprocess
import threading
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from vsarvo.filter_options import DEFAULT_SC_THRESHOLD, deblur_kwargs, pixel_settings
from vsarvo.remaster.encoder import Encoder

__all__ = [
    "DeblurOptions", "FileTask", "FileResult", "Cancellation", "UsageError", "PARTIAL_MARK", "kill_process",
]

# Partial outputs are hidden files named ".<name>.<random>.<pid>@<host>.arvo-partial.<ext>" beside the
# final file (vsarvo.remaster.leftovers): a re-run recognises them by this mark and removes those of
# dead runs, and their extension still names the muxer.
PARTIAL_MARK = ".arvo-partial"

# Settings that job manifests record as None when the option has its default value: the threshold
# was recorded so before the options were listed in one place, and finished files of those jobs
# keep their settings hash.
_UNSET_IN_HASH = {"sc_threshold": DEFAULT_SC_THRESHOLD}


class UsageError(Exception):
    """The job cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class DeblurOptions:
    """The ``core.arvo.Deblur`` keyword arguments a job was given, as ``(name, value)`` pairs; options
    not given are left out, so the filter's own defaults apply. The options, their flags and which of
    them change the pixels are listed once, in vsarvo.filter_options."""

    given: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def from_values(cls, values: argparse.Namespace | Mapping[str, Any]) -> "DeblurOptions":
        """From parsed command-line flags or a mapping (None: not given; file paths made absolute)."""
        return cls(tuple(sorted(deblur_kwargs(values).items())))

    @property
    def weights(self) -> str | None:
        """The weight file given (an absolute path), or None for the shipped weights."""
        return dict(self.given).get("weights")

    def filter_kwargs(self, *, device: str | None = None) -> dict[str, Any]:
        """Keyword arguments for Deblur; ``device`` (a worker's GPU) replaces the options' device."""
        values = dict(self.given)
        if device is not None:
            values["device"] = device
        return values

    def settings(self, weights_digest: str) -> dict[str, Any]:
        """What changes the deblurred pixels, for the job's settings hash: the weights by content,
        not path, and every pixel-changing option with its default filled in. Device, tiling (exact)
        and streams only change speed, so a job re-run on other hardware does not redo finished files."""
        settings = pixel_settings(dict(self.given), weights_digest=weights_digest)
        for name, unset in _UNSET_IN_HASH.items():
            if settings.get(name) == unset:
                settings[name] = None
        return settings


@dataclass(frozen=True, kw_only=True)
class FileTask:
    """One file to deblur: ``source`` → ``output`` (absolute paths); ``key`` names it in the job;
    ``log``, if set, receives the tools' messages when the file fails."""

    key: str
    source: str
    output: str
    deblur: DeblurOptions
    encoder: Encoder
    log: str | None = None


@dataclass(kw_only=True)
class FileResult:
    """What became of one FileTask.

    Attributes:
        status: "done" (the output is complete under its final name), "failed" or "interrupted".
        frames: frames written (done) or relayed before the failure.
        seconds: wall time spent on the file.
        reason: why it failed, one line; the log has the rest.
        log: the file that keeps the tools' messages of a failed file.
        vfr: the output carries per-frame timestamps (variable frame rate).
    """

    key: str
    status: str
    frames: int = 0
    seconds: float = 0.0
    reason: str | None = None
    log: str | None = None
    vfr: bool = False

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def kill_process(process: subprocess.Popen[bytes]) -> None:
    """Kill ``process`` unless it has already ended."""
    if process.poll() is None:
        try:
            process.kill()
        except ProcessLookupError:
            pass


class Cancellation:
    """Lets another thread stop running files: ``cancel()`` kills every process registered here,
    which ends the relay; those files come back "interrupted".

    ``cancel()`` may run in a signal handler, interrupting the same thread inside ``register()``:
    the lock is re-entrant so that cannot deadlock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._processes: set[subprocess.Popen[bytes]] = set()
        self.cancelled = False

    def register(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._processes.add(process)
            cancelled = self.cancelled
        if cancelled:
            kill_process(process)

    def unregister(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._processes.discard(process)

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            processes = list(self._processes)
        for process in processes:
            kill_process(process)
