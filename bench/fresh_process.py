"""Run one measurement point in a fresh Python process, so its peak memory is its own.

The parent calls ``run_point(module, spec, timeout)``; the child is ``python -m <module> --point
<spec as JSON>``, whose ``main`` hands the spec to its measuring function and calls
``emit_point(result)``, which prints the result as the last line of stdout. Logs go to stderr.
"""
from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from bench.record import REPO_ROOT

__all__ = ["PointFailed", "run_point", "emit_point"]

_MARKER = "BENCH-POINT "


class PointFailed(RuntimeError):
    """The child process failed or ran out of time; ``reason`` says which, in words for a table."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def run_point(module: str, spec: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """Run ``python -m module --point JSON`` from the repository root and return the child's result.

    Raises PointFailed with "timed out after N s" or the last line of the child's stderr.
    """
    command = [sys.executable, "-m", module, "--point", json.dumps(spec)]
    try:
        done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise PointFailed(f"timed out after {timeout:.0f} s") from exc
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(_MARKER):
            return json.loads(line[len(_MARKER):])
    tail = [line for line in done.stderr.strip().splitlines() if line.strip()]
    sys.stderr.write(done.stderr[-4000:])
    raise PointFailed(f"exit {done.returncode}: {tail[-1] if tail else 'no output'}")


def emit_point(result: dict[str, Any]) -> None:
    """Child side: hand ``result`` to the parent (one marked JSON line on stdout)."""
    sys.stdout.write(_MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
