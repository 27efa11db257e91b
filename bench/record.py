"""Result files: where they live, the envelope every benchmark writes, atomic writing and loading."""
from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from bench.machine import describe_machine
from vsarvo.atomic import write_text_atomic

__all__ = ["RESULTS_DIR", "REPO_ROOT", "envelope", "write_json", "load_results"]

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"


def envelope(benchmark: str, argv: list[str], note: str | None) -> dict[str, Any]:
    """The fields every result file starts with: which benchmark, the command that reproduces it, the machine.

    ``note`` is free text about the conditions (e.g. "a training run was using the CPU"); the machine
    description records the load average too, so contention is visible even without a note.
    """
    # The note is recorded in its own field; it is not needed to reproduce the numbers.
    command = list(argv)
    if "--note" in command:
        i = command.index("--note")
        del command[i:i + 2]
    return {
        "benchmark": benchmark,
        "command": shlex.join(["python", "-m", f"bench.{benchmark}", *command]),
        "note": note,
        "machine": describe_machine(),
    }


def write_json(path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr)
    return Path(path)


def load_results(folder: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Every ``*.json`` in ``folder`` that carries a ``benchmark`` field, keyed by that field."""
    results: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(folder).glob("*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "benchmark" in data:
            results[data["benchmark"]] = data
    return results
